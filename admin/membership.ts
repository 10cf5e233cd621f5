/**
 * Admission and membership (paper §4.3 steps (1), (1a), (1b), (2), logout
 * and forced removal): the logic behind login, logout, expel, config, VARP
 * and the operator's Supernet/channel management. HTTP-free: server.ts maps
 * routes onto these methods.
 *
 * Each operation is ONE store write transaction, so it is atomic, and it
 * answers only after the change is durable. Pushes to other nodes are
 * returned as {@link Effects} and sent by the caller after the commit.
 */
import { fingerprint, seal, type Identity } from './identity.js';
import {
  openEnvelope,
  peekEnvelope,
  signEnvelope,
  tokenContext,
  type Endpoint,
  type LoginResponse,
  type MemberView,
  type NodeConfig,
  type SignedEnvelope,
  type SealedChannelKey,
} from './protocol.js';
import type { ReadTx, Store, WriteTx } from './store.js';
import type { GroupKeyScheme, KeyMember } from './keys.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { Policy } from './policy.js';
import { AuditLog, type AuditEntry, type AuditHead } from './audit.js';
import { VarpRegistry } from './varp.js';
import { Sessions, type RevokeCode, type SessionRecord } from './sessions.js';
import { ApiError, badField } from './errors.js';
import { firstFreeVip, inPool, parsePool, reservedVip, vipProblem, type Pool } from './addr.js';
import {
  parseLoginFields,
  validateIdentity,
  MAX_CHANNELS_PER_SUPERNET,
  type LoginFields,
  type SupernetCreateFields,
} from './requests.js';
import { streamKey } from './events.js';

/** Collection `supernets`, key = canonical id. */
export interface SupernetRecord {
  id: string;
  name: string | null;
  pool: string;
  channels: Array<{ id: string; createdAt: number }>;
  /** Grows with every change that concerns the Supernet's nodes. */
  serial: number;
  createdAt: number;
}

/** Collection `nodes`, key `<supernet>|<name>`: an admitted node. */
export interface NodeRecord {
  supernet: string;
  name: string;
  id: string;
  sign: string;
  seal: string;
  vip: string;
  channels: string[];
  /** sha256 of the current session token. */
  session: string;
  rule: string;
  admittedAt: number;
  loginAt: number;
}

/**
 * Collection `leases`, key `<supernet>|<vip>`: which identity+name an
 * address belongs to. Leases outlive logouts, so a node that logs in again
 * gets the same address; inactive leases are reclaimed oldest first only
 * when the range is full.
 */
export interface LeaseRecord {
  supernet: string;
  vip: string;
  identity: string;
  name: string;
  lastUsed: number;
}

/** What to push after a commit. */
export interface Effects {
  supernet: string;
  serial: number;
  /** Stream keys of nodes whose config changed. */
  config: string[];
  /** Sessions whose streams must end. */
  endSessions: string[];
  expelled?: { key: string; reason: string };
}

export interface MembershipDeps {
  store: Store;
  identity: Identity;
  scheme: GroupKeyScheme;
  clock: Clock;
  logger: Logger;
  policy: () => Policy;
  graceMs: number;
  varpTtlMs: number;
  challengeTtlMs?: number;
}

const nodeKey = (sid: string, name: string): string => `${sid}|${name}`;
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A node's own view for the operator. */
export interface NodeSummary {
  name: string;
  id: string;
  vip: string;
  channels: string[];
  endpoint: Endpoint | null;
  expiresAt: number;
  admittedAt: number;
  loginAt: number;
  rule: string;
}

export class Membership {
  readonly audit: AuditLog;
  readonly varp: VarpRegistry;
  readonly sessions: Sessions;

  constructor(private readonly d: MembershipDeps) {
    this.audit = new AuditLog(d.identity, d.clock);
    this.varp = new VarpRegistry(d.varpTtlMs);
    this.sessions = new Sessions(d.challengeTtlMs);
  }

  // ---- helpers --------------------------------------------------------------

  private bumpSerial(tx: WriteTx, sid: string): number {
    const sn = tx.get<SupernetRecord>('supernets', sid)!;
    tx.put('supernets', sid, { ...sn, serial: sn.serial + 1 });
    return sn.serial + 1;
  }

  /** Names of nodes (other than `self`) in any of `channels`. */
  private sharing(tx: ReadTx, sid: string, channels: Iterable<string>, self: string): string[] {
    const out = new Set<string>();
    for (const ch of channels)
      for (const m of this.d.scheme.members(tx, sid, ch)) if (m !== self) out.add(m);
    return [...out];
  }

  private supernet(tx: ReadTx, sid: string, field = 'supernet'): SupernetRecord {
    const sn = tx.get<SupernetRecord>('supernets', sid);
    if (!sn) throw new ApiError(404, 'unknown_supernet', `${field}: no Supernet ${sid}`);
    return sn;
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

  // ---- operator: Supernets and channels ------------------------------------

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
      const sn = this.supernet(tx, sid, 'supernet id in the path');
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
      const sn = this.supernet(tx, sid, 'supernet id in the path');
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
      this.supernet(tx, sid, 'supernet id in the path');
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

  // ---- node: login ------------------------------------------------------------

  async challenge(): Promise<{ challenge: string; expiresAt: number }> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => this.sessions.createChallenge(tx, now));
  }

  /** Checks the envelope's shape and signature; returns the validated fields. */
  private verifyLogin(body: Record<string, unknown>): LoginFields {
    for (const k of Object.keys(body)) if (k !== 'request') throw badField(k, 'unknown field');
    const env = body.request;
    if (!isObj(env)) throw badField('request', 'expected a signed envelope {payload, sig}');
    for (const k of Object.keys(env))
      if (k !== 'payload' && k !== 'sig') throw badField(`request.${k}`, 'unknown field');
    if (typeof env.payload !== 'string' || env.payload.length === 0)
      throw badField('request.payload', 'expected base64url text');
    if (typeof env.sig !== 'string') throw badField('request.sig', 'expected base64url text');
    let claimed: unknown;
    try {
      claimed = peekEnvelope(env as unknown as SignedEnvelope);
    } catch {
      throw badField('request.payload', 'expected base64url of a JSON object');
    }
    if (!isObj(claimed)) throw badField('request.payload', 'expected base64url of a JSON object');
    // Proof of possession: the request must verify under the very key it claims.
    const identity = validateIdentity(claimed.identity, 'request.identity');
    let payload: Record<string, unknown>;
    try {
      payload = openEnvelope<Record<string, unknown>>(env, identity.sign, 'login-request');
    } catch {
      throw new ApiError(
        401,
        'bad_signature',
        'request.sig: does not verify with request.identity.sign as a login-request of this protocol version',
      );
    }
    return parseLoginFields(payload);
  }

  async login(
    body: Record<string, unknown>,
  ): Promise<{ response: LoginResponse; effects: Effects | null }> {
    const f = this.verifyLogin(body);
    const fp = fingerprint(f.identity);
    const now = this.d.clock.now();
    const policy = this.d.policy();
    const out = await this.d.store.write((tx) => {
      if (!this.sessions.consumeChallenge(tx, f.challenge, now)) {
        throw new ApiError(
          401,
          'challenge_invalid',
          'request.challenge: unknown, already used or expired; get a new one',
        );
      }
      const sp = tx.savepoint();
      try {
        return { ok: this.admit(tx, f, fp, now, policy), denied: null };
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        // The refusal is a decision too: keep the consumed challenge and audit it.
        tx.rollbackTo(sp);
        this.audit.append(tx, {
          action: 'deny',
          supernet: f.supernet,
          node: f.name,
          identity: fp,
          detail: {
            code: err.code,
            reason: err.message,
            channels: f.channels,
            policy: policy.hash,
          },
        });
        return { ok: null, denied: err };
      }
    });
    if (out.denied || !out.ok) {
      this.d.logger.info('login denied', {
        supernet: f.supernet,
        node: f.name,
        identity: fp,
        reason: out.denied?.message,
      });
      throw out.denied ?? new Error('login transaction returned nothing');
    }
    const { token, effects } = out.ok;
    const config = await this.d.store.read((tx) => {
      const node = tx.get<NodeRecord>('nodes', nodeKey(f.supernet, f.name))!;
      return this.signedConfig(tx, node);
    });
    const tokenBox = seal(f.identity.seal, token, tokenContext(f.supernet, fp)).toString(
      'base64url',
    );
    token.fill(0);
    this.d.logger.info('node admitted', { supernet: f.supernet, node: f.name, identity: fp });
    return { response: { tokenBox, config }, effects };
  }

  /** The admission decision and its effects, inside the login transaction. Throws ApiError to refuse. */
  private admit(
    tx: WriteTx,
    f: LoginFields,
    fp: string,
    now: number,
    policy: Policy,
  ): { token: Buffer; effects: Effects | null } {
    const sid = f.supernet;
    const sn = this.supernet(tx, sid, 'request.supernet');
    f.channels.forEach((ch, i) => {
      if (!sn.channels.some((c) => c.id === ch)) {
        throw new ApiError(
          404,
          'unknown_channel',
          `request.channels[${i}]: Supernet ${sid} has no channel ${ch}`,
        );
      }
    });
    const pool = parsePool(sn.pool);
    const decision = policy.evaluate(
      {
        identity: fp,
        supernet: sid,
        name: f.name,
        channels: f.channels,
        requestedVip: f.requestedVip,
      },
      pool,
    );
    if (!decision.allow) throw new ApiError(403, 'policy_denied', decision.reason);
    const existing = tx.get<NodeRecord>('nodes', nodeKey(sid, f.name));
    if (existing && existing.id !== fp) {
      throw new ApiError(
        409,
        'name_taken',
        `request.name: node ${f.name} of Supernet ${sid} belongs to another identity`,
      );
    }
    const vip = this.assignVip(tx, sid, pool, decision, f, fp, now);

    // ---- decided: apply -----------------------------------------------------
    const endSessions: string[] = [];
    if (existing) {
      this.sessions.revoke(
        tx,
        existing.session,
        'session_revoked',
        'replaced by a newer login of the same node',
        now,
      );
      endSessions.push(existing.session);
    }
    const old = existing?.channels ?? [];
    const left = old.filter((c) => !f.channels.includes(c));
    const joined = f.channels.filter((c) => !old.includes(c));
    const member: KeyMember = { name: f.name, id: fp, seal: f.identity.seal };
    const epochs: Record<string, number> = {};
    for (const ch of left) epochs[ch] = this.d.scheme.onLeave(tx, sid, ch, f.name);
    for (const ch of joined) epochs[ch] = this.d.scheme.onJoin(tx, sid, ch, member);
    if (existing && existing.vip !== vip) this.varp.remove(tx, sid, existing.vip);
    const { changed: varpChanged } = this.varp.register(tx, sid, vip, f.name, f.endpoint, now);
    const { token, hash } = this.sessions.issue(tx, {
      supernet: sid,
      name: f.name,
      identity: fp,
      createdAt: now,
    });
    const node: NodeRecord = {
      supernet: sid,
      name: f.name,
      id: fp,
      sign: f.identity.sign,
      seal: f.identity.seal,
      vip,
      channels: f.channels,
      session: hash,
      rule: decision.rule,
      admittedAt: existing?.admittedAt ?? now,
      loginAt: now,
    };
    tx.put('nodes', nodeKey(sid, f.name), node);
    const changed =
      !existing || left.length > 0 || joined.length > 0 || varpChanged || existing.vip !== vip;
    let effects: Effects | null = null;
    const serial = changed ? this.bumpSerial(tx, sid) : sn.serial;
    if (changed || endSessions.length > 0) {
      effects = {
        supernet: sid,
        serial,
        config: changed
          ? this.sharing(tx, sid, new Set([...old, ...f.channels]), f.name).map((n) =>
              streamKey(sid, n),
            )
          : [],
        endSessions,
      };
    }
    this.audit.append(tx, {
      action: 'admit',
      supernet: sid,
      node: f.name,
      identity: fp,
      detail: {
        vip,
        channels: f.channels,
        endpoint: f.endpoint,
        rule: decision.rule,
        policy: policy.hash,
        relogin: Boolean(existing),
        epochs,
      },
    });
    return { token, effects };
  }

  private assignVip(
    tx: WriteTx,
    sid: string,
    pool: Pool,
    decision: { vip?: string; range?: string; rule: string },
    f: LoginFields,
    fp: string,
    now: number,
  ): string {
    const leaseAt = (vip: string) => tx.get<LeaseRecord>('leases', `${sid}|${vip}`);
    const mine = (l: LeaseRecord) => l.identity === fp && l.name === f.name;
    const heldByOther = (l: LeaseRecord) => {
      const n = tx.get<NodeRecord>('nodes', nodeKey(sid, l.name));
      return n !== undefined && n.vip === l.vip && l.name !== f.name;
    };
    const leases = tx.list<LeaseRecord>('leases', sid + '|').map(([, l]) => l);
    const own = leases.find(mine);
    let vip: string | null;
    if (decision.vip) {
      const l = leaseAt(decision.vip);
      if (l && !mine(l) && heldByOther(l)) {
        throw new ApiError(
          409,
          'vip_taken',
          `address ${decision.vip} (fixed by rule ${JSON.stringify(decision.rule)}) is in use by node ${l.name}`,
        );
      }
      vip = decision.vip;
    } else if (f.requestedVip) {
      const l = leaseAt(f.requestedVip);
      if (l && !mine(l))
        throw new ApiError(
          409,
          'vip_taken',
          `request.requestedVip: ${f.requestedVip} is assigned to another node`,
        );
      vip = f.requestedVip;
    } else {
      const range = decision.range ? parsePool(decision.range) : pool;
      if (own && vipProblem(pool, own.vip) === null && inPool(range, own.vip)) vip = own.vip;
      else vip = firstFreeVip(pool, range, (v) => !leaseAt(v));
      if (!vip) {
        // Full: reclaim the least recently used lease of a node that is not admitted.
        const idle = leases
          .filter(
            (l) =>
              !mine(l) &&
              inPool(range, l.vip) &&
              vipProblem(pool, l.vip) === null &&
              !heldByOther(l),
          )
          .sort((a, b) => a.lastUsed - b.lastUsed);
        if (idle.length === 0)
          throw new ApiError(409, 'pool_exhausted', `no free address in ${range.text}`);
        vip = idle[0].vip;
      }
    }
    if (own && own.vip !== vip) tx.delete('leases', `${sid}|${own.vip}`);
    tx.put('leases', `${sid}|${vip}`, {
      supernet: sid,
      vip,
      identity: fp,
      name: f.name,
      lastUsed: now,
    } satisfies LeaseRecord);
    return vip;
  }

  // ---- node: session operations ----------------------------------------------

  /** Resolves a node's Authorization header (durable state). */
  async authenticate(header: string | undefined): Promise<SessionRecord & { hash: string }> {
    return this.d.store.read((tx) => this.sessions.authenticate(tx, header));
  }

  /** Within a write: the session must still be current (it may have been revoked since authenticate). */
  private liveNode(tx: ReadTx, s: SessionRecord & { hash: string }): NodeRecord {
    const again = tx.get<SessionRecord>('sessions', s.hash);
    const node = tx.get<NodeRecord>('nodes', nodeKey(s.supernet, s.name));
    if (!again || !node || node.session !== s.hash) {
      throw new ApiError(
        401,
        'session_revoked',
        'the session ended while the request was in progress',
      );
    }
    return node;
  }

  private removeNode(
    tx: WriteTx,
    node: NodeRecord,
    code: RevokeCode,
    reason: string,
    now: number,
  ): Effects {
    const sid = node.supernet;
    const epochs: Record<string, number> = {};
    for (const ch of node.channels) epochs[ch] = this.d.scheme.onLeave(tx, sid, ch, node.name);
    this.varp.remove(tx, sid, node.vip);
    tx.delete('nodes', nodeKey(sid, node.name));
    this.sessions.revoke(tx, node.session, code, reason, now);
    const lease = tx.get<LeaseRecord>('leases', `${sid}|${node.vip}`);
    if (lease && lease.name === node.name)
      tx.put('leases', `${sid}|${node.vip}`, { ...lease, lastUsed: now });
    const serial = this.bumpSerial(tx, sid);
    this.audit.append(tx, {
      action: code === 'expelled' ? 'expel' : 'logout',
      supernet: sid,
      node: node.name,
      identity: node.id,
      detail: { reason, vip: node.vip, channels: node.channels, epochs },
    });
    return {
      supernet: sid,
      serial,
      config: this.sharing(tx, sid, node.channels, node.name).map((n) => streamKey(sid, n)),
      endSessions: [node.session],
    };
  }

  async logout(s: SessionRecord & { hash: string }): Promise<Effects> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) =>
      this.removeNode(tx, this.liveNode(tx, s), 'session_revoked', 'logged out', now),
    );
  }

  async expel(sid: string, name: string, reason: string): Promise<Effects> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      this.supernet(tx, sid, 'supernet id in the path');
      const node = tx.get<NodeRecord>('nodes', nodeKey(sid, name));
      if (!node)
        throw new ApiError(
          404,
          'unknown_node',
          `node name in the path: Supernet ${sid} has no admitted node ${name}`,
        );
      const e = this.removeNode(tx, node, 'expelled', reason, now);
      e.expelled = { key: streamKey(sid, name), reason };
      return e;
    });
  }

  async config(s: SessionRecord & { hash: string }): Promise<SignedEnvelope> {
    return this.d.store.read((tx) => this.signedConfig(tx, this.liveNode(tx, s)));
  }

  /** Current serial of the node's Supernet (for the first event of a stream). */
  async serialOf(s: SessionRecord): Promise<number> {
    return this.d.store.read((tx) => this.supernet(tx, s.supernet).serial);
  }

  private signedConfig(tx: ReadTx, node: NodeRecord): SignedEnvelope {
    const sid = node.supernet;
    const sn = this.supernet(tx, sid);
    const pool = parsePool(sn.pool);
    const now = this.d.clock.now();
    const mine = new Set(node.channels);
    const members: MemberView[] = [];
    for (const [, other] of tx.list<NodeRecord>('nodes', sid + '|')) {
      if (other.name === node.name) continue;
      // Only the channels both share: a node learns nothing of other trust domains.
      const shared = other.channels.filter((c) => mine.has(c));
      if (shared.length === 0) continue;
      const v = this.varp.view(tx, sid, other.vip, now);
      members.push({
        name: other.name,
        id: other.id,
        vip: other.vip,
        channels: shared,
        endpoint: v.endpoint,
        expiresAt: v.expiresAt,
      });
    }
    const member: KeyMember = { name: node.name, id: node.id, seal: node.seal };
    const keys: SealedChannelKey[] = node.channels.flatMap((ch) =>
      this.d.scheme.keysFor(tx, sid, ch, member),
    );
    const body: Omit<NodeConfig, 'type' | 'v'> = {
      supernet: sid,
      serial: sn.serial,
      issuedAt: now,
      node: {
        name: node.name,
        id: node.id,
        vip: node.vip,
        prefixLen: pool.prefixLen,
        channels: node.channels,
      },
      pool: pool.text,
      members,
      keys,
      graceMs: this.d.graceMs,
      varpTtlMs: this.d.varpTtlMs,
    };
    return signEnvelope(this.d.identity, 'node-config', body);
  }

  // ---- node: VARP ------------------------------------------------------------------

  async registerVarp(
    s: SessionRecord & { hash: string },
    endpoint: Endpoint,
  ): Promise<{ record: SignedEnvelope; effects: Effects | null }> {
    const now = this.d.clock.now();
    const out = await this.d.store.write((tx) => {
      const node = this.liveNode(tx, s);
      const { view, changed } = this.varp.register(
        tx,
        node.supernet,
        node.vip,
        node.name,
        endpoint,
        now,
      );
      let effects: Effects | null = null;
      if (changed) {
        effects = {
          supernet: node.supernet,
          serial: this.bumpSerial(tx, node.supernet),
          config: this.sharing(tx, node.supernet, node.channels, node.name).map((n) =>
            streamKey(node.supernet, n),
          ),
          endSessions: [],
        };
      }
      return { body: this.varp.record(node.supernet, node.vip, node.name, view), effects };
    });
    return { record: signEnvelope(this.d.identity, 'varp-record', out.body), effects: out.effects };
  }

  async resolve(s: SessionRecord & { hash: string }, vip: string): Promise<SignedEnvelope> {
    const now = this.d.clock.now();
    const body = await this.d.store.read((tx) => {
      const node = this.liveNode(tx, s);
      const notFound = new ApiError(
        404,
        'not_found',
        `vip: no node with address ${vip} shares a channel with ${node.name}`,
      );
      const entry = this.varp.entry(tx, node.supernet, vip);
      if (!entry) throw notFound;
      const target = tx.get<NodeRecord>('nodes', nodeKey(node.supernet, entry.name));
      if (!target || target.vip !== vip) throw notFound;
      if (target.name !== node.name && !target.channels.some((c) => node.channels.includes(c)))
        throw notFound;
      return this.varp.record(
        node.supernet,
        vip,
        target.name,
        this.varp.view(tx, node.supernet, vip, now),
      );
    });
    return signEnvelope(this.d.identity, 'varp-record', body);
  }
}
