/**
 * Virtual address assignment (paper §4.3 (1): "a new virtual address valid
 * only in the given Supernetwork layer is negotiated for the node").
 *
 * Order: the policy's fixed address; the node's `requestedVip` (if the rule
 * allows and no other identity+name holds it); the address this
 * identity+name had before (leases outlive logouts); the lowest free address
 * of the rule's range; when the range is full, the lease idle longest.
 * Never the network, broadcast or reserved services address (addr.ts).
 */
import type { WriteTx } from './store.js';
import { ApiError } from './errors.js';
import { firstFreeVip, inPool, parsePool, vipProblem, type Pool } from './addr.js';
import { nodeKey, type NodeRecord } from './records.js';

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

/** Picks the node's address and records its lease, inside the login transaction. Throws 409 if none. */
export function assignVip(
  tx: WriteTx,
  sid: string,
  pool: Pool,
  decision: { vip?: string; range?: string; rule: string },
  f: { name: string; requestedVip?: string },
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
            !mine(l) && inPool(range, l.vip) && vipProblem(pool, l.vip) === null && !heldByOther(l),
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
