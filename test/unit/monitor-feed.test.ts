/**
 * The monitor's packet path side (net/monitor.ts, net/pcap.ts, net/metrics.ts)
 * on two in-memory hosts: the tap sees a sent packet before sealing and the
 * received one after opening, frames round-trip, a slow reader loses frames
 * (counted) instead of slowing the packet path, the tap is gone when the
 * last feed closes, pcap files read back, and the agent metrics count.
 */
import { describe, it, expect } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryHost } from '../support/datapath-host.js';
import { MemoryNetwork } from '../support/memory-net.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { supernetKeyOf } from '../../net/wire.js';
import { supernetIdBytes } from '../../admin/ids.js';
import {
  FeedParser,
  FRAME_LOST,
  FRAME_PACKET,
  PacketMonitor,
  snapshot,
  type FeedFrame,
} from '../../net/monitor.js';
import { PcapWriter, readPcap, LINKTYPE_RAW } from '../../net/pcap.js';
import { agentMetrics } from '../../net/metrics.js';
import { describePacket } from '../../net/monitor-cli.js';

const SID = supernetIdBytes('0x4711');
const SK = supernetKeyOf(SID);
const KEY = Buffer.alloc(32, 7);

function icmp(src: string, dst: string, seq: number): Buffer {
  const p = Buffer.alloc(84);
  p[0] = 0x45;
  p.writeUInt16BE(84, 2);
  p[8] = 64;
  p[9] = 1;
  p.writeUInt32BE(parseIpv4(src), 12);
  p.writeUInt32BE(parseIpv4(dst), 16);
  p[20] = 8; // echo request
  p.writeUInt16BE(77, 24);
  p.writeUInt16BE(seq, 26);
  return p;
}

async function host(
  net: MemoryNetwork,
  addr: string,
  me: { name: string; vip: string },
  peer: { name: string; vip: string; addr: string },
) {
  const h = memoryHost(net, addr, me, peer, SID, KEY);
  const agent = { packetPath: h.dp, status: () => ({ underlay: { ...h.bind.stats } }) };
  return { ...h, agent };
}

function setup() {
  const net = new MemoryNetwork();
  return Promise.all([
    host(
      net,
      '192.0.2.1',
      { name: 'a1', vip: '10.71.17.2' },
      { name: 'c1', vip: '10.71.17.3', addr: '192.0.2.2' },
    ),
    host(
      net,
      '192.0.2.2',
      { name: 'c1', vip: '10.71.17.3' },
      { name: 'a1', vip: '10.71.17.2', addr: '192.0.2.1' },
    ),
  ]).then(([a, c]) => ({ net, a, c }));
}

describe('monitor feed', () => {
  it('taps a packet before sealing and after opening; frames round-trip; the tap goes when the feed does', async () => {
    const { net, a, c } = await setup();
    const out: Buffer[] = [];
    const inn: Buffer[] = [];
    const ma = new PacketMonitor(a.dp);
    const mc = new PacketMonitor(c.dp);
    expect(a.dp.tap).toBeNull();
    const fa = ma.open(
      { supernetKey: SK, channel: 0x01, node: null, snaplen: 65535 },
      (f) => (out.push(f), true),
    );
    const fc = mc.open(
      { supernetKey: null, channel: null, node: 'c1', snaplen: 40 },
      (f) => (inn.push(f), true),
    );
    const pkt = icmp('10.71.17.2', '10.71.17.3', 1);
    a.tun.inject(pkt);
    await net.settle();
    expect(c.tun.written.map((w) => Buffer.from(w))).toEqual([pkt]);
    const [sent] = new FeedParser().push(Buffer.concat(out)) as FeedFrame[];
    expect(sent).toMatchObject({
      type: FRAME_PACKET,
      dir: 2,
      supernet: '0x4711',
      channel: 1,
      epoch: 1,
      node: 'a1',
      origLen: 84,
    });
    expect(sent!.packet).toEqual(pkt);
    // The receiver's feed cut the packet at its snaplen; frames split anywhere still parse.
    const parser = new FeedParser();
    const bytes = Buffer.concat(inn);
    const got = [...parser.push(bytes.subarray(0, 7)), ...parser.push(bytes.subarray(7))];
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ dir: 1, node: 'c1', origLen: 84 });
    expect(got[0]!.packet).toEqual(pkt.subarray(0, 40));
    expect(describePacket(got[0]!.packet, got[0]!.origLen)).toBe(
      '10.71.17.2 > 10.71.17.3 ICMP echo request id 77 seq 1, 84 bytes',
    );
    fa.close();
    fc.close();
    expect(a.dp.tap).toBeNull();
    expect(c.dp.tap).toBeNull();
    // Counters without a feed.
    const s = snapshot(a.agent);
    expect(s.supernets[0]!.channels[0]).toMatchObject({
      id: '0x01',
      epoch: 1,
      txPackets: 1,
      txBytes: 84,
    });
    expect(snapshot(c.agent).supernets[0]!.nodes[0]).toMatchObject({
      name: 'c1',
      rxPackets: 1,
      rxBytes: 84,
    });
  });

  it('a slow reader loses frames, counted, and is told after it drains', async () => {
    const { net, a } = await setup();
    const frames: Buffer[] = [];
    let full = false;
    const m = new PacketMonitor(a.dp);
    const feed = m.open({ supernetKey: null, channel: null, node: null, snaplen: 65535 }, (f) => {
      frames.push(f);
      return !full;
    });
    full = true;
    for (let i = 1; i <= 5; i++) a.tun.inject(icmp('10.71.17.2', '10.71.17.3', i));
    await net.settle();
    expect(frames).toHaveLength(1); // taken, then the socket was full
    expect(feed.lost()).toBe(4);
    full = false;
    feed.resume();
    const parsed = new FeedParser().push(Buffer.concat(frames));
    expect(parsed.map((f) => f.type)).toEqual([FRAME_PACKET, FRAME_LOST]);
    expect(parsed[1]!.origLen).toBe(4);
    expect(a.node.counters.txPackets).toBe(5); // the packet path never waited
    feed.close();
  });

  it('refuses malformed frames', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(3, 0);
    expect(() => new FeedParser().push(bad)).toThrow(/bad frame length 3/);
  });
});

describe('pcap and metrics', () => {
  it('writes classic pcap LINKTYPE_RAW that reads back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sn-pcap-'));
    try {
      const w = new PcapWriter(join(dir, 'x.pcap'), 60);
      const p = icmp('10.71.17.2', '10.71.17.3', 9);
      w.write(1_700_000_000_123_456, p);
      w.close();
      const r = readPcap(readFileSync(join(dir, 'x.pcap')));
      expect(r.linktype).toBe(LINKTYPE_RAW);
      expect(r.snaplen).toBe(60);
      expect(r.records).toEqual([
        { timeUs: 1_700_000_000_123_456, origLen: 84, data: p.subarray(0, 60) },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves the agent metrics over TCP', async () => {
    const { net, a } = await setup();
    a.tun.inject(icmp('10.71.17.2', '10.71.17.3', 1));
    await net.settle();
    const m = agentMetrics(a.agent, new PacketMonitor(a.dp));
    const server = await m.listen('127.0.0.1', 0);
    try {
      const port = (server.address() as { port: number }).port;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const t = await res.text();
      expect(t).toMatch(
        /^supernet_agent_channel_packets_total\{supernet="0x4711",channel="0x01",direction="tx"\} 1$/m,
      );
      expect(t).toMatch(
        /^supernet_agent_node_bytes_total\{supernet="0x4711",node="a1",direction="tx"\} 84$/m,
      );
      expect(t).toMatch(/^supernet_agent_channel_epoch\{supernet="0x4711",channel="0x01"\} 1$/m);
      expect(t).toMatch(/^supernet_agent_drops_total\{reason="bad_tag"\} 0$/m);
      expect(t).toMatch(/^supernet_agent_monitor_feeds 0$/m);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      server.close();
    }
  });
});
