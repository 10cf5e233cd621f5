/**
 * Operator admissions ("grants"): the console's and CLI's way to admit one
 * identity as one node of a Supernet without editing the policy file — what
 * ZeroTier Central's "authorize" and Headscale's `nodes register` do (paper
 * §3.1: "policy expression, administration, enforcement").
 *
 * A grant says: identity I may join Supernet S as node N, on channels C
 * (optionally at a fixed address). Grants are consulted only when NO rule of
 * the policy file matched the login, so the file stays in charge: a `deny`
 * rule for the identity, or an `allow` rule that covers it, decides first.
 * Grants live in the store (collection `grants`, key `<sid>|<node>`), and
 * adding or revoking one is audited. Revoking does not remove a node that is
 * logged in (that is `expel`); it stops the next login.
 */
import type { ReadTx, Store } from './store.js';
import type { Clock } from './clock.js';
import type { AuditLog } from './audit.js';
import type { AdmissionRequest, Decision, Policy } from './policy.js';
import { ApiError, badField } from './errors.js';
import { vipProblem, ipv4ToInt, type Pool, parsePool } from './addr.js';
import { NODE_NAME_RE } from './protocol.js';
import { parseChannelId, formatChannelId, IdError } from './ids.js';
import { getSupernet } from './records.js';

/** Rule name of a node admitted by a grant (shown in `supernet nodes`, the audit and the console). */
export const GRANT_RULE_PREFIX = 'admitted:';
export const MAX_GRANT_COMMENT = 200;
const FINGERPRINT_RE = /^[0-9a-f]{32}$/;

export interface GrantRecord {
  supernet: string;
  node: string;
  /** Identity fingerprint (32 hex digits). */
  identity: string;
  channels: string[];
  /** A fixed virtual address, or null (any free one of the pool). */
  address: string | null;
  comment: string | null;
  createdAt: number;
}

export type GrantFields = Pick<
  GrantRecord,
  'node' | 'identity' | 'channels' | 'address' | 'comment'
>;

export const grantKey = (sid: string, node: string): string => `${sid}|${node}`;

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a grant request body `{node, identity, channels, address?, comment?}`. */
export function parseGrant(body: Record<string, unknown>): GrantFields {
  if (!isObj(body)) throw badField('$', 'expected a JSON object');
  for (const k of Object.keys(body))
    if (!['node', 'identity', 'channels', 'address', 'comment'].includes(k))
      throw badField(k, 'unknown field');
  if (typeof body.node !== 'string' || !NODE_NAME_RE.test(body.node))
    throw badField('node', 'expected a node name ([a-z][a-z0-9-]{0,30})');
  const id = typeof body.identity === 'string' ? body.identity.toLowerCase() : '';
  if (!FINGERPRINT_RE.test(id))
    throw badField('identity', 'expected a 32-hex-digit identity fingerprint');
  if (!Array.isArray(body.channels) || body.channels.length === 0)
    throw badField('channels', 'expected a non-empty list of channel ids');
  const channels = body.channels.map((c, i) => {
    if (typeof c !== 'string' && typeof c !== 'number')
      throw badField(`channels[${i}]`, 'expected a channel id');
    try {
      return formatChannelId(parseChannelId(c, `channels[${i}]`));
    } catch (err) {
      if (err instanceof IdError)
        throw badField(`channels[${i}]`, err.message.replace(/^[^:]*: /, ''));
      throw err;
    }
  });
  if (new Set(channels).size !== channels.length)
    throw badField('channels', 'lists a channel twice');
  let address: string | null = null;
  if (body.address !== undefined && body.address !== null) {
    if (typeof body.address !== 'string' || ipv4ToInt(body.address) === null)
      throw badField('address', 'expected an IPv4 address');
    address = body.address;
  }
  let comment: string | null = null;
  if (body.comment !== undefined && body.comment !== null) {
    if (typeof body.comment !== 'string' || body.comment.length > MAX_GRANT_COMMENT)
      throw badField('comment', `expected text of at most ${MAX_GRANT_COMMENT} characters`);
    comment = body.comment;
  }
  return { node: body.node, identity: id, channels, address, comment };
}

/**
 * The admission decision of a login: the policy file first; if no rule of
 * it matched, the Supernet's grant for that node name.
 */
export function admissionDecision(
  tx: ReadTx,
  policy: Policy,
  req: AdmissionRequest,
  pool: Pool,
): Decision {
  const d = policy.evaluate(req, pool);
  if (d.allow || d.rule !== undefined) return d;
  const g = tx.get<GrantRecord>('grants', grantKey(req.supernet, req.name));
  if (!g) return d;
  const rule = GRANT_RULE_PREFIX + g.node;
  if (g.identity !== req.identity) {
    return {
      allow: false,
      reason: `${d.reason}; the operator admitted node ${JSON.stringify(g.node)} for identity ${g.identity}, not ${req.identity}`,
    };
  }
  const bad = req.channels.find((c) => !g.channels.includes(c));
  if (bad !== undefined) {
    return {
      allow: false,
      rule,
      reason: `the operator admitted ${g.node} to channels ${g.channels.join(', ')} only, not ${bad}`,
    };
  }
  if (g.address) {
    const problem = vipProblem(pool, g.address);
    if (problem)
      return { allow: false, rule, reason: `admission of ${g.node}: address ${problem}` };
    if (req.requestedVip !== undefined && req.requestedVip !== g.address)
      return {
        allow: false,
        rule,
        reason: `the operator admitted ${g.node} at ${g.address}; requestedVip ${req.requestedVip} is not allowed`,
      };
    return { allow: true, rule, vip: g.address };
  }
  return { allow: true, rule };
}

/** Adds, revokes and lists grants; every change is one audited store transaction. */
export class Grants {
  constructor(private readonly d: { store: Store; audit: AuditLog; clock: Clock }) {}

  async add(sid: string, f: GrantFields): Promise<GrantRecord> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      const sn = getSupernet(tx, sid, 'supernet id in the path');
      f.channels.forEach((c, i) => {
        if (!sn.channels.some((x) => x.id === c))
          throw new ApiError(
            404,
            'unknown_channel',
            `channels[${i}]: Supernet ${sid} has no channel ${c}`,
          );
      });
      if (f.address) {
        const problem = vipProblem(parsePool(sn.pool), f.address);
        if (problem) throw badField('address', problem);
      }
      const rec: GrantRecord = { supernet: sid, ...f, createdAt: now };
      const old = tx.get<GrantRecord>('grants', grantKey(sid, f.node));
      tx.put('grants', grantKey(sid, f.node), rec);
      this.d.audit.append(tx, {
        action: 'grant-added',
        supernet: sid,
        node: f.node,
        identity: f.identity,
        detail: {
          channels: f.channels,
          address: f.address,
          comment: f.comment,
          replaced: old ? { identity: old.identity, channels: old.channels } : null,
        },
      });
      return rec;
    });
  }

  async revoke(sid: string, node: string): Promise<void> {
    await this.d.store.write((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      const old = tx.get<GrantRecord>('grants', grantKey(sid, node));
      if (!old)
        throw new ApiError(
          404,
          'not_found',
          `node name in the path: no admission for ${node} in ${sid}`,
        );
      tx.delete('grants', grantKey(sid, node));
      this.d.audit.append(tx, {
        action: 'grant-revoked',
        supernet: sid,
        node,
        identity: old.identity,
        detail: { channels: old.channels },
      });
    });
  }

  async list(sid: string): Promise<GrantRecord[]> {
    return this.d.store.read((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      return tx
        .list<GrantRecord>('grants', sid + '|')
        .map(([, g]) => g)
        .sort((a, b) => (a.node < b.node ? -1 : 1));
    });
  }
}
