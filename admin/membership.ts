/**
 * Admission and membership (paper §4.3 steps (1), (1a), (1b), (2), logout
 * and forced removal): the logic behind login, logout, expel, config and
 * VARP. HTTP-free: server.ts maps routes onto these methods (the operator's
 * Supernet/channel management is in supernets.ts).
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
import { AuditLog } from './audit.js';
import { VarpRegistry } from './varp.js';
import { Sessions, type RevokeCode, type SessionRecord } from './sessions.js';
import { ApiError, badField } from './errors.js';
import { parsePool } from './addr.js';
import { parseLoginFields, validateIdentity, type LoginFields } from './requests.js';
import { streamKey } from './events.js';
import { isTreeScheme } from './keys-tree.js';
import { assignVip, type LeaseRecord } from './leases.js';
import { getSupernet, nodeKey, type NodeRecord, type SupernetRecord } from './records.js';
import { SupernetAdmin } from './supernets.js';
import { admissionDecision } from './grants.js';

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

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export class Membership {
  readonly audit: AuditLog;
  readonly varp: VarpRegistry;
  readonly sessions: Sessions;

  /** The operator's operations, over the same store, audit log and registry. */
  readonly supernets: SupernetAdmin;

  constructor(private readonly d: MembershipDeps) {
    this.audit = new AuditLog(d.identity, d.clock);
    this.varp = new VarpRegistry(d.varpTtlMs);
    this.sessions = new Sessions(d.challengeTtlMs);
    this.supernets = new SupernetAdmin({
      store: d.store,
      scheme: d.scheme,
      clock: d.clock,
      audit: this.audit,
      varp: this.varp,
    });
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
    const sn = getSupernet(tx, sid, 'request.supernet');
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
    // The policy file, then operator admissions (admin/grants.ts).
    const decision = admissionDecision(
      tx,
      policy,
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
    const vip = assignVip(tx, sid, pool, decision, f, fp, now);

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
      getSupernet(tx, sid, 'supernet id in the path');
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

  /** The node's signed config; `resync` adds its key-tree welcomes (docs/keys.md §8). */
  async config(s: SessionRecord & { hash: string }, resync = false): Promise<SignedEnvelope> {
    return this.d.store.read((tx) => this.signedConfig(tx, this.liveNode(tx, s), resync));
  }

  /** Current serial of the node's Supernet (for the first event of a stream). */
  async serialOf(s: SessionRecord): Promise<number> {
    return this.d.store.read((tx) => getSupernet(tx, s.supernet).serial);
  }

  private signedConfig(tx: ReadTx, node: NodeRecord, welcome = true): SignedEnvelope {
    const sid = node.supernet;
    const sn = getSupernet(tx, sid);
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
    const scheme = this.d.scheme;
    const keytrees = isTreeScheme(scheme)
      ? node.channels.flatMap((ch) => scheme.materialFor(tx, sid, ch, member, welcome) ?? [])
      : undefined;
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
      ...(keytrees ? { keytrees } : {}),
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
