/**
 * Issue 2, acceptance 1–3 and 8 on the namespace test bed: the paper's
 * Figure 6 (Supernet 0x4711: a1 and c1 on channels 0x01 and 0x123, bigdisk1
 * on 0x123 only, each on its own simulated host, admin on h1) plus the
 * second Supernet 0x0000cafebabe00050100 on the same hosts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { TestBed, curl, iperf3, iperf3Server, ping, type BedProcess } from '../bed/bed.js';
import {
  figure6,
  AGENT_PORT,
  ROOT,
  type LoggedIn,
  type SupernetBed,
} from '../scenario/supernet-bed.js';
import { readUdpFrames } from '../support/pcap.js';
import { keysOf, opensWith, savedToken } from '../support/snsl-keys.js';
import { readChannel } from '../../net/wire.js';
import { apacheCommand, writeApacheSite } from '../scenario/apache.js';

const CAFE = '0x0000cafebabe00050100';
let bed: TestBed;
let sn: SupernetBed;
let nodes: Map<string, LoggedIn>;
const node = (n: string): LoggedIn => nodes.get(n)!;
const procs: BedProcess[] = [];

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  ({ sn, nodes } = await figure6(bed));
  // The second Supernet of Figure 6 (c), with nodes on the same hosts.
  await sn.allow('a2', CAFE, ['0x02', '0x03']);
  await sn.allow('b1', CAFE, ['0x02']);
  await new Promise((r) => setTimeout(r, 1500)); // policy hot reload
  await sn.createSupernet({ id: CAFE, pool: '10.202.0.0/24', channels: ['0x02', '0x03'] });
  nodes.set(
    'a2',
    await sn.login({ name: 'a2', host: 'h1', supernet: CAFE, channels: ['0x02', '0x03'] }),
  );
  nodes.set('b1', await sn.login({ name: 'b1', host: 'h2', supernet: CAFE, channels: ['0x02'] }));
}, 180_000);

afterAll(async () => {
  for (const p of procs) await p.stop().catch(() => undefined);
  await bed?.teardown();
}, 60_000);

describe('Figure 6: Supernet 0x4711', () => {
  it('admits a1, c1, bigdisk1 with addresses from the pool', () => {
    for (const n of ['a1', 'c1', 'bigdisk1']) expect(node(n).vip).toMatch(/^10\.71\.17\.\d+$/);
    expect(new Set(['a1', 'c1', 'bigdisk1'].map((n) => node(n).vip)).size).toBe(3);
  });

  it('a1 ↔ c1: ping both ways', async () => {
    const there = await ping(sn.bed, node('a1').ns, node('c1').vip, { count: 3 });
    const back = await ping(sn.bed, node('c1').ns, node('a1').vip, { count: 3 });
    expect(there.lossPct).toBe(0);
    expect(back.lossPct).toBe(0);
  });

  it('a1 ↔ c1: TCP both ways (iperf3 normal and reverse)', async () => {
    const srv = await iperf3Server(sn.bed, node('c1').ns, { bind: node('c1').vip });
    procs.push(srv);
    const fwd = await iperf3(sn.bed, node('a1').ns, node('c1').vip, { seconds: 2 });
    const rev = await iperf3(sn.bed, node('a1').ns, node('c1').vip, { seconds: 2, reverse: true });
    expect(fwd.bytes).toBeGreaterThan(100_000);
    expect(rev.bytes).toBeGreaterThan(100_000);
    await srv.stop();
  });

  it('stock Apache started in c1 with `supernet exec` serves curl in a1 by virtual address', async () => {
    const site = writeApacheSite(sn.dir, {
      listen: node('c1').vip,
      serverName: 'c1',
      pages: { 'index.html': 'hello from c1 in Supernet 0x4711\n' },
    });
    const r = await sn.exec('h2', 'c1', apacheCommand(site, 'start'));
    expect(r.code).toBe(0);
    let page = await curl(sn.bed, node('a1').ns, `http://${node('c1').vip}/`);
    for (let i = 0; i < 20 && page.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      page = await curl(sn.bed, node('a1').ns, `http://${node('c1').vip}/`);
    }
    expect(page.status).toBe(200);
    expect(page.body).toContain('hello from c1 in Supernet 0x4711');
    await sn.exec('h2', 'c1', apacheCommand(site, 'stop'), { allowFail: true });
  });

  it('bigdisk1 reaches a1 and c1 over 0x123', async () => {
    expect((await ping(sn.bed, node('bigdisk1').ns, node('a1').vip, { count: 2 })).lossPct).toBe(0);
    expect((await ping(sn.bed, node('bigdisk1').ns, node('c1').vip, { count: 2 })).lossPct).toBe(0);
    const st = await sn.status('h1');
    const a1 = st.nodes.find((n) => n.name === 'a1')!;
    expect(a1.peers.find((p) => p.name === 'c1')!.sendChannel).toBe(0x01);
    expect(a1.peers.find((p) => p.name === 'bigdisk1')!.sendChannel).toBe(0x123);
  });

  it("a1 ↔ c1 traffic on 0x01, captured on the underlay, opens with a1's keys and with nothing bigdisk1's host holds", async () => {
    const cap = join(sn.dir, 'a1-c1.pcap');
    const dump = sn.bed.spawn(bed.host('h2').ns, 'tcpdump', [
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
    procs.push(dump);
    await dump.waitForOutput(/listening on/, 10_000);
    await ping(sn.bed, node('a1').ns, node('c1').vip, { count: 5, intervalS: 0.2 });
    await new Promise((r) => setTimeout(r, 500));
    await dump.stop('SIGINT');
    const frames = readUdpFrames(cap).filter(
      (f) => f.src === bed.host('h1').addr && f.dst === bed.host('h2').addr,
    );
    expect(frames.length).toBeGreaterThanOrEqual(5);
    const fetchIn = (host: string) => async (token: string) =>
      (
        await sn.bed.run(bed.host(host).ns, 'curl', [
          '-sf',
          '-H',
          `Authorization: Node ${token}`,
          `${sn.adminUrl}/v1/config?resync=1`,
        ])
      ).stdout;
    const admin = sn.adminInfo().sign;
    const bigdiskKeys = await keysOf(
      join(sn.dir, 'ids', 'bigdisk1.id'),
      savedToken(join(sn.dir, 'host-h3'), 'bigdisk1'),
      admin,
      fetchIn('h3'),
    );
    const a1Keys = await keysOf(
      join(sn.dir, 'ids', 'a1.id'),
      savedToken(join(sn.dir, 'host-h1'), 'a1'),
      admin,
      fetchIn('h1'),
    );
    expect(bigdiskKeys.map((k) => k.channel)).toEqual(['0x123']);
    for (const f of frames) {
      expect(readChannel(f.payload, 0)).toBe(0x01);
      expect(opensWith(f.payload, bigdiskKeys)).toBe(false);
      expect(opensWith(f.payload, a1Keys)).toBe(true); // the check itself works
    }
  });
});

describe('isolation', () => {
  it('the second Supernet works, and no packet crosses between the two in either direction', async () => {
    expect((await ping(sn.bed, node('a2').ns, node('b1').vip, { count: 2 })).lossPct).toBe(0);
    const before = await sn.status('h2');
    const rx = (st: typeof before, n: string) =>
      st.nodes.find((x) => x.name === n)!.counters.rxPackets;
    expect((await ping(sn.bed, node('a1').ns, node('b1').vip, { count: 3 })).lossPct).toBe(100);
    expect((await ping(sn.bed, node('a2').ns, node('c1').vip, { count: 3 })).lossPct).toBe(100);
    const after = await sn.status('h2');
    expect(rx(after, 'b1')).toBe(rx(before, 'b1'));
    expect(rx(after, 'c1')).toBe(rx(before, 'c1'));
  });

  it('a process inside a node cannot reach any underlay address; the node has only lo and its TUN', async () => {
    for (const h of ['h1', 'h2', 'h3']) {
      const r = await ping(sn.bed, node('a1').ns, bed.host(h).addr, { count: 1 });
      expect(r.lossPct).toBe(100);
    }
    const c = await sn.exec('h1', 'a1', ['curl', '-s', '-m', '2', `${sn.adminUrl}/v1/info`], {
      allowFail: true,
    });
    expect(c.code).not.toBe(0);
    const links = await sn.bed.run(node('a1').ns, 'ip', ['-o', 'link', 'show']);
    const names = links.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(':')[1]!.trim().split('@')[0]);
    expect(names.sort()).toEqual(['lo', 'sn0']);
  });
});

describe('admission policy', () => {
  it('refuses an identity the policy does not admit, with a clear reason, and audits it', async () => {
    await sn.identity('mallory');
    const r = await sn.login(
      { name: 'mallory', host: 'h3', supernet: '0x4711', channels: ['0x01'] },
      { allowFail: true },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /refused by the admin service \(policy_denied\): no rule .* admits identity/,
    );
    const audit = await sn.audit();
    const deny = audit.filter((e) => JSON.stringify(e).includes(sn.fingerprint('mallory')));
    expect(deny.length).toBeGreaterThan(0);
    expect(JSON.stringify(deny)).toMatch(/den/i);
  });
});

void ROOT;
