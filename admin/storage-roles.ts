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
import type { Store } from './store.js';
import type { Clock } from './clock.js';
import type { AuditLog } from './audit.js';
import { ApiError, badField } from './errors.js';
import { getSupernet } from './records.js';
import { NODE_NAME_RE } from './protocol.js';

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
} {
  for (const k of Object.keys(body))
    if (!['state', 'done', 'total'].includes(k)) throw badField(k, 'unknown field');
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
  return { state: body.state as ReencryptState, done, total };
}

export class StorageRoles {
  constructor(private readonly d: { store: Store; audit: AuditLog; clock: Clock }) {}

  async list(sid: string): Promise<VolumeView[]> {
    return this.d.store.read((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      const vols = tx.list<VolumeRecord>('storage', `vol|${sid}|`).map(([, v]) => v);
      return vols
        .map((v) => ({
          ...v,
          members: tx
            .list<RoleRecord>('storage', `role|${sid}|${v.volume}|`)
            .map(([, r]) => r.node)
            .sort(),
        }))
        .sort((a, b) => (a.volume < b.volume ? -1 : 1));
    });
  }

  async grant(sid: string, volume: string, node: string): Promise<VolumeView> {
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
      const members = tx
        .list<RoleRecord>('storage', `role|${sid}|${volume}|`)
        .map(([, r]) => r.node);
      return { ...vol, members: members.sort() };
    });
  }

  async revoke(sid: string, volume: string, node: string): Promise<void> {
    const now = this.d.clock.now();
    await this.d.store.write((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      if (!tx.get('storage', roleKey(sid, volume, node)))
        throw new ApiError(
          404,
          'not_found',
          `node ${node} holds no storage role of ${volume} in ${sid}`,
        );
      tx.delete('storage', roleKey(sid, volume, node));
      const vol = tx.get<VolumeRecord>('storage', volKey(sid, volume));
      // An ex-member may keep what it knew: everything must be re-encrypted (design brief §6).
      if (vol)
        tx.put('storage', volKey(sid, volume), {
          ...vol,
          reencrypt: {
            state: 'needed',
            done: null,
            total: null,
            updatedAt: now,
            cause: `storage role of ${node} revoked`,
          },
        } satisfies VolumeRecord);
      this.d.audit.append(tx, {
        action: 'storage-role-revoked',
        supernet: sid,
        node,
        detail: { volume, reencrypt: 'needed' },
      });
    });
  }

  async progress(
    sid: string,
    volume: string,
    p: { state: ReencryptState; done: number | null; total: number | null },
  ): Promise<VolumeRecord> {
    const now = this.d.clock.now();
    return this.d.store.write((tx) => {
      getSupernet(tx, sid, 'supernet id in the path');
      const vol = tx.get<VolumeRecord>('storage', volKey(sid, volume));
      if (!vol)
        throw new ApiError(
          404,
          'not_found',
          `volume name in the path: no volume ${volume} in ${sid}`,
        );
      const next: VolumeRecord = {
        ...vol,
        reencrypt: { ...p, updatedAt: now, cause: p.state === 'done' ? null : vol.reencrypt.cause },
      };
      tx.put('storage', volKey(sid, volume), next);
      return next;
    });
  }
}

export { volumeName as parseVolumeName };
