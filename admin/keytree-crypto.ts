/**
 * Key derivations and the per-entry AEAD of the group key tree
 * (docs/keys.md §Derivations; design brief §5; paper §4.2 "Groupkey
 * management", [CWSP98] Versakey).
 *
 * A tree node key is never used directly: it is a PRF key, and every use of it
 * is HMAC-SHA256 under its own label, so no two uses (moving forward, growing
 * the tree, sealing children's parents, the traffic key, the check value) can
 * ever collide or leak into each other.
 *
 * Both ends import this module: the admin service's {@link KeyTree} and the
 * host agent's {@link MemberKeyState}.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

/** Every tree key, every derived key and the traffic key are 32 bytes. */
export const NODE_KEY_LEN = 32;
/** Poly1305 tag of a sealed tree key. */
export const ENTRY_TAG_LEN = 16;
/** ChaCha20-Poly1305 nonce. */
export const ENTRY_NONCE_LEN = 12;
/** A group (one channel, or one storage key group) is named by 16 bytes (see {@link channelGroupId}). */
export const GROUP_ID_LEN = 16;
/** Length of the root check value carried by join notices and rekey messages. */
export const CHECK_LEN = 16;
/** Deepest tree: 2^24 leaves (16.7 million members) per group. */
export const MAX_HEIGHT = 24;
/** Epochs are u32 on the wire (net/wire.ts key epoch); 0 means "no key yet". */
export const MAX_EPOCH = 0xffff_ffff;

const AEAD = 'chacha20-poly1305';

const L_FORWARD = Buffer.from('supernet keytree forward v1', 'latin1');
const L_GROW = Buffer.from('supernet keytree grow v1', 'latin1');
const L_KEK = Buffer.from('supernet keytree kek v1', 'latin1');
const L_TRAFFIC = Buffer.from('supernet keytree traffic v1', 'latin1');
const L_CHECK = Buffer.from('supernet keytree check v1', 'latin1');

/** Raised for every failure of the key tree library; `code` says which kind. */
export class KeyTreeError extends Error {
  constructor(
    readonly code: KeyTreeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeyTreeError';
  }
}

export type KeyTreeErrorCode =
  /** A message is truncated, extended, of an unknown version/type or not canonical. */
  | 'malformed'
  /** The admin signature over a message does not verify. */
  | 'bad_signature'
  /** A message names another group. */
  | 'wrong_group'
  /** A sealed welcome does not open with this member's identity. */
  | 'sealed_box'
  /** A member id is not valid, unknown, or already a member. */
  | 'bad_member'
  | 'unknown_member'
  | 'duplicate_member'
  /** The tree is full ({@link MAX_HEIGHT}) or the epoch counter is exhausted. */
  | 'capacity'
  /** A stored tree record is inconsistent or damaged. */
  | 'bad_record'
  /** An operation needs a member but the group is empty. */
  | 'empty';

function hmac(key: Uint8Array, label: Buffer, extra?: Uint8Array): Buffer {
  const h = createHmac('sha256', key);
  h.update(label);
  if (extra) h.update(extra);
  return h.digest();
}

/** The one-way step every key on a joiner's path takes at a join (K ↦ HMAC(K, "forward")). */
export function forwardKey(key: Uint8Array): Buffer {
  return hmac(key, L_FORWARD);
}

/**
 * The key a node at `level` gets when the tree grows above the old root whose
 * key is `oldRoot` (the new root itself continues the old root's chain).
 */
export function growKey(oldRoot: Uint8Array, level: number): Buffer {
  return hmac(oldRoot, L_GROW, Uint8Array.of(level));
}

/** The key-encryption key of a node: what its parent's new key is sealed under. */
export function kekOf(key: Uint8Array): Buffer {
  return hmac(key, L_KEK);
}

function groupEpoch(group: Uint8Array, epoch: number): Buffer {
  const b = Buffer.alloc(GROUP_ID_LEN + 4);
  b.set(group, 0);
  b.writeUInt32BE(epoch >>> 0, GROUP_ID_LEN);
  return b;
}

/** The traffic key of `epoch`, from that epoch's root key. Bound to the group and epoch. */
export function trafficKeyOf(root: Uint8Array, group: Uint8Array, epoch: number): Buffer {
  return hmac(root, L_TRAFFIC, groupEpoch(group, epoch));
}

/**
 * A public check value of an epoch's root: members compare it after applying
 * a message, so a member whose state went wrong (missed message, restored
 * backup) finds out at once instead of at the first undecryptable packet.
 */
export function rootCheckOf(root: Uint8Array, group: Uint8Array, epoch: number): Buffer {
  return hmac(root, L_CHECK, groupEpoch(group, epoch)).subarray(0, CHECK_LEN);
}

/**
 * Seals a 32-byte node key under `kek` (ChaCha20-Poly1305, 16-byte tag) into
 * `out` at `off`: ciphertext ‖ tag (48 bytes).
 */
export function sealEntry(
  kek: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plain: Uint8Array,
  out: Buffer,
  off: number,
): void {
  const c = createCipheriv(AEAD, kek, nonce, { authTagLength: ENTRY_TAG_LEN });
  c.setAAD(aad, { plaintextLength: plain.length });
  const ct = c.update(plain);
  c.final();
  ct.copy(out, off);
  c.getAuthTag().copy(out, off + ct.length);
}

/** Opens what {@link sealEntry} made; returns null when it does not authenticate. */
export function openEntry(
  kek: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  box: Uint8Array,
): Buffer | null {
  if (box.length !== NODE_KEY_LEN + ENTRY_TAG_LEN) return null;
  const d = createDecipheriv(AEAD, kek, nonce, { authTagLength: ENTRY_TAG_LEN });
  d.setAAD(aad, { plaintextLength: NODE_KEY_LEN });
  d.setAuthTag(box.subarray(NODE_KEY_LEN));
  const plain = d.update(box.subarray(0, NODE_KEY_LEN));
  try {
    d.final();
  } catch {
    plain.fill(0);
    return null;
  }
  return plain;
}

/** True when every byte is zero (such keys and ids are rejected everywhere). */
export function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

/** Group kinds in byte 10 of a group id. */
export const GROUP_KIND_CHANNEL = 1;
export const GROUP_KIND_STORAGE = 2;

function groupId(supernet: Uint8Array, kind: number, n: number): Buffer {
  if (supernet.length !== 10) throw new KeyTreeError('malformed', 'supernet id must be 10 bytes');
  if (!Number.isInteger(n) || n < 1 || n > 0xffff_ffff)
    throw new KeyTreeError('malformed', 'group number must be between 1 and 2^32-1');
  const g = Buffer.alloc(GROUP_ID_LEN);
  g.set(supernet, 0);
  g[10] = kind;
  g.writeUInt32BE(n, 11);
  // byte 15 reserved, zero
  return g;
}

/**
 * Group id of a channel: Supernet id (10 bytes, admin/ids.ts supernetIdBytes)
 * ‖ kind 1 ‖ channel id u32 ‖ 0.
 */
export function channelGroupId(supernet: Uint8Array, channel: number): Buffer {
  return groupId(supernet, GROUP_KIND_CHANNEL, channel);
}

/** Group id of a storage key group (one per volume): Supernet id ‖ kind 2 ‖ volume number u32 ‖ 0. */
export function storageGroupId(supernet: Uint8Array, volume: number): Buffer {
  return groupId(supernet, GROUP_KIND_STORAGE, volume);
}

/** Checks a group id's shape (16 bytes, not all zero, known kind, reserved byte zero). */
export function checkGroupId(group: Uint8Array): void {
  if (
    group.length !== GROUP_ID_LEN ||
    allZero(group.subarray(0, 10)) ||
    (group[10] !== GROUP_KIND_CHANNEL && group[10] !== GROUP_KIND_STORAGE) ||
    group[15] !== 0
  ) {
    throw new KeyTreeError('malformed', 'group id must be 16 bytes: supernet ‖ kind ‖ number ‖ 0');
  }
}
