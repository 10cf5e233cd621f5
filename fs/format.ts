/**
 * The storage format (docs/storage.md has the byte diagrams). What the
 * provider stores is a flat set of opaque objects with random 128-bit ids,
 * plus one plaintext volume header and one sealed superblock. Every object is
 * AES-256-GCM sealed under a per-object key derived from its epoch key and its
 * id, padded to a size bucket, and bound (AAD) to its id, its kind and its
 * position in the tree. Parents pin each child's GCM tag in a {@link Ref}, so
 * a child can be neither modified, swapped, truncated nor rolled back without
 * the read failing (paper §3.1 "Secure storage"; design brief §6).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomFillSync,
  timingSafeEqual,
} from 'node:crypto';
import { IntegrityError, VolumeError } from './errors.js';
import { type AeadAddon, type OpenArgs, type SealArgs, aeadAddon } from './native/aead.js';

// ---- object envelope -------------------------------------------------------

/** 'SNO1': first four bytes of every sealed object. */
export const OBJ_MAGIC = 0x534e4f31;
export const OBJ_FORMAT = 1;
export const OFF_MAGIC = 0;
export const OFF_FORMAT = OFF_MAGIC + 4;
export const OFF_KIND = OFF_FORMAT + 1;
export const OFF_RESERVED = OFF_KIND + 1;
export const OFF_EPOCH = OFF_RESERVED + 2;
export const OFF_NONCE = OFF_EPOCH + 4;
export const NONCE_LEN = 12;
/** Clear header: magic u32 | format u8 | kind u8 | reserved u16 | epoch u32 | nonce[12]. */
export const HEADER_LEN = OFF_NONCE + NONCE_LEN;
export const TAG_LEN = 16;
/** Sealed trailer inside the ciphertext: the true payload length (u32). */
export const LEN_TRAILER = 4;
export const ID_LEN = 16;
export const KEY_LEN = 32;
/** Smallest padding bucket; buckets are powers of two from here. */
export const MIN_BUCKET = 4096;
/** Largest payload of one object. */
export const MAX_PAYLOAD = 1 << 20;
/** Plaintext bytes of file data per chunk object. */
export const CHUNK_SIZE = 256 * 1024;
/** Position binding in the AAD: owner u64 | level u8 | index u64. */
export const BINDING_LEN = 8 + 1 + 8;
export const AAD_LEN = HEADER_LEN + ID_LEN + BINDING_LEN;

/** What an object holds; part of the AAD, so an object of one kind never opens as another. */
export const Kind = { Superblock: 1, Node: 2, Chunk: 3, InodePage: 4 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Where an object sits: owning tree (inode number, 0 = inode table), tree level and index. */
export interface Binding {
  owner: number;
  level: number;
  index: number;
}

/** The padding bucket (plaintext bytes before the trailer) for a payload of `n` bytes. */
export function bucketFor(n: number): number {
  if (n > MAX_PAYLOAD) throw new RangeError(`payload of ${n} bytes exceeds ${MAX_PAYLOAD}`);
  let b = MIN_BUCKET;
  while (b < n) b *= 2;
  return b;
}

/** Stored size of an object whose payload falls into `bucket`. */
export function objectSize(bucket: number): number {
  return HEADER_LEN + bucket + LEN_TRAILER + TAG_LEN;
}

/** The set of sizes an observer can see for objects. */
export function allObjectSizes(): number[] {
  const out: number[] = [];
  for (let b = MIN_BUCKET; b <= MAX_PAYLOAD; b *= 2) out.push(objectSize(b));
  return out;
}

const OBJ_INFO = Buffer.from('supernet fs object v1');

function objectKey(epochKey: Buffer, id: Buffer): Buffer {
  // A fresh key per object id: random nonces then never approach GCM's
  // 2^32-messages-per-key limit however long the volume lives.
  return Buffer.from(hkdfSync('sha256', epochKey, id, OBJ_INFO, KEY_LEN));
}

function writeAad(aad: Buffer, header: Buffer, id: Buffer, b: Binding): void {
  header.copy(aad, 0, 0, HEADER_LEN);
  id.copy(aad, HEADER_LEN);
  const dv = new DataView(aad.buffer, aad.byteOffset, aad.byteLength);
  const o = HEADER_LEN + ID_LEN;
  dv.setBigUint64(o, BigInt(b.owner));
  dv.setUint8(o + 8, b.level);
  dv.setBigUint64(o + 9, BigInt(b.index));
}

/** Pinned reference to a sealed object: id | GCM tag | epoch. All-zero id = no object. */
export interface Ref {
  id: Buffer;
  tag: Buffer;
  epoch: number;
}
export const REF_LEN = ID_LEN + TAG_LEN + 4;

/** Hex name of an object id in the store. */
export const idName = (id: Buffer): string => id.toString('hex');

export function writeRef(buf: Buffer, off: number, ref: Ref | null): void {
  if (!ref) {
    buf.fill(0, off, off + REF_LEN);
    return;
  }
  ref.id.copy(buf, off);
  ref.tag.copy(buf, off + ID_LEN);
  buf.writeUInt32BE(ref.epoch, off + ID_LEN + TAG_LEN);
}

export function readRef(buf: Buffer, off: number): Ref | null {
  let zero = true;
  for (let i = off; i < off + ID_LEN; i++)
    if (buf[i] !== 0) {
      zero = false;
      break;
    }
  if (zero) return null;
  return {
    id: Buffer.from(buf.subarray(off, off + ID_LEN)),
    tag: Buffer.from(buf.subarray(off + ID_LEN, off + ID_LEN + TAG_LEN)),
    epoch: buf.readUInt32BE(off + ID_LEN + TAG_LEN),
  };
}

/**
 * Random bytes drawn from node:crypto's CSPRNG 4 KiB at a time: a call per
 * 12-byte nonce or 16-byte id costs several microseconds, a copy from here a
 * fraction of one. Every byte is handed out once; nonces and ids are public
 * (they are stored in clear), so holding them briefly in memory leaks nothing.
 */
const RANDOM_POOL = Buffer.alloc(4096);
let randomAt = RANDOM_POOL.length;

function takeRandom(dst: Buffer, off: number, len: number): void {
  if (randomAt + len > RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    randomAt = 0;
  }
  RANDOM_POOL.copy(dst, off, randomAt, randomAt + len);
  RANDOM_POOL.fill(0, randomAt, randomAt + len);
  randomAt += len;
}

/** A fresh random object id (never all zero). */
export function newId(): Buffer {
  const id = Buffer.allocUnsafe(ID_LEN);
  for (;;) {
    takeRandom(id, 0, ID_LEN);
    if (!id.every((x) => x === 0)) return id;
  }
}

/**
 * Largest piece handed to one cipher update. node:crypto allocates a fresh
 * output buffer per update; pieces this small come from malloc's reused heap
 * instead of fresh mmap'd pages, whose first-touch faults cost more than the
 * AES itself on a virtual machine (docs/storage.md, "Speed").
 */
export const CRYPT_PIECE = 64 * 1024;
const ZEROS = Buffer.alloc(CRYPT_PIECE);
let native: AeadAddon | null = aeadAddon();

/**
 * Which AEAD implementation seals and opens objects: the native addon
 * (fs/native, no allocation per object) when it is built, else node:crypto.
 * Both produce the same bytes; passing `which` switches (for tests).
 */
export function aeadBackend(which?: 'native' | 'node'): 'native' | 'node' {
  if (which === 'node') native = null;
  else if (which === 'native') {
    native = aeadAddon();
    if (!native) throw new Error('the native AEAD addon is not built (fs/native)');
  }
  return native ? 'native' : 'node';
}
// Scratch space of the synchronous seal/open below (never held across an await).
const scratchAad = Buffer.alloc(AAD_LEN);
const scratchTrailer = Buffer.alloc(LEN_TRAILER);

/** Runs `src` through `c` in {@link CRYPT_PIECE}s, writing the output to `dst` at `at`. */
function cryptPieces(
  c: { update(b: Buffer): Buffer },
  src: Buffer,
  dst: Buffer,
  at: number,
): number {
  for (let p = 0; p < src.length; p += CRYPT_PIECE) {
    const piece = src.length - p > CRYPT_PIECE ? src.subarray(p, p + CRYPT_PIECE) : src.subarray(p);
    at += c.update(piece).copy(dst, at);
  }
  return at;
}

/**
 * Writes the clear header of a new object into `out`, and its AAD and sealed
 * length trailer into `aad` and `trailer`: everything of a seal but the
 * AES-GCM itself. Returns the padding bucket and the stored size.
 */
function prepareSeal(
  out: Buffer,
  epoch: number,
  kind: Kind,
  id: Buffer,
  binding: Binding,
  payload: Buffer,
  aad: Buffer,
  trailer: Buffer,
): { bucket: number; size: number } {
  const bucket = bucketFor(payload.length);
  const size = objectSize(bucket);
  if (out.length < size) throw new RangeError(`seal buffer of ${out.length} < ${size} bytes`);
  const dv = new DataView(out.buffer, out.byteOffset, size);
  dv.setUint32(OFF_MAGIC, OBJ_MAGIC);
  dv.setUint8(OFF_FORMAT, OBJ_FORMAT);
  dv.setUint8(OFF_KIND, kind);
  dv.setUint16(OFF_RESERVED, 0);
  dv.setUint32(OFF_EPOCH, epoch);
  takeRandom(out, OFF_NONCE, NONCE_LEN);
  writeAad(aad, out, id, binding);
  trailer.writeUInt32BE(payload.length);
  return { bucket, size };
}

/** The native seal's arguments for an object {@link prepareSeal} set up in `out`. */
function sealArgs(
  out: Buffer,
  epochKey: Buffer,
  id: Buffer,
  payload: Buffer,
  bucket: number,
  aad: Buffer,
  trailer: Buffer,
): SealArgs {
  const nonce = out.subarray(OFF_NONCE, OFF_NONCE + NONCE_LEN);
  const pad = bucket - payload.length;
  return [epochKey, id, OBJ_INFO, nonce, aad, payload, pad, trailer, out, HEADER_LEN];
}

/**
 * Seals `payload` as an object of `kind` at `binding` under `epochKey` into
 * `out`, which must hold at least `objectSize(bucketFor(payload.length))`
 * bytes. Returns the ref that pins the object and its stored size (the first
 * `size` bytes of `out`).
 */
export function sealObjectInto(
  out: Buffer,
  epoch: number,
  epochKey: Buffer,
  kind: Kind,
  id: Buffer,
  binding: Binding,
  payload: Buffer,
): { ref: Ref; size: number } {
  const { bucket, size } = prepareSeal(
    out,
    epoch,
    kind,
    id,
    binding,
    payload,
    scratchAad,
    scratchTrailer,
  );
  if (native) {
    native.seal(...sealArgs(out, epochKey, id, payload, bucket, scratchAad, scratchTrailer));
    return { ref: { id, tag: Buffer.from(out.subarray(size - TAG_LEN, size)), epoch }, size };
  }
  const c = createCipheriv(
    'aes-256-gcm',
    objectKey(epochKey, id),
    out.subarray(OFF_NONCE, OFF_NONCE + NONCE_LEN),
  );
  c.setAAD(scratchAad);
  let o = cryptPieces(c, payload, out, HEADER_LEN);
  for (let pad = bucket - payload.length; pad > 0;) {
    const k = Math.min(pad, CRYPT_PIECE);
    o += c.update(ZEROS.subarray(0, k)).copy(out, o);
    pad -= k;
  }
  o += c.update(scratchTrailer).copy(out, o);
  o += c.final().copy(out, o);
  const tag = c.getAuthTag();
  tag.copy(out, o);
  return { ref: { id, tag, epoch }, size };
}

/** The native AEAD when it is in use ({@link aeadBackend}), for jobs that fold it into their I/O. */
export function activeAead(): AeadAddon | null {
  return native;
}

/**
 * A seal whose AES-GCM runs elsewhere (a threadpool job of the native addon
 * given {@link SealJob.args}): the clear header is already in `out`. The
 * ref's tag is filled in by {@link SealJob.done}, called once the job has
 * sealed: until then nothing may read the tag or `out`, and neither `out`
 * nor `payload` may change.
 */
export interface SealJob {
  ref: Ref;
  size: number;
  args: SealArgs;
  done(): void;
}

/** Prepares a {@link SealJob}; null without the native addon. */
export function sealJob(
  out: Buffer,
  epoch: number,
  epochKey: Buffer,
  kind: Kind,
  id: Buffer,
  binding: Binding,
  payload: Buffer,
): SealJob | null {
  if (!native) return null;
  const aad = Buffer.allocUnsafe(AAD_LEN);
  const trailer = Buffer.allocUnsafe(LEN_TRAILER);
  const { bucket, size } = prepareSeal(out, epoch, kind, id, binding, payload, aad, trailer);
  const tag = Buffer.alloc(TAG_LEN);
  return {
    ref: { id, tag, epoch },
    size,
    args: sealArgs(out, epochKey, id, payload, bucket, aad, trailer),
    done: () => {
      out.copy(tag, 0, size - TAG_LEN, size);
    },
  };
}

/**
 * {@link sealObjectInto} with the AES-GCM on the libuv threadpool (fs/native
 * sealAsync), so the caller's thread serves other work meanwhile. The ref is
 * returned at once, its `tag` filled in when `sealed` resolves (see
 * {@link SealJob}). Without the native addon it seals at once (and `sealed`
 * is already resolved).
 */
export function sealObjectAsync(
  out: Buffer,
  epoch: number,
  epochKey: Buffer,
  kind: Kind,
  id: Buffer,
  binding: Binding,
  payload: Buffer,
): { ref: Ref; size: number; sealed: Promise<void> } {
  const job = sealJob(out, epoch, epochKey, kind, id, binding, payload);
  if (!job)
    return {
      ...sealObjectInto(out, epoch, epochKey, kind, id, binding, payload),
      sealed: Promise.resolve(),
    };
  const addon = native!;
  const sealed = new Promise<void>((resolve, reject) => {
    addon.sealAsync(...job.args, (ok) => {
      if (!ok) return reject(new Error('AES-256-GCM seal failed'));
      job.done();
      resolve();
    });
  });
  return { ref: job.ref, size: job.size, sealed };
}

/**
 * Seals `payload` as an object of `kind` at `binding` under `epochKey`.
 * Returns the stored bytes and the ref that pins them.
 */
export function sealObject(
  epoch: number,
  epochKey: Buffer,
  kind: Kind,
  id: Buffer,
  binding: Binding,
  payload: Buffer,
): { data: Buffer; ref: Ref } {
  const out = Buffer.allocUnsafe(objectSize(bucketFor(payload.length)));
  const { ref } = sealObjectInto(out, epoch, epochKey, kind, id, binding, payload);
  return { data: out, ref };
}

/** Looks up the key of an epoch (or null when the keyring lacks it). */
export type KeyLookup = (epoch: number) => Buffer | null;

/**
 * Checks everything of a stored object that needs no key work (size, header,
 * kind, epoch, the tag its parent pins) and writes its AAD into `aad`.
 * Returns its name, bucket and epoch key.
 */
function prepareOpen(
  keys: KeyLookup,
  kind: Kind,
  ref: Ref,
  binding: Binding,
  data: Buffer,
  dst: Buffer,
  aad: Buffer,
): { name: string; bucket: number; key: Buffer } {
  const name = idName(ref.id);
  if (data.length < objectSize(MIN_BUCKET))
    throw new IntegrityError(name, `truncated (${data.length} bytes)`);
  const bucket = data.length - HEADER_LEN - LEN_TRAILER - TAG_LEN;
  if ((bucket & (bucket - 1)) !== 0 || bucket > MAX_PAYLOAD)
    throw new IntegrityError(name, `size ${data.length} is not an object size`);
  if (dst.length < bucket) throw new RangeError(`open buffer of ${dst.length} < ${bucket} bytes`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dv.getUint32(OFF_MAGIC) !== OBJ_MAGIC) throw new IntegrityError(name, 'bad magic');
  if (dv.getUint8(OFF_FORMAT) !== OBJ_FORMAT)
    throw new IntegrityError(name, 'unknown object format');
  if (dv.getUint8(OFF_KIND) !== kind)
    throw new IntegrityError(name, `wrong kind ${dv.getUint8(OFF_KIND)}`);
  const epoch = dv.getUint32(OFF_EPOCH);
  if (epoch !== ref.epoch) throw new IntegrityError(name, `epoch ${epoch}, expected ${ref.epoch}`);
  if (!timingSafeEqual(data.subarray(data.length - TAG_LEN), ref.tag))
    throw new IntegrityError(name, 'tag differs from the one its parent pins');
  const key = keys(epoch);
  if (!key) throw new IntegrityError(name, `no key for epoch ${epoch}`);
  writeAad(aad, data, ref.id, binding);
  return { name, bucket, key };
}

const AUTH_FAILED = 'authentication failed (modified, swapped or moved)';

/** The native open's arguments for an object {@link prepareOpen} checked. */
function openArgs(
  key: Buffer,
  ref: Ref,
  data: Buffer,
  dst: Buffer,
  bucket: number,
  aad: Buffer,
  trailer: Buffer,
): OpenArgs {
  const nonce = data.subarray(OFF_NONCE, OFF_NONCE + NONCE_LEN);
  const ct = data.subarray(HEADER_LEN, HEADER_LEN + bucket + LEN_TRAILER);
  const tag = data.subarray(data.length - TAG_LEN);
  return [key, ref.id, OBJ_INFO, nonce, aad, ct, tag, dst.subarray(0, bucket), trailer];
}

/** The payload length from an authentic object's decrypted trailer; checks it fits the bucket. */
function finishOpen(name: string, trailer: Buffer, bucket: number, dst: Buffer): number {
  const len = trailer.readUInt32BE(0);
  if (len > bucket || bucketFor(Math.max(len, 1)) !== bucket) {
    dst.fill(0, 0, bucket);
    throw new IntegrityError(name, `sealed length ${len} does not fit bucket ${bucket}`);
  }
  return len;
}

/**
 * Verifies and opens a stored object against the ref that pins it, writing
 * the plaintext (payload, then zero padding up to the bucket) into `dst`,
 * which must hold the object's bucket ({@link objectBucket}). Returns the
 * payload length. Any mismatch (size,
 * header, kind, epoch, tag, AAD) is an {@link IntegrityError}, and `dst` is
 * then wiped: nothing decrypted from an object that fails authentication is
 * ever used.
 */
export function openObjectInto(
  keys: KeyLookup,
  kind: Kind,
  ref: Ref,
  binding: Binding,
  data: Buffer,
  dst: Buffer,
): number {
  const { name, bucket, key } = prepareOpen(keys, kind, ref, binding, data, dst, scratchAad);
  const body = HEADER_LEN + bucket;
  const nonce = data.subarray(OFF_NONCE, OFF_NONCE + NONCE_LEN);
  const tagStored = data.subarray(data.length - TAG_LEN);
  if (native) {
    if (!native.open(...openArgs(key, ref, data, dst, bucket, scratchAad, scratchTrailer)))
      throw new IntegrityError(name, AUTH_FAILED);
  } else {
    const d = createDecipheriv('aes-256-gcm', objectKey(key, ref.id), nonce);
    d.setAAD(scratchAad);
    d.setAuthTag(tagStored);
    cryptPieces(d, data.subarray(HEADER_LEN, body), dst, 0);
    d.update(data.subarray(body, body + LEN_TRAILER)).copy(scratchTrailer);
    try {
      d.final();
    } catch {
      dst.fill(0, 0, bucket);
      throw new IntegrityError(name, AUTH_FAILED);
    }
  }
  return finishOpen(name, scratchTrailer, bucket, dst);
}

/**
 * {@link openObjectInto} with the AES-GCM on the libuv threadpool (fs/native
 * openAsync). The checks that need no key work throw at once; `data` and
 * `dst` must not change until the promise settles. Without the native addon
 * it opens synchronously.
 */
export function openObjectAsync(
  keys: KeyLookup,
  kind: Kind,
  ref: Ref,
  binding: Binding,
  data: Buffer,
  dst: Buffer,
): Promise<number> {
  if (!native) return Promise.resolve(openObjectInto(keys, kind, ref, binding, data, dst));
  const aad = Buffer.allocUnsafe(AAD_LEN);
  const { name, bucket, key } = prepareOpen(keys, kind, ref, binding, data, dst, aad);
  const trailer = Buffer.allocUnsafe(LEN_TRAILER);
  const addon = native;
  return new Promise<number>((resolve, reject) => {
    addon.openAsync(...openArgs(key, ref, data, dst, bucket, aad, trailer), (ok) => {
      if (!ok) return reject(new IntegrityError(name, AUTH_FAILED));
      try {
        resolve(finishOpen(name, trailer, bucket, dst));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

/**
 * An open whose reading and AES-GCM run elsewhere, in one job of the native
 * addon (getOpenFile): the job gets `key`, `aadRest` (the AAD after the
 * object's clear header, which the job takes from the object it reads) and
 * {@link OPEN_LAYOUT}, and decrypts into the caller's buffer and `trailer`.
 * {@link OpenJob.finish} then checks the clear header and the pinned tag as
 * {@link openObjectInto} does (authenticated or not, the object must be the
 * one its parent pins) and returns the payload length; on any failure the
 * plaintext is wiped and the error is the one openObjectInto would give.
 */
export interface OpenJob {
  key: Buffer;
  info: Buffer;
  aadRest: Buffer;
  trailer: Buffer;
  finish(data: Buffer, verified: boolean, dst: Buffer): number;
}

/** Where the job finds an object's parts: header length, nonce offset, trailer length. */
export const OPEN_LAYOUT = [HEADER_LEN, OFF_NONCE, LEN_TRAILER] as const;

const NO_HEADER = Buffer.alloc(HEADER_LEN);

/** Prepares an {@link OpenJob}; throws as openObjectInto does when there is no key for the ref's epoch. */
export function openJob(keys: KeyLookup, kind: Kind, ref: Ref, binding: Binding): OpenJob {
  const key = keys(ref.epoch);
  if (!key) throw new IntegrityError(idName(ref.id), `no key for epoch ${ref.epoch}`);
  const aad = Buffer.allocUnsafe(AAD_LEN);
  writeAad(aad, NO_HEADER, ref.id, binding);
  const trailer = Buffer.allocUnsafe(LEN_TRAILER);
  return {
    key,
    info: OBJ_INFO,
    aadRest: aad.subarray(HEADER_LEN),
    trailer,
    finish(data, verified, dst) {
      let bucket: number;
      let name: string;
      try {
        ({ bucket, name } = prepareOpen(keys, kind, ref, binding, data, dst, scratchAad));
      } catch (e) {
        if (verified) dst.fill(0, 0, Math.min(dst.length, Math.max(0, objectBucket(data.length))));
        throw e;
      }
      if (!verified) throw new IntegrityError(name, AUTH_FAILED);
      return finishOpen(name, trailer, bucket, dst);
    },
  };
}

/** The padding bucket of a stored object of `size` bytes (not checked: {@link openObjectInto} does). */
export function objectBucket(size: number): number {
  return size - HEADER_LEN - LEN_TRAILER - TAG_LEN;
}

/**
 * Verifies and opens a stored object against the ref that pins it; returns
 * the payload. Errors as {@link openObjectInto}.
 */
export function openObject(
  keys: KeyLookup,
  kind: Kind,
  ref: Ref,
  binding: Binding,
  data: Buffer,
): Buffer {
  const dst = Buffer.allocUnsafe(Math.max(0, objectBucket(data.length)));
  const len = openObjectInto(keys, kind, ref, binding, data, dst);
  return dst.subarray(0, len);
}

/** The epoch of a stored object, read from its clear header (null if it is no object). */
export function objectEpoch(data: Buffer): number | null {
  if (data.length < HEADER_LEN || data.readUInt32BE(OFF_MAGIC) !== OBJ_MAGIC) return null;
  return data.readUInt32BE(OFF_EPOCH);
}

// ---- volume header (plaintext, name `volume`) --------------------------------

/** 'SNFSVOL1' */
export const VOL_MAGIC = Buffer.from('SNFSVOL1', 'latin1');
export const VOL_FORMAT = 1;
export const VOFF_MAGIC = 0;
export const VOFF_FORMAT = VOFF_MAGIC + 8;
export const VOFF_RESERVED = VOFF_FORMAT + 2;
export const VOFF_EPOCH = VOFF_RESERVED + 2;
export const VOFF_VOLUME = VOFF_EPOCH + 4;
export const VOFF_CHECK = VOFF_VOLUME + ID_LEN;
export const CHECK_LEN = 32;
export const VOL_HEADER_LEN = VOFF_CHECK + CHECK_LEN;

export interface VolumeHeader {
  volumeId: Buffer;
  epoch: number;
  check: Buffer;
}

/** HMAC that lets a key be recognised as this volume's without decrypting anything. */
export function keyCheck(key: Buffer, volumeId: Buffer, epoch: number): Buffer {
  const e = Buffer.alloc(4);
  e.writeUInt32BE(epoch);
  return createHmac('sha256', key)
    .update('supernet fs keycheck v1')
    .update(volumeId)
    .update(e)
    .digest();
}

export function encodeVolumeHeader(h: VolumeHeader): Buffer {
  const b = Buffer.alloc(VOL_HEADER_LEN);
  VOL_MAGIC.copy(b, VOFF_MAGIC);
  b.writeUInt16BE(VOL_FORMAT, VOFF_FORMAT);
  b.writeUInt32BE(h.epoch, VOFF_EPOCH);
  h.volumeId.copy(b, VOFF_VOLUME);
  h.check.copy(b, VOFF_CHECK);
  return b;
}

export function decodeVolumeHeader(b: Buffer | null): VolumeHeader {
  if (!b || b.length < VOFF_FORMAT + 2 || !b.subarray(0, 8).equals(VOL_MAGIC))
    throw new VolumeError(
      'not-a-volume',
      'no Supernet volume header (file "volume") in the backing store',
    );
  const format = b.readUInt16BE(VOFF_FORMAT);
  if (format !== VOL_FORMAT)
    throw new VolumeError('unsupported', `volume format ${format} is not supported`);
  if (b.length !== VOL_HEADER_LEN)
    throw new VolumeError('damaged', `volume header has ${b.length} bytes`);
  const volumeId = Buffer.from(b.subarray(VOFF_VOLUME, VOFF_VOLUME + ID_LEN));
  if (volumeId.every((x) => x === 0)) throw new VolumeError('damaged', 'volume id is all zero');
  return {
    volumeId,
    epoch: b.readUInt32BE(VOFF_EPOCH),
    check: Buffer.from(b.subarray(VOFF_CHECK)),
  };
}

// ---- superblock (sealed, name `superblock`, object id = volume id) ---------

/** 'SNSB' */
export const SB_MAGIC = 0x534e5342;
export const SB_FORMAT = 1;
export const SOFF_MAGIC = 0;
export const SOFF_FORMAT = SOFF_MAGIC + 4;
export const SOFF_FLAGS = SOFF_FORMAT + 2;
export const SOFF_VERSION = SOFF_FLAGS + 2;
export const SOFF_NEXT_INO = SOFF_VERSION + 8;
export const SOFF_EPOCH = SOFF_NEXT_INO + 8;
export const SOFF_DEPTH = SOFF_EPOCH + 4;
export const SOFF_ROOT = SOFF_DEPTH + 4;
export const SB_LEN = SOFF_ROOT + REF_LEN;
/** Superblock flag: the last session unmounted cleanly (no orphans to sweep). */
export const SB_CLEAN = 1;

export interface Superblock {
  flags: number;
  /** Commit counter; the root anchor holds the newest one. */
  version: bigint;
  nextIno: number;
  /** Epoch new objects are written under. */
  epoch: number;
  itableDepth: number;
  itableRoot: Ref | null;
}

export const SB_BINDING: Binding = { owner: 0, level: 0, index: 0 };

export function encodeSuperblock(s: Superblock): Buffer {
  const b = Buffer.alloc(SB_LEN);
  b.writeUInt32BE(SB_MAGIC, SOFF_MAGIC);
  b.writeUInt16BE(SB_FORMAT, SOFF_FORMAT);
  b.writeUInt16BE(s.flags, SOFF_FLAGS);
  b.writeBigUInt64BE(s.version, SOFF_VERSION);
  b.writeBigUInt64BE(BigInt(s.nextIno), SOFF_NEXT_INO);
  b.writeUInt32BE(s.epoch, SOFF_EPOCH);
  b.writeUInt32BE(s.itableDepth, SOFF_DEPTH);
  writeRef(b, SOFF_ROOT, s.itableRoot);
  return b;
}

export function decodeSuperblock(b: Buffer): Superblock {
  if (
    b.length !== SB_LEN ||
    b.readUInt32BE(SOFF_MAGIC) !== SB_MAGIC ||
    b.readUInt16BE(SOFF_FORMAT) !== SB_FORMAT
  )
    throw new IntegrityError('superblock', 'malformed superblock');
  return {
    flags: b.readUInt16BE(SOFF_FLAGS),
    version: b.readBigUInt64BE(SOFF_VERSION),
    nextIno: Number(b.readBigUInt64BE(SOFF_NEXT_INO)),
    epoch: b.readUInt32BE(SOFF_EPOCH),
    itableDepth: b.readUInt32BE(SOFF_DEPTH),
    itableRoot: readRef(b, SOFF_ROOT),
  };
}
