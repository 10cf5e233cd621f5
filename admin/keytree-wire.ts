/**
 * Wire formats of the group key tree (docs/keys.md §Messages, with byte
 * diagrams): the welcome (a member's path keys, sealed to its identity), the
 * join notice (no key material at all) and the rekey message after removals
 * (new keys sealed under tree keys). All three share one 25-byte header and
 * end in the admin's Ed25519 signature over
 * `SIGN_DOMAIN ‖ every byte before the signature`.
 *
 * Decoding is strict: exact lengths, known version and type, zero reserved
 * bits, canonical (strictly ascending) lists, in-range positions, non-zero
 * check values. Anything else is `malformed`; a signature that does not
 * verify is `bad_signature`. Nothing is decrypted before the signature has
 * been checked (the member does that, after {@link decodeMessage}).
 */
import { SEAL_OVERHEAD, SIG_LEN, verify, type Identity } from './identity.js';
import {
  CHECK_LEN,
  ENTRY_NONCE_LEN,
  ENTRY_TAG_LEN,
  GROUP_ID_LEN,
  KeyTreeError,
  MAX_HEIGHT,
  NODE_KEY_LEN,
  allZero,
  checkGroupId,
} from './keytree-crypto.js';

export const WIRE_VERSION = 1;
export const TYPE_WELCOME = 1;
export const TYPE_JOIN = 2;
export const TYPE_REKEY = 3;
/** Header flag: after this message the group has no members (rekey only). */
export const FLAG_EMPTY = 0x01;

// Common header.
export const OFF_VERSION = 0;
export const OFF_TYPE = 1;
export const OFF_FLAGS = 2;
export const OFF_RESERVED = 3;
export const OFF_GROUP = 4;
export const OFF_EPOCH = OFF_GROUP + GROUP_ID_LEN; // 20
export const OFF_HEIGHT = OFF_EPOCH + 4; // 24
export const HEADER_LEN = OFF_HEIGHT + 1; // 25

// Welcome.
export const OFF_W_LEAF = HEADER_LEN; // 25
export const OFF_W_BOX = OFF_W_LEAF + 4; // 29

// Join notice.
export const OFF_J_COUNT = HEADER_LEN; // 25
export const OFF_J_CHECK = OFF_J_COUNT + 4; // 29
export const OFF_J_LEAVES = OFF_J_CHECK + CHECK_LEN; // 45

// Rekey message.
export const OFF_R_REMOVED = HEADER_LEN; // 25
export const OFF_R_ENTRIES = OFF_R_REMOVED + 4; // 29
export const OFF_R_NONCE = OFF_R_ENTRIES + 4; // 33
export const OFF_R_CHECK = OFF_R_NONCE + ENTRY_NONCE_LEN; // 45
export const OFF_R_LIST = OFF_R_CHECK + CHECK_LEN; // 61
/** One rekey entry: sealing node level u8 ‖ index u32 ‖ sealed parent key (ciphertext ‖ tag). */
export const ENTRY_NODE_LEN = 5;
export const ENTRY_BOX_LEN = NODE_KEY_LEN + ENTRY_TAG_LEN; // 48
export const ENTRY_LEN = ENTRY_NODE_LEN + ENTRY_BOX_LEN; // 53
/** Additional data of one entry: the message header ‖ the entry's node. */
export const ENTRY_AAD_LEN = HEADER_LEN + ENTRY_NODE_LEN; // 30

const SIGN_DOMAIN = Buffer.from('supernet keytree v1\0', 'latin1');

/** Fields of the common header. */
export interface MessageHeader {
  type: number;
  flags: number;
  group: Buffer;
  /** The epoch this message establishes. */
  epoch: number;
  /** Tree height after the message. */
  height: number;
}

export interface WelcomeMessage extends MessageHeader {
  type: typeof TYPE_WELCOME;
  leaf: number;
  /** The path keys, leaf first, sealed to the member (context {@link welcomeContext}). */
  box: Buffer;
}

export interface JoinNotice extends MessageHeader {
  type: typeof TYPE_JOIN;
  /** Leaves that were filled, strictly ascending. */
  leaves: Uint32Array;
  rootCheck: Buffer;
}

/** One sealed key of a rekey message: the new key of the parent of node (level, index). */
export interface RekeyEntry {
  level: number;
  index: number;
  box: Buffer;
}

export interface RekeyMessage extends MessageHeader {
  type: typeof TYPE_REKEY;
  /** Leaves that were emptied, strictly ascending. */
  removed: Uint32Array;
  nonceBase: Buffer;
  /** All zero exactly when {@link FLAG_EMPTY} is set. */
  rootCheck: Buffer;
  /** Sorted by (level, index), strictly ascending. */
  entries: RekeyEntry[];
  /** The header bytes, for the entries' additional data. */
  headerBytes: Buffer;
}

export type KeyTreeMessage = WelcomeMessage | JoinNotice | RekeyMessage;

/** Sealing context of a welcome box: binds group, epoch, leaf and height. */
export function welcomeContext(
  group: Uint8Array,
  epoch: number,
  leaf: number,
  height: number,
): string {
  return `keytree-welcome v1 ${Buffer.from(group).toString('hex')} ${epoch} ${leaf} ${height}`;
}

/** Length of the plain path inside a welcome box for `height`. */
export function pathLen(height: number): number {
  return (height + 1) * NODE_KEY_LEN;
}

/** Nonce of entry `i`: the message's random base with its last 4 bytes XOR i. */
export function entryNonce(nonceBase: Uint8Array, i: number, out: Buffer): Buffer {
  out.set(nonceBase, 0);
  out.writeUInt32BE((out.readUInt32BE(ENTRY_NONCE_LEN - 4) ^ i) >>> 0, ENTRY_NONCE_LEN - 4);
  return out;
}

/** Additional data of an entry: header ‖ level ‖ index. */
export function entryAad(header: Uint8Array, level: number, index: number, out: Buffer): Buffer {
  out.set(header.subarray(0, HEADER_LEN), 0);
  out[HEADER_LEN] = level;
  out.writeUInt32BE(index >>> 0, HEADER_LEN + 1);
  return out;
}

/** Writes the common header into `buf`. */
/** Header fields as an encoder takes them. */
export type HeaderFields = Omit<MessageHeader, 'group'> & { group: Uint8Array };

function writeHeader(buf: Buffer, h: HeaderFields): void {
  buf[OFF_VERSION] = WIRE_VERSION;
  buf[OFF_TYPE] = h.type;
  buf[OFF_FLAGS] = h.flags;
  buf[OFF_RESERVED] = 0;
  buf.set(h.group, OFF_GROUP);
  buf.writeUInt32BE(h.epoch >>> 0, OFF_EPOCH);
  buf[OFF_HEIGHT] = h.height;
}

/** The 25 header bytes (the additional data of rekey entries starts with them). */
export function headerBytes(h: HeaderFields): Buffer {
  const b = Buffer.alloc(HEADER_LEN);
  writeHeader(b, h);
  return b;
}

/** Signs `buf` in place: its last {@link SIG_LEN} bytes get the signature over everything before. */
function signInPlace(buf: Buffer, signer: Identity): Buffer {
  const body = buf.subarray(0, buf.length - SIG_LEN);
  signer.sign(Buffer.concat([SIGN_DOMAIN, body])).copy(buf, buf.length - SIG_LEN);
  return buf;
}

const wrong = (what: string): KeyTreeError =>
  new KeyTreeError('malformed', `keytree message to encode: ${what}`);

function checkCommon(group: Uint8Array, epoch: number, height: number): void {
  checkGroupId(group);
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > 0xffff_ffff) throw wrong('epoch');
  if (!Number.isInteger(height) || height < 0 || height > MAX_HEIGHT) throw wrong('height');
}

/** Fields of a welcome. */
export interface WelcomeFields {
  group: Uint8Array;
  epoch: number;
  height: number;
  leaf: number;
  /** The sealed path (identity.ts seal, context {@link welcomeContext}). */
  box: Uint8Array;
}

/** Encodes and signs a welcome. */
export function encodeWelcome(f: WelcomeFields, signer: Identity): Buffer {
  checkCommon(f.group, f.epoch, f.height);
  if (f.box.length !== SEAL_OVERHEAD + pathLen(f.height)) throw wrong('welcome box length');
  if (!Number.isInteger(f.leaf) || f.leaf < 0 || f.leaf >= 2 ** f.height) throw wrong('leaf');
  const out = Buffer.alloc(welcomeLen(f.height));
  writeHeader(out, { type: TYPE_WELCOME, flags: 0, ...f });
  out.writeUInt32BE(f.leaf, OFF_W_LEAF);
  out.set(f.box, OFF_W_BOX);
  return signInPlace(out, signer);
}

/** Fields of a join notice. */
export interface JoinFields {
  group: Uint8Array;
  epoch: number;
  height: number;
  /** Joined leaves, strictly ascending. */
  leaves: ArrayLike<number>;
  rootCheck: Uint8Array;
}

/** Encodes and signs a join notice. */
export function encodeJoinNotice(f: JoinFields, signer: Identity): Buffer {
  checkCommon(f.group, f.epoch, f.height);
  if (f.leaves.length === 0) throw wrong('no joined leaf');
  if (f.rootCheck.length !== CHECK_LEN || allZero(f.rootCheck)) throw wrong('root check');
  const out = Buffer.alloc(joinLen(f.leaves.length));
  writeHeader(out, { type: TYPE_JOIN, flags: 0, ...f });
  out.writeUInt32BE(f.leaves.length, OFF_J_COUNT);
  out.set(f.rootCheck, OFF_J_CHECK);
  writeAscending(out, OFF_J_LEAVES, f.leaves, 2 ** f.height);
  return signInPlace(out, signer);
}

function writeAscending(out: Buffer, off: number, list: ArrayLike<number>, limit: number): void {
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (!Number.isInteger(v) || v < 0 || v >= limit || (i > 0 && v <= list[i - 1]))
      throw wrong('leaf list must be strictly ascending and in range');
    out.writeUInt32BE(v, off + 4 * i);
  }
}

/** Fields of a rekey message. */
export interface RekeyFields {
  group: Uint8Array;
  epoch: number;
  height: number;
  /** The group is empty after it ({@link FLAG_EMPTY}). */
  empty: boolean;
  /** Removed leaves, strictly ascending. */
  removed: ArrayLike<number>;
  nonceBase: Uint8Array;
  /** All zero exactly when `empty`. */
  rootCheck: Uint8Array;
  /** In (level, index) order; each box sealed with {@link entryNonce} / {@link entryAad}. */
  entries: RekeyEntry[];
}

/** Encodes and signs a rekey message. */
export function encodeRekey(f: RekeyFields, signer: Identity): Buffer {
  checkCommon(f.group, f.epoch, f.height);
  if (f.removed.length === 0) throw wrong('nobody removed');
  if (f.nonceBase.length !== ENTRY_NONCE_LEN || allZero(f.nonceBase)) throw wrong('nonce base');
  if (f.rootCheck.length !== CHECK_LEN || allZero(f.rootCheck) !== f.empty)
    throw wrong('root check');
  if (f.empty && (f.height !== 0 || f.entries.length !== 0)) throw wrong('empty group');
  const out = Buffer.alloc(rekeyLen(f.removed.length, f.entries.length));
  writeHeader(out, { type: TYPE_REKEY, flags: f.empty ? FLAG_EMPTY : 0, ...f });
  out.writeUInt32BE(f.removed.length, OFF_R_REMOVED);
  out.writeUInt32BE(f.entries.length, OFF_R_ENTRIES);
  out.set(f.nonceBase, OFF_R_NONCE);
  out.set(f.rootCheck, OFF_R_CHECK);
  writeAscending(out, OFF_R_LIST, f.removed, 2 ** MAX_HEIGHT);
  let off = OFF_R_LIST + 4 * f.removed.length;
  let prev = -1;
  for (const e of f.entries) {
    const order = e.level * 2 ** 32 + e.index;
    if (e.level >= f.height || e.index < 0 || e.index >= 2 ** (f.height - e.level) || order <= prev)
      throw wrong('entries must be in (level, index) order and below the root');
    if (e.box.length !== ENTRY_BOX_LEN) throw wrong('entry box length');
    prev = order;
    out[off] = e.level;
    out.writeUInt32BE(e.index, off + 1);
    out.set(e.box, off + ENTRY_NODE_LEN);
    off += ENTRY_LEN;
  }
  return signInPlace(out, signer);
}

/** Total length of a welcome for `height`. */
export function welcomeLen(height: number): number {
  return OFF_W_BOX + SEAL_OVERHEAD + pathLen(height) + SIG_LEN;
}
/** Total length of a join notice with `count` leaves. */
export function joinLen(count: number): number {
  return OFF_J_LEAVES + 4 * count + SIG_LEN;
}
/** Total length of a rekey message with `removed` leaves and `entries` sealed keys. */
export function rekeyLen(removed: number, entries: number): number {
  return OFF_R_LIST + 4 * removed + ENTRY_LEN * entries + SIG_LEN;
}

const bad = (what: string): KeyTreeError =>
  new KeyTreeError('malformed', `keytree message: ${what}`);

/** Reads and checks the common header without verifying anything else (routing by group). */
export function peekHeader(bytes: Uint8Array): MessageHeader {
  if (bytes.length < HEADER_LEN + SIG_LEN) throw bad('too short');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b[OFF_VERSION] !== WIRE_VERSION) throw bad(`unknown version ${b[OFF_VERSION]}`);
  const type = b[OFF_TYPE];
  if (type !== TYPE_WELCOME && type !== TYPE_JOIN && type !== TYPE_REKEY)
    throw bad(`unknown type ${type}`);
  const flags = b[OFF_FLAGS];
  if ((flags & ~FLAG_EMPTY) !== 0 || (flags !== 0 && type !== TYPE_REKEY))
    throw bad('unknown flags');
  if (b[OFF_RESERVED] !== 0) throw bad('reserved byte not zero');
  const group = Buffer.from(b.subarray(OFF_GROUP, OFF_GROUP + GROUP_ID_LEN));
  checkGroupId(group);
  const epoch = b.readUInt32BE(OFF_EPOCH);
  if (epoch === 0) throw bad('epoch 0');
  const height = b[OFF_HEIGHT];
  if (height > MAX_HEIGHT) throw bad(`height ${height} exceeds ${MAX_HEIGHT}`);
  if (flags & FLAG_EMPTY && height !== 0) throw bad('empty group with non-zero height');
  return { type, flags, group, epoch, height };
}

function readAscending(
  b: Buffer,
  off: number,
  count: number,
  limit: number,
  what: string,
): Uint32Array {
  const out = new Uint32Array(count);
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const v = b.readUInt32BE(off + 4 * i);
    if (v <= prev) throw bad(`${what} not strictly ascending`);
    if (v >= limit) throw bad(`${what} ${v} out of range`);
    out[i] = v;
    prev = v;
  }
  return out;
}

/**
 * Decodes a key tree message and verifies the admin signature (`adminSign`:
 * the pinned Ed25519 public key, base64url). Throws {@link KeyTreeError}
 * (`malformed`, `bad_signature`) for anything that is not exactly a valid
 * message.
 */
export function decodeMessage(bytes: Uint8Array, adminSign: string): KeyTreeMessage {
  const h = peekHeader(bytes);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let msg: KeyTreeMessage;
  const cap = 2 ** h.height;
  if (h.type === TYPE_WELCOME) {
    if (b.length !== welcomeLen(h.height)) throw bad('welcome length');
    const leaf = b.readUInt32BE(OFF_W_LEAF);
    if (leaf >= cap) throw bad('welcome leaf out of range');
    const box = Buffer.from(b.subarray(OFF_W_BOX, b.length - SIG_LEN));
    msg = { ...h, type: TYPE_WELCOME, leaf, box };
  } else if (h.type === TYPE_JOIN) {
    if (b.length < joinLen(1)) throw bad('join notice too short');
    const count = b.readUInt32BE(OFF_J_COUNT);
    if (count === 0 || b.length !== joinLen(count)) throw bad('join notice length');
    const rootCheck = Buffer.from(b.subarray(OFF_J_CHECK, OFF_J_CHECK + CHECK_LEN));
    if (allZero(rootCheck)) throw bad('zero root check');
    const leaves = readAscending(b, OFF_J_LEAVES, count, cap, 'joined leaf');
    msg = { ...h, type: TYPE_JOIN, leaves, rootCheck };
  } else {
    if (b.length < rekeyLen(1, 0)) throw bad('rekey message too short');
    const nRemoved = b.readUInt32BE(OFF_R_REMOVED);
    const nEntries = b.readUInt32BE(OFF_R_ENTRIES);
    if (nRemoved === 0 || b.length !== rekeyLen(nRemoved, nEntries)) throw bad('rekey length');
    const nonceBase = Buffer.from(b.subarray(OFF_R_NONCE, OFF_R_NONCE + ENTRY_NONCE_LEN));
    if (allZero(nonceBase)) throw bad('zero nonce base');
    const rootCheck = Buffer.from(b.subarray(OFF_R_CHECK, OFF_R_CHECK + CHECK_LEN));
    const empty = (h.flags & FLAG_EMPTY) !== 0;
    if (allZero(rootCheck) !== empty) throw bad('root check does not match the empty flag');
    if (empty && nEntries !== 0) throw bad('entries in a message that empties the group');
    const removed = readAscending(b, OFF_R_LIST, nRemoved, 2 ** MAX_HEIGHT, 'removed leaf');
    const entries: RekeyEntry[] = [];
    let off = OFF_R_LIST + 4 * nRemoved;
    let prevLevel = -1;
    let prevIndex = -1;
    for (let i = 0; i < nEntries; i++, off += ENTRY_LEN) {
      const level = b[off];
      const index = b.readUInt32BE(off + 1);
      // The sealing node is below the root: its parent (level + 1) exists.
      if (level >= h.height) throw bad('entry level out of range');
      if (index >= 2 ** (h.height - level)) throw bad('entry index out of range');
      if (level < prevLevel || (level === prevLevel && index <= prevIndex))
        throw bad('entries not in (level, index) order');
      prevLevel = level;
      prevIndex = index;
      entries.push({
        level,
        index,
        box: Buffer.from(b.subarray(off + ENTRY_NODE_LEN, off + ENTRY_LEN)),
      });
    }
    const headerBytes = Buffer.from(b.subarray(0, HEADER_LEN));
    msg = { ...h, type: TYPE_REKEY, removed, nonceBase, rootCheck, entries, headerBytes };
  }
  const body = b.subarray(0, b.length - SIG_LEN);
  const sig = b.subarray(b.length - SIG_LEN);
  if (!verify(adminSign, Buffer.concat([SIGN_DOMAIN, body]), sig))
    throw new KeyTreeError('bad_signature', 'keytree message: admin signature does not verify');
  if (msg.type === TYPE_REKEY) Object.freeze(msg.entries);
  verified.set(Object.freeze(msg), adminSign);
  return msg;
}

/** Decoded messages and the admin key that verified them. */
const verified = new WeakMap<object, string>();

/**
 * True when `msg` came out of {@link decodeMessage} with this admin key, so a
 * host agent that carries several members of one group verifies a broadcast
 * once and applies the decoded message to each of them.
 */
export function isVerifiedBy(msg: KeyTreeMessage, adminSign: string): boolean {
  return verified.get(msg) === adminSign;
}
