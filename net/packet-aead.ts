/**
 * AES-256-GCM of SNSL packets under one sender subkey (docs/protocol.md §2,
 * "Implementation: where the AEAD runs").
 *
 * The packet is net/wire.ts's: header (36 bytes, the whole AAD; nonce =
 * header[OFF_SESSION .. HEADER_LEN) = session ‖ sequence) ‖ ciphertext ‖ tag.
 * A {@link PacketCipher} seals and opens such packets; the header is written
 * by its caller (the Sealer in net/keyring.ts owns the sequence counter).
 *
 * Two backends compute the same bytes:
 * - `native`: net/native/aead.c, one preinitialised OpenSSL context per
 *   direction and subkey (key schedule once, only the nonce per packet),
 *   output straight into the caller's buffer, no allocation per packet;
 * - `node`: node:crypto, a createCipheriv per packet plus a scratch copy
 *   (slow: the design brief §4 measured ~7.5 µs per 1400-byte packet), used
 *   when the addon is not built, when `SUPERNET_PACKET_AEAD=node`, or when a
 *   test asks for it via {@link packetAeadBackend}.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { loadNative, type NativeAddon, type NativeHandle } from './native/addon.js';
import { HEADER_LEN, NONCE_LEN, OFF_SESSION, SNSL_OVERHEAD, TAG_LEN } from './wire.js';

/** Subkey length (AES-256). */
export const PACKET_KEY_LEN = 32;
/** Largest inner packet a cipher seals: a UDP/IPv4 payload (65507) minus the SNSL overhead. */
export const MAX_INNER_LEN = 65507 - SNSL_OVERHEAD;

/** Seals and opens SNSL packets under one sender subkey. */
export interface PacketCipher {
  /**
   * Encrypts `inner[off .. off+len)` into `out` at `outOff + HEADER_LEN` and
   * writes the tag after it; returns the packet length (len + SNSL_OVERHEAD).
   * `out[outOff .. outOff+HEADER_LEN)` must already hold the header. `inner`
   * may be exactly the ciphertext region of `out` (in place). Throws
   * RangeError on bad ranges.
   */
  seal(inner: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number;
  /**
   * Authenticates `pkt[off .. off+len)` and writes its plaintext to `out` at
   * `outOff`; returns the plaintext length, or -1 if the packet is too short
   * or the tag does not verify (the output region is then wiped: no
   * unauthenticated byte is ever left there). `out` may be exactly the
   * packet's ciphertext region (in place).
   */
  open(pkt: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number;
  /** Forgets the key (wipes the key schedule); later calls throw. Idempotent. */
  wipe(): void;
}

export type PacketAeadBackend = 'native' | 'node';

let addon: NativeAddon | null | undefined;

function nativeAddon(): NativeAddon | null {
  if (addon === undefined) {
    try {
      const a = loadNative();
      addon = typeof a.aeadCreate === 'function' ? a : null;
    } catch {
      addon = null;
    }
  }
  return addon;
}

let backend: PacketAeadBackend | undefined;

/**
 * The backend new ciphers use. With an argument, switches to it (for tests
 * and benchmarks; ciphers already made keep theirs); `native` throws if the
 * addon is not built. Default: native if built, unless
 * `SUPERNET_PACKET_AEAD=node`.
 */
export function packetAeadBackend(which?: PacketAeadBackend): PacketAeadBackend {
  if (which === 'native') {
    if (!nativeAddon())
      throw Object.assign(
        new Error('the native packet AEAD is not built (run "npx node-gyp rebuild")'),
        { code: 'ENATIVE' },
      );
    backend = 'native';
  } else if (which === 'node') {
    backend = 'node';
  } else if (backend === undefined) {
    backend = process.env.SUPERNET_PACKET_AEAD !== 'node' && nativeAddon() ? 'native' : 'node';
  }
  return backend;
}

function checkKey(subkey: Uint8Array): void {
  if (subkey.length !== PACKET_KEY_LEN)
    throw new RangeError(
      `packet cipher: subkey must be ${PACKET_KEY_LEN} bytes, got ${subkey.length}`,
    );
}

/** Makes a cipher for one sender subkey with the current {@link packetAeadBackend}. */
export function createPacketCipher(subkey: Uint8Array): PacketCipher {
  checkKey(subkey);
  return packetAeadBackend() === 'native'
    ? new NativePacketCipher(nativeAddon()!, subkey)
    : new NodePacketCipher(subkey);
}

class NativePacketCipher implements PacketCipher {
  private readonly handle: NativeHandle;
  private readonly sealFn: NativeAddon['aeadSeal'];
  private readonly openFn: NativeAddon['aeadOpen'];

  constructor(
    private readonly addon: NativeAddon,
    subkey: Uint8Array,
  ) {
    this.handle = addon.aeadCreate(subkey);
    this.sealFn = addon.aeadSeal;
    this.openFn = addon.aeadOpen;
  }

  seal(inner: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number {
    return this.sealFn(this.handle, inner, off, len, out, outOff);
  }

  open(pkt: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number {
    return this.openFn(this.handle, pkt, off, len, out, outOff);
  }

  wipe(): void {
    this.addon.aeadWipe(this.handle);
  }
}

const CIPHER = 'aes-256-gcm';

class NodePacketCipher implements PacketCipher {
  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(NONCE_LEN);
  private wiped = false;

  constructor(subkey: Uint8Array) {
    this.key = Buffer.from(subkey);
  }

  private live(): void {
    if (this.wiped)
      throw Object.assign(new Error('packet AEAD key was wiped'), { code: 'ERR_AEAD_WIPED' });
  }

  seal(inner: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number {
    this.live();
    if (!(off >= 0 && len >= 0 && off + len <= inner.length))
      throw new RangeError('packet cipher seal: off + len is past the end of inner');
    if (!(len <= MAX_INNER_LEN && outOff >= 0 && outOff + len + SNSL_OVERHEAD <= out.length))
      throw new RangeError('packet cipher seal: inner packet too long or out too small');
    const o = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    this.nonce.set(o.subarray(outOff + OFF_SESSION, outOff + HEADER_LEN));
    const c = createCipheriv(CIPHER, this.key, this.nonce, { authTagLength: TAG_LEN });
    c.setAAD(o.subarray(outOff, outOff + HEADER_LEN));
    // update() returns a new Buffer, so sealing in place is safe here too.
    const body = c.update(inner.subarray(off, off + len));
    c.final();
    o.set(body, outOff + HEADER_LEN);
    o.set(c.getAuthTag(), outOff + HEADER_LEN + len);
    return len + SNSL_OVERHEAD;
  }

  open(pkt: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number {
    this.live();
    if (!(off >= 0 && len >= 0 && off + len <= pkt.length))
      throw new RangeError('packet cipher open: off + len is past the end of pkt');
    const ctLen = len - SNSL_OVERHEAD;
    if (ctLen < 0 || ctLen > MAX_INNER_LEN) return -1;
    if (!(outOff >= 0 && outOff + ctLen <= out.length))
      throw new RangeError('packet cipher open: out too small for the plaintext');
    this.nonce.set(pkt.subarray(off + OFF_SESSION, off + HEADER_LEN));
    const d = createDecipheriv(CIPHER, this.key, this.nonce, { authTagLength: TAG_LEN });
    d.setAAD(pkt.subarray(off, off + HEADER_LEN));
    d.setAuthTag(pkt.subarray(off + HEADER_LEN + ctLen, off + len));
    // node:crypto reveals the verdict only in final(): the plaintext goes to a
    // scratch buffer and reaches `out` only after the tag verified; the region
    // is wiped on failure so both backends leave the same bytes behind.
    const plain = d.update(pkt.subarray(off + HEADER_LEN, off + HEADER_LEN + ctLen));
    try {
      d.final();
    } catch {
      plain.fill(0);
      out.fill(0, outOff, outOff + ctLen);
      return -1;
    }
    out.set(plain, outOff);
    return ctLen;
  }

  wipe(): void {
    this.key.fill(0);
    this.wiped = true;
  }
}
