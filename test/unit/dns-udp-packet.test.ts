import { describe, it, expect, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import {
  buildUdp,
  buildUdpReply,
  parseUdp,
  udpChecksumOk,
  UDP_OVERHEAD,
} from '../../net/udp-packet.js';
import { parseIpv4 } from '../../net/ipv4.js';

const NODE = parseIpv4('10.71.17.10');
const RESOLVER = parseIpv4('10.71.17.1');

function packet(payload: Uint8Array, sport = 40000, dport = 53): Uint8Array {
  const out = new Uint8Array(UDP_OVERHEAD + payload.length);
  const n = buildUdp(out, 0, NODE, RESOLVER, sport, dport, payload);
  expect(n).toBe(out.length);
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'sn-udp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes raw IPv4 packets as a pcap file (LINKTYPE_IPV4 = 228). */
function writePcap(path: string, pkts: Uint8Array[]): void {
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(65535, 16);
  gh.writeUInt32LE(228, 20);
  parts.push(gh);
  for (const p of pkts) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(p.length, 8);
    rh.writeUInt32LE(p.length, 12);
    parts.push(rh, Buffer.from(p));
  }
  writeFileSync(path, Buffer.concat(parts));
}

describe('parseUdp / buildUdp', () => {
  it('round-trips addresses, ports and payload', () => {
    const payload = Buffer.from('hello resolver');
    const pkt = packet(payload);
    const info = parseUdp(pkt, 0, pkt.length)!;
    expect(info).toMatchObject({ src: NODE, dst: RESOLVER, sport: 40000, dport: 53 });
    expect(Buffer.from(pkt.subarray(info.payloadOff, info.payloadOff + info.payloadLen))).toEqual(
      payload,
    );
    expect(udpChecksumOk(pkt, info)).toBe(true);
  });

  it('parses at an offset, ignores link padding, and builds the reply with swapped ends', () => {
    const pkt = packet(Uint8Array.of(1, 2, 3));
    const buf = new Uint8Array(7 + pkt.length + 5);
    buf.set(pkt, 7);
    const info = parseUdp(buf, 7, pkt.length + 5)!;
    expect(info.payloadOff).toBe(7 + UDP_OVERHEAD);
    expect(info.payloadLen).toBe(3);
    const out = new Uint8Array(100);
    const n = buildUdpReply(out, 10, info, Uint8Array.of(9, 9));
    const back = parseUdp(out, 10, n)!;
    expect(back).toMatchObject({
      src: RESOLVER,
      dst: NODE,
      sport: 53,
      dport: 40000,
      payloadLen: 2,
    });
    expect(udpChecksumOk(out, back)).toBe(true);
  });

  it('refuses fragments, other protocols, bad lengths and bad header checksums', () => {
    const good = packet(Uint8Array.of(1, 2, 3, 4));
    const variants: [string, (p: Uint8Array) => void][] = [
      ['version 6', (p) => (p[0] = 0x65)],
      ['ihl 4', (p) => (p[0] = 0x44)],
      ['more fragments', (p) => (p[6]! |= 0x20)],
      ['fragment offset', (p) => (p[7] = 1)],
      ['TCP', (p) => (p[9] = 6)],
      ['header checksum', (p) => (p[10]! ^= 1)],
      ['total length beyond buffer', (p) => (p[3]! += 1)],
      ['udp length short', (p) => (p[25]! -= 1)],
    ];
    for (const [what, edit] of variants) {
      const p = Uint8Array.from(good);
      edit(p);
      expect([what, parseUdp(p, 0, p.length)]).toEqual([what, null]);
    }
    expect(parseUdp(good, 0, 27)).toBeNull();
    expect(parseUdp(good, 1, good.length)).toBeNull();
  });

  it('detects any single changed byte of the UDP part by its checksum', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 600 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (payload, at, delta) => {
          const p = packet(payload);
          const pos = 20 + (at % (8 + payload.length));
          if (pos === 24 || pos === 25) return; // the length field: parseUdp rejects instead
          p[pos] = (p[pos]! + delta) & 0xff;
          const info = parseUdp(p, 0, p.length);
          expect(info).not.toBeNull();
          expect(udpChecksumOk(p, info!)).toBe(false);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('accepts a zero (absent) UDP checksum, and never emits one', () => {
    const p = packet(Uint8Array.of(5));
    p[26] = 0;
    p[27] = 0;
    expect(udpChecksumOk(p, parseUdp(p, 0, p.length)!)).toBe(true);
    // With a two-byte payload w, the sum is S0 + w; the payload 0 packet's
    // checksum c0 = ~S0, so w = c0 makes the sum 0xffff: a computed checksum
    // of 0, which must go out as 0xffff.
    const zero = packet(Uint8Array.of(0, 0));
    const q = packet(Uint8Array.of(zero[26]!, zero[27]!));
    expect([q[26], q[27]]).toEqual([0xff, 0xff]);
    expect(udpChecksumOk(q, parseUdp(q, 0, q.length)!)).toBe(true);
  });

  it('throws a RangeError when the packet does not fit', () => {
    expect(() => buildUdp(new Uint8Array(30), 0, 1, 2, 3, 4, new Uint8Array(3))).toThrow(
      RangeError,
    );
    expect(() => buildUdp(new Uint8Array(30), 0, 1, 2, 3, 4, new Uint8Array(2), 1, 2)).toThrow(
      /payload range/,
    );
  });

  it('produces checksums that tshark (a stock decoder) calls good', () => {
    const query = dnsPacket.encode({
      type: 'query',
      id: 77,
      questions: [{ name: 'c1.4711.sn', type: 'A' }],
    });
    const bad = packet(Uint8Array.of(1, 2, 3), 1234, 5678);
    bad[30]! ^= 0x10;
    const pkts = [
      packet(query),
      packet(Uint8Array.of(1, 2, 3), 1234, 5678),
      packet(new Uint8Array(0)),
      bad,
    ];
    const file = join(dir, 'p.pcap');
    writePcap(file, pkts);
    const out = execFileSync(
      'tshark',
      [
        '-r',
        file,
        '-o',
        'ip.check_checksum:TRUE',
        '-o',
        'udp.check_checksum:TRUE',
        '-T',
        'fields',
        '-e',
        'ip.checksum.status',
        '-e',
        'udp.checksum.status',
        '-e',
        'udp.srcport',
        '-e',
        'dns.qry.name',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    // checksum.status: 1 = Good, 0 = Bad (the control packet with a flipped payload bit).
    expect(out.split('\n').slice(0, 4)).toEqual([
      '1\t1\t40000\tc1.4711.sn',
      '1\t1\t1234\t',
      '1\t1\t40000\t',
      '1\t0\t1234\t',
    ]);
  });
});
