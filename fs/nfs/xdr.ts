/**
 * XDR, the External Data Representation of RFC 4506: big-endian 4-byte
 * units, 64-bit hypers, variable-length opaques and strings padded with zero
 * bytes to a multiple of four. Only what ONC RPC, MOUNT v3 and NFSv3 need.
 *
 * {@link XdrWriter} appends into one growing buffer it owns (reused across
 * calls by its owner, so encoding a call allocates nothing on the hot path);
 * bulk payloads (WRITE data) are not copied into it but sent as a second
 * buffer (see {@link XdrWriter.opaqueTail}). {@link XdrReader} reads at an
 * explicit offset of a Buffer through a DataView and returns opaques as
 * zero-copy subarrays; every read checks the remaining length and throws
 * {@link XdrError} on truncated or malformed input (RFC 4506 §4.10: padding
 * bytes must be zero).
 */

/** Size of one XDR unit (RFC 4506 §3). */
export const XDR_UNIT = 4;
/** Size of an unsigned/signed hyper (RFC 4506 §4.5). */
export const XDR_HYPER = 8;

/** Padding after `len` bytes of opaque data. */
export const padLen = (len: number): number => (XDR_UNIT - (len % XDR_UNIT)) % XDR_UNIT;

/** Input that is not valid XDR for the expected type. */
export class XdrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XdrError';
  }
}

const ZERO_PAD = Buffer.alloc(XDR_UNIT);
const U32_MAX = 0xffffffff;
const U64_MAX = (1n << 64n) - 1n;

/** Appends XDR items to a growing buffer. */
export class XdrWriter {
  private buf: Buffer;
  private view: DataView;
  private pos = 0;
  /** A bulk opaque body sent after {@link bytes} without being copied. */
  private tail: Buffer | null = null;

  constructor(initial = 512) {
    this.buf = Buffer.allocUnsafe(initial);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Forgets what was written; keeps the buffer for the next message. */
  reset(): this {
    this.pos = 0;
    this.tail = null;
    return this;
  }

  /** Bytes written so far (a view into the writer's buffer: copy before the next reset). */
  get bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** Length of {@link bytes} plus the tail and its padding. */
  get length(): number {
    return this.pos + (this.tail ? this.tail.length + padLen(this.tail.length) : 0);
  }

  /** The buffers that make up the message, in order (no copies). */
  chunks(): Buffer[] {
    if (!this.tail) return [this.bytes];
    const pad = padLen(this.tail.length);
    return pad ? [this.bytes, this.tail, ZERO_PAD.subarray(0, pad)] : [this.bytes, this.tail];
  }

  private ensure(n: number): void {
    if (this.tail) throw new XdrError('nothing may follow an opaque tail');
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /** Reserves one unit to be filled later with {@link patchU32}; returns its offset. */
  reserveU32(): number {
    this.ensure(XDR_UNIT);
    const at = this.pos;
    this.pos += XDR_UNIT;
    return at;
  }

  /** Overwrites the unit at `at` (from {@link reserveU32}). */
  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0);
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > U32_MAX)
      throw new XdrError(`unsigned int out of range: ${v}`);
    this.ensure(XDR_UNIT);
    this.view.setUint32(this.pos, v);
    this.pos += XDR_UNIT;
    return this;
  }

  i32(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
      throw new XdrError(`int out of range: ${v}`);
    this.ensure(XDR_UNIT);
    this.view.setInt32(this.pos, v);
    this.pos += XDR_UNIT;
    return this;
  }

  bool(v: boolean): this {
    return this.u32(v ? 1 : 0);
  }

  /** Unsigned hyper (64 bits). Numbers must be safe integers. */
  u64(v: bigint | number): this {
    const b = typeof v === 'bigint' ? v : BigInt(v);
    if (b < 0n || b > U64_MAX) throw new XdrError(`unsigned hyper out of range: ${v}`);
    this.ensure(XDR_HYPER);
    this.view.setBigUint64(this.pos, b);
    this.pos += XDR_HYPER;
    return this;
  }

  /** Fixed-length opaque of exactly `len` bytes (RFC 4506 §4.9). */
  fixed(data: Uint8Array, len: number): this {
    if (data.length !== len)
      throw new XdrError(`fixed opaque must be ${len} bytes, got ${data.length}`);
    this.raw(data);
    return this;
  }

  /** Variable-length opaque with at most `max` bytes (RFC 4506 §4.10). */
  opaque(data: Uint8Array, max = U32_MAX): this {
    if (data.length > max) throw new XdrError(`opaque longer than ${max} bytes: ${data.length}`);
    this.u32(data.length);
    this.raw(data);
    return this;
  }

  /**
   * A variable-length opaque as the last item of the message, sent from the
   * caller's buffer without a copy (the caller must not change it until sent).
   */
  opaqueTail(data: Buffer, max = U32_MAX): this {
    if (data.length > max) throw new XdrError(`opaque longer than ${max} bytes: ${data.length}`);
    this.u32(data.length);
    this.tail = data;
    return this;
  }

  /** UTF-8 string with at most `max` bytes (RFC 4506 §4.11). */
  string(s: string, max = U32_MAX): this {
    const len = Buffer.byteLength(s, 'utf8');
    if (len > max) throw new XdrError(`string longer than ${max} bytes: ${len}`);
    this.u32(len);
    this.ensure(len + padLen(len));
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
    this.zeroPad(len);
    return this;
  }

  private raw(data: Uint8Array): void {
    const len = data.length;
    this.ensure(len + padLen(len));
    this.buf.set(data, this.pos);
    this.pos += len;
    this.zeroPad(len);
  }

  private zeroPad(len: number): void {
    const pad = padLen(len);
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }
}

/** Reads XDR items from a buffer, front to back. */
export class XdrReader {
  private readonly view: DataView;
  pos: number;

  constructor(
    readonly buf: Buffer,
    start = 0,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length)
      throw new XdrError(
        `truncated ${what}: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`,
      );
  }

  u32(): number {
    this.need(XDR_UNIT, 'unsigned int');
    const v = this.view.getUint32(this.pos);
    this.pos += XDR_UNIT;
    return v;
  }

  i32(): number {
    this.need(XDR_UNIT, 'int');
    const v = this.view.getInt32(this.pos);
    this.pos += XDR_UNIT;
    return v;
  }

  /** A bool must be 0 or 1 (RFC 4506 §4.4). */
  bool(): boolean {
    const v = this.u32();
    if (v > 1) throw new XdrError(`bool must be 0 or 1, got ${v}`);
    return v === 1;
  }

  u64(): bigint {
    this.need(XDR_HYPER, 'unsigned hyper');
    const v = this.view.getBigUint64(this.pos);
    this.pos += XDR_HYPER;
    return v;
  }

  /** An unsigned hyper as a number; throws when it is not a safe integer. */
  u64n(what = 'unsigned hyper'): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new XdrError(`${what} too large: ${v}`);
    return Number(v);
  }

  /** Fixed-length opaque (a subarray of the input). */
  fixed(len: number): Buffer {
    this.need(len + padLen(len), `opaque[${len}]`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    this.checkPad(len);
    return out;
  }

  /** Variable-length opaque of at most `max` bytes (a subarray of the input). */
  opaque(max = U32_MAX): Buffer {
    const len = this.u32();
    if (len > max) throw new XdrError(`opaque longer than ${max} bytes: ${len}`);
    return this.fixed(len);
  }

  /** UTF-8 string of at most `max` bytes. */
  string(max = U32_MAX): string {
    return this.opaque(max).toString('utf8');
  }

  private checkPad(len: number): void {
    const pad = padLen(len);
    for (let i = 0; i < pad; i++)
      if (this.buf[this.pos + i] !== 0) throw new XdrError('non-zero XDR padding');
    this.pos += pad;
  }

  /** Fails unless every byte was consumed (exact length checks). */
  end(what: string): void {
    if (this.pos !== this.buf.length)
      throw new XdrError(`${this.buf.length - this.pos} trailing bytes after ${what}`);
  }
}
