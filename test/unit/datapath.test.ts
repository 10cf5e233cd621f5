/**
 * The packet path (net/datapath.ts) on two in-memory hosts, for what the
 * zero-copy path could get wrong: packets are sealed straight into the
 * bind's send queue and opened in place in the receive arena, then staged
 * for the TUN from there. A batch must arrive byte-exact and in order, also
 * when a tampered or replayed datagram sits between good ones in the same
 * batch, and sealers on one backend must interoperate with receivers on the
 * other.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { memoryHost } from '../support/datapath-host.js';
import { MemoryNetwork, type InFlight } from '../support/memory-net.js';
import { packetAeadBackend } from '../../net/packet-aead.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { HEADER_LEN, SNSL_OVERHEAD, readSeq } from '../../net/wire.js';
import { supernetIdBytes } from '../../admin/ids.js';

const SID = supernetIdBytes('0x4711');
const KEY = randomBytes(32);
const initial = packetAeadBackend();

afterAll(() => {
  packetAeadBackend(initial);
});

/** An IPv4 packet of `len` bytes (UDP protocol, random payload) from src to dst. */
function ipv4(src: string, dst: string, len: number): Buffer {
  const p = randomBytes(len);
  p[0] = 0x45;
  p[1] = 0;
  p.writeUInt16BE(len, 2);
  p.writeUInt16BE(0, 6);
  p[8] = 64;
  p[9] = 17;
  p.writeUInt32BE(parseIpv4(src), 12);
  p.writeUInt32BE(parseIpv4(dst), 16);
  return p;
}

function host(
  net: MemoryNetwork,
  addr: string,
  me: { name: string; vip: string },
  peer: { name: string; vip: string; addr: string },
) {
  return memoryHost(net, addr, me, peer, SID, KEY);
}

function setup() {
  const net = new MemoryNetwork();
  const a = host(
    net,
    '192.0.2.1',
    { name: 'a1', vip: '10.71.17.2' },
    { name: 'c1', vip: '10.71.17.3', addr: '192.0.2.2' },
  );
  const c = host(
    net,
    '192.0.2.2',
    { name: 'c1', vip: '10.71.17.3' },
    { name: 'a1', vip: '10.71.17.2', addr: '192.0.2.1' },
  );
  return { net, a, c };
}

function batch(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(ipv4('10.71.17.2', '10.71.17.3', 20 + ((i * 97) % 1400)));
  return out;
}

describe('packet path, zero-copy seal and open', () => {
  it('delivers a full batch byte-exact and in order, each datagram inner + overhead long', async () => {
    packetAeadBackend('native');
    const { net, a, c } = setup();
    const seen: number[] = [];
    net.setHook((d: InFlight) => (seen.push(d.data.length), 'deliver'));
    const pkts = batch(64);
    a.tun.inject(...pkts);
    await net.settle();
    expect(seen).toEqual(pkts.map((p) => p.length + SNSL_OVERHEAD));
    expect(c.tun.written).toEqual(pkts);
    expect(c.node.counters.rxPackets).toBe(64);
    expect(Object.values(c.dp.drops).every((n) => n === 0)).toBe(true);
  });

  it('drops a tampered datagram in the middle of a batch and still delivers its neighbours intact', async () => {
    packetAeadBackend('native');
    const { net, a, c } = setup();
    let k = 0;
    net.setHook((d: InFlight) => {
      // Flip one ciphertext bit of the 3rd and one tag bit of the 6th datagram.
      if (k === 2) d.data[HEADER_LEN + 5]! ^= 0x10;
      if (k === 5) d.data[d.data.length - 1]! ^= 0x01;
      k++;
      return 'deliver';
    });
    const pkts = batch(8);
    a.tun.inject(...pkts);
    await net.settle();
    expect(c.dp.drops.bad_tag).toBe(2);
    expect(c.tun.written).toEqual(pkts.filter((_, i) => i !== 2 && i !== 5));
  });

  it('drops replays within a batch after authenticating them', async () => {
    packetAeadBackend('native');
    const { net, a, c } = setup();
    const seqs: number[] = [];
    net.setHook((d: InFlight) => (seqs.push(readSeq(d.data, 0)), 'duplicate'));
    const pkts = batch(5);
    a.tun.inject(...pkts);
    await net.settle();
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(c.dp.drops.replay).toBe(5);
    expect(c.tun.written).toEqual(pkts);
  });

  it('interoperates: native sealer to node:crypto receiver and back', async () => {
    const { net, a, c } = setup();
    const there = batch(10);
    const back = there.map(() => ipv4('10.71.17.3', '10.71.17.2', 600));
    // Ciphers are made when first needed: a's sealer now, c's receiver on delivery.
    packetAeadBackend('native');
    a.tun.inject(...there);
    packetAeadBackend('node');
    await net.settle();
    expect(c.tun.written).toEqual(there);
    // c's sealer is node:crypto, a's receiver native.
    c.tun.inject(...back);
    packetAeadBackend('native');
    await net.settle();
    expect(a.tun.written).toEqual(back);
    expect(a.dp.drops.bad_tag + c.dp.drops.bad_tag).toBe(0);
  });
});
