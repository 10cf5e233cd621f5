/**
 * Issue 5 on the paper's Figure 6: bigdisk1 (h3) runs nfs-ganesha with
 * `supernet storage serve`, exporting one folder to the members of channel
 * 0x123 only (a1 and c1; the list follows the channel's membership); a1 (h1)
 * and c1 (h2) mount one encrypting volume from it with
 * `supernet fs mount --node NODE nfs://bigdisk1/export`, so the filesystem
 * runs inside the node and its NFS traffic crosses channel 0x123.
 *
 *  1. files written through a1's mount are read through c1's (and back);
 *     seeded random operations match a plain directory;
 *  2. the underlay carries only SNSL (no NFS in the clear); the exported
 *     folder holds only opaque objects;
 *  3. libnfs (nfs-ls, nfs-cat) in a1 sees the same objects as the provider;
 *  4. ganesha killed during a copy: the copy completes and is correct;
 *  5. expel c1 while a1 keeps writing: the admin rotates the volume's storage
 *     key group to a new epoch and names a1 to re-encrypt; a1's host agent
 *     runs `fs rekey` on the live mount with progress on the admin API; a1
 *     sees no error, and a copy of the export taken afterwards opens with
 *     nothing c1 held (volume keys come from the admin through the agents,
 *     no key files are handed around); the re-encryption survives a kill -9
 *     of the daemon doing it and the agent resumes it;
 *  6. a node outside channel 0x123 cannot reach the NFS server; a node
 *     admitted to the channel later is let in by the export, and dropped
 *     from it when expelled;
 *  7. a re-encryption whose named runner's host is down is taken over by
 *     another member's host once the runner's lease lapses.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import {
  copyFile,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rmdir,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed, ping, until } from '../bed/bed.js';
import {
  AGENT_PORT,
  SUPERNET_BIN,
  figure6,
  type LoggedIn,
  type SupernetBed,
} from '../scenario/supernet-bed.js';
import { readUdpFrames } from '../support/pcap.js';
import { readChannel } from '../../net/wire.js';
import { readProviderStatus } from '../../fs/provider.js';
import { readKeyFile } from '../../fs/keys.js';
import { DirStore } from '../../fs/store.js';
import { Volume } from '../../fs/volume.js';
import { MemoryAnchor } from '../../fs/anchor.js';
import { objectEpoch } from '../../fs/format.js';
import { volumeKeysDir } from '../../fs/cli-storage.js';

let bed: TestBed;
let sn: SupernetBed;
let nodes: Map<string, LoggedIn>;
let providerState: string;
let exportDir: string;
let url: string;
let key: string;
const mounted = new Set<string>();
const node = (n: string): LoggedIn => nodes.get(n)!;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const HOST_OF: Record<string, string> = { a1: 'h1', c1: 'h2', d1: 'h2', bigdisk1: 'h3' };
const LEASE_MS = 8_000;

/** `supernet ARGS` in a host namespace, sharing the machine's mounts (FUSE visible to the test). */
async function cli(host: string, args: string[], allowFail = false, env?: Record<string, string>) {
  return bed.run(bed.host(host).ns, SUPERNET_BIN, args, {
    mounts: 'shared',
    allowFail,
    timeoutMs: 120_000,
    env,
  });
}

/** The volume's record on the admin service (storage roles, re-encryption progress). */
async function volumeRecord(): Promise<{ members: string[]; reencrypt: Record<string, unknown> }> {
  const r = await sn.cli(null, ['storage-role', 'list', '0x4711', '--json']);
  const vols = JSON.parse(r.stdout) as Array<{
    volume: string;
    members: string[];
    reencrypt: Record<string, unknown>;
  }>;
  return vols.find((v) => v.volume === 'vol1')!;
}

async function mountIn(n: string, mnt: string): Promise<void> {
  await mkdir(mnt, { recursive: true });
  await cli(HOST_OF[n]!, [
    'fs',
    'mount',
    '--node',
    n,
    '--agent',
    sn.agentSocket(HOST_OF[n]!),
    url,
    mnt,
    '--volume',
    'vol1',
    '--state',
    join(bed.dir, `fs-state-${n}`),
  ]);
  mounted.add(mnt);
}

async function unmountFrom(n: string, mnt: string): Promise<void> {
  await cli(HOST_OF[n]!, ['fs', 'unmount', mnt]);
  mounted.delete(mnt);
}

/** Mounts the volume in node `n`, runs `fn`, and unmounts also when it fails. */
async function withMount<T>(n: string, fn: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = join(bed.dir, `mnt-${n}`);
  await mountIn(n, mnt);
  try {
    return await fn(mnt);
  } finally {
    await unmountFrom(n, mnt);
  }
}

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  // A short lease of the re-encrypting member, so the hand-over test need not wait a minute.
  ({ sn, nodes } = await figure6(bed, { storageLeaseMs: LEASE_MS }));
  exportDir = join(bed.dir, 'bigdisk1-export');
  providerState = join(bed.dir, 'bigdisk1-provider');
  await mkdir(exportDir, { recursive: true });
  await sn.serveStorage('h3', 'bigdisk1', {
    exportDir,
    clients: 'channel:0x123',
    state: providerState,
  });
  url = 'nfs://bigdisk1/export';
  // a1 and c1 hold the storage role of the volume (admin records, audited).
  for (const n of ['a1', 'c1']) await sn.cli(null, ['storage-role', 'grant', '0x4711', 'vol1', n]);
  // The volume keys come from the admin's storage key group through each host's agent.
  key = join(volumeKeysDir(), '0x4711-a1-vol1.json');
  const init = await cli('h1', [
    'fs',
    'init',
    '--node',
    'a1',
    '--agent',
    sn.agentSocket('h1'),
    url,
    '--volume',
    'vol1',
    '--state',
    join(bed.dir, 'fs-state-a1'),
  ]);
  expect(init.stdout).toMatch(/^volume [0-9a-f]{32}/);
}, 180_000);

afterAll(async () => {
  for (const m of mounted) await bed.run(null, 'fusermount', ['-u', m], { allowFail: true });
  await bed?.teardown();
  // The volume keys the agents handed to the fs commands.
  for (const n of ['a1', 'c1'])
    await unlink(join(volumeKeysDir(), `0x4711-${n}-vol1.json`)).catch(() => {});
}, 60_000);

describe('outsourced storage on Figure 6', () => {
  it('the provider exports only to channel 0x123 (a1 and c1), on its virtual address', () => {
    const st = readProviderStatus(providerState)!;
    expect(st.listen).toBe(node('bigdisk1').vip);
    expect(st.clients.sort()).toEqual([node('a1').vip, node('c1').vip].sort());
  });

  it('a1 writes, c1 reads and writes, a1 reads back; the mount is visible inside the node', async () => {
    const big = randomBytes(3 << 20);
    await withMount('a1', async (m) => {
      await mkdir(join(m, 'docs'));
      await writeFile(join(m, 'docs', 'plan.txt'), 'written by a1\n');
      await writeFile(join(m, 'big.bin'), big);
      // A stock program inside a1 sees the mount.
      const cat = await sn.exec('h1', 'a1', ['cat', join(m, 'docs', 'plan.txt')]);
      expect(cat.stdout).toBe('written by a1\n');
    });
    await withMount('c1', async (m) => {
      expect(await readFile(join(m, 'docs', 'plan.txt'), 'utf8')).toBe('written by a1\n');
      expect(sha(await readFile(join(m, 'big.bin')))).toBe(sha(big));
      await writeFile(join(m, 'docs', 'reply.txt'), 'c1 was here\n');
    });
    await withMount('a1', async (m) => {
      expect(await readFile(join(m, 'docs', 'reply.txt'), 'utf8')).toBe('c1 was here\n');
      expect((await readdir(join(m, 'docs'))).sort()).toEqual(['plan.txt', 'reply.txt']);
    });
  }, 120_000);

  it('seeded random operations through the mount match a plain directory', async () => {
    const plain = join(bed.dir, 'plain');
    await mkdir(plain, { recursive: true });
    await withMount('a1', async (m) => {
      await rmTree(m, ['docs', 'big.bin']);
      const r = rng(0x4711);
      const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
      const files = ['f0', 'f1', 'f2', 'd0/g0', 'd0/g1', 'd1/h0'];
      const dirs = ['d0', 'd1'];
      const outcome = async (p: Promise<unknown>): Promise<string> => {
        try {
          const v = await p;
          return 'ok:' + JSON.stringify(v ?? null);
        } catch (e) {
          return 'err:' + (e as NodeJS.ErrnoException).code;
        }
      };
      for (let step = 0; step < 300; step++) {
        const x = r();
        const f = pick(files);
        let op: (root: string) => Promise<unknown>;
        if (x < 0.35) {
          const pos = Math.floor(r() * (2 << 20));
          const data = randomBytesSeeded(r, Math.floor(r() * 300_000));
          op = async (root) => {
            const fh = await open(join(root, f), 'a+').then(async (h) => {
              await h.close();
              return open(join(root, f), 'r+');
            });
            try {
              await fh.write(data, 0, data.length, pos);
            } finally {
              await fh.close();
            }
          };
        } else if (x < 0.55) {
          const pos = Math.floor(r() * (1 << 20));
          const len = Math.floor(r() * 400_000);
          op = async (root) => {
            const fh = await open(join(root, f), 'r');
            try {
              const b = Buffer.alloc(len);
              const { bytesRead } = await fh.read(b, 0, len, pos);
              return sha(b.subarray(0, bytesRead));
            } finally {
              await fh.close();
            }
          };
        } else if (x < 0.65) {
          const size = Math.floor(r() * (3 << 20));
          op = (root) => truncate(join(root, f), size);
        } else if (x < 0.75) {
          const g = pick(files);
          op = (root) => rename(join(root, f), join(root, g));
        } else if (x < 0.8) op = (root) => unlink(join(root, f));
        else if (x < 0.86) {
          const d = pick(dirs);
          op = (root) => mkdir(join(root, d));
        } else if (x < 0.9) {
          const d = pick(dirs);
          op = (root) => rmdir(join(root, d));
        } else
          op = async (root) => {
            const st = await stat(join(root, f));
            return [st.size, st.isFile()];
          };
        const a = await outcome(op(m));
        const b = await outcome(op(plain));
        if (a !== b) throw new Error(`step ${step}: mount ${a} vs plain ${b}`);
      }
      expect(await tree(m)).toEqual(await tree(plain));
    });
    const want = await tree(plain);
    await withMount('c1', async (m) => expect(await tree(m)).toEqual(want));
    const check = await cli('h1', [
      'fs',
      'check',
      '--node',
      'a1',
      '--agent',
      sn.agentSocket('h1'),
      url,
      '--volume',
      'vol1',
      '--state',
      join(bed.dir, 'fs-state-a1'),
    ]);
    expect(check.stdout).toContain('volume is consistent');
  }, 300_000);

  it('the underlay carries only SNSL; the provider holds only opaque objects', async () => {
    const cap = join(bed.dir, 'h3-underlay.pcap');
    // Everything on h3's wire except the agent's admin HTTP session and ARP.
    const dump = bed.spawn(bed.host('h3').ns, 'tcpdump', [
      '-i',
      'eth0',
      '-U',
      '-w',
      cap,
      'ip and not (tcp port 7400)',
    ]);
    await dump.waitForOutput(/listening on/, 10_000);
    const secret = Buffer.from('TOP-SECRET-PLAN-' + 'x'.repeat(5000));
    await withMount('a1', (m) => writeFile(join(m, 'secret-name-of-a-file.txt'), secret));
    await new Promise((res) => setTimeout(res, 300));
    await dump.stop('SIGINT');
    const frames = readUdpFrames(cap);
    expect(frames.length).toBeGreaterThan(20);
    for (const f of frames) {
      expect([f.sport, f.dport]).toContain(AGENT_PORT);
      if (f.src === bed.host('h1').addr || f.dst === bed.host('h1').addr)
        expect(readChannel(f.payload, 0)).toBe(0x123);
      expect(f.payload.includes(Buffer.from('TOP-SECRET'))).toBe(false);
    }
    const raw = readFileSync(cap);
    expect(raw.includes(Buffer.from('TOP-SECRET'))).toBe(false);
    expect(raw.includes(Buffer.from('secret-name-of-a-file'))).toBe(false);
    // The exported folder: volume header, superblock, objects with hex names.
    expect(readdirSync(exportDir).sort()).toEqual(['objects', 'superblock', 'volume']);
    for (const n of readdirSync(join(exportDir, 'objects'))) {
      expect(n).toMatch(/^[0-9a-f]{32}$/);
      const b = readFileSync(join(exportDir, 'objects', n));
      expect(b.includes(Buffer.from('TOP-SECRET'))).toBe(false);
      expect(b.includes(Buffer.from('secret-name'))).toBe(false);
    }
  }, 120_000);

  it('libnfs in a1 (a second, independent NFS client) sees the same opaque objects', async () => {
    const base = `nfs://${node('bigdisk1').vip}/export`;
    const q = '?version=3&nfsport=2049&mountport=20048';
    const ls = await sn.exec('h1', 'a1', ['nfs-ls', `${base}/objects${q}`], { timeoutMs: 30_000 });
    const names = ls.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop()!)
      .filter((n) => /^[0-9a-f]{32}$/.test(n))
      .sort();
    expect(names).toEqual(readdirSync(join(exportDir, 'objects')).sort());
    const one = names[0]!;
    const out = join(bed.dir, 'nfs-cp-copy');
    await sn.exec('h1', 'a1', ['nfs-cp', `${base}/objects/${one}${q}`, out], { timeoutMs: 30_000 });
    expect(sha(readFileSync(out))).toBe(sha(readFileSync(join(exportDir, 'objects', one))));
    const sb = await sn.exec('h1', 'a1', ['nfs-cat', `${base}/volume${q}`], { timeoutMs: 30_000 });
    expect(sb.stdout.startsWith('SNFSVOL1')).toBe(true);
  }, 60_000);

  it('ganesha killed during a copy: the copy completes and is correct after a remount', async () => {
    const src = join(bed.dir, 'copy-source.bin');
    await writeFile(src, randomBytes(32 << 20));
    await withMount('a1', async (m) => {
      const before = readProviderStatus(providerState)!;
      const copy = copyFile(src, join(m, 'copy.bin'));
      // Kill it once the copy is well under way.
      await until(
        async () => ((await stat(join(m, 'copy.bin')).catch(() => null))?.size ?? 0) > 8 << 20,
        { what: 'copy under way', timeoutMs: 60_000, intervalMs: 50 },
      );
      process.kill(before.ganeshaPid!, 'SIGKILL');
      await copy;
      const fh = await open(join(m, 'copy.bin'), 'r+');
      await fh.sync(); // commits the volume through the restarted server
      await fh.close();
      const after = readProviderStatus(providerState)!;
      expect(after.ganeshaPid).not.toBe(before.ganeshaPid);
      expect(sha(await readFile(join(m, 'copy.bin')))).toBe(sha(await readFile(src)));
      // The mount's NFS client says what it went through.
      const st = JSON.parse((await cli('h1', ['fs', 'status', m, '--json'])).stdout) as {
        backing: string;
        store: Record<string, number>;
      };
      expect(st.backing).toMatch(/^nfs:\/\//);
      expect(st.store.reconnects).toBeGreaterThanOrEqual(1);
      expect(st.store.puts).toBeGreaterThan(0);
      expect(st.store.calls).toBeGreaterThan(st.store.puts);
      const text = (await cli('h1', ['fs', 'status', m])).stdout;
      expect(text).toContain(`${m}: nfs://`);
      expect(text).toMatch(/store: .*reconnects [1-9]/);
    });
    const want = sha(await readFile(src));
    await withMount('c1', async (m) => expect(sha(await readFile(join(m, 'copy.bin')))).toBe(want));
  }, 240_000);

  it('expel c1 while a1 keeps writing: re-encryption completes, a1 sees no error, c1 decrypts nothing', async () => {
    // Everything c1's host ever held: the keyring its agent handed to c1's mounts.
    const c1Keys = join(bed.dir, 'c1-held-keys.json');
    await copyFile(join(volumeKeysDir(), '0x4711-c1-vol1.json'), c1Keys);
    const before = await readKeyFile(c1Keys);
    const errors: string[] = [];
    let stop = false;
    let written = 0;
    const expected = new Map<string, Buffer>();
    const m = join(bed.dir, 'mnt-a1');
    await withMount('a1', async () => {
      await mkdir(join(m, 'live'), { recursive: true });
      for (let i = 0; i < 8; i++) await writeFile(join(m, 'live', `pre${i}`), randomBytes(1 << 20));
      const writer = (async () => {
        const r = rng(7);
        while (!stop) {
          const name = `w${written++}`;
          const data = randomBytesSeeded(r, 20_000 + Math.floor(r() * 200_000));
          try {
            await writeFile(join(m, 'live', name), data);
            expected.set(name, data);
            if (written % 10 === 0) {
              const fh = await open(join(m, 'live', name), 'r+');
              await fh.sync();
              await fh.close();
            }
          } catch (e) {
            errors.push(`${name}: ${(e as Error).message}`);
          }
        }
      })();
      // Only the expulsion: the admin revokes c1's storage role, rotates the
      // volume's key group to epoch 2 and names a1 to re-encrypt; a1's agent runs it.
      await sn.cli(null, ['expel', '0x4711', 'c1']);
      const seen = new Set<string>();
      await until(
        async () => {
          const rec = await volumeRecord();
          seen.add(String(rec.reencrypt.state));
          return rec.reencrypt.state === 'done';
        },
        { what: 're-encryption by a1 to finish', timeoutMs: 180_000, intervalMs: 200 },
      );
      const rec = await volumeRecord();
      expect(rec.members).toEqual(['a1']);
      expect(seen.has('running') || seen.has('needed')).toBe(true);
      expect(rec.reencrypt.total).toBeGreaterThan(0);
      expect(rec.reencrypt.done).toBe(rec.reencrypt.total);
      expect((rec as { keyEpochs?: number[] }).keyEpochs).toEqual([2]);
      // The export follows the channel: c1's address is no longer admitted.
      await until(() => readProviderStatus(providerState)?.clients.join() === node('a1').vip, {
        what: "the provider to drop c1's address",
        timeoutMs: 20_000,
      });
      stop = true;
      await writer;
      expect(errors).toEqual([]);
      expect(written).toBeGreaterThan(5);
      for (const [n, d] of expected) expect(sha(await readFile(join(m, 'live', n)))).toBe(sha(d));
    });
    // c1's host takes a full copy of the export after completion.
    const copy = join(bed.dir, 'c1-export-copy');
    await bed.run(null, 'cp', ['-a', exportDir, copy]);
    const after = await readKeyFile(key);
    expect([...after.keys.keys()]).toEqual([2]);
    expect([...before.keys.keys()]).toEqual([1]);
    const store = new DirStore(copy);
    // The old keys open no volume …
    await expect(Volume.open(store, before, new MemoryAnchor())).rejects.toMatchObject({
      kind: 'wrong-key',
    });
    // … and no object: every one is sealed under epoch 2, whose key c1 never had.
    const names = await store.list();
    expect(names.length).toBeGreaterThan(20);
    for (const n of [...names, 'superblock']) {
      const data = (await store.get(n))!;
      expect(objectEpoch(data)).toBe(2);
      expect(before.key(objectEpoch(data)!)).toBeNull();
    }
    // The remaining members' key opens all of it.
    const v = await Volume.open(store, after, new MemoryAnchor(), { readOnly: true });
    const rep = await v.check();
    expect(rep.damaged).toEqual([]);
    await v.close();
  }, 240_000);

  it('re-encryption survives a kill -9 of the process doing it, and resumes', async () => {
    const m = join(bed.dir, 'mnt-a1');
    const state = join(bed.dir, 'fs-state-a1');
    const want = sha(await readFile(join(bed.dir, 'copy-source.bin')));
    await mountIn('a1', m);
    // d1 holds the role but never came online; revoking it rotates to epoch 3.
    await sn.cli(null, ['storage-role', 'grant', '0x4711', 'vol1', 'd1']);
    await sn.cli(null, ['storage-role', 'revoke', '0x4711', 'vol1', 'd1']);
    await until(
      async () => {
        const r = (await volumeRecord()).reencrypt;
        return r.state === 'running' && Number(r.done) > 0 && Number(r.done) < Number(r.total);
      },
      { what: 'the re-encryption to epoch 3 to be under way', timeoutMs: 120_000, intervalMs: 100 },
    );
    const daemon = JSON.parse(readFileSync(join(state, 'mount.json'), 'utf8')) as { pid: number };
    process.kill(daemon.pid, 'SIGKILL');
    // Until its (new) parent reaps it, a killed daemon is a zombie that
    // kill(pid, 0) still finds, and the mount looks busy.
    await until(
      () => {
        try {
          process.kill(daemon.pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { what: 'the killed daemon to be reaped', timeoutMs: 20_000 },
    );
    await until(async () => (await volumeRecord()).reencrypt.state === 'failed', {
      what: 'the failure to be reported',
      timeoutMs: 60_000,
    });
    // The dead daemon's mount goes away (autoUnmount); a1's agent resumes
    // the re-encryption by itself (on the unmounted volume), then a1 mounts again.
    await until(async () => !readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${m} `), {
      what: 'the dead mount to go',
      timeoutMs: 20_000,
    }).catch(() => bed.run(null, 'fusermount', ['-uz', m], { allowFail: true }));
    mounted.delete(m);
    await until(async () => (await volumeRecord()).reencrypt.state === 'done', {
      what: 'the resumed re-encryption to finish',
      timeoutMs: 180_000,
      intervalMs: 200,
    });
    await withMount('a1', async (mnt) => {
      expect(sha(await readFile(join(mnt, 'copy.bin')))).toBe(want);
    });
    expect((await volumeRecord()) as { keyEpochs?: number[] }).toMatchObject({ keyEpochs: [3] });
    expect([...(await readKeyFile(key)).keys.keys()]).toEqual([3]);
    const store = new DirStore(exportDir);
    for (const n of await store.list()) expect(objectEpoch((await store.get(n))!)).toBe(3);
  }, 300_000);

  it('a node outside channel 0x123 cannot reach the NFS server at all', async () => {
    await admitOnH2('x1', ['0x01']);
    // x1 shares channel 0x01 with a1 (so its network works) but not 0x123 with bigdisk1.
    expect((await ping(sn.bed, node('x1').ns, node('a1').vip, { count: 2 })).lossPct).toBe(0);
    expect((await ping(sn.bed, node('x1').ns, node('bigdisk1').vip, { count: 1 })).lossPct).toBe(
      100,
    );
    const r = await nfsLsFrom('x1', true);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toMatch(/objects/);
  }, 60_000);

  it('a node admitted to channel 0x123 later is let in by the export', async () => {
    await admitOnH2('d1', ['0x123']);
    const vip = node('d1').vip;
    // Not in the list ganesha started with: admitted by a reload while serving.
    await until(() => readProviderStatus(providerState)?.clients.includes(vip) ?? false, {
      what: "the provider to admit d1's address",
      timeoutMs: 20_000,
    });
    const st = readProviderStatus(providerState)!;
    expect(st.clients.sort()).toEqual([node('a1').vip, vip].sort());
    const ls = await nfsLsFrom('d1', false);
    expect(ls.stdout).toMatch(/objects/);
    // Same ganesha throughout: the change was a reload, not a restart.
    expect(readProviderStatus(providerState)!.ganeshaPid).toBe(st.ganeshaPid);
  }, 90_000);

  it("a re-encryption whose runner's host is down is taken over by another member", async () => {
    // d1 (h2) becomes a member and mounts once, so h2's agent knows where vol1 lives;
    // x1 holds the role only to be revoked.
    for (const n of ['d1', 'x1'])
      await sn.cli(null, ['storage-role', 'grant', '0x4711', 'vol1', n]);
    await withMount('d1', async (m) => {
      await writeFile(join(m, 'from-d1.txt'), 'd1 was here\n');
    });
    // a1's host agent stops answering (frozen: its host is down as far as anyone can tell).
    const agent1 = sn.agents.get('h1')!;
    process.kill(-agent1.pid, 'SIGSTOP');
    try {
      await sn.cli(null, ['storage-role', 'revoke', '0x4711', 'vol1', 'x1']);
      const first = await volumeRecord();
      // The first remaining member by name is a1, whose agent cannot run it.
      expect(first.reencrypt).toMatchObject({ state: 'needed', by: 'a1', epoch: 4 });
      const runners = new Set<string>();
      await until(
        async () => {
          const rec = await volumeRecord();
          if (rec.reencrypt.by) runners.add(String(rec.reencrypt.by));
          return rec.reencrypt.state === 'done';
        },
        { what: 'the re-encryption to finish without a1', timeoutMs: 120_000, intervalMs: 200 },
      );
      expect(runners.has('d1')).toBe(true);
      const audit = JSON.parse((await sn.cli(null, ['audit', '--json'])).stdout) as {
        entries: Array<{ action: string; node: string | null; detail: Record<string, unknown> }>;
      };
      const claim = audit.entries.filter((e) => e.action === 'storage-reencrypt-claimed');
      expect(claim.at(-1)).toMatchObject({ node: 'd1', detail: { volume: 'vol1', from: 'a1' } });
    } finally {
      process.kill(-agent1.pid, 'SIGCONT');
    }
    expect((await volumeRecord()) as { keyEpochs?: number[] }).toMatchObject({ keyEpochs: [4] });
    const store = new DirStore(exportDir);
    for (const n of await store.list()) expect(objectEpoch((await store.get(n))!)).toBe(4);
    // a1 reads everything, d1's file included, with the new keys.
    await withMount('a1', async (m) => {
      expect(await readFile(join(m, 'from-d1.txt'), 'utf8')).toBe('d1 was here\n');
    });
  }, 240_000);

  it('an expelled node is dropped from the export; the thawed runner re-encrypts again', async () => {
    const vip = node('d1').vip;
    await sn.cli(null, ['expel', '0x4711', 'd1']);
    await until(() => !(readProviderStatus(providerState)?.clients.includes(vip) ?? true), {
      what: "the provider to drop d1's address",
      timeoutMs: 20_000,
    });
    // d1's storage role went with it: a1's agent (answering again) re-encrypts to epoch 5.
    await until(async () => (await volumeRecord()).reencrypt.state === 'done', {
      what: 're-encryption by a1 after expelling d1',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    expect(await volumeRecord()).toMatchObject({ members: ['a1'], keyEpochs: [5] });
  }, 180_000);
});

/** Allows node `name` in `channels` and logs it in on h2. */
async function admitOnH2(name: string, channels: string[]): Promise<void> {
  await sn.allow(name, '0x4711', channels);
  await new Promise((r) => setTimeout(r, 1500)); // policy hot reload
  nodes.set(name, await sn.login({ name, host: 'h2', supernet: '0x4711', channels }));
}

/** libnfs `nfs-ls` of bigdisk1's export, run inside node `n` on h2 (5 s at most). */
function nfsLsFrom(n: string, allowFail: boolean) {
  const url = `nfs://${node('bigdisk1').vip}/export?version=3&nfsport=2049&mountport=20048`;
  return sn.exec('h2', n, ['timeout', '5', 'nfs-ls', url], { allowFail, timeoutMs: 30_000 });
}

/** Removes `names` under `root` (recursively). */
async function rmTree(root: string, names: string[]): Promise<void> {
  const { rm } = await import('node:fs/promises');
  for (const n of names) await rm(join(root, n), { recursive: true, force: true });
}

async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await stat(p);
      if (st.isDirectory()) {
        out[`${rel}/${name}`] = 'dir';
        await walk(p, `${rel}/${name}`);
      } else out[`${rel}/${name}`] = `${st.size} ${sha(await readFile(p))}`;
    }
  };
  await walk(root, '');
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function randomBytesSeeded(r: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4096) b.fill(Math.floor(r() * 256), i, Math.min(n, i + 4096));
  return b;
}
