/**
 * The SNSL data packet (docs/protocol.md §2): the paper's "SN + Security hdrs"
 * of Figure 5(b), carried as UDP payload on the underlay.
 *
 *  0       1       2                                              12
 *  +-------+-------+-----------------------------------------------+
 *  |version| type  |              Supernet id (80 bits)            |
 *  +-------+-------+-------+-------+-------+-------+-------+-------+
 * 12       channel id (u32)        16         key epoch (u32)      20
 *  +-------------------------------+-------------------------------+
 * 20   sender virtual IPv4 (u32)   24     sender session (u32)     28
 *  +-------------------------------+-------------------------------+
 * 28                     sequence number (u64)                     36
 *  +---------------------------------------------------------------+
 * 36   AES-256-GCM ciphertext of the inner IP packet ... | tag (16) |
 *  +---------------------------------------------------------------+
 *
 * All integers big-endian. The whole header is the AEAD's associated data;
 * the nonce is session ‖ sequence; the key is the sender's subkey of the
 * channel's epoch key (net/keyring.ts), so no two senders ever share a
 * (key, nonce) pair although they share the channel key.
 */
import { SUPERNET_ID_LEN } from '../admin/ids.js';

export const SNSL_VERSION = 1;
export const TYPE_DATA = 1;

export const OFF_VERSION = 0;
export const OFF_TYPE = OFF_VERSION + 1;
export const OFF_SUPERNET = OFF_TYPE + 1;
export const OFF_CHANNEL = OFF_SUPERNET + SUPERNET_ID_LEN;
export const OFF_EPOCH = OFF_CHANNEL + 4;
export const OFF_SENDER = OFF_EPOCH + 4;
export const OFF_SESSION = OFF_SENDER + 4;
export const OFF_SEQ = OFF_SESSION + 4;
export const HEADER_LEN = OFF_SEQ + 8;

export const TAG_LEN = 16;
export const NONCE_LEN = 12;
/** Bytes SNSL adds to an inner packet. */
export const SNSL_OVERHEAD = HEADER_LEN + TAG_LEN;
/** Outer IPv4 (no options) + UDP headers on the underlay. */
export const UNDERLAY_IPV4_UDP = 20 + 8;
/** Smallest inner packet worth sealing: an IPv4 header. */
export const MIN_INNER_LEN = 20;
export const MIN_PACKET_LEN = HEADER_LEN + MIN_INNER_LEN + TAG_LEN;

/** Largest sequence number a sender may use (the sealer refuses beyond; a rekey gives a fresh key). */
export const SEQ_LIMIT = 2 ** 48;

/** Inner MTU for an underlay MTU, so the underlay never fragments (design brief §2). */
export function innerMtu(underlayMtu: number): number {
  return underlayMtu - UNDERLAY_IPV4_UDP - SNSL_OVERHEAD;
}

/** Header fields other than the Supernet id, as plain numbers. */
export interface HeaderFields {
  channel: number;
  epoch: number;
  sender: number;
  session: number;
  seq: number;
}

/** Writes a data header at `off`; `supernet` must be the 10 id bytes. */
export function writeHeader(buf: Buffer, off: number, supernet: Uint8Array, f: HeaderFields): void {
  buf[off + OFF_VERSION] = SNSL_VERSION;
  buf[off + OFF_TYPE] = TYPE_DATA;
  buf.set(supernet, off + OFF_SUPERNET);
  buf.writeUInt32BE(f.channel >>> 0, off + OFF_CHANNEL);
  buf.writeUInt32BE(f.epoch >>> 0, off + OFF_EPOCH);
  buf.writeUInt32BE(f.sender >>> 0, off + OFF_SENDER);
  buf.writeUInt32BE(f.session >>> 0, off + OFF_SESSION);
  buf.writeUInt32BE(Math.floor(f.seq / 2 ** 32), off + OFF_SEQ);
  buf.writeUInt32BE(f.seq >>> 0, off + OFF_SEQ + 4);
}

/**
 * Checks the fixed parts of a packet before any lookup: length, version,
 * type, non-zero epoch/sender/seq. Returns null if well-formed, else the drop
 * reason (counted by the caller, never answered).
 */
export function checkHeader(buf: Buffer, off: number, len: number): DropReason | null {
  if (len < MIN_PACKET_LEN) return 'malformed';
  if (buf[off + OFF_VERSION] !== SNSL_VERSION) return 'version';
  if (buf[off + OFF_TYPE] !== TYPE_DATA) return 'malformed';
  if (readSeq(buf, off) === 0) return 'malformed';
  if (buf.readUInt32BE(off + OFF_EPOCH) === 0 || buf.readUInt32BE(off + OFF_SENDER) === 0)
    return 'malformed';
  return null;
}

export function readChannel(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_CHANNEL);
}
export function readEpoch(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_EPOCH);
}
export function readSender(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_SENDER);
}
export function readSession(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_SESSION);
}
export function readSeq(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + OFF_SEQ) * 2 ** 32 + buf.readUInt32BE(off + OFF_SEQ + 4);
}

/** A key into the Supernet table without allocating: the 10 id bytes as a latin1 string is cheap and exact. */
export function supernetKey(buf: Buffer, off: number): string {
  return buf.toString('latin1', off + OFF_SUPERNET, off + OFF_SUPERNET + SUPERNET_ID_LEN);
}

/** The same key from the 10 id bytes. */
export function supernetKeyOf(idBytes: Uint8Array): string {
  return Buffer.from(idBytes).toString('latin1');
}

/** Why an underlay datagram was dropped. Every drop is counted under one of these. */
export type DropReason =
  | 'malformed'
  | 'version'
  | 'unknown_supernet'
  | 'unknown_channel'
  | 'stale_epoch'
  | 'bad_tag'
  | 'replay'
  | 'stale_session'
  | 'spoofed_source'
  | 'not_member'
  | 'no_route'
  | 'tun_write';

export const DROP_REASONS: readonly DropReason[] = [
  'malformed',
  'version',
  'unknown_supernet',
  'unknown_channel',
  'stale_epoch',
  'bad_tag',
  'replay',
  'stale_session',
  'spoofed_source',
  'not_member',
  'no_route',
  'tun_write',
];
