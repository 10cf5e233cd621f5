/**
 * configfs's caller → node resolution against real namespaces and processes
 * (docs/dns.md §Who is calling): a process started in a node namespace is
 * that node's; the test runner is the host; a namespace deleted and created
 * again under the same name is recognised, and a process left behind in the
 * old one is denied rather than taken for the host.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { TestBed, until } from '../bed/bed.js';
import { HOST, NodeLocator, UNKNOWN, procProbe } from '../../configfs/caller.js';

let bed: TestBed;

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['a', 'b'] });
});
afterAll(async () => {
  await bed?.teardown();
});

describe('NodeLocator on real namespaces', () => {
  it('tells node processes (and their threads) from host processes', async () => {
    const a = bed.host('a').ns;
    const b = bed.host('b').ns;
    const l = new NodeLocator<string>(procProbe);
    l.set('a', `/run/netns/${a}`);
    l.set('b', `/run/netns/${b}`);
    const pa = bed.spawn(a, 'sleep', ['60']);
    const pb = bed.spawn(b, 'sleep', ['60']);
    // `ip netns exec` execs the command: the pid is the sleep itself, once it has entered.
    await until(() => l.locate(pa.pid) === 'a' && l.locate(pb.pid) === 'b', {
      what: 'sleeps to be in their namespaces',
      timeoutMs: 5000,
    });
    expect(l.locate(process.pid)).toBe(HOST);
    // A thread id works like a pid (FUSE reports the calling thread).
    const tids = (await bed.run(null, 'ls', [`/proc/${process.pid}/task`])).stdout
      .trim()
      .split('\n');
    expect(tids.length).toBeGreaterThan(1);
    for (const t of tids) expect(l.locate(Number(t))).toBe(HOST);
    expect(l.locate(0x3fffffff)).toBe(UNKNOWN);
    await pa.stop();
    await pb.stop();
  });

  it('follows a namespace recreated under the same name; denies leftovers', async () => {
    const a = bed.host('a').ns;
    const l = new NodeLocator<string>(procProbe);
    l.set('a', `/run/netns/${a}`);
    const old = bed.spawn(a, 'sleep', ['60']);
    await until(() => l.locate(old.pid) === 'a', { what: 'sleep in a', timeoutMs: 5000 });
    // The old sleep keeps the old namespace alive after its name is gone.
    await bed.run(null, 'ip', ['netns', 'del', a]);
    await bed.run(null, 'ip', ['netns', 'add', a]);
    const fresh = bed.spawn(a, 'sleep', ['60']);
    await until(() => l.locate(fresh.pid) === 'a', { what: 'sleep in new a', timeoutMs: 5000 });
    expect(l.locate(old.pid)).toBe(UNKNOWN);
    expect(l.locate(process.pid)).toBe(HOST);
    await old.stop();
    await fresh.stop();
  });
});
