/**
 * Storage key groups: one per volume, whose members are the nodes holding
 * the volume's storage role (issue 5; design brief §5: "Storage keys are a
 * separate key group per volume (members with the storage role), so a
 * provider node can sit in a channel for transport without being able to
 * read what it stores"; paper §3.1: ex-members must not decrypt).
 *
 * A volume key comes in epochs (1, 2, …), each a fresh random 256-bit key.
 * Granting a role adds a member without a new epoch (a new member may read
 * what is stored: that is what the role is for). Revoking a role, or
 * expelling a member, starts a new epoch; earlier epochs stay available to
 * the REMAINING members until the volume's re-encryption reports `done` for
 * the new epoch (the objects still sealed under old epochs must stay
 * readable meanwhile), then they are deleted from the admin's store.
 *
 * The storage group is a flat group (every epoch key sealed to each member):
 * storage groups are small, and their revocation cost is dominated by
 * re-encrypting the data, not by O(n) sealed keys. Keys are kept at rest
 * sealed to the admin's own X25519 key (context `storage-key-at-rest …`),
 * like the flat channel scheme (admin/keys-flat.ts).
 *
 * A node fetches its keys as a signed `storage-keys` message (GET
 * /v1/storage/keys, node token), every key sealed to the node's X25519 key
 * under {@link storageKeyContext}; the provider node never holds a role, so
 * it never receives one. docs/nfs.md §Storage keys.
 */
import { randomBytes } from 'node:crypto';
import { seal, type Identity } from './identity.js';
import type { ReadTx, WriteTx } from './store.js';

export const STORAGE_KEY_LEN = 32;
/** A volume id: 16 random bytes, hex (the fs format's volume id, fs/format.ts). */
export const VOLUME_ID_HEX_LEN = 32;

/** Sealing context of one volume key of one epoch for one node. */
export function storageKeyContext(
  supernet: string,
  volume: string,
  epoch: number,
  nodeId: string,
): string {
  return `storage-key ${supernet} ${volume} ${epoch} ${nodeId}`;
}

const restContext = (sid: string, vol: string, epoch: number): string =>
  `storage-key-at-rest ${sid} ${vol} ${epoch}`;

interface StoredEpoch {
  epoch: number;
  /** The key sealed to the admin identity (base64url). */
  box: string;
  startedAt: number;
}

/** Collection `storage`, key `skey|<sid>|<volume>`. */
export interface StorageKeyState {
  volumeId: string;
  /** Ascending by epoch; the last is the current one. */
  epochs: StoredEpoch[];
}

/** One epoch key sealed to the recipient node. */
export interface SealedStorageKey {
  epoch: number;
  /** base64url box of the 32-byte key (context {@link storageKeyContext}). */
  box: string;
}

/** The signed body a node receives for one volume (signed type `storage-keys`). */
export interface StorageKeysMessage {
  type: 'storage-keys';
  v: number;
  supernet: string;
  node: string;
  volume: string;
  volumeId: string;
  /** The newest epoch: new objects are sealed under it. */
  current: number;
  /** Every epoch the volume may still hold objects of, ascending. */
  keys: SealedStorageKey[];
  /** Re-encryption: state and which member runs it (see admin/storage-roles.ts). */
  reencrypt: { state: string; by: string | null; epoch: number | null };
  issuedAt: number;
}

const stateKey = (sid: string, vol: string): string => `skey|${sid}|${vol}`;

/** The admin side of every volume's storage key group. */
export class StorageKeyGroups {
  /** `sid|vol|epoch` → plain key (memory only). */
  private readonly plain = new Map<string, Buffer>();

  constructor(private readonly admin: Identity) {}

  state(tx: ReadTx, sid: string, vol: string): StorageKeyState | undefined {
    return tx.get<StorageKeyState>('storage', stateKey(sid, vol));
  }

  private fresh(sid: string, vol: string, epoch: number, now: number): StoredEpoch {
    const key = randomBytes(STORAGE_KEY_LEN);
    this.plain.set(`${sid}|${vol}|${epoch}`, key);
    return {
      epoch,
      box: seal(this.admin.pub.seal, key, restContext(sid, vol, epoch)).toString('base64url'),
      startedAt: now,
    };
  }

  /** Creates the group of a new volume: a fresh volume id and epoch 1. Idempotent. */
  create(tx: WriteTx, sid: string, vol: string, now: number): StorageKeyState {
    const have = this.state(tx, sid, vol);
    if (have) return have;
    const s: StorageKeyState = {
      volumeId: randomBytes(VOLUME_ID_HEX_LEN / 2).toString('hex'),
      epochs: [this.fresh(sid, vol, 1, now)],
    };
    tx.put('storage', stateKey(sid, vol), s);
    return s;
  }

  /** A member left: starts the next epoch (a key the leaver never receives); returns it. */
  rotate(tx: WriteTx, sid: string, vol: string, now: number): number {
    const s = this.state(tx, sid, vol) ?? this.create(tx, sid, vol, now);
    const epoch = s.epochs[s.epochs.length - 1]!.epoch + 1;
    tx.put('storage', stateKey(sid, vol), {
      ...s,
      epochs: [...s.epochs, this.fresh(sid, vol, epoch, now)],
    } satisfies StorageKeyState);
    return epoch;
  }

  /**
   * Re-encryption to `epoch` finished: deletes every key older than it, so
   * nobody (member or admin database) can hand them out again.
   */
  retireBefore(tx: WriteTx, sid: string, vol: string, epoch: number): void {
    const s = this.state(tx, sid, vol);
    if (!s) return;
    const kept = s.epochs.filter((e) => e.epoch >= epoch);
    if (kept.length === 0 || kept.length === s.epochs.length) return;
    for (const e of s.epochs) if (e.epoch < epoch) this.forget(sid, vol, e.epoch);
    tx.put('storage', stateKey(sid, vol), { ...s, epochs: kept } satisfies StorageKeyState);
  }

  /** The volume is gone: deletes its key state. */
  destroy(tx: WriteTx, sid: string, vol: string): void {
    const s = this.state(tx, sid, vol);
    if (!s) return;
    for (const e of s.epochs) this.forget(sid, vol, e.epoch);
    tx.delete('storage', stateKey(sid, vol));
  }

  private forget(sid: string, vol: string, epoch: number): void {
    const k = `${sid}|${vol}|${epoch}`;
    this.plain.get(k)?.fill(0);
    this.plain.delete(k);
  }

  private plainKey(sid: string, vol: string, e: StoredEpoch): Buffer {
    const k = `${sid}|${vol}|${e.epoch}`;
    let key = this.plain.get(k);
    if (!key) {
      key = this.admin.open(Buffer.from(e.box, 'base64url'), restContext(sid, vol, e.epoch));
      this.plain.set(k, key);
    }
    return key;
  }

  /** Every retained epoch key, sealed to `member`; null when the volume has no key state. */
  sealedFor(
    tx: ReadTx,
    sid: string,
    vol: string,
    member: { id: string; seal: string },
  ): { volumeId: string; current: number; keys: SealedStorageKey[] } | null {
    const s = this.state(tx, sid, vol);
    if (!s) return null;
    return {
      volumeId: s.volumeId,
      current: s.epochs[s.epochs.length - 1]!.epoch,
      keys: s.epochs.map((e) => ({
        epoch: e.epoch,
        box: seal(
          member.seal,
          this.plainKey(sid, vol, e),
          storageKeyContext(sid, vol, e.epoch, member.id),
        ).toString('base64url'),
      })),
    };
  }

  /** Epoch numbers held for the volume (operator view; no key material). */
  epochs(tx: ReadTx, sid: string, vol: string): number[] {
    return (this.state(tx, sid, vol)?.epochs ?? []).map((e) => e.epoch);
  }
}
