/**
 * Just enough of the classic pcap file format (tcpdump -w) to pull the UDP
 * payloads of IPv4 frames out of a capture on the underlay.
 */
import { readFileSync } from 'node:fs';

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_LINUX_SLL = 113;

export interface UdpFrame {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

function ip(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** All IPv4/UDP datagrams in a pcap file, in capture order. */
export function readUdpFrames(file: string): UdpFrame[] {
  const b = readFileSync(file);
  if (b.length < GLOBAL_HEADER) return [];
  const magicLE = b.readUInt32LE(0);
  const le = magicLE === MAGIC_US || magicLE === MAGIC_NS;
  if (!le && b.readUInt32BE(0) !== MAGIC_US && b.readUInt32BE(0) !== MAGIC_NS)
    throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20);
  const l2 = link === LINKTYPE_ETHERNET ? 14 : link === LINKTYPE_LINUX_SLL ? 16 : -1;
  if (l2 < 0) throw new Error(`${file}: unsupported link type ${link}`);
  const out: UdpFrame[] = [];
  let o = GLOBAL_HEADER;
  while (o + RECORD_HEADER <= b.length) {
    const incl = u32(o + 8);
    const f = o + RECORD_HEADER;
    o = f + incl;
    if (o > b.length) break;
    const ethType = b.readUInt16BE(f + l2 - 2);
    if (ethType !== 0x0800) continue;
    const ipo = f + l2;
    const ihl = (b[ipo]! & 0x0f) * 4;
    if (b[ipo + 9] !== 17) continue;
    const total = b.readUInt16BE(ipo + 2);
    const udp = ipo + ihl;
    const ulen = b.readUInt16BE(udp + 4);
    if (udp + ulen > f + incl || ipo + total > f + incl) continue; // snapped
    out.push({
      src: ip(b, ipo + 12),
      dst: ip(b, ipo + 16),
      sport: b.readUInt16BE(udp),
      dport: b.readUInt16BE(udp + 2),
      payload: Buffer.from(b.subarray(udp + 8, udp + ulen)),
    });
  }
  return out;
}
