/**
 * Issue 2, acceptance 5–7 on Figure 6: the admin service restarts under
 * traffic; c1's host is renumbered during a TCP transfer; c1 is expelled and
 * after the grace period neither sends nor receives, while a1 ↔ bigdisk1
 * keep working. Run in this order on one bed (expel last).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { TestBed, ping, until } from '../bed/bed.js';
import {
  figure6,
  AGENT_PORT,
  ROOT,
  type AgentStatus,
  type LoggedIn,
  type SupernetBed,
} from '../scenario/supernet-bed.js';
import { readUdpFrames } from '../support/pcap.js';
import { keysOf, opensWith, savedToken, type HeldKey } from '../support/snsl-keys.js';
import { supernetIdBytes } from '../../admin/ids.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { Sealer, senderSubkey } from '../../net/keyring.js';

const GRACE_MS = 3000;
const TCP_CHECK = join(ROOT, 'dist', 'test', 'support', 'tcp-check.js');
const INJECT = join(ROOT, 'dist', 'test', 'support', 'inject.js');

let bed: TestBed;
let sn: SupernetBed;
let nodes: Map<string, LoggedIn>;
const node = (n: string): LoggedIn => nodes.get(n)!;
const find = (st: AgentStatus, n: string) => st.nodes.find((x) => x.name === n);

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  ({ sn, nodes } = await figure6(bed, { graceMs: GRACE_MS }));
}, 180_000);

afterAll(async () => {
  await bed?.teardown();
}, 60_000);

async function operatorGet(path: string): Promise<unknown> {
  const r = await sn.cli(null, ['api', 'GET', path], { allowFail: true });
  if (r.code === 0) return JSON.parse(r.stdout);
  const token = (await bed.run(null, 'cat', [join(sn.adminState, 'operator.token')])).stdout.trim();
  const c = await bed.run(bed.host('h1').ns, 'curl', [
    '-sf',
    '-H',
    `Authorization: Bearer ${token}`,
    `${sn.adminUrl}${path}`,
  ]);
  return JSON.parse(c.stdout);
}

async function nodeList(): Promise<Array<Record<string, unknown> & { expiresAt: number }>> {
  const r = (await operatorGet('/v1/supernets/0x4711/nodes')) as {
    nodes: Array<Record<string, unknown> & { expiresAt: number }>;
  };
  return r.nodes;
}

describe('resilience', () => {
  it('restarting the admin service during traffic: traffic keeps flowing, nothing is lost', async () => {
    const nodesBefore = await nodeList();
    const auditBefore = await sn.audit();
    const pinger = bed.spawn(node('a1').ns, 'ping', [
      '-n',
      '-q',
      '-c',
      '40',
      '-i',
      '0.1',
      node('c1').vip,
    ]);
    await new Promise((r) => setTimeout(r, 800));
    await sn.stopAdmin();
    await new Promise((r) => setTimeout(r, 1000));
    await sn.startAdmin('h1');
    expect(await pinger.exited).toBe(0);
    expect(pinger.output()).toMatch(/40 packets transmitted, 40 received/);
    // Every node is still there with the same record; a VARP renewal that
    // lands meanwhile may only push its expiry later, never lose it.
    const nodesAfter = await nodeList();
    expect(nodesAfter.map((n) => ({ ...n, expiresAt: 0 }))).toEqual(
      nodesBefore.map((n) => ({ ...n, expiresAt: 0 })),
    );
    nodesAfter.forEach((n, i) =>
      expect(n.expiresAt).toBeGreaterThanOrEqual(nodesBefore[i]!.expiresAt),
    );
    const auditAfter = await sn.audit();
    expect(auditAfter.slice(0, auditBefore.length)).toEqual(auditBefore);
    // Agents reconnect and keep working with the restarted service.
    expect((await ping(bed, node('bigdisk1').ns, node('a1').vip, { count: 2 })).lossPct).toBe(0);
  });

  it('renumbering c1’s host during a TCP transfer a1 → c1: it completes, correct, without operator action', async () => {
    const sink = bed.spawn(node('c1').ns, 'node', [TCP_CHECK, 'sink', '9000']);
    await sink.waitForOutput(/listening 9000/, 10_000);
    const bytes = 24 * 1024 * 1024;
    const source = bed.spawn(node('a1').ns, 'node', [
      TCP_CHECK,
      'source',
      node('c1').vip,
      '9000',
      String(bytes),
      String(4 * 1024 * 1024),
    ]);
    await new Promise((r) => setTimeout(r, 1500));
    const newAddr = '198.18.0.22';
    await bed.setAddress('h2', newAddr);
    expect(await source.exited).toBe(0);
    expect(await sink.exited).toBe(0);
    const sent = JSON.parse(source.output().trim().split('\n').pop()!) as {
      bytes: number;
      sha256: string;
    };
    const got = JSON.parse(
      sink
        .output()
        .trim()
        .split('\n')
        .find((l) => l.startsWith('{'))!,
    ) as typeof sent;
    expect(got).toEqual(sent);
    expect(got.bytes).toBe(bytes);
    // Peers follow, and VARP has the new mapping (bigdisk1 never sent to c1 in between).
    await until(
      async () => {
        const st = await sn.status('h3');
        return (
          find(st, 'bigdisk1')!.peers.find((p) => p.name === 'c1')!.endpoint ===
            `${newAddr}:${AGENT_PORT}` || null
        );
      },
      { timeoutMs: 15_000, intervalMs: 250, what: 'bigdisk1 learning c1’s new endpoint from VARP' },
    );
    expect((await ping(bed, node('bigdisk1').ns, node('c1').vip, { count: 2 })).lossPct).toBe(0);
  });

  it('expelling c1: after the grace period c1 can neither send nor receive; a1 ↔ bigdisk1 keep working', async () => {
    const fetchIn = (host: string) => async (token: string) =>
      (
        await bed.run(bed.host(host).ns, 'curl', [
          '-sf',
          '-H',
          `Authorization: Node ${token}`,
          `${sn.adminUrl}/v1/config?resync=1`,
        ])
      ).stdout;
    // Everything c1's host holds before the expulsion.
    const c1Keys: HeldKey[] = await keysOf(
      join(sn.dir, 'ids', 'c1.id'),
      savedToken(join(sn.dir, 'host-h2'), 'c1'),
      sn.adminInfo().sign,
      fetchIn('h2'),
    );
    expect(c1Keys.map((k) => k.channel).sort()).toEqual(['0x01', '0x123']);
    const r = await sn.cli(null, ['expel', '0x4711', 'c1', '--reason', 'test']);
    expect(r.code).toBe(0);
    const expelledAt = Date.now();

    // c1's (honest) agent removes the node as soon as it hears of it. Seen
    // once to take over 10 s in a loaded CI run (cause not yet found: the
    // push, or the resync after its event stream reconnects, came late).
    await until(async () => (find(await sn.status('h2'), 'c1') ? null : true), {
      timeoutMs: 25_000,
      intervalMs: 200,
      what: 'c1 removed from h2',
    });

    // A compromised c1 host keeps its keys and keeps sending: inside the
    // grace its old-epoch packets are still taken, after it they are refused.
    const sid = supernetIdBytes('0x4711');
    const a1 = parseIpv4(node('a1').vip);
    const c1 = parseIpv4(node('c1').vip);
    const old = c1Keys.find((k) => k.channel === '0x01')!;
    const sealer = new Sealer(
      senderSubkey(old.key, sid, 0x01, old.epoch, c1),
      sid,
      0x01,
      old.epoch,
      c1,
      0xfffffff0,
    );
    const forge = (): string => {
      const inner = Buffer.alloc(28);
      inner[0] = 0x45;
      inner.writeUInt16BE(28, 2);
      inner[8] = 64;
      inner[9] = 17; // UDP to a closed port: harmless
      inner.writeUInt32BE(c1, 12);
      inner.writeUInt32BE(a1, 16);
      const out = Buffer.alloc(100);
      return out.subarray(0, sealer.seal(inner, 0, inner.length, out, 0)).toString('hex');
    };
    const rx = async (): Promise<number> => find(await sn.status('h1'), 'a1')!.counters.rxPackets;
    await until(async () => (Date.now() - expelledAt > GRACE_MS + 1500 ? true : null), {
      timeoutMs: GRACE_MS + 5000,
      intervalMs: 100,
      what: 'grace period to pass',
    });
    const before = await sn.status('h1');
    const rx0 = await rx();
    await bed.run(bed.host('h2').ns, 'node', [INJECT, bed.host('h1').addr, String(AGENT_PORT)], {
      input: `${forge()}\n${forge()}\n`,
    });
    await new Promise((res) => setTimeout(res, 400));
    const after = await sn.status('h1');
    expect(await rx()).toBe(rx0);
    expect(after.drops.stale_epoch! - before.drops.stale_epoch!).toBe(2);

    // a1 no longer has c1 as a peer at all.
    expect(find(after, 'a1')!.peers.map((p) => p.name)).toEqual(['bigdisk1']);
    expect((await ping(bed, node('a1').ns, node('c1').vip, { count: 2 })).lossPct).toBe(100);

    // a1 ↔ bigdisk1 keep working on the new epoch of 0x123, which nothing c1 held opens.
    const cap = join(bed.dir, 'after-expel.pcap');
    const dump = bed.spawn(bed.host('h1').ns, 'tcpdump', [
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
    expect((await ping(bed, node('a1').ns, node('bigdisk1').vip, { count: 3 })).lossPct).toBe(0);
    expect((await ping(bed, node('bigdisk1').ns, node('a1').vip, { count: 3 })).lossPct).toBe(0);
    await new Promise((res) => setTimeout(res, 300));
    await dump.stop('SIGINT');
    const frames = readUdpFrames(cap).filter(
      (f) => f.sport === AGENT_PORT && f.dport === AGENT_PORT,
    );
    expect(frames.length).toBeGreaterThanOrEqual(6);
    for (const f of frames) expect(opensWith(f.payload, c1Keys)).toBe(false);
    const audit = await sn.audit();
    expect(JSON.stringify(audit)).toMatch(/expel/);
  });
});
