/**
 * The little of IPv4 (RFC 791) the packet path needs: enough of the inner
 * header to route a packet and check its source. Addresses are handled as
 * unsigned 32-bit numbers so the hot path allocates nothing.
 */

export const IPV4_MIN_HEADER = 20;
const OFF_VER_IHL = 0;
const OFF_TOTAL_LEN = 2;
const OFF_PROTO = 9;
const OFF_SRC = 12;
const OFF_DST = 16;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/** True if `buf[off..off+len)` starts with a plausible IPv4 header whose total length fits. */
export function isIpv4(buf: Buffer, off: number, len: number): boolean {
  if (len < IPV4_MIN_HEADER) return false;
  const vihl = buf[off + OFF_VER_IHL]!;
  if (vihl >> 4 !== 4 || (vihl & 0x0f) < 5) return false;
  const total = buf.readUInt16BE(off + OFF_TOTAL_LEN);
  return total >= (vihl & 0x0f) * 4 && total <= len;
}

export function ipv4Src(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_SRC);
}
export function ipv4Dst(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_DST);
}
export function ipv4Proto(buf: Buffer, off: number): number {
  return buf[off + OFF_PROTO]!;
}
export function ipv4HeaderLen(buf: Buffer, off: number): number {
  return (buf[off + OFF_VER_IHL]! & 0x0f) * 4;
}

/** Parses dotted-quad text to a u32; throws on anything else. */
export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) throw new Error(`not an IPv4 address: ${JSON.stringify(s)}`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) throw new Error(`not an IPv4 address: ${JSON.stringify(s)}`);
    n = n * 256 + o;
  }
  return n >>> 0;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** A prefix such as `10.71.17.0/24`. */
export interface Ipv4Prefix {
  network: number;
  len: number;
  broadcast: number;
}

export function parsePrefix(s: string): Ipv4Prefix {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(s);
  if (!m || Number(m[2]) > 32) throw new Error(`not an IPv4 prefix: ${JSON.stringify(s)}`);
  const len = Number(m[2]);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const network = (parseIpv4(m[1]!) & mask) >>> 0;
  return { network, len, broadcast: (network | ~mask) >>> 0 };
}

/** Multicast (224.0.0.0/4) or limited/directed broadcast for `pool`. */
export function isGroupAddress(dst: number, pool: Ipv4Prefix): boolean {
  return dst >>> 28 === 0xe || dst === 0xffffffff || dst === pool.broadcast;
}
