/**
 * configfs end to end (issue 6, acceptance 2 and the configfs half of 1):
 * the real FUSE mount served by `supernet configfs run`, read by stock
 * programs (cat, getent, stat) inside node namespaces entered with
 * `ip netns exec`, whose /etc files come from /etc/netns/<ns>/ links.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../bed/bed.js';
import { writeSpoolEntry } from '../../configfs/spool.js';
import { setUp, viewA, type Kit } from './configfs-kit.js';

let kit: Kit;
let hostResolvBefore: string;

beforeAll(async () => {
  hostResolvBefore = readFileSync('/etc/resolv.conf', 'utf8');
  kit = await setUp();
  await kit.start();
}, 60_000);
afterAll(async () => {
  await kit?.teardown();
});

async function inNode(ns: string, cmd: string, args: string[]) {
  return kit.bed.run(ns, cmd, args, { allowFail: true });
}

describe('configfs mount', () => {
  it('serves each node its own resolv.conf and hosts; the host keeps its own', async () => {
    const ra = await inNode(kit.a, 'cat', ['/etc/resolv.conf']);
    const rb = await inNode(kit.b, 'cat', ['/etc/resolv.conf']);
    expect(ra.stdout).toMatch(/^nameserver 10\.71\.17\.1$/m);
    expect(ra.stdout).toMatch(/^search 4711\.sn$/m);
    expect(rb.stdout).toMatch(/^nameserver 10\.72\.5\.1$/m);
    expect(rb.stdout).toMatch(/^search 4712\.sn$/m);
    const ha = await inNode(kit.a, 'cat', ['/etc/hosts']);
    expect(ha.stdout).toMatch(/^10\.71\.17\.20\tc1\.4711\.sn c1$/m);
    expect(ha.stdout).not.toMatch(/4712/);
    expect((await inNode(kit.b, 'cat', ['/etc/hostname'])).stdout).toBe('b1\n');
    // On the host, /etc is untouched, and the configfs path reads through to it.
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(hostResolvBefore);
    expect(readFileSync(join(kit.mnt, 'resolv.conf'), 'utf8')).toBe(hostResolvBefore);
    expect(readFileSync(join(kit.mnt, 'hosts'), 'utf8')).toBe(readFileSync('/etc/hosts', 'utf8'));
    // ...and so does a host process whose mount namespace is a fresh one.
    const viaUnshare = await kit.bed.run(null, 'unshare', [
      '-m',
      'cat',
      join(kit.mnt, 'resolv.conf'),
    ]);
    expect(viaUnshare.stdout).toBe(hostResolvBefore);
  });

  it('answers glibc lookups from the node files: own Supernet only', async () => {
    const a = await inNode(kit.a, 'getent', ['hosts', 'c1.4711.sn']);
    expect(a.stdout).toMatch(/^10\.71\.17\.20\s+c1\.4711\.sn c1$/m);
    const short = await inNode(kit.a, 'getent', ['hosts', 'c1']);
    expect(short.stdout).toMatch(/^10\.71\.17\.20\s/);
    const b = await inNode(kit.b, 'getent', ['hosts', 'c1']);
    expect(b.stdout).toMatch(/^10\.72\.5\.20\s+c1\.4712\.sn c1$/m);
    // The other Supernet's names are not in the file (and DNS cannot be
    // reached here: no agent), so they do not resolve.
    const cross = await inNode(kit.b, 'getent', ['hosts', 'a1.4711.sn']);
    expect(cross.code).not.toBe(0);
    expect(cross.stdout).toBe('');
    const nss = await inNode(kit.a, 'cat', ['/etc/nsswitch.conf']);
    expect(nss.stdout).toMatch(/^hosts:\s+files dns$/m);
  });

  it('gives two nodes their own files at the same moment (no shared cache)', async () => {
    const loop = (expect: string) =>
      `n=0; bad=0; while [ $n -lt 150 ]; do grep -q '${expect}' /etc/resolv.conf || bad=$((bad+1)); n=$((n+1)); done; echo "bad=$bad"`;
    const [ra, rb] = await Promise.all([
      inNode(kit.a, 'sh', ['-c', loop('^nameserver 10.71.17.1$')]),
      inNode(kit.b, 'sh', ['-c', loop('^nameserver 10.72.5.1$')]),
      (async () => {
        // Host reads interleaved with both.
        for (let i = 0; i < 100; i++) {
          expect(readFileSync(join(kit.mnt, 'resolv.conf'), 'utf8')).toBe(hostResolvBefore);
          await new Promise((r) => setImmediate(r));
        }
      })(),
    ]);
    expect(ra.stdout.trim()).toBe('bad=0');
    expect(rb.stdout.trim()).toBe('bad=0');
  });

  it('reports each caller its own size and mtime, and is read-only', async () => {
    const sa = await inNode(kit.a, 'stat', ['-L', '-c', '%s %a', '/etc/resolv.conf']);
    const ca = await inNode(kit.a, 'wc', ['-c', '/etc/resolv.conf']);
    expect(Number(sa.stdout.split(' ')[0])).toBe(Number(ca.stdout.split(' ')[0]));
    expect(sa.stdout.trim().split(' ')[1]).toBe('444');
    const w = await inNode(kit.a, 'sh', ['-c', 'echo x >> /etc/resolv.conf']);
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system|Permission denied/);
    const ls = await kit.bed.run(null, 'ls', [kit.mnt]);
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual([
      'hostname',
      'hosts',
      'networks',
      'nsswitch.conf',
      'resolv.conf',
    ]);
  });

  it('follows membership changes without a remount', async () => {
    const before = await inNode(kit.a, 'getent', ['hosts', 'd1.4711.sn']);
    expect(before.code).not.toBe(0);
    const t0 = Date.now();
    writeSpoolEntry(kit.spool, kit.a, {
      netns: `/run/netns/${kit.a}`,
      spec: { view: viewA([{ name: 'd1', vip: '10.71.17.40' }]) },
    });
    const hit = await until(
      async () => {
        const r = await inNode(kit.a, 'getent', ['hosts', 'd1.4711.sn']);
        return r.code === 0 ? r.stdout : null;
      },
      { what: 'd1 to appear in a', timeoutMs: 2000, intervalMs: 20 },
    );
    expect(hit).toMatch(/^10\.71\.17\.40\s+d1\.4711\.sn d1$/m);
    expect(Date.now() - t0).toBeLessThan(2000);
    // Expelled again: gone.
    writeSpoolEntry(kit.spool, kit.a, { netns: `/run/netns/${kit.a}`, spec: { view: viewA() } });
    await until(async () => (await inNode(kit.a, 'getent', ['hosts', 'd1.4711.sn'])).code !== 0, {
      what: 'd1 to disappear from a',
      timeoutMs: 2000,
      intervalMs: 20,
    });
    // The other node never saw it.
    expect((await inNode(kit.b, 'getent', ['hosts', 'd1.4711.sn'])).code).not.toBe(0);
  });

  it('denies a node whose spool entry turned malformed, instead of showing it host files', async () => {
    const path = join(kit.spool, `${kit.b}.json`);
    const good = readFileSync(path, 'utf8');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, '{"v":1,');
    await until(async () => (await inNode(kit.b, 'cat', ['/etc/resolv.conf'])).code !== 0, {
      what: 'b to be denied',
      timeoutMs: 3000,
      intervalMs: 20,
    });
    const r = await inNode(kit.b, 'cat', ['/etc/resolv.conf']);
    expect(r.stdout).not.toContain(hostResolvBefore.trim());
    writeFileSync(path, good);
    await until(
      async () => (await inNode(kit.b, 'cat', ['/etc/resolv.conf'])).stdout.includes('10.72.5.1'),
      { what: 'b to be served again', timeoutMs: 3000, intervalMs: 20 },
    );
  });
});
