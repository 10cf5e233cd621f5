/**
 * Classic libpcap capture files of inner IP packets, as `supernet monitor
 * --pcap` writes them for tshark/Wireshark (docs/console.md §Monitor).
 *
 * Global header (24 bytes, little-endian, microsecond timestamps):
 *
 *   0 magic 0xa1b2c3d4 | 4 version 2.4 | 8 thiszone 0 | 12 sigfigs 0
 *   16 snaplen | 20 linktype 101 (LINKTYPE_RAW: the packet starts with its IP header)
 *
 * Record header (16 bytes): ts_sec, ts_usec, incl_len, orig_len; then
 * incl_len bytes of packet.
 */
import { closeSync, openSync, writeSync, fsyncSync } from 'node:fs';

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
/** LINKTYPE_RAW: raw IPv4/IPv6, no link-layer header. */
export const LINKTYPE_RAW = 101;
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;
export const DEFAULT_SNAPLEN = 65535;

/** The 24-byte global header. */
export function pcapGlobalHeader(snaplen = DEFAULT_SNAPLEN, linktype = LINKTYPE_RAW): Buffer {
  const b = Buffer.alloc(PCAP_GLOBAL_HEADER_LEN);
  b.writeUInt32LE(PCAP_MAGIC, 0);
  b.writeUInt16LE(PCAP_VERSION_MAJOR, 4);
  b.writeUInt16LE(PCAP_VERSION_MINOR, 6);
  b.writeInt32LE(0, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt32LE(snaplen, 16);
  b.writeUInt32LE(linktype, 20);
  return b;
}

/** Appends packets to a pcap file; one `write` per packet (the file is valid after every record). */
export class PcapWriter {
  private readonly fd: number;
  private readonly hdr = Buffer.alloc(PCAP_RECORD_HEADER_LEN);
  packets = 0;
  bytes = 0;
  private closed = false;

  constructor(
    readonly path: string,
    readonly snaplen = DEFAULT_SNAPLEN,
  ) {
    this.fd = openSync(path, 'w', 0o600);
    writeSync(this.fd, pcapGlobalHeader(snaplen));
  }

  /** Writes one packet captured at `timeUs` (µs since the Unix epoch), `origLen` its full length. */
  write(timeUs: number, data: Uint8Array, origLen = data.length): void {
    if (this.closed) throw new Error(`${this.path}: capture file already closed`);
    const incl = Math.min(data.length, this.snaplen);
    this.hdr.writeUInt32LE(Math.floor(timeUs / 1e6), 0);
    this.hdr.writeUInt32LE(timeUs % 1e6, 4);
    this.hdr.writeUInt32LE(incl, 8);
    this.hdr.writeUInt32LE(origLen, 12);
    writeSync(this.fd, Buffer.concat([this.hdr, data.subarray(0, incl)]));
    this.packets++;
    this.bytes += incl;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

/** One record of a capture file. */
export interface PcapRecord {
  timeUs: number;
  origLen: number;
  data: Buffer;
}

/** Parses a capture file written by {@link PcapWriter} (little-endian, µs); throws naming what is wrong. */
export function readPcap(buf: Buffer): {
  linktype: number;
  snaplen: number;
  records: PcapRecord[];
} {
  if (buf.length < PCAP_GLOBAL_HEADER_LEN) throw new Error('pcap: shorter than its global header');
  if (buf.readUInt32LE(0) !== PCAP_MAGIC) throw new Error('pcap: not a little-endian µs pcap file');
  const snaplen = buf.readUInt32LE(16);
  const linktype = buf.readUInt32LE(20);
  const records: PcapRecord[] = [];
  let off = PCAP_GLOBAL_HEADER_LEN;
  while (off < buf.length) {
    if (off + PCAP_RECORD_HEADER_LEN > buf.length)
      throw new Error(`pcap: torn record header at ${off}`);
    const incl = buf.readUInt32LE(off + 8);
    const end = off + PCAP_RECORD_HEADER_LEN + incl;
    if (end > buf.length) throw new Error(`pcap: torn record at ${off}`);
    records.push({
      timeUs: buf.readUInt32LE(off) * 1e6 + buf.readUInt32LE(off + 4),
      origLen: buf.readUInt32LE(off + 12),
      data: buf.subarray(off + PCAP_RECORD_HEADER_LEN, end),
    });
    off = end;
  }
  return { linktype, snaplen, records };
}
