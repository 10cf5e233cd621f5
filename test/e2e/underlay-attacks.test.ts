/**
 * Issue 2, acceptance 3 (last part) and 4: forged, truncated, bit-flipped,
 * replayed, wrong-channel and wrong-Supernet datagrams injected on the
 * underlay are all dropped and counted; none reaches a TUN. Packets come
 * from a captured real a1 → c1 exchange (replays and mutations of it) and
 * from a fourth host that was never admitted (forgeries).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { TestBed, ping } from '../bed/bed.js';
import {
  figure6,
  AGENT_PORT,
  ROOT,
  type AgentStatus,
  type LoggedIn,
  type SupernetBed,
} from '../scenario/supernet-bed.js';
import { readUdpFrames } from '../support/pcap.js';
import { supernetIdBytes } from '../../admin/ids.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { Sealer } from '../../net/keyring.js';
import { OFF_CHANNEL, OFF_SEQ, OFF_SUPERNET, OFF_VERSION, readEpoch } from '../../net/wire.js';

let bed: TestBed;
let sn: SupernetBed;
let nodes: Map<string, LoggedIn>;
let captured: Buffer[] = [];

const INJECT = join(ROOT, 'dist', 'test', 'support', 'inject.js');

async function inject(fromHost: string, to: string, pkts: Buffer[]): Promise<void> {
  const r = await bed.run(bed.host(fromHost).ns, 'node', [INJECT, to, String(AGENT_PORT)], {
    input: pkts.map((p) => (p.length ? p.toString('hex') : '-')).join('\n') + '\n',
  });
  expect(Number(r.stdout.trim())).toBe(pkts.length);
}

function c1(st: AgentStatus) {
  return st.nodes.find((n) => n.name === 'c1')!;
}

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3', 'h4'] });
  ({ sn, nodes } = await figure6(bed));
  const cap = join(bed.dir, 'a1-c1.pcap');
  // Captured where they arrive, as a listener on the path would see them.
  const dump = bed.spawn(bed.host('h2').ns, 'tcpdump', [
    '-i',
    'eth0',
    '-U',
    '--immediate-mode',
    '-w',
    cap,
    'udp',
    'port',
    String(AGENT_PORT),
  ]);
  await dump.waitForOutput(/listening on/, 10_000);
  const r = await ping(bed, nodes.get('a1')!.ns, nodes.get('c1')!.vip, { count: 4 });
  expect(r.lossPct).toBe(0);
  await new Promise((res) => setTimeout(res, 300));
  await dump.stop('SIGINT');
  captured = readUdpFrames(cap)
    .filter((f) => f.src === bed.host('h1').addr && f.dst === bed.host('h2').addr)
    .map((f) => f.payload);
  expect(captured.length).toBeGreaterThanOrEqual(4);
}, 180_000);

afterAll(async () => {
  await bed?.teardown();
}, 60_000);

describe('underlay injection', () => {
  it('drops and counts every kind of bad datagram; none reaches c1', async () => {
    const before = await sn.status('h2');
    const h2 = bed.host('h2').addr;
    const p = captured[0]!;
    const flip = (b: Buffer, at: number): Buffer => {
      const x = Buffer.from(b);
      x[at]! ^= 0x01;
      return x;
    };
    const withChannel = (b: Buffer, ch: number): Buffer => {
      const x = Buffer.from(b);
      x.writeUInt32BE(ch, OFF_CHANNEL);
      return x;
    };
    const otherSupernet = Buffer.from(p);
    otherSupernet.set(supernetIdBytes('0x4712'), OFF_SUPERNET);
    const v2 = Buffer.from(p);
    v2[OFF_VERSION] = 2;
    const cases: Record<string, Buffer[]> = {
      replay: captured,
      bad_tag: [
        flip(p, p.length - 1), // tag
        flip(p, 40), // ciphertext
        flip(p, OFF_SEQ + 6), // header (associated data)
        p.subarray(0, p.length - 1), // one byte short
        withChannel(p, 0x123), // a1's packet presented as channel 0x123 (which c1 also holds)
      ],
      malformed: [p.subarray(0, 30), Buffer.alloc(0)],
      version: [v2, Buffer.alloc(100)],
      unknown_supernet: [otherSupernet],
      unknown_channel: [withChannel(p, 0x999)],
    };
    for (const pkts of Object.values(cases)) await inject('h1', h2, pkts);
    await new Promise((r) => setTimeout(r, 500));
    const after = await sn.status('h2');
    for (const [reason, pkts] of Object.entries(cases)) {
      expect({ reason, dropped: after.drops[reason]! - before.drops[reason]! }).toEqual({
        reason,
        dropped: pkts.length,
      });
    }
    expect(c1(after).counters.rxPackets).toBe(c1(before).counters.rxPackets);
    expect(c1(after).tun.txPackets).toBe(c1(before).tun.txPackets);
  });

  it('a host that was never admitted cannot inject anything a node accepts', async () => {
    const before = await sn.status('h2');
    const sid = supernetIdBytes('0x4711');
    const epoch = readEpoch(captured[0]!, 0);
    const a1 = parseIpv4(nodes.get('a1')!.vip);
    const c1vip = parseIpv4(nodes.get('c1')!.vip);
    const forged: Buffer[] = [];
    for (const ch of [0x01, 0x123]) {
      // A well-formed packet claiming to be from a1, sealed with a key the forger made up.
      const s = new Sealer(randomBytes(32), sid, ch, epoch, a1, 0xffffff00);
      for (let i = 0; i < 20; i++) {
        const inner = Buffer.alloc(84);
        inner[0] = 0x45;
        inner.writeUInt16BE(84, 2);
        inner[8] = 64;
        inner[9] = 1;
        inner.writeUInt32BE(a1, 12);
        inner.writeUInt32BE(c1vip, 16);
        const out = Buffer.alloc(200);
        forged.push(out.subarray(0, s.seal(inner, 0, inner.length, out, 0)));
      }
    }
    for (let i = 0; i < 20; i++) forged.push(randomBytes(60 + i * 7));
    await inject('h4', bed.host('h2').addr, forged);
    await new Promise((r) => setTimeout(r, 500));
    const after = await sn.status('h2');
    const total = (st: AgentStatus): number => Object.values(st.drops).reduce((a, b) => a + b, 0);
    expect(total(after) - total(before)).toBe(forged.length);
    expect(after.drops.bad_tag! - before.drops.bad_tag!).toBe(40);
    expect(c1(after).counters.rxPackets).toBe(c1(before).counters.rxPackets);
    // c1 still talks to a1 normally afterwards (nothing moved its windows or endpoints).
    expect((await ping(bed, nodes.get('a1')!.ns, nodes.get('c1')!.vip, { count: 2 })).lossPct).toBe(
      0,
    );
    const peer = c1(await sn.status('h2')).peers.find((x) => x.name === 'a1')!;
    expect(peer.endpoint).toBe(`${bed.host('h1').addr}:${AGENT_PORT}`);
  });
});
