/**
 * VARP, the virtual address resolution registry (paper §4.3 (1b) and (b);
 * [LS00]): (Supernet, virtual IP) → physical UDP endpoint of the host agent
 * that carries the node, with an expiry.
 *
 * A node registers at login and refreshes at a third of the lifetime. An
 * expired mapping stays in the registry but is served as `endpoint: null`
 * until refreshed. A registration that CHANGES what members see — a new
 * endpoint (the host was renumbered) or a mapping that had expired coming
 * back — bumps the Supernet's config serial so the members re-fetch; a plain
 * refresh does not (members know `expiresAt` and resolve again when it nears).
 */
import type { Endpoint, VarpRecord } from './protocol.js';
import type { ReadTx, WriteTx } from './store.js';
import { sameEndpoint } from './addr.js';

/** Stored mapping, collection `varp`, key `<supernet>|<vip>`. */
export interface VarpEntry {
  name: string;
  endpoint: Endpoint;
  expiresAt: number;
  registeredAt: number;
}

/** What members see of a mapping at a given time. */
export interface VarpView {
  endpoint: Endpoint | null;
  expiresAt: number;
}

const varpKey = (sid: string, vip: string): string => `${sid}|${vip}`;

export class VarpRegistry {
  constructor(private readonly ttlMs: number) {}

  /**
   * Registers or refreshes `vip` → `endpoint`. Returns the new view and
   * whether members must be told (`changed`).
   */
  register(
    tx: WriteTx,
    sid: string,
    vip: string,
    name: string,
    endpoint: Endpoint,
    now: number,
  ): { view: VarpView; changed: boolean } {
    const old = tx.get<VarpEntry>('varp', varpKey(sid, vip));
    const changed =
      !old || old.name !== name || !sameEndpoint(old.endpoint, endpoint) || old.expiresAt <= now;
    const entry: VarpEntry = {
      name,
      endpoint: { host: endpoint.host, port: endpoint.port },
      expiresAt: now + this.ttlMs,
      registeredAt: changed ? now : old.registeredAt,
    };
    tx.put('varp', varpKey(sid, vip), entry);
    return { view: { endpoint: entry.endpoint, expiresAt: entry.expiresAt }, changed };
  }

  remove(tx: WriteTx, sid: string, vip: string): void {
    tx.delete('varp', varpKey(sid, vip));
  }

  entry(tx: ReadTx, sid: string, vip: string): VarpEntry | undefined {
    return tx.get<VarpEntry>('varp', varpKey(sid, vip));
  }

  /** The mapping as served at `now`: endpoint null when absent or expired. */
  view(tx: ReadTx, sid: string, vip: string, now: number): VarpView {
    const e = this.entry(tx, sid, vip);
    if (!e) return { endpoint: null, expiresAt: 0 };
    return { endpoint: e.expiresAt > now ? e.endpoint : null, expiresAt: e.expiresAt };
  }

  /** The body of a signed `varp-record`. */
  record(sid: string, vip: string, name: string, view: VarpView): Omit<VarpRecord, 'type' | 'v'> {
    return { supernet: sid, vip, name, endpoint: view.endpoint, expiresAt: view.expiresAt };
  }
}
