import { describe, it, expect } from '@jest/globals';
import dnsPacket from 'dns-packet';
import { ResolverPort } from '../../net/dns-tun.js';
import { SupernetResolver, type NameView } from '../../net/dns.js';
import { buildUdp, parseUdp, udpChecksumOk, UDP_OVERHEAD } from '../../net/udp-packet.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { MemoryLogger } from '../../admin/logger.js';

const view: NameView = {
  supernet: '0x4711',
  domain: '4711.sn',
  pool: '10.71.17.0/24',
  self: { name: 'a1', vip: '10.71.17.10' },
  members: [{ name: 'c1', vip: '10.71.17.20' }],
  resolverVip: '10.71.17.1',
  external: 'refuse',
};
const NODE = parseIpv4('10.71.17.10');
const RES = parseIpv4('10.71.17.1');

function packet(src: number, dst: number, dport: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(UDP_OVERHEAD + payload.length);
  buildUdp(out, 0, src, dst, 43210, dport, payload);
  return out;
}

function setup(checksums = true) {
  const sent: Uint8Array[] = [];
  const port = new ResolverPort(
    new SupernetResolver({ logger: new MemoryLogger() }),
    RES,
    NODE,
    (b, o, l) => sent.push(Uint8Array.from(b.subarray(o, o + l))),
    checksums,
  );
  return { port, sent };
}

const query = dnsPacket.encode({
  type: 'query',
  id: 5,
  questions: [{ name: 'c1.4711.sn', type: 'A' }],
});

describe('ResolverPort', () => {
  it('answers a query to the resolver address with a reply packet back to the node', () => {
    const { port, sent } = setup();
    expect(port.handle(packet(NODE, RES, 53, query), 0, UDP_OVERHEAD + query.length, view)).toBe(
      true,
    );
    expect(sent).toHaveLength(1);
    const info = parseUdp(sent[0]!, 0, sent[0]!.length)!;
    expect(info).toMatchObject({ src: RES, dst: NODE, sport: 53, dport: 43210 });
    expect(udpChecksumOk(sent[0]!, info)).toBe(true);
    const reply = dnsPacket.decode(Buffer.from(sent[0]!.subarray(info.payloadOff)));
    expect(reply.answers?.[0]).toMatchObject({ data: '10.71.17.20' });
  });

  it('leaves other traffic alone', () => {
    const { port, sent } = setup();
    const other = parseIpv4('10.71.17.20');
    expect(port.handle(packet(NODE, other, 53, query), 0, UDP_OVERHEAD + query.length, view)).toBe(
      false,
    );
    expect(port.handle(packet(NODE, RES, 5353, query), 0, UDP_OVERHEAD + query.length, view)).toBe(
      false,
    );
    expect(port.handle(Uint8Array.of(0x60, 0, 0, 0), 0, 4, view)).toBe(false);
    expect(sent).toHaveLength(0);
  });

  it('drops spoofed sources and bad checksums (unless checksums are partial by design)', () => {
    const { port, sent } = setup();
    const spoofed = packet(parseIpv4('10.71.17.99'), RES, 53, query);
    expect(port.handle(spoofed, 0, spoofed.length, view)).toBe(true);
    const bad = packet(NODE, RES, 53, query);
    bad[bad.length - 1]! ^= 1;
    expect(port.handle(bad, 0, bad.length, view)).toBe(true);
    expect(sent).toHaveLength(0);
    expect(port.stats).toMatchObject({ handled: 2, dropped: 2 });
    const partial = setup(false);
    const p = packet(NODE, RES, 53, query);
    p[26] = 0x12; // a partial (pseudo-header only) checksum as offload leaves it
    expect(partial.port.handle(p, 0, p.length, view)).toBe(true);
    expect(partial.sent).toHaveLength(1);
  });
});
