/**
 * Issue 3, acceptance 3–5 on the namespace test bed with the key-tree scheme
 * (`supernet admin start --key-scheme tree`; docs/keys.md §8):
 *
 * 3. a TCP stream a1 → c1 runs ≥ 30 s while 50 other nodes join, leave and
 *    are expelled on the same channel: it never breaks and loses no data
 *    (SHA-256 at both ends, test/support/tcp-check.js);
 * 4. c1's agent stopped across 5 rekeys comes back, resynchronises by
 *    itself and traffic resumes (time measured);
 * 5. an expelled node's packets, forged with the keys its host held, are
 *    refused once the grace period ends (probe times logged).
 *
 * Hosts: h1 admin + a1, h2 c1, h3 the 50 churning nodes (one agent).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { TestBed, ping, until, type BedProcess } from '../bed/bed.js';
import {
  AGENT_PORT,
  ROOT,
  SupernetBed,
  type AgentStatus,
  type LoggedIn,
} from '../scenario/supernet-bed.js';
import { keysOf, savedToken } from '../support/snsl-keys.js';
import { supernetIdBytes } from '../../admin/ids.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { Sealer, senderSubkey } from '../../net/keyring.js';

const SN = { id: '0x4711', pool: '10.71.16.0/22', channels: ['0x01'] };
const CH = ['0x01'];
const GRACE_MS = 8000;
const CHURN = 50;
/** Churn nodes present at once (bounds the config fetches each join causes). */
const WINDOW = 10;
/** Concurrent churn operations. */
const BATCH = 5;
/**
 * Stream length: paced at 1 MiB/s; the churn must fit inside it (issue: ≥ 30 s).
 * The churn (100 membership changes through the CLI) took 131 s on the loaded
 * 2-core CI machine with 90 s of stream, which broke the test: keep the margin.
 */
const STREAM_S = 200;
const TCP_CHECK = join(ROOT, 'dist', 'test', 'support', 'tcp-check.js');
const INJECT = join(ROOT, 'dist', 'test', 'support', 'inject.js');

let bed: TestBed;
let sn: SupernetBed;
const nodes = new Map<string, LoggedIn>();
const node = (n: string): LoggedIn => nodes.get(n)!;
const procs: BedProcess[] = [];
const churn = Array.from({ length: CHURN }, (_, i) => `m${i}`);
const find = (st: AgentStatus, n: string) => st.nodes.find((x) => x.name === n);
const epochOn = async (host: string): Promise<number> =>
  (await sn.status(host)).keyrings.find((k) => k.channel === 1)?.current ?? 0;
const log = (msg: string): void => {
  process.stderr.write(`groupkeys-tree: ${msg}\n`);
};

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  sn = new SupernetBed(bed, { graceMs: GRACE_MS, keyScheme: 'tree' });
  const all = ['a1', 'c1', 'x1', ...churn];
  for (let i = 0; i < all.length; i += 6)
    await Promise.all(all.slice(i, i + 6).map((n) => sn.identity(n)));
  for (const n of all) await sn.allow(n, SN.id, CH);
  await sn.startAdmin('h1');
  await sn.createSupernet(SN);
  for (const h of ['h1', 'h2', 'h3']) await sn.startAgent(h);
  nodes.set('a1', await sn.login({ name: 'a1', host: 'h1', supernet: SN.id, channels: CH }));
  nodes.set('c1', await sn.login({ name: 'c1', host: 'h2', supernet: SN.id, channels: CH }));
}, 180_000);

afterAll(async () => {
  for (const p of procs) await p.stop().catch(() => undefined);
  await bed?.teardown();
}, 60_000);

/** Logs in `names` on h3, `width` at a time. */
async function loginAll(names: string[], width = 3): Promise<void> {
  for (let i = 0; i < names.length; i += width) {
    const part = await Promise.all(
      names
        .slice(i, i + width)
        .map((n) => sn.login({ name: n, host: 'h3', supernet: SN.id, channels: CH })),
    );
    for (const l of part) nodes.set(l.name, l);
  }
}

describe('key-tree group keys on the test bed', () => {
  it(
    'a TCP stream of ≥ 30 s survives 50 nodes joining, leaving and being expelled on its channel',
    async () => {
      expect((await ping(bed, node('a1').ns, node('c1').vip, { count: 2 })).lossPct).toBe(0);
      const sink = bed.spawn(node('c1').ns, 'node', [TCP_CHECK, 'sink', '9000']);
      procs.push(sink);
      await sink.waitForOutput(/listening 9000/, 10_000);
      const rate = 1024 * 1024;
      const epoch0 = await epochOn('h1');
      const t0 = Date.now();
      const source = bed.spawn(node('a1').ns, 'node', [
        TCP_CHECK,
        'source',
        node('c1').vip,
        '9000',
        String(rate * STREAM_S),
        String(rate),
      ]);
      procs.push(source);
      // Churn on the stream's channel, in rounds of BATCH concurrent operations:
      // BATCH joins; once more than WINDOW churn nodes are in, the oldest BATCH go,
      // alternately by leaving (logout) and by expulsion; at the end the rest go.
      // 100 epochs in all.
      const present: string[] = [];
      let removals = 0;
      const removeOldest = async (k: number): Promise<void> => {
        await Promise.all(
          present
            .splice(0, k)
            .map((n) =>
              removals++ % 2 === 0
                ? sn.cli('h3', ['logout', n, '--agent', sn.agentSocket('h3')])
                : sn.cli(null, ['expel', SN.id, n, '--reason', 'churn']),
            ),
        );
      };
      for (let i = 0; i < churn.length; i += BATCH) {
        const names = churn.slice(i, i + BATCH);
        await loginAll(names, BATCH);
        present.push(...names);
        if (present.length > WINDOW) await removeOldest(BATCH);
      }
      while (present.length) await removeOldest(BATCH);
      const churnMs = Date.now() - t0;
      // The whole churn happened while the stream ran.
      const streamStillRunning = source.running;
      const epochAfterChurn = await epochOn('h1');
      expect(await source.exited).toBe(0);
      expect(await sink.exited).toBe(0);
      const streamMs = Date.now() - t0;
      const sent = JSON.parse(source.output().trim().split('\n').pop()!) as {
        bytes: number;
        sha256: string;
      };
      const got = JSON.parse(sink.output().trim().split('\n').pop()!) as typeof sent;
      log(
        `stream ${streamMs} ms, churn ${churnMs} ms, epochs ${epoch0} → ${epochAfterChurn} ` +
          `(${epochAfterChurn - epoch0} rekeys during the stream), ${sent.bytes} bytes`,
      );
      expect(streamMs).toBeGreaterThanOrEqual(30_000);
      // The churn happened while the stream ran: 50 joins (one epoch each) and 50
      // removals, BATCH at a time, so batched (--rekey-batch-ms, docs/keys.md
      // §Batching): each round of BATCH concurrent removals costs 1..BATCH epochs.
      expect(streamStillRunning).toBe(true);
      expect(epochAfterChurn - epoch0).toBeGreaterThanOrEqual(CHURN + CHURN / BATCH);
      expect(epochAfterChurn - epoch0).toBeLessThan(2 * CHURN);
      expect(got.bytes).toBe(rate * STREAM_S);
      expect(got).toEqual(sent);
      // a1 and c1 are on the same epoch, and h3 hosts nothing any more.
      expect(await epochOn('h2')).toBe(epochAfterChurn);
      expect((await sn.status('h3')).nodes).toEqual([]);
    },
    (STREAM_S + 60) * 1000,
  );

  it('an agent stopped across 5 rekeys resynchronises by itself; traffic resumes within seconds', async () => {
    const before = await epochOn('h1');
    await until(async () => ((await epochOn('h2')) === before ? true : null), {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: 'c1 on the current epoch',
    });
    await sn.stopAgent('h2');
    // x1 and four churn nodes that left by logout (even ones): 5 joins = 5 new epochs.
    await loginAll(['x1', 'm0', 'm2', 'm4', 'm6']);
    const atAdmin = await epochOn('h1');
    expect(atAdmin).toBe(before + 5);
    const t0 = Date.now();
    await sn.startAgent('h2');
    await until(
      async () => {
        const p = await ping(bed, node('a1').ns, node('c1').vip, { count: 1, waitS: 1 });
        return p.lossPct === 0 ? true : null;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'a1 → c1 after the agent restart' },
    );
    const resumedMs = Date.now() - t0;
    log(`agent restart → traffic resumed after ${resumedMs} ms (5 epochs behind)`);
    expect(await epochOn('h2')).toBe(atAdmin);
    expect(resumedMs).toBeLessThan(20_000);
    expect((await ping(bed, node('c1').ns, node('a1').vip, { count: 2 })).lossPct).toBe(0);
  }, 60_000);

  it('an expelled node’s forged packets are refused once the grace period ends', async () => {
    const fetchIn = (host: string) => async (token: string) =>
      (
        await bed.run(bed.host(host).ns, 'curl', [
          '-sf',
          '-H',
          `Authorization: Node ${token}`,
          `${sn.adminUrl}/v1/config?resync=1`,
        ])
      ).stdout;
    // Everything x1's host holds for channel 0x01 before the expulsion.
    const held = await keysOf(
      join(sn.dir, 'ids', 'x1.id'),
      savedToken(join(sn.dir, 'host-h3'), 'x1'),
      sn.adminInfo().sign,
      fetchIn('h3'),
    );
    const old = held.find((k) => k.channel === '0x01')!;
    expect(old.epoch).toBe(await epochOn('h1'));
    const sid = supernetIdBytes(SN.id);
    const a1 = parseIpv4(node('a1').vip);
    const x1 = parseIpv4(node('x1').vip);
    const sealer = new Sealer(
      senderSubkey(old.key, sid, 0x01, old.epoch, x1),
      sid,
      0x01,
      old.epoch,
      x1,
      0xfffffff0,
    );
    const forge = (): string => {
      const inner = Buffer.alloc(28);
      inner[0] = 0x45;
      inner.writeUInt16BE(28, 2);
      inner[8] = 64;
      inner[9] = 17; // UDP to a closed port: harmless
      inner.writeUInt32BE(x1, 12);
      inner.writeUInt32BE(a1, 16);
      const out = Buffer.alloc(100);
      return out.subarray(0, sealer.seal(inner, 0, inner.length, out, 0)).toString('hex');
    };
    const counters = async (): Promise<{ rx: number; stale: number; notMember: number }> => {
      const st = await sn.status('h1');
      return {
        rx: find(st, 'a1')!.counters.rxPackets,
        stale: st.drops.stale_epoch ?? 0,
        notMember: st.drops.not_member ?? 0,
      };
    };
    type Probe = { at: number; rx: number; stale: number; notMember: number };
    /** Sends one forged packet; when it left, and what a1's agent did with it. */
    const inject = async (): Promise<Probe> => {
      const c0 = await counters();
      const at = Date.now();
      await bed.run(bed.host('h3').ns, 'node', [INJECT, bed.host('h1').addr, String(AGENT_PORT)], {
        input: `${forge()}\n`,
      });
      await new Promise((res) => setTimeout(res, 150));
      const c1 = await counters();
      return {
        at,
        rx: c1.rx - c0.rx,
        stale: c1.stale - c0.stale,
        notMember: c1.notMember - c0.notMember,
      };
    };

    const epochBefore = await epochOn('h1');
    expect((await sn.cli(null, ['expel', SN.id, 'x1', '--reason', 'test'])).code).toBe(0);
    const expelledAt = Date.now();
    // a1's agent switched to the new epoch and set the old one's end: switch + grace.
    const acceptUntil = await until(
      async () => {
        const ring = (await sn.status('h1')).keyrings.find((k) => k.channel === 1);
        if (!ring || ring.current <= epochBefore) return null;
        return ring.epochs.find((e) => e.epoch === old.epoch)?.acceptUntil ?? null;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'a1 on the epoch after the expulsion' },
    );
    // Probe from now until past the end of the grace (plus the agent's 1 s expiry tick).
    const probes: Probe[] = [];
    await until(
      async () => {
        const r = await inject();
        probes.push(r);
        return r.at > acceptUntil + 1100 ? true : null;
      },
      { timeoutMs: GRACE_MS + 30_000, intervalMs: 100, what: 'probes past the grace period' },
    );
    const rel = (t: number): string => `${t - acceptUntil >= 0 ? '+' : ''}${t - acceptUntil}`;
    log(
      `x1 expelled; a1 switched ${acceptUntil - GRACE_MS - expelledAt} ms after the expel ` +
        `command returned; grace ${GRACE_MS} ms; probes relative to the end of the grace: ` +
        probes
          .map(
            (p) =>
              `${rel(p.at)} ms ${p.rx ? 'taken' : p.notMember ? 'refused: not_member' : p.stale ? 'refused: stale_epoch' : 'refused'}`,
          )
          .join(', '),
    );
    // Inside the grace the old epoch's key still opens the packet, but the
    // sender is no longer a member: the same config that switched a1's epoch
    // dropped x1 from a1's peers, so the packet is refused after the tag check
    // as not_member (docs/keys.md §9, "Grace and the expelled sender"). The grace
    // keeps in-flight packets of remaining members, never the leaver's.
    const inside = probes.filter((p) => p.at < acceptUntil - 200);
    for (const p of inside) expect(p).toMatchObject({ rx: 0, notMember: 1, stale: 0 });
    // Refused once the grace ended (the agent expires keys every second).
    const after = probes.filter((p) => p.at > acceptUntil + 1100);
    expect(after.length).toBeGreaterThan(0);
    for (const p of after) expect(p).toMatchObject({ rx: 0, stale: 1 });
    // And stays refused.
    const again = await inject();
    expect(again.rx).toBe(0);
    expect(again.stale).toBeGreaterThanOrEqual(1);
    expect((await ping(bed, node('a1').ns, node('c1').vip, { count: 2 })).lossPct).toBe(0);
  }, 90_000);
});
