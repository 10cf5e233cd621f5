/**
 * `supernet policy test`: "would identity X be admitted to Supernet S as
 * node N on channels C?" — answered by the same checks, in the same order,
 * as a real login (docs/admin-api.md §POST /v1/login, steps 5–8), against
 * the running policy or a candidate file, WITHOUT changing anything.
 *
 * The address step needs to write (it records a lease); it runs on a
 * scratch overlay of a read transaction, thrown away afterwards, so the
 * answer names the very address the login would get.
 */
import type { Collection, ReadTx, WriteTx } from './store.js';
import type { Policy } from './policy.js';
import { ApiError, badField } from './errors.js';
import { parsePool } from './addr.js';
import { assignVip } from './leases.js';
import { nodeKey, type NodeRecord, type SupernetRecord } from './records.js';
import { admissionDecision } from './grants.js';
import { NODE_NAME_RE } from './protocol.js';
import { parseSupernetId, parseChannelId, formatChannelId, IdError } from './ids.js';
import { ipv4ToInt } from './addr.js';

export interface PolicyTestRequest {
  supernet: string;
  /** Identity fingerprint. */
  identity: string;
  node: string;
  channels: string[];
  requestedVip?: string;
}

export interface PolicyTestResult {
  admit: boolean;
  /** `ok`, or the error code a login would get (`policy_denied`, `unknown_channel`, ...). */
  code: string;
  /** Why, naming the rule or field. */
  reason: string;
  /** The deciding rule (policy rule name, or `admitted:NODE` for an operator admission). */
  rule: string | null;
  /** The address the node would get. */
  vip: string | null;
  /** A login of a node that is admitted now: its session would be replaced. */
  relogin: boolean;
  /** Channels it would join (each a new key epoch) and leave. */
  joins: string[];
  leaves: string[];
  policy: { hash: string; source: string | null };
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates `{supernet, identity, node, channels, requestedVip?}` (the request of POST /v1/policy/test). */
export function parsePolicyTest(body: Record<string, unknown>): PolicyTestRequest {
  if (!isObj(body)) throw badField('$', 'expected a JSON object');
  for (const k of Object.keys(body))
    if (!['supernet', 'identity', 'node', 'channels', 'requestedVip', 'policy'].includes(k))
      throw badField(k, 'unknown field');
  let supernet: string;
  try {
    if (typeof body.supernet !== 'string') throw badField('supernet', 'expected a Supernet id');
    supernet = parseSupernetId(body.supernet, 'supernet');
  } catch (err) {
    if (err instanceof IdError) throw new ApiError(400, 'bad_request', err.message);
    throw err;
  }
  const identity = typeof body.identity === 'string' ? body.identity.toLowerCase() : '';
  if (!/^[0-9a-f]{32}$/.test(identity))
    throw badField('identity', 'expected a 32-hex-digit identity fingerprint');
  if (typeof body.node !== 'string' || !NODE_NAME_RE.test(body.node))
    throw badField('node', 'expected a node name ([a-z][a-z0-9-]{0,30})');
  if (!Array.isArray(body.channels) || body.channels.length === 0)
    throw badField('channels', 'expected a non-empty list of channel ids');
  const channels = body.channels.map((c, i) => {
    try {
      if (typeof c !== 'string') throw badField(`channels[${i}]`, 'expected a channel id');
      return formatChannelId(parseChannelId(c, `channels[${i}]`));
    } catch (err) {
      if (err instanceof IdError) throw new ApiError(400, 'bad_request', err.message);
      throw err;
    }
  });
  const out: PolicyTestRequest = { supernet, identity, node: body.node, channels };
  if (body.requestedVip !== undefined) {
    if (typeof body.requestedVip !== 'string' || ipv4ToInt(body.requestedVip) === null)
      throw badField('requestedVip', 'expected an IPv4 address');
    out.requestedVip = body.requestedVip;
  }
  return out;
}

/** A write transaction over `base` whose changes live only in memory. */
export function scratchTx(base: ReadTx): WriteTx {
  const over = new Map<string, unknown>(); // `${col}\0${key}` → value (undefined = deleted)
  const k = (c: Collection, key: string): string => `${c}\u0000${key}`;
  const undo: Array<[string, boolean, unknown]> = [];
  const set = (c: Collection, key: string, v: unknown): void => {
    const kk = k(c, key);
    undo.push([kk, over.has(kk), over.get(kk)]);
    over.set(kk, v);
  };
  const tx: WriteTx = {
    get<T>(c: Collection, key: string): T | undefined {
      const kk = k(c, key);
      return (over.has(kk) ? over.get(kk) : base.get(c, key)) as T | undefined;
    },
    list<T>(c: Collection, prefix = ''): Array<[string, T]> {
      const m = new Map<string, T>(base.list<T>(c, prefix));
      for (const [kk, v] of over) {
        const [cc, key] = kk.split('\u0000') as [Collection, string];
        if (cc !== c || !key.startsWith(prefix)) continue;
        if (v === undefined) m.delete(key);
        else m.set(key, v as T);
      }
      return [...m];
    },
    count(c: Collection): number {
      return tx.list(c).length;
    },
    put: (c, key, v) => set(c, key, v),
    delete: (c, key) => set(c, key, undefined),
    savepoint: () => undo.length,
    rollbackTo(sp: number): void {
      while (undo.length > sp) {
        const [kk, had, old] = undo.pop()!;
        if (had) over.set(kk, old);
        else over.delete(kk);
      }
    },
  };
  return tx;
}

/** Runs the admission checks of a login for `req` against `policy`; changes nothing. */
export function testAdmission(
  base: ReadTx,
  policy: Policy,
  req: PolicyTestRequest,
  now: number,
): PolicyTestResult {
  const result = (
    admit: boolean,
    code: string,
    reason: string,
    extra: Partial<PolicyTestResult> = {},
  ): PolicyTestResult => ({
    admit,
    code,
    reason,
    rule: null,
    vip: null,
    relogin: false,
    joins: [],
    leaves: [],
    policy: { hash: policy.hash, source: policy.source },
    ...extra,
  });
  const sid = req.supernet;
  const sn = base.get<SupernetRecord>('supernets', sid);
  if (!sn) return result(false, 'unknown_supernet', `supernet: no Supernet ${sid}`);
  for (const [i, ch] of req.channels.entries()) {
    if (!sn.channels.some((c) => c.id === ch))
      return result(
        false,
        'unknown_channel',
        `channels[${i}]: Supernet ${sid} has no channel ${ch}`,
      );
  }
  const pool = parsePool(sn.pool);
  const decision = admissionDecision(
    base,
    policy,
    {
      identity: req.identity,
      supernet: sid,
      name: req.node,
      channels: req.channels,
      requestedVip: req.requestedVip,
    },
    pool,
  );
  if (!decision.allow)
    return result(false, 'policy_denied', decision.reason, { rule: decision.rule ?? null });
  const existing = base.get<NodeRecord>('nodes', nodeKey(sid, req.node));
  if (existing && existing.id !== req.identity) {
    return result(
      false,
      'name_taken',
      `node ${req.node} of Supernet ${sid} belongs to another identity (${existing.id})`,
      { rule: decision.rule },
    );
  }
  let vip: string;
  try {
    vip = assignVip(
      scratchTx(base),
      sid,
      pool,
      decision,
      { name: req.node, requestedVip: req.requestedVip },
      req.identity,
      now,
    );
  } catch (err) {
    if (err instanceof ApiError)
      return result(false, err.code, err.message, { rule: decision.rule });
    throw err;
  }
  const old = existing?.channels ?? [];
  return result(
    true,
    'ok',
    `admitted by ${decision.rule.startsWith('admitted:') ? 'the operator admission' : 'rule'} ${JSON.stringify(decision.rule)}`,
    {
      rule: decision.rule,
      vip,
      relogin: Boolean(existing),
      joins: req.channels.filter((c) => !old.includes(c)),
      leaves: old.filter((c) => !req.channels.includes(c)),
    },
  );
}
