/**
 * The DNS message constants and the few header operations the Supernet
 * resolver does itself (RFC 1035 §4.1, RFC 6891 for EDNS). Everything else
 * about the wire format (record data, names, EDNS options) is left to the
 * `dns-packet` library; this file only covers what must be checked BEFORE
 * handing bytes to it, and the header of replies.
 *
 * Header, 12 bytes (docs/dns.md §Wire checks):
 *
 *   0..1 id   2..3 flags: QR(1) OPCODE(4) AA TC RD RA Z AD CD RCODE(4)
 *   4..5 QDCOUNT   6..7 ANCOUNT   8..9 NSCOUNT   10..11 ARCOUNT
 */

export const DNS_HEADER_LEN = 12;
export const DNS_OFF_ID = 0;
export const DNS_OFF_FLAGS = 2;
export const DNS_OFF_QDCOUNT = 4;
export const DNS_OFF_ANCOUNT = 6;
export const DNS_OFF_NSCOUNT = 8;
export const DNS_OFF_ARCOUNT = 10;

export const FLAG_QR = 0x8000;
export const OPCODE_SHIFT = 11;
export const OPCODE_MASK = 0xf;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
export const RCODE_MASK = 0xf;

export const OPCODE_QUERY = 0;

/** Response codes (RFC 1035 §4.1.1; BADVERS is an extended code, RFC 6891 §9). */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

export const QTYPE = {
  A: 1,
  NS: 2,
  SOA: 6,
  PTR: 12,
  AAAA: 28,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
} as const;

export const QCLASS_IN = 1;
export const QCLASS_ANY = 255;

/** Longest name on the wire, length bytes included (RFC 1035 §3.1). */
export const MAX_WIRE_NAME = 255;
/** Longest label (RFC 1035 §2.3.4). */
export const MAX_LABEL = 63;
/** Largest plain-DNS UDP message (RFC 1035 §4.2.1); EDNS may raise it. */
export const PLAIN_UDP_LIMIT = 512;
/**
 * The EDNS UDP size the resolver advertises and honours at most: the 2020
 * DNS flag day value, which fits any path MTU of 1280 or more.
 */
export const EDNS_UDP_LIMIT = 1232;
/**
 * Longest query accepted. A real query is a header, one name (≤ 255 bytes),
 * type and class, and one OPT record whose options (cookies, padding to a
 * 468-byte block, RFC 8467) stay far below this.
 */
export const MAX_QUERY_LEN = 1232;

/** The query's header fields, read at fixed offsets. */
export interface DnsHeader {
  id: number;
  flags: number;
  qd: number;
  an: number;
  ns: number;
  ar: number;
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/** Reads the header of `msg`, or null when it is shorter than a header. */
export function readHeader(msg: Uint8Array): DnsHeader | null {
  if (msg.length < DNS_HEADER_LEN) return null;
  return {
    id: u16(msg, DNS_OFF_ID),
    flags: u16(msg, DNS_OFF_FLAGS),
    qd: u16(msg, DNS_OFF_QDCOUNT),
    an: u16(msg, DNS_OFF_ANCOUNT),
    ns: u16(msg, DNS_OFF_NSCOUNT),
    ar: u16(msg, DNS_OFF_ARCOUNT),
  };
}

/** Writes a reply header into `out[0..12)`. */
export function writeHeader(
  out: Uint8Array,
  id: number,
  flags: number,
  qd: number,
  an: number,
  ns: number,
  ar: number,
): void {
  const v = [id, flags, qd, an, ns, ar];
  for (let i = 0; i < 6; i++) {
    out[2 * i] = (v[i]! >>> 8) & 0xff;
    out[2 * i + 1] = v[i]! & 0xff;
  }
}

/** The first question of a query, read from the raw bytes. */
export interface RawQuestion {
  /** Labels exactly as sent (each byte one char, latin1), for echoing. */
  labels: string[];
  /** The same labels with ASCII A–Z lowered (RFC 4343), for matching. */
  lower: string[];
  qtype: number;
  qclass: number;
  /** Offset just past QCLASS: the question section is `msg[12..end)`. */
  end: number;
}

/**
 * Walks the question that starts right after the header. Returns null for a
 * malformed one: a label beyond the message, a name longer than 255 bytes,
 * the reserved label types 0x40/0x80, a missing type/class, or ANY
 * compression pointer: the only data before the first question is the
 * header, so a pointer there can only point at non-name bytes.
 */
export function readQuestion(msg: Uint8Array): RawQuestion | null {
  let o = DNS_HEADER_LEN;
  let wire = 0;
  const labels: string[] = [];
  const lower: string[] = [];
  while (true) {
    if (o >= msg.length) return null;
    const len = msg[o]!;
    wire += 1;
    if (len === 0) {
      o += 1;
      break;
    }
    if ((len & 0xc0) !== 0) return null; // pointer (0xc0) or reserved (0x40, 0x80)
    if (o + 1 + len > msg.length) return null;
    wire += len;
    if (wire > MAX_WIRE_NAME) return null;
    let raw = '';
    let low = '';
    for (let i = o + 1; i <= o + len; i++) {
      const c = msg[i]!;
      raw += String.fromCharCode(c);
      low += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
    }
    labels.push(raw);
    lower.push(low);
    o += 1 + len;
  }
  if (o + 4 > msg.length) return null;
  return { labels, lower, qtype: u16(msg, o), qclass: u16(msg, o + 2), end: o + 4 };
}
