/**
 * The operator's side of the admin service: Supernets and their channels,
 * node listings, the audit log. HTTP-free; server.ts maps the operator
 * routes onto these methods. Each change is one store transaction and is
 * audited in it.
 */
import type { ReadTx, Store } from './store.js';
import type { GroupKeyScheme } from './keys.js';
import type { Clock } from './clock.js';
import type { Policy } from './policy.js';
import type { AuditLog, AuditEntry, AuditHead } from './audit.js';
import type { VarpRegistry } from './varp.js';
import { ApiError, badField } from './errors.js';
import { parsePool, reservedVip } from './addr.js';
import { MAX_CHANNELS_PER_SUPERNET, type SupernetCreateFields } from './requests.js';
import { getSupernet, type NodeRecord, type NodeSummary, type SupernetRecord } from './records.js';

export interface SupernetAdminDeps {
  store: Store;
  scheme: GroupKeyScheme;
  clock: Clock;
  audit: AuditLog;
  varp: VarpRegistry;
}

export class SupernetAdmin {
  constructor(private readonly d: SupernetAdminDeps) {}

  private get audit(): AuditLog {
    return this.d.audit;
  }

  private get varp(): VarpRegistry {
    return this.d.varp;
  }

  /** Records the policy in force in the audit log when it differs from the last one recorded. */
  async notePolicy(p: Policy): Promise<void> {
    await this.d.store.write((tx) => {
      const last = tx.get<{ hash: string }>('meta', 'policy');
      if (last?.hash === p.hash) return;
      tx.put('meta', 'policy', { hash: p.hash, source: p.source, loadedAt: p.loadedAt });
      this.audit.append(tx, {
        action: 'policy-loaded',
        detail: { hash: p.hash, source: p.source },
      });
    });
  }

  async createSupernet(f: SupernetCreateFields): Promise<SupernetRecord> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      if (tx.get('supernets', f.id))
        throw new ApiError(409, 'supernet_exists', `id: Supernet ${f.id} already exists`);
      const sn: SupernetRecord = {
        id: f.id,
        name: f.name,
        pool: f.pool,
        channels: f.channels.map((id) => ({ id, createdAt: now })),
        serial: 1,
        createdAt: now,
      };
      tx.put('supernets', f.id, sn);
      for (const ch of f.channels) this.d.scheme.onCreate(tx, f.id, ch);
      this.audit.append(tx, {
        action: 'supernet-created',
        supernet: f.id,
        detail: { pool: f.pool, channels: f.channels, name: f.name },
      });
      return sn;
    });
  }

  async createChannel(sid: string, ch: string): Promise<SupernetRecord> {
    return this.d.store.write((tx) => {
      const sn = getSupernet(tx, sid, 'supernet id in the path');
      if (sn.channels.some((c) => c.id === ch)) {
        throw new ApiError(409, 'channel_exists', `id: Supernet ${sid} already has channel ${ch}`);
      }
      if (sn.channels.length >= MAX_CHANNELS_PER_SUPERNET) {
        throw badField('id', `a Supernet has at most ${MAX_CHANNELS_PER_SUPERNET} channels`);
      }
      const next = { ...sn, channels: [...sn.channels, { id: ch, createdAt: this.d.clock.now() }] };
      tx.put('supernets', sid, next);
      this.d.scheme.onCreate(tx, sid, ch);
      this.audit.append(tx, { action: 'channel-created', supernet: sid, detail: { channel: ch } });
      return next;
    });
  }

  async listSupernets(): Promise<SupernetRecord[]> {
    return this.d.store.read((tx) => tx.list<SupernetRecord>('supernets').map(([, v]) => v));
  }

  async describeSupernet(sid: string): Promise<Record<string, unknown>> {
    return this.d.store.read((tx) => {
      const sn = getSupernet(tx, sid, 'supernet id in the path');
      return {
        ...sn,
        reservedVip: reservedVip(parsePool(sn.pool)),
        channels: sn.channels.map((c) => ({
          ...c,
          ...this.d.scheme.describe(tx, sid, c.id),
          memberNames: this.d.scheme.members(tx, sid, c.id),
        })),
        nodes: this.nodeSummaries(tx, sid),
      };
    });
  }

  async listNodes(sid: string): Promise<NodeSummary[]> {
    return this.d.store.read((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      return this.nodeSummaries(tx, sid);
    });
  }

  private nodeSummaries(tx: ReadTx, sid: string): NodeSummary[] {
    const now = this.d.clock.now();
    return tx
      .list<NodeRecord>('nodes', sid + '|')
      .map(([, n]) => {
        const v = this.varp.view(tx, sid, n.vip, now);
        return {
          name: n.name,
          id: n.id,
          vip: n.vip,
          channels: n.channels,
          endpoint: v.endpoint,
          expiresAt: v.expiresAt,
          admittedAt: n.admittedAt,
          loginAt: n.loginAt,
          rule: n.rule,
        };
      })
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async auditSince(
    since: number,
    limit: number,
  ): Promise<{ entries: AuditEntry[]; head: AuditHead | null }> {
    return this.d.store.read((tx) => ({
      entries: this.audit.since(tx, since, limit),
      head: this.audit.head(tx),
    }));
  }
}
