/**
 * The Supernet side of bench/net.ts: the path between two nodes on two
 * simulated hosts, the host agent's memory with 10 nodes, and the admin
 * service's memory with 1,000 admitted nodes. All through the real CLI and
 * real processes (test/scenario/supernet-bed.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminClient } from '../admin/client.js';
import { Identity } from '../admin/identity.js';
import type { TestBed } from '../test/bed/bed.js';
import { SUPERNET_BIN, SupernetBed } from '../test/scenario/supernet-bed.js';
import { rssOf, type MemoryReading } from './lib/memory.js';
import type { PathEnds } from './lib/paths.js';

const SUPERNET = { id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01', '0x123'] };

/** Two nodes, a1 on h1 and c1 on h2, sharing channel 0x01. */
export async function supernet(bed: TestBed): Promise<PathEnds> {
  const sn = new SupernetBed(bed);
  await sn.allow('a1', SUPERNET.id, ['0x01']);
  await sn.allow('c1', SUPERNET.id, ['0x01']);
  await sn.startAdmin('h1');
  await sn.createSupernet(SUPERNET);
  await sn.startAgent('h1');
  await sn.startAgent('h2');
  const a1 = await sn.login({ name: 'a1', host: 'h1', supernet: SUPERNET.id, channels: ['0x01'] });
  const c1 = await sn.login({ name: 'c1', host: 'h2', supernet: SUPERNET.id, channels: ['0x01'] });
  return {
    a: { ns: a1.ns, addr: a1.vip },
    b: { ns: c1.ns, addr: c1.vip },
    notes: ['Supernet: node MTU 1420 (underlay 1500), AES-256-GCM, TSO TUN + UDP GSO/GRO'],
    async stop() {
      await sn.cli('h1', ['logout', 'a1', '--agent', sn.agentSocket('h1')], { allowFail: true });
      await sn.cli('h2', ['logout', 'c1', '--agent', sn.agentSocket('h2')], { allowFail: true });
      await sn.stopAgent('h1');
      await sn.stopAgent('h2');
      await sn.stopAdmin();
    },
  };
}

/** Resident memory of a host agent hosting 10 nodes (after a ping between each pair of neighbours). */
export async function agentMemory(bed: TestBed): Promise<MemoryReading> {
  const sn = new SupernetBed(bed);
  const names = Array.from({ length: 10 }, (_, i) => `m${i}`);
  for (const n of names) await sn.allow(n, '0x4712', ['0x01']);
  await sn.startAdmin('h1');
  await sn.createSupernet({ id: '0x4712', pool: '10.71.18.0/24', channels: ['0x01'] });
  const agent = await sn.startAgent('h2');
  const nodes = [];
  for (const n of names)
    nodes.push(await sn.login({ name: n, host: 'h2', supernet: '0x4712', channels: ['0x01'] }));
  for (let i = 0; i + 1 < nodes.length; i++) {
    await bed.run(nodes[i]!.ns, 'ping', ['-c', '2', '-i', '0.2', '-q', nodes[i + 1]!.vip], {
      allowFail: true,
    });
  }
  const m = await rssOf(agent.pid);
  for (const n of names)
    await sn.cli('h2', ['logout', n, '--agent', sn.agentSocket('h2')], { allowFail: true });
  await sn.stopAgent('h2');
  await sn.stopAdmin();
  return {
    ...m,
    count: names.length,
    note: '10 nodes of one Supernet on one host, after pings between them',
  };
}

/** Resident memory of the admin service with 1,000 admitted nodes (logins made directly over its API). */
export async function adminMemory(): Promise<MemoryReading> {
  const N = 1000;
  const dir = mkdtempSync(join(tmpdir(), 'sn-bench-admin-'));
  const policy = {
    version: 1,
    groups: {},
    supernets: {
      '0x4713': {
        rules: [{ name: 'everyone', identities: ['*'], nodes: ['*'], channels: ['0x01'] }],
      },
    },
  };
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
  const port = 17000 + Math.floor(Math.random() * 2000);
  const child = spawn(
    SUPERNET_BIN,
    [
      'admin',
      'start',
      '--state',
      dir,
      '--listen',
      `127.0.0.1:${port}`,
      '--policy',
      join(dir, 'policy.json'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.resume();
  try {
    const base = `http://127.0.0.1:${port}`;
    let info: { sign: string } | null = null;
    for (let i = 0; i < 100 && !info; i++) {
      info = await fetch(`${base}/v1/info`)
        .then((r) => r.json() as Promise<{ sign: string }>)
        .catch(() => null);
      if (!info) await new Promise((r) => setTimeout(r, 100));
    }
    if (!info) throw new Error('admin service did not start');
    const operatorToken = readFileSync(join(dir, 'operator.token'), 'utf8').trim();
    const op = new AdminClient(base, { operatorToken });
    await op.createSupernet({ id: '0x4713', pool: '10.80.0.0/22', channels: ['0x01'] });
    const client = new AdminClient(base, { adminSign: info.sign });
    for (let i = 0; i < N; i++) {
      await client.login(Identity.generate(), {
        name: `n${i}`,
        supernet: '0x4713',
        channels: ['0x01'],
        endpoint: { host: '198.18.1.1', port: 7411 },
      });
    }
    const m = await rssOf(child.pid!);
    return {
      ...m,
      count: N,
      note: `${N} nodes admitted over the HTTP API to one Supernet, one channel`,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
