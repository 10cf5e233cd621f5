/**
 * The direct rekey push on the namespace test bed (docs/keys.md §9, SSE
 * `rekey`): with the key-tree scheme, a member's agent installs the epochs
 * of joins and of an expel from pushed messages (status `rekeys.push`),
 * not only from configs, and traffic between the remaining members goes on.
 *
 * Hosts: h1 admin + a1, h2 c1 and x1.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TestBed, ping, until } from '../bed/bed.js';
import { SupernetBed, type AgentStatus, type LoggedIn } from '../scenario/supernet-bed.js';

const SN = { id: '0x4712', pool: '10.71.24.0/24', channels: ['0x01'] };
const CH = ['0x01'];

let bed: TestBed;
let sn: SupernetBed;
const nodes = new Map<string, LoggedIn>();

type Rekeys = Record<'push' | 'config' | 'resync' | 'push_old' | 'push_fallback', number>;
const rekeysOf = (st: AgentStatus): Rekeys => (st as unknown as { rekeys: Rekeys }).rekeys;
const epochOf = (st: AgentStatus): number => st.keyrings.find((k) => k.channel === 1)?.current ?? 0;

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2'] });
  sn = new SupernetBed(bed, { graceMs: 4000, keyScheme: 'tree' });
  for (const n of ['a1', 'c1', 'x1']) {
    await sn.identity(n);
    await sn.allow(n, SN.id, CH);
  }
  await sn.startAdmin('h1');
  await sn.createSupernet(SN);
  for (const h of ['h1', 'h2']) await sn.startAgent(h);
  nodes.set('a1', await sn.login({ name: 'a1', host: 'h1', supernet: SN.id, channels: CH }));
}, 120_000);

afterAll(async () => {
  await bed?.teardown();
}, 60_000);

describe('rekey push to host agents', () => {
  it('joins and an expel reach the member’s agent as pushed rekeys; traffic goes on', async () => {
    const before = rekeysOf(await sn.status('h1'));
    nodes.set('c1', await sn.login({ name: 'c1', host: 'h2', supernet: SN.id, channels: CH }));
    nodes.set('x1', await sn.login({ name: 'x1', host: 'h2', supernet: SN.id, channels: CH }));
    await until(async () => epochOf(await sn.status('h1')) >= 3, {
      what: 'a1 at the joins’ epoch',
      timeoutMs: 10_000,
    });
    const joined = rekeysOf(await sn.status('h1'));
    // a1 was a member for both joins: their notices came pushed.
    expect(joined.push - before.push).toBeGreaterThanOrEqual(2);

    const epoch = epochOf(await sn.status('h1'));
    await sn.cli(null, ['expel', SN.id, 'x1', '--reason', 'push test']);
    await until(async () => epochOf(await sn.status('h1')) > epoch, {
      what: 'a1 past the expel',
      timeoutMs: 10_000,
    });
    const after = rekeysOf(await sn.status('h1'));
    expect(after.push - joined.push).toBeGreaterThanOrEqual(1);
    expect(after.push_fallback).toBe(before.push_fallback);
    // c1 (other host) followed too, and the two still talk.
    await until(async () => epochOf(await sn.status('h2')) > epoch, {
      what: 'c1 past the expel',
      timeoutMs: 10_000,
    });
    expect(rekeysOf(await sn.status('h2')).push).toBeGreaterThanOrEqual(2);
    expect((await ping(bed, nodes.get('a1')!.ns, nodes.get('c1')!.vip, { count: 2 })).lossPct).toBe(
      0,
    );
    process.stderr.write(
      `rekey-push: a1 ${JSON.stringify(after)}; c1 ${JSON.stringify(rekeysOf(await sn.status('h2')))}\n`,
    );
  }, 90_000);
});
