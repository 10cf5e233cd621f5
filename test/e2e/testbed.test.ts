/**
 * The namespace test bed itself (design brief §7): hosts reach each other
 * over the underlay and nothing else, renumbering works, and nothing of a
 * run survives it — after an orderly teardown, an uncaught exception, a
 * SIGTERM, or a SIGKILL of the runner (the sweeper's case).
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { TestBed, curl, iperf3, iperf3Server, ping, until } from '../bed/bed.js';
import { namespacesWithPrefix, namespacePids, rootLinksWithPrefix } from '../bed/netns.js';
import { MARKER_DIR, sweepLeftovers } from '../bed/registry.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, '..', 'bed', 'selftest-child.js');

/** A process that exited but was not reaped yet (state Z) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Asserts that nothing of run `prefix` is left on the machine. */
async function assertGone(run: { prefix: string; dir: string; pids: number[] }): Promise<void> {
  expect(namespacesWithPrefix(run.prefix)).toEqual([]);
  expect(rootLinksWithPrefix(run.prefix)).toEqual([]);
  // SIGKILL is asynchronous: give the kernel a moment to finish the processes.
  await until(() => run.pids.every((p) => !alive(p)), {
    what: `processes ${run.pids.join(' ')} to be gone`,
    timeoutMs: 3_000,
  });
  expect(existsSync(run.dir)).toBe(false);
  expect(existsSync(join(MARKER_DIR, `${run.prefix.slice(0, -1)}.json`))).toBe(false);
}

describe('test bed: three hosts on one switch', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  });
  afterAll(async () => {
    await bed?.teardown();
  });

  it('names everything with the run prefix and gives hosts only lo and eth0', async () => {
    expect(bed.prefix).toMatch(/^sn[a-z0-9]{4}-$/);
    expect(bed.host('h1')).toMatchObject({
      ns: `${bed.prefix}h1`,
      addr: '198.18.0.1',
      dev: 'eth0',
    });
    expect(await bed.namespaces()).toEqual([
      `${bed.prefix}h1`,
      `${bed.prefix}h2`,
      `${bed.prefix}h3`,
      `${bed.prefix}sw`,
    ]);
    const links = JSON.parse((await bed.run('h2', 'ip', ['-j', 'link', 'show'])).stdout) as {
      ifname: string;
      mtu: number;
    }[];
    expect(links.map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
    expect(links.find((l) => l.ifname === 'eth0')?.mtu).toBe(1500);
    expect(() => bed.host('h9')).toThrow(/no host "h9".*h1, h2, h3/);
  });

  it('lets every host ping every other by underlay address', async () => {
    const pairs = bed.hosts.flatMap((a) =>
      bed.hosts.filter((b) => b !== a).map((b) => [a, b] as const),
    );
    const results = await Promise.all(pairs.map(([a, b]) => ping(bed, a.ns, b.addr, { count: 2 })));
    for (const r of results) {
      expect(r).toMatchObject({ transmitted: 2, received: 2, lossPct: 0, code: 0 });
      expect(r.rtt!.avg).toBeGreaterThan(0);
    }
  });

  it('serves a stock HTTP client across the underlay', async () => {
    const server = bed.spawn('h2', process.execPath, [
      '-e',
      `require('http').createServer((q,s)=>s.end('hello from '+q.socket.localAddress))` +
        `.listen(8080,'${bed.host('h2').addr}',()=>console.log('listening'))`,
    ]);
    await server.waitForOutput(/listening/);
    const r = await curl(bed, 'h1', `http://${bed.host('h2').addr}:8080/`);
    expect(r).toMatchObject({ status: 200, body: 'hello from 198.18.0.2', code: 0 });
    await server.stop();
    expect(server.running).toBe(false);
    const refused = await curl(bed, 'h1', `http://${bed.host('h2').addr}:8080/`, { timeoutS: 3 });
    expect(refused.status).toBe(0);
    expect(refused.code).toBe(7); // connection refused: the server is really gone
  });

  it('carries an iperf3 TCP test and parses its JSON', async () => {
    const server = await iperf3Server(bed, 'h3', { port: 5299 });
    try {
      const r = await iperf3(bed, 'h1', bed.host('h3').addr, { port: 5299, seconds: 1 });
      expect(r.streams).toBe(1);
      expect(r.bytes).toBeGreaterThan(0);
      expect(r.bitsPerSecond).toBeGreaterThan(0);
      expect(r.seconds).toBeGreaterThan(0.5);
    } finally {
      await server.stop();
    }
    await expect(
      iperf3(bed, 'h1', bed.host('h3').addr, { port: 5299, seconds: 1 }),
    ).rejects.toThrow(/iperf3: .*connect/);
  });

  it('keeps hosts away from the root namespace', async () => {
    // A listener on the machine itself, on every address and on loopback.
    const hits: string[] = [];
    const servers: Server[] = [];
    const listen = (host: string): Promise<number> =>
      new Promise((resolve) => {
        const s = createServer((req, res) => {
          hits.push(`${host} ${req.url}`);
          res.end('root');
        });
        servers.push(s);
        s.listen(0, host, () => resolve((s.address() as { port: number }).port));
      });
    const anyPort = await listen('0.0.0.0');
    const loPort = await listen('127.0.0.1');
    try {
      const rootAddrs = Object.values(networkInterfaces())
        .flat()
        .filter((i) => i && i.family === 'IPv4' && !i.internal)
        .map((i) => i!.address);
      for (const addr of rootAddrs) {
        const p = await ping(bed, 'h1', addr, { count: 1, waitS: 1 });
        expect(p.received).toBe(0);
        const c = await curl(bed, 'h1', `http://${addr}:${anyPort}/from-h1`, { timeoutS: 2 });
        expect(c.status).toBe(0);
      }
      // 127.0.0.1 inside a host is the host's own loopback, not the machine's.
      const lo = await curl(bed, 'h1', `http://127.0.0.1:${loPort}/from-h1`, { timeoutS: 2 });
      expect(lo.status).toBe(0);
      // The control: the machine itself does reach its own listener.
      const self = await curl(bed, null, `http://127.0.0.1:${loPort}/control`);
      expect(self.body).toBe('root');
      expect(hits).toEqual(['127.0.0.1 /control']);
    } finally {
      for (const s of servers) s.close();
    }
  });

  it('renumbers a host: the new address answers, the old one does not', async () => {
    await bed.setAddress('h3', '198.18.0.53');
    expect(bed.host('h3').addr).toBe('198.18.0.53');
    const addrs = JSON.parse(
      (await bed.run('h3', 'ip', ['-j', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout,
    ) as {
      addr_info: { local: string; prefixlen: number }[];
    }[];
    expect(addrs[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['198.18.0.53/24']);
    expect((await ping(bed, 'h1', '198.18.0.53', { count: 2 })).received).toBe(2);
    expect((await ping(bed, 'h1', '198.18.0.3', { count: 1, waitS: 1 })).received).toBe(0);
    await expect(bed.setAddress('h3', '198.18.0.1')).rejects.toThrow(/already host h1's address/);
    await expect(bed.setAddress('h3', '198.18.0.300')).rejects.toThrow(/not an IPv4 address/);
  });

  it('refuses namespaces that are not the run’s own', async () => {
    await expect(bed.run('somebody-else', 'true', [])).rejects.toThrow(/not part of this test bed/);
    expect(() => bed.spawn('sn0000-h1', 'true', [])).toThrow(/not part of this test bed/);
  });

  it('reports commands that fail, and processes that die before their output appears', async () => {
    await expect(bed.run('h1', 'sh', ['-c', 'echo boom >&2; exit 3'])).rejects.toThrow(
      /exited with code 3[^]*boom/,
    );
    const r = await bed.run('h1', 'sh', ['-c', 'exit 3'], { allowFail: true });
    expect(r.code).toBe(3);
    const slow = await bed.run('h1', 'sleep', ['5'], { timeoutMs: 200, allowFail: true });
    expect(slow).toMatchObject({ code: 124, timedOut: true });
    const p = bed.spawn('h1', 'sh', ['-c', 'echo starting; exit 4']);
    await expect(p.waitForOutput(/ready/, 5_000)).rejects.toThrow(/exited \(code 4[^]*starting/);
    expect(await p.exited).toBe(4);
    const q = bed.spawn('h1', 'sleep', ['30']);
    await expect(q.waitForOutput(/never/, 200)).rejects.toThrow(
      /timed out after 200 ms waiting for \/never\//,
    );
    await q.stop();
    expect(q.exitSignal).toBe('SIGTERM');
  });
});

describe('test bed: teardown', () => {
  it('removes namespaces, links, mounts, tracked and untracked processes, and is idempotent', async () => {
    const bed = await TestBed.create({ hosts: ['a', 'b'], subnet: '10.250.0.0/29', mtu: 1420 });
    try {
      expect(bed.hosts.map((h) => h.addr)).toEqual(['10.250.0.1', '10.250.0.2']);
      expect((await ping(bed, 'a', '10.250.0.2', { count: 1 })).received).toBe(1);
      // A process that ignores SIGTERM must still go (SIGKILL after the grace).
      const stubborn = bed.spawn('a', 'sh', [
        '-c',
        "trap '' TERM; echo armed; while :; do sleep 1; done",
      ]);
      await stubborn.waitForOutput(/armed/);
      // One the bed does not know about, living in a host namespace...
      await bed.run('b', 'setsid', ['-f', 'sleep', '1000']);
      // ...and a namespace of the run it did not make (as an agent makes nodes).
      await bed.run(null, 'ip', ['netns', 'add', `${bed.prefix}n1`]);
      await bed.run(null, 'ip', [
        '-n',
        `${bed.prefix}n1`,
        'link',
        'add',
        'x',
        'type',
        'veth',
        'peer',
        'name',
        'y',
      ]);
      await bed.run(null, 'mkdir', ['-p', `${bed.dir}/mnt`]);
      await bed.run(null, 'mount', ['-t', 'tmpfs', 'bedtest', `${bed.dir}/mnt`]);
      const pids = [stubborn.pid, ...namespacePids(bed.host('b').ns)];
      expect(pids.length).toBe(2);
      expect(await bed.namespaces()).toContain(`${bed.prefix}n1`);
      const run = { prefix: bed.prefix, dir: bed.dir, pids };
      await bed.teardown({ graceMs: 500 });
      await assertGone(run);
      await expect(bed.teardown()).resolves.toBeUndefined();
      await expect(bed.run('a', 'true', [])).rejects.toThrow(/after teardown/);
    } finally {
      await bed.teardown();
    }
  }, 30_000);

  /** Runs the selftest child in `mode` and returns what it reported about its bed. */
  function startChild(mode: 'throw' | 'wait' | 'unguarded') {
    const child = spawn(process.execPath, [CHILD, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    const report = until(
      () =>
        out.includes('\n')
          ? (JSON.parse(out) as { prefix: string; dir: string; pids: number[] })
          : null,
      {
        what: `the selftest child (${mode}) to report its bed`,
        timeoutMs: 20_000,
      },
    ).catch((e: Error) => {
      throw new Error(`${e.message}; child stderr: ${err}`);
    });
    return { child, report, exited, stderr: () => err };
  }

  it('cleans up when the runner dies of an uncaught exception mid-test', async () => {
    const c = startChild('throw');
    const run = await c.report;
    const { code } = await c.exited;
    expect(code).toBe(1);
    expect(c.stderr()).toContain('thrown on purpose');
    await assertGone(run);
  }, 30_000);

  it('cleans up when the runner is sent SIGTERM', async () => {
    const c = startChild('wait');
    const run = await c.report;
    expect(namespacesWithPrefix(run.prefix).length).toBe(3);
    c.child.kill('SIGTERM');
    expect((await c.exited).signal).toBe('SIGTERM');
    await assertGone(run);
  }, 30_000);

  it('cleans up through the guardian when the runner is killed with SIGKILL', async () => {
    const c = startChild('wait');
    const run = await c.report;
    c.child.kill('SIGKILL');
    expect((await c.exited).signal).toBe('SIGKILL');
    await until(() => namespacesWithPrefix(run.prefix).length === 0 && !existsSync(run.dir), {
      what: `the guardian of ${run.prefix} to remove its namespaces and directory`,
      timeoutMs: 5_000,
    });
    await assertGone(run);
  }, 30_000);

  it('sweeps the leftovers of an unguarded runner killed with SIGKILL, and only those', async () => {
    const live = await TestBed.create({ hosts: ['a'] });
    try {
      const c = startChild('unguarded');
      const run = await c.report;
      c.child.kill('SIGKILL');
      await c.exited;
      // Without guardian, SIGKILL leaves everything behind: the sweeper's case.
      expect(namespacesWithPrefix(run.prefix).length).toBe(3);
      expect(run.pids.every((p) => alive(p))).toBe(true);
      const swept = sweepLeftovers();
      expect(swept).toContain(run.prefix);
      expect(swept).not.toContain(live.prefix);
      await assertGone(run);
      // The live bed of this process was not touched.
      expect(await live.namespaces()).toEqual([`${live.prefix}a`, `${live.prefix}sw`]);
      expect((await ping(live, 'a', live.host('a').addr, { count: 1 })).received).toBe(1);
    } finally {
      await live.teardown();
    }
  }, 30_000);
});
