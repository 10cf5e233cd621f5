/**
 * Supernet and channel identifiers (paper §4.5: "Supernet 0x4711",
 * "0x0000cafebabe00050100", "channel 0x123").
 *
 * A Supernet id is an unsigned integer of at most 80 bits, carried on the wire
 * as 10 big-endian bytes (docs/protocol.md). A channel id is an unsigned
 * 32-bit integer. Both are written as hex with a `0x` prefix; the canonical
 * text form drops leading zeros (keeping at least 4 digits for Supernets and
 * 2 for channels), so `0x0000cafebabe00050100` and `0xcafebabe00050100` name
 * the same Supernet.
 */

export const SUPERNET_ID_BITS = 80;
export const SUPERNET_ID_LEN = SUPERNET_ID_BITS / 8;
export const CHANNEL_ID_MAX = 0xffff_ffff;

const HEX_RE = /^0x([0-9a-fA-F]{1,20})$/;

/** Thrown for an id that is not valid; `field` names what was being parsed. */
export class IdError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'IdError';
  }
}

/** Parses a Supernet id (`0x` + 1..20 hex digits, not zero) to its canonical form. */
export function parseSupernetId(text: string, field = 'supernet'): string {
  const m = HEX_RE.exec(String(text).trim());
  if (!m) {
    throw new IdError(
      field,
      `${field}: expected 0x followed by 1 to 20 hex digits, got ${JSON.stringify(text)}`,
    );
  }
  const n = BigInt('0x' + m[1]);
  if (n === 0n) throw new IdError(field, `${field}: the Supernet id 0 is reserved`);
  return formatSupernetId(n);
}

export function formatSupernetId(n: bigint): string {
  return '0x' + n.toString(16).padStart(4, '0');
}

/** The 10 wire bytes of a (canonical or not) Supernet id. */
export function supernetIdBytes(id: string): Uint8Array {
  let n = BigInt(parseSupernetId(id));
  const out = new Uint8Array(SUPERNET_ID_LEN);
  for (let i = SUPERNET_ID_LEN - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** Inverse of {@link supernetIdBytes}; `bytes` must be exactly 10 bytes. */
export function supernetIdFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== SUPERNET_ID_LEN)
    throw new IdError('supernet', 'supernet id must be 10 bytes');
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return formatSupernetId(n);
}

/** Parses a channel id (`0x` + hex, or decimal) to a number in 1..2^32-1. */
export function parseChannelId(text: string | number, field = 'channel'): number {
  let n: number;
  if (typeof text === 'number') n = text;
  else {
    const t = String(text).trim();
    if (/^0x[0-9a-fA-F]{1,8}$/.test(t)) n = parseInt(t.slice(2), 16);
    else if (/^[0-9]{1,10}$/.test(t)) n = parseInt(t, 10);
    else
      throw new IdError(
        field,
        `${field}: expected a channel id such as 0x01 or 0x123, got ${JSON.stringify(text)}`,
      );
  }
  if (!Number.isInteger(n) || n < 1 || n > CHANNEL_ID_MAX) {
    throw new IdError(field, `${field}: channel id must be between 0x01 and 0xffffffff`);
  }
  return n;
}

export function formatChannelId(n: number): string {
  return '0x' + n.toString(16).padStart(2, '0');
}
