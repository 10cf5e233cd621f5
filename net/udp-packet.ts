/**
 * IPv4/UDP datagrams as the host agent sees them on a node's TUN device
 * (RFC 791, RFC 768): parse the UDP datagram inside an IPv4 packet a node
 * sent, and build the reply packet the agent writes back to the same TUN.
 *
 * Used by in-node services that live inside the agent (the Supernet resolver,
 * docs/dns.md §Packet path): no socket and no process per node; the node is
 * implicit in the TUN the packet came from.
 *
 * Byte layout (docs/dns.md §Packet path has the diagram):
 *
 *   IPv4 header, 20 bytes without options:
 *     0  ver(4)|ihl(4)   1 tos   2..3 total length   4..5 id
 *     6..7 flags(3)|fragment offset(13)   8 ttl   9 protocol   10..11 checksum
 *     12..15 source   16..19 destination   [options up to ihl*4]
 *   UDP header, 8 bytes:
 *     0..1 source port   2..3 destination port   4..5 length   6..7 checksum
 *
 * Nothing here allocates per packet except the small result object of
 * {@link parseUdp}.
 */
import { PROTO_UDP } from './ipv4.js';

export const IPV4_HEADER_LEN = 20;
export const UDP_HEADER_LEN = 8;
/** IPv4 header without options plus UDP header: the overhead of a reply. */
export const UDP_OVERHEAD = IPV4_HEADER_LEN + UDP_HEADER_LEN;
/** Largest UDP payload an IPv4 packet can carry (total length is 16 bits). */
export const UDP_MAX_PAYLOAD = 0xffff - UDP_OVERHEAD;

const IP_OFF_VER_IHL = 0;
const IP_OFF_TOS = 1;
const IP_OFF_TOTAL_LEN = 2;
const IP_OFF_ID = 4;
const IP_OFF_FRAG = 6;
const IP_OFF_TTL = 8;
const IP_OFF_PROTO = 9;
const IP_OFF_CSUM = 10;
const IP_OFF_SRC = 12;
const IP_OFF_DST = 16;

const UDP_OFF_SPORT = 0;
const UDP_OFF_DPORT = 2;
const UDP_OFF_LEN = 4;
const UDP_OFF_CSUM = 6;

/** "More fragments" flag and fragment-offset mask of IPv4 bytes 6..7. */
const IP_FLAG_MF = 0x2000;
const IP_FLAG_DF = 0x4000;
const IP_FRAG_OFFSET_MASK = 0x1fff;

/** TTL of packets the agent originates towards a node (RFC 1700 default). */
export const REPLY_TTL = 64;

/** Where the UDP datagram of a parsed packet lies, with the addressing needed to reply. */
export interface UdpInfo {
  /** IPv4 source address (unsigned 32-bit). */
  src: number;
  /** IPv4 destination address (unsigned 32-bit). */
  dst: number;
  sport: number;
  dport: number;
  /** Offset of the IPv4 header in the buffer (the `off` passed in). */
  ipOff: number;
  /** IPv4 header length in bytes (20..60). */
  ipHeaderLen: number;
  /** Offset of the UDP payload in the buffer. */
  payloadOff: number;
  payloadLen: number;
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/**
 * Adds `b[off..off+len)` as big-endian 16-bit words to `sum` (RFC 1071);
 * an odd last byte is padded with zero. The result is not folded.
 */
export function sum16(b: Uint8Array, off: number, len: number, sum = 0): number {
  const end = off + (len & ~1);
  let i = off;
  for (; i < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (len & 1) sum += b[i]! << 8;
  return sum;
}

/** Folds a 32-bit accumulated sum to 16 bits and complements it (RFC 1071). */
export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

function pseudoHeaderSum(src: number, dst: number, udpLen: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + PROTO_UDP + udpLen;
}

/**
 * Finds the UDP datagram in the IPv4 packet `pkt[off..off+len)`. Returns
 * null (the caller counts and drops) for anything that is not a whole,
 * well-formed IPv4/UDP packet: wrong version, header length below 20 or
 * beyond the packet, total length beyond `len`, a fragment (resolver queries
 * are never fragmented, and reassembly is not worth the state), another
 * protocol, a bad IPv4 header checksum, or a UDP length that is not exactly
 * what the IPv4 header leaves for it.
 *
 * The UDP checksum is NOT checked here, because a TUN opened with a virtio
 * header may hand over packets whose checksum is still partial
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM); call {@link udpChecksumOk} when it is
 * complete.
 */
export function parseUdp(pkt: Uint8Array, off: number, len: number): UdpInfo | null {
  if (off < 0 || len < UDP_OVERHEAD || off + len > pkt.length) return null;
  const vihl = pkt[off + IP_OFF_VER_IHL]!;
  if (vihl >> 4 !== 4) return null;
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < IPV4_HEADER_LEN) return null;
  const total = u16(pkt, off + IP_OFF_TOTAL_LEN);
  // Bytes past `total` (link padding) are ignored; a total beyond the
  // buffer, or one that leaves no room for a UDP header, is not a packet.
  if (total > len || total < ihl + UDP_HEADER_LEN) return null;
  const frag = u16(pkt, off + IP_OFF_FRAG);
  if ((frag & IP_FLAG_MF) !== 0 || (frag & IP_FRAG_OFFSET_MASK) !== 0) return null;
  if (pkt[off + IP_OFF_PROTO] !== PROTO_UDP) return null;
  if (foldChecksum(sum16(pkt, off, ihl)) !== 0) return null;
  const udp = off + ihl;
  const udpLen = u16(pkt, udp + UDP_OFF_LEN);
  if (udpLen !== total - ihl) return null;
  return {
    src: u32(pkt, off + IP_OFF_SRC),
    dst: u32(pkt, off + IP_OFF_DST),
    sport: u16(pkt, udp + UDP_OFF_SPORT),
    dport: u16(pkt, udp + UDP_OFF_DPORT),
    ipOff: off,
    ipHeaderLen: ihl,
    payloadOff: udp + UDP_HEADER_LEN,
    payloadLen: udpLen - UDP_HEADER_LEN,
  };
}

/**
 * True if the UDP checksum of a packet that {@link parseUdp} accepted is
 * correct, or absent (zero: allowed over IPv4, RFC 768).
 */
export function udpChecksumOk(pkt: Uint8Array, info: UdpInfo): boolean {
  const udp = info.ipOff + info.ipHeaderLen;
  if (u16(pkt, udp + UDP_OFF_CSUM) === 0) return true;
  const udpLen = info.payloadLen + UDP_HEADER_LEN;
  const sum = sum16(pkt, udp, udpLen, pseudoHeaderSum(info.src, info.dst, udpLen));
  return foldChecksum(sum) === 0;
}

/**
 * Writes a complete IPv4/UDP packet (20-byte header, DF set, TTL
 * {@link REPLY_TTL}, both checksums computed) carrying
 * `payload[payloadOff..payloadOff+payloadLen)` into `out` at `outOff`, and
 * returns the number of bytes written. `payload` and `out` must not overlap.
 *
 * Throws a RangeError when the packet does not fit `out` or exceeds the
 * IPv4 maximum: that is a programming error (callers size `out` to the MTU
 * and their payloads to `out`), not bad input.
 */
export function buildUdp(
  out: Uint8Array,
  outOff: number,
  src: number,
  dst: number,
  sport: number,
  dport: number,
  payload: Uint8Array,
  payloadOff = 0,
  payloadLen = payload.length - payloadOff,
  ipId = 0,
): number {
  if (payloadLen < 0 || payloadOff < 0 || payloadOff + payloadLen > payload.length) {
    throw new RangeError('buildUdp: payload range outside the payload buffer');
  }
  if (payloadLen > UDP_MAX_PAYLOAD) {
    throw new RangeError(`buildUdp: payload of ${payloadLen} bytes exceeds the IPv4 maximum`);
  }
  const total = UDP_OVERHEAD + payloadLen;
  if (outOff < 0 || outOff + total > out.length) {
    throw new RangeError(
      `buildUdp: a ${total}-byte packet does not fit the output buffer at offset ${outOff}`,
    );
  }
  const ip = outOff;
  out[ip + IP_OFF_VER_IHL] = 0x45;
  out[ip + IP_OFF_TOS] = 0;
  put16(out, ip + IP_OFF_TOTAL_LEN, total);
  // RFC 6864 §4.1: the id of an atomic (DF, unfragmented) datagram carries
  // no meaning, so the caller's counter or 0 are both fine.
  put16(out, ip + IP_OFF_ID, ipId & 0xffff);
  put16(out, ip + IP_OFF_FRAG, IP_FLAG_DF);
  out[ip + IP_OFF_TTL] = REPLY_TTL;
  out[ip + IP_OFF_PROTO] = PROTO_UDP;
  put16(out, ip + IP_OFF_CSUM, 0);
  put32(out, ip + IP_OFF_SRC, src >>> 0);
  put32(out, ip + IP_OFF_DST, dst >>> 0);
  put16(out, ip + IP_OFF_CSUM, foldChecksum(sum16(out, ip, IPV4_HEADER_LEN)));

  const udp = ip + IPV4_HEADER_LEN;
  const udpLen = UDP_HEADER_LEN + payloadLen;
  put16(out, udp + UDP_OFF_SPORT, sport);
  put16(out, udp + UDP_OFF_DPORT, dport);
  put16(out, udp + UDP_OFF_LEN, udpLen);
  put16(out, udp + UDP_OFF_CSUM, 0);
  out.set(payload.subarray(payloadOff, payloadOff + payloadLen), udp + UDP_HEADER_LEN);
  let csum = foldChecksum(sum16(out, udp, udpLen, pseudoHeaderSum(src >>> 0, dst >>> 0, udpLen)));
  // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
  if (csum === 0) csum = 0xffff;
  put16(out, udp + UDP_OFF_CSUM, csum);
  return total;
}

/**
 * Writes the reply to the datagram described by `query` (addresses and ports
 * swapped) carrying `payload` into `out` at `outOff`; returns bytes written.
 * See {@link buildUdp} for the header fields and the errors.
 */
export function buildUdpReply(
  out: Uint8Array,
  outOff: number,
  query: Pick<UdpInfo, 'src' | 'dst' | 'sport' | 'dport'>,
  payload: Uint8Array,
  ipId = 0,
): number {
  return buildUdp(
    out,
    outOff,
    query.dst,
    query.src,
    query.dport,
    query.sport,
    payload,
    0,
    payload.length,
    ipId,
  );
}
