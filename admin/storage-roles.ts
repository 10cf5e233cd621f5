/**
 * Storage volumes and storage roles as the admin service records them
 * (design brief §5: "Storage keys are a separate key group per volume
 * (members with the storage role)"; §6: revocation needs re-encryption,
 * "with progress shown").
 *
 * The admin records who holds the storage role of which volume and shows it
 * (console, CLI); granting and revoking are audited. Revoking a role marks
 * the volume as needing re-encryption; the re-encryption tool reports its
 * progress here (`PUT .../progress`) so the console can show it. Collection
 * `storage`: `vol|<sid>|<volume>` and `role|<sid>|<volume>|<node>`.
 */
import type { Store, WriteTx } from './store.js';
import type { Clock } from './clock.js';
import type { AuditLog } from './audit.js';
import { ApiError, badField } from './errors.js';
import { getSupernet, type NodeRecord, type SupernetRecord } from './records.js';
import { NODE_NAME_RE, signEnvelope, type SignedEnvelope } from './protocol.js';
import type { Identity } from './identity.js';
import { streamKey } from './events.js';
import { StorageKeyGroups, type StorageKeysMessage } from './storage-keys.js';

export const VOLUME_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export type ReencryptState = 'idle' | 'needed' | 'running' | 'done' | 'failed';

export interface VolumeRecord {
  supernet: string;
  volume: string;
  createdAt: number;
  reencrypt: {
    state: ReencryptState;
    /** Objects re-encrypted so far and in all (null: not reported). */
    done: number | null;
    total: number | null;
    updatedAt: number;
    /** Why it is needed (the revocation that caused it). */
    cause: string | null;
    /** The key epoch being re-encrypted to (storage key group; null: key files). */
    epoch?: number | null;
    /** The remaining member whose host agent runs the re-encryption. */
    by?: string | null;
    /**
     * Until when `by` holds the job (ms since the epoch): renewed by its
     * `running` reports; once it lapses, another member may claim the job.
     */
    leaseUntil?: number | null;
  };
}

export interface RoleRecord {
  supernet: string;
  volume: string;
  node: string;
  grantedAt: number;
}

export interface VolumeView extends VolumeRecord {
  members: string[];
  /** Key epochs the admin still holds for the volume (storage key group). */
  keyEpochs?: number[];
}

/** Config pushes a storage change causes (the shape server.ts publishes, membership.ts Effects). */
export interface StorageEffects {
  supernet: string;
  serial: number;
  config: string[];
  endSessions: string[];
}

const volKey = (sid: string, v: string): string => `vol|${sid}|${v}`;
const roleKey = (sid: string, v: string, n: string): string => `role|${sid}|${v}|${n}`;

function volumeName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !VOLUME_NAME_RE.test(v))
    throw badField(
      field,
      'expected a volume name (1–64 of a-z 0-9 . _ -, starting with a letter or digit)',
    );
  return v;
}

/** Validates `{volume, node}`. */
export function parseRole(body: Record<string, unknown>): { volume: string; node: string } {
  for (const k of Object.keys(body))
    if (k !== 'volume' && k !== 'node') throw badField(k, 'unknown field');
  const volume = volumeName(body.volume, 'volume');
  if (typeof body.node !== 'string' || !NODE_NAME_RE.test(body.node))
    throw badField('node', 'expected a node name ([a-z][a-z0-9-]{0,30})');
  return { volume, node: body.node };
}

/** Validates a progress report `{state, done?, total?}`. */
export function parseProgress(body: Record<string, unknown>): {
  state: ReencryptState;
  done: number | null;
  total: number | null;
  epoch: number | null;
} {
  for (const k of Object.keys(body))
    if (!['state', 'done', 'total', 'epoch'].includes(k)) throw badField(k, 'unknown field');
  const states: ReencryptState[] = ['idle', 'needed', 'running', 'done', 'failed'];
  if (!states.includes(body.state as ReencryptState))
    throw badField('state', `expected one of ${states.join(', ')}`);
  const count = (v: unknown, f: string): number | null => {
    if (v === undefined || v === null) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw badField(f, 'expected a count ≥ 0');
    return v as number;
  };
  const done = count(body.done, 'done');
  const total = count(body.total, 'total');
  if (done !== null && total !== null && done > total) throw badField('done', 'is more than total');
  const epoch = count(body.epoch, 'epoch');
  if (epoch === 0) throw badField('epoch', 'expected a key epoch ≥ 1');
  return { state: body.state as ReencryptState, done, total, epoch };
}

/** Default lease of the member that re-encrypts a volume (see {@link StorageRoles.claim}). */
export const DEFAULT_REENCRYPT_LEASE_MS = 60_000;

const UNFINISHED: ReencryptState[] = ['needed', 'running', 'failed'];

export class StorageRoles {
  private keys: StorageKeyGroups | null = null;
  private identity: Identity | null = null;
  private publish: (e: StorageEffects) => void = () => {};
  private leaseMs = DEFAULT_REENCRYPT_LEASE_MS;

  constructor(private readonly d: { store: Store; audit: AuditLog; clock: Clock }) {}

  /**
   * Turns on the storage key groups (admin/storage-keys.ts): the admin then
   * creates, rotates and hands out volume keys to role holders.
   */
  attachKeys(
    identity: Identity,
    publish: (e: StorageEffects) => void,
    opts: { leaseMs?: number } = {},
  ): void {
    this.identity = identity;
    this.publish = publish;
    this.leaseMs = opts.leaseMs ?? DEFAULT_REENCRYPT_LEASE_MS;
    this.keys = new StorageKeyGroups(identity);
  }

  private members(tx: { list: WriteTx['list'] }, sid: string, volume: string): string[] {
    return tx
      .list<RoleRecord>('storage', `role|${sid}|${volume}|`)
      .map(([, r]) => r.node)
      .sort();
  }

  /** Bumps the Supernet's serial so the members' agents fetch again (they then see the storage change). */
  private push(tx: WriteTx, sid: string, nodes: string[]): StorageEffects {
    const sn = getSupernet(tx, sid);
    const serial = sn.serial + 1;
    tx.put('supernets', sid, { ...sn, serial } satisfies SupernetRecord);
    return { supernet: sid, serial, config: nodes.map((n) => streamKey(sid, n)), endSessions: [] };
  }

  async list(sid: string): Promise<VolumeView[]> {
    return this.d.store.read((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      const vols = tx.list<VolumeRecord>('storage', `vol|${sid}|`).map(([, v]) => v);
      return vols
        .map((v) => ({
          ...v,
          members: this.members(tx, sid, v.volume),
          ...(this.keys ? { keyEpochs: this.keys.epochs(tx, sid, v.volume) } : {}),
        }))
        .sort((a, b) => (a.volume < b.volume ? -1 : 1));
    });
  }

  async grant(
    sid: string,
    volume: string,
    node: string,
  ): Promise<VolumeView & { effects?: StorageEffects }> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      if (tx.get('storage', roleKey(sid, volume, node)))
        throw new ApiError(
          409,
          'role_exists',
          `node ${node} already holds the storage role of ${volume}`,
        );
      let vol = tx.get<VolumeRecord>('storage', volKey(sid, volume));
      if (!vol) {
        vol = {
          supernet: sid,
          volume,
          createdAt: now,
          reencrypt: { state: 'idle', done: null, total: null, updatedAt: now, cause: null },
        };
        tx.put('storage', volKey(sid, volume), vol);
      }
      // A new member may read what is stored (that is the role): no new epoch.
      this.keys?.create(tx, sid, volume, now);
      tx.put('storage', roleKey(sid, volume, node), {
        supernet: sid,
        volume,
        node,
        grantedAt: now,
      } satisfies RoleRecord);
      this.d.audit.append(tx, {
        action: 'storage-role-granted',
        supernet: sid,
        node,
        detail: { volume },
      });
      const members = this.members(tx, sid, volume);
      return {
        ...vol,
        members,
        ...(this.keys ? { keyEpochs: this.keys.epochs(tx, sid, volume) } : {}),
      };
    });
  }

  /** Removes a role inside `tx`: a new key epoch, and re-encryption by a remaining member. */
  private revokeIn(
    tx: WriteTx,
    sid: string,
    volume: string,
    node: string,
    why: string,
    now: number,
  ): void {
    tx.delete('storage', roleKey(sid, volume, node));
    const vol = tx.get<VolumeRecord>('storage', volKey(sid, volume));
    const epoch = this.keys ? this.keys.rotate(tx, sid, volume, now) : null;
    const remaining = this.members(tx, sid, volume);
    // An ex-member may keep what it knew: everything must be re-encrypted (design brief §6).
    if (vol)
      tx.put('storage', volKey(sid, volume), {
        ...vol,
        reencrypt: {
          state: 'needed',
          done: null,
          total: null,
          updatedAt: now,
          cause: why,
          epoch,
          // The first remaining member (by name) runs it, with a lease its
          // progress renews; its agent restarts it after a crash. If its host
          // is away (or never mounted the volume), the lease lapses and another
          // member's agent claims the job (claim below).
          by: epoch !== null ? (remaining[0] ?? null) : null,
          leaseUntil: epoch !== null && remaining.length ? now + this.leaseMs : null,
        },
      } satisfies VolumeRecord);
    this.d.audit.append(tx, {
      action: 'storage-role-revoked',
      supernet: sid,
      node,
      detail: { volume, reencrypt: 'needed', ...(epoch !== null ? { epoch } : {}), cause: why },
    });
  }

  async revoke(sid: string, volume: string, node: string): Promise<StorageEffects> {
    const now = this.d.clock.now();
    const e = await this.d.store.write((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      if (!tx.get('storage', roleKey(sid, volume, node)))
        throw new ApiError(
          404,
          'not_found',
          `node ${node} holds no storage role of ${volume} in ${sid}`,
        );
      this.revokeIn(tx, sid, volume, node, `storage role of ${node} revoked`, now);
      return this.push(tx, sid, this.members(tx, sid, volume));
    });
    this.publish(e);
    return e;
  }

  /**
   * `node` was expelled (or left for good): every storage role it held is
   * revoked, each volume rotates to a new epoch and is re-encrypted.
   */
  async expelNode(sid: string, node: string): Promise<StorageEffects | null> {
    const now = this.d.clock.now();
    const e = await this.d.store.write((tx) => {
      const roles = tx
        .list<RoleRecord>('storage', `role|${sid}|`)
        .map(([, r]) => r)
        .filter((r) => r.node === node);
      if (roles.length === 0) return null;
      const notify = new Set<string>();
      for (const r of roles) {
        this.revokeIn(tx, sid, r.volume, node, `${node} expelled`, now);
        for (const m of this.members(tx, sid, r.volume)) notify.add(m);
      }
      return this.push(tx, sid, [...notify]);
    });
    if (e) this.publish(e);
    return e;
  }

  async progress(
    sid: string,
    volume: string,
    p: { state: ReencryptState; done: number | null; total: number | null; epoch?: number | null },
    by?: string,
  ): Promise<VolumeRecord> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      const vol = volumeIn(tx, sid, volume);
      const target = vol.reencrypt.epoch ?? null;
      if (by !== undefined && vol.reencrypt.by !== by)
        throw new ApiError(
          403,
          'forbidden',
          `node ${by} is not the member re-encrypting ${volume} (${vol.reencrypt.by ?? 'nobody'} is)`,
        );
      if (p.epoch != null && target !== null && p.epoch !== target)
        throw new ApiError(
          409,
          'bad_request',
          `epoch: the volume is being re-encrypted to epoch ${target}, not ${p.epoch}`,
        );
      const next: VolumeRecord = {
        ...vol,
        reencrypt: {
          state: p.state,
          done: p.done,
          total: p.total,
          updatedAt: now,
          cause: p.state === 'done' ? null : vol.reencrypt.cause,
          epoch: p.state === 'done' ? null : target,
          by: p.state === 'done' ? null : (vol.reencrypt.by ?? null),
          // Only work in progress renews the lease: a member whose runs keep
          // failing lets it lapse, so another member can take the job over.
          leaseUntil:
            p.state === 'done'
              ? null
              : p.state === 'running' && by !== undefined
                ? now + this.leaseMs
                : (vol.reencrypt.leaseUntil ?? null),
        },
      };
      tx.put('storage', volKey(sid, volume), next);
      // The end of a revocation is a security event of its own: from here the
      // ex-member's keys open nothing on the provider (docs/nfs.md).
      if ((p.state === 'done' || p.state === 'failed') && vol.reencrypt.state !== p.state)
        this.d.audit.append(tx, {
          action: 'storage-reencrypted',
          supernet: sid,
          node: by ?? null,
          detail: {
            volume,
            state: p.state,
            ...(target !== null ? { epoch: target } : {}),
            ...(p.done !== null ? { done: p.done } : {}),
            ...(p.total !== null ? { total: p.total } : {}),
          },
        });
      // Every object is under the new epoch now: the old keys go for good.
      if (p.state === 'done' && this.keys) {
        const s = this.keys.state(tx, sid, volume);
        const cur = s?.epochs[s.epochs.length - 1]?.epoch;
        if (cur !== undefined) this.keys.retireBefore(tx, sid, volume, target ?? cur);
      }
      return next;
    });
  }

  /**
   * Member `node` asks to run the unfinished re-encryption of `volume`. It
   * gets it (and a lease) if it already holds it, if nobody does, if the
   * holder is no longer a member, or if the holder's lease has lapsed (its
   * host is down or cut off, or never mounted the volume). A hand-over is
   * audited; the old holder's next progress report is refused (403), which
   * tells its agent to stop. Two runs cannot both write: the provider's
   * writer lease (docs/storage.md) admits one mount or rekey at a time.
   */
  async claim(sid: string, volume: string, node: string): Promise<VolumeRecord> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      const vol = volumeIn(tx, sid, volume);
      const members = this.members(tx, sid, volume);
      if (!members.includes(node))
        throw new ApiError(403, 'forbidden', `node ${node} holds no storage role of ${volume}`);
      const r = vol.reencrypt;
      if (!UNFINISHED.includes(r.state) || r.epoch == null)
        throw new ApiError(409, 'conflict', `${volume} needs no re-encryption`);
      const holder = r.by ?? null;
      const lease = r.leaseUntil ?? 0;
      if (holder !== node && holder !== null && members.includes(holder) && lease > now)
        throw new ApiError(
          409,
          'conflict',
          `${holder} is re-encrypting ${volume} (lease until ${new Date(lease).toISOString()})`,
        );
      const next: VolumeRecord = {
        ...vol,
        reencrypt: { ...r, by: node, leaseUntil: now + this.leaseMs, updatedAt: now },
      };
      tx.put('storage', volKey(sid, volume), next);
      if (holder !== node)
        this.d.audit.append(tx, {
          action: 'storage-reencrypt-claimed',
          supernet: sid,
          node,
          detail: { volume, epoch: r.epoch, from: holder, state: r.state },
        });
      return next;
    });
  }

  /**
   * The signed `storage-keys` messages for node `name`: one per volume it
   * holds the role of (or just `volume`). 403 for a volume it has no role of.
   */
  async keysFor(sid: string, name: string, volume?: string): Promise<SignedEnvelope[]> {
    if (!this.keys || !this.identity)
      throw new ApiError(404, 'not_found', 'this admin service hands out no storage keys');
    const keys = this.keys;
    const identity = this.identity;
    const now = this.d.clock.now();
    return this.d.store.read((tx) => {
      const node = tx.get<NodeRecord>('nodes', `${sid}|${name}`);
      if (!node) throw new ApiError(404, 'not_found', `no node ${name} in ${sid}`);
      const roles = tx
        .list<RoleRecord>('storage', `role|${sid}|`)
        .map(([, r]) => r)
        .filter((r) => r.node === name && (volume === undefined || r.volume === volume));
      if (volume !== undefined && roles.length === 0)
        throw new ApiError(403, 'forbidden', `node ${name} holds no storage role of ${volume}`);
      const out: SignedEnvelope[] = [];
      for (const r of roles) {
        const sealed = keys.sealedFor(tx, sid, r.volume, node);
        const vol = tx.get<VolumeRecord>('storage', volKey(sid, r.volume));
        if (!sealed || !vol) continue;
        const body: Omit<StorageKeysMessage, 'type' | 'v'> = {
          supernet: sid,
          node: name,
          volume: r.volume,
          volumeId: sealed.volumeId,
          current: sealed.current,
          keys: sealed.keys,
          reencrypt: {
            state: vol.reencrypt.state,
            by: vol.reencrypt.by ?? null,
            epoch: vol.reencrypt.epoch ?? null,
          },
          issuedAt: now,
        };
        out.push(signEnvelope(identity, 'storage-keys', body));
      }
      return out;
    });
  }
}

/** The volume named in a request path, or a 404 naming what is missing. */
function volumeIn(tx: WriteTx, sid: string, volume: string): VolumeRecord {
  getSupernet(tx, sid, 'supernet id in the path');
  const vol = tx.get<VolumeRecord>('storage', volKey(sid, volume));
  if (!vol)
    throw new ApiError(404, 'not_found', `volume name in the path: no volume ${volume} in ${sid}`);
  return vol;
}

export { volumeName as parseVolumeName };
