/**
 * Dissolving a Supernet (issue 7; paper §4.3 "forced removal", applied to
 * every member at once): in ONE store transaction every node is logged out
 * (its session revoked with code `expelled`, so an agent that was offline
 * learns it at its next request), its VARP mapping and address lease
 * removed; every channel's key state is destroyed through the key scheme
 * (stored records deleted, cached keys wiped), the operator admissions and
 * storage roles of the Supernet deleted, the Supernet record removed; and
 * the audit log gets one `expel` entry per node and a `supernet-dissolved`
 * entry listing what went. After the commit the caller pushes `expelled` to
 * every node's event stream: agents then tear the nodes down at once.
 *
 * The Supernet id may be created again later; nothing of the old one
 * (keys, sessions, addresses) carries over.
 */
import type { Store } from './store.js';
import type { Clock } from './clock.js';
import type { AuditLog } from './audit.js';
import type { GroupKeyScheme } from './keys.js';
import type { VarpRegistry } from './varp.js';
import type { Sessions } from './sessions.js';
import { getSupernet, type NodeRecord } from './records.js';
import { streamKey } from './events.js';
import { badField } from './errors.js';

export const MAX_DISSOLVE_REASON = 200;

export interface DissolveDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  scheme: GroupKeyScheme;
  varp: VarpRegistry;
  sessions: Sessions;
}

export interface DissolveResult {
  supernet: string;
  reason: string;
  /** The nodes that were logged out: stream key and session hash, for the pushes. */
  nodes: Array<{ name: string; stream: string; session: string }>;
  channels: string[];
  /** Key-state records deleted from the store (all channels). */
  keyRecords: number;
}

/** Validates `{reason?}`. */
export function parseDissolve(body: Record<string, unknown>): string {
  for (const k of Object.keys(body)) if (k !== 'reason') throw badField(k, 'unknown field');
  if (body.reason === undefined) return 'dissolved by the operator';
  if (
    typeof body.reason !== 'string' ||
    body.reason.length === 0 ||
    body.reason.length > MAX_DISSOLVE_REASON
  )
    throw badField('reason', `expected text of 1 to ${MAX_DISSOLVE_REASON} characters`);
  return body.reason;
}

export async function dissolveSupernet(
  d: DissolveDeps,
  sid: string,
  reason: string,
): Promise<DissolveResult> {
  const now = d.clock.now();
  return d.store.write((tx) => {
    const sn = getSupernet(tx, sid, 'supernet id in the path');
    const why = `Supernet ${sid} dissolved: ${reason}`;
    const nodes: DissolveResult['nodes'] = [];
    for (const [key, n] of tx.list<NodeRecord>('nodes', sid + '|')) {
      d.sessions.revoke(tx, n.session, 'expelled', why, now);
      d.varp.remove(tx, sid, n.vip);
      tx.delete('nodes', key);
      nodes.push({ name: n.name, stream: streamKey(sid, n.name), session: n.session });
      d.audit.append(tx, {
        action: 'expel',
        supernet: sid,
        node: n.name,
        identity: n.id,
        detail: { reason: why, vip: n.vip, channels: n.channels, dissolved: true },
      });
    }
    const keysBefore = tx.count('keys');
    for (const ch of sn.channels) d.scheme.onDestroy(tx, sid, ch.id);
    const keyRecords = keysBefore - tx.count('keys');
    // Whatever else is keyed by the Supernet: mappings of nodes that had
    // expired, leases, admissions, storage roles.
    for (const col of ['varp', 'leases', 'grants'] as const)
      for (const [k] of tx.list(col, sid + '|')) tx.delete(col, k);
    for (const [k] of tx.list('storage')) if (k.split('|')[1] === sid) tx.delete('storage', k);
    tx.delete('supernets', sid);
    nodes.sort((a, b) => (a.name < b.name ? -1 : 1));
    d.audit.append(tx, {
      action: 'supernet-dissolved',
      supernet: sid,
      detail: {
        reason,
        nodes: nodes.map((n) => n.name),
        channels: sn.channels.map((c) => c.id),
        keyRecords,
      },
    });
    return { supernet: sid, reason, nodes, channels: sn.channels.map((c) => c.id), keyRecords };
  });
}
