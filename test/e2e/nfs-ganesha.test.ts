/**
 * The NFSv3 client and the NFS object store against Debian's nfs-ganesha,
 * run by `supernet storage serve` in a test namespace (host `prov`), used
 * from another namespace (host `cli`) over the bed's switch; host `out` is
 * not among the export's clients. Also: the encrypting volume engine over
 * this store, ganesha killed and restarted in the middle of a stream of
 * puts (retransmission, verifier check), and a clean stop that leaves
 * nothing running and nothing in the host's /run.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { TestBed, until, type BedProcess } from '../bed/bed.js';
import { NsSockets, startProvider } from './nfs-kit.js';
import { SUPERNET_BIN } from '../scenario/supernet-bed.js';
import { NfsStore } from '../../fs/store-nfs.js';
import { Nfs3Client } from '../../fs/nfs/nfs3.js';
import { readProviderStatus } from '../../fs/provider.js';
import { Volume } from '../../fs/volume.js';
import { Keyring } from '../../fs/keys.js';
import { MemoryAnchor } from '../../fs/anchor.js';
import { newId } from '../../fs/format.js';
import { MemoryLogger } from '../../admin/logger.js';

let bed: TestBed;
let provider: { proc: BedProcess; state: string };
let cli: NsSockets;
let out: NsSockets;
let exportDir: string;
let server: string;
const stores: NfsStore[] = [];
const hostRunHadRpcbind = existsSync('/run/rpcbind.sock');

const url = (): string => `nfs://${server}/export`;
const open = async (o: Parameters<typeof NfsStore.open>[1] = {}): Promise<NfsStore> => {
  const s = await NfsStore.open(url(), { connector: cli.connector(server), ...o });
  stores.push(s);
  return s;
};
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['prov', 'cli', 'out'] });
  server = bed.host('prov').addr;
  exportDir = join(bed.dir, 'export');
  provider = await startProvider(bed, 'prov', exportDir, [bed.host('cli').addr]);
  cli = await NsSockets.start(bed.host('cli').ns);
  out = await NsSockets.start(bed.host('out').ns);
}, 60_000);

afterAll(async () => {
  for (const s of stores) s.close();
  cli?.close();
  out?.close();
  await bed?.teardown();
}, 60_000);

describe('nfs-ganesha provider', () => {
  it('admits the listed client and refuses every other address at MOUNT', async () => {
    const c = await Nfs3Client.mount(
      { host: server, export: '/export' },
      { connector: cli.connector(server) },
    );
    expect((await c.getattr(c.root)).type).toBe(2);
    c.close();
    await expect(
      Nfs3Client.mount({ host: server, export: '/export' }, { connector: out.connector(server) }),
    ).rejects.toMatchObject({ code: 'EACCES', mount: true });
    // The provider's own folder name is not an export path.
    await expect(
      Nfs3Client.mount({ host: server, export: exportDir }, { connector: cli.connector(server) }),
    ).rejects.toMatchObject({ mount: true });
    // A second, independent client agrees.
    const ls = await bed.run(
      'out',
      'nfs-ls',
      [`nfs://${server}/export?version=3&nfsport=2049&mountport=20048`],
      { allowFail: true },
    );
    expect(ls.code).not.toBe(0);
    expect(ls.stderr + ls.stdout).toMatch(/ACCES|denied/i);
  });

  it('runs rpcbind only while ganesha starts, with its files in the provider state, not /run', async () => {
    const ss = await bed.run('prov', 'ss', ['-ltnH']);
    expect(ss.stdout).toMatch(/:2049\b/);
    expect(ss.stdout).toMatch(/:20048\b/);
    expect(ss.stdout).not.toMatch(/:111\b/); // rpcbind is gone again
    expect(existsSync(join(provider.state, 'run', 'rpcbind.lock'))).toBe(true);
    expect(existsSync('/run/rpcbind.sock')).toBe(hostRunHadRpcbind);
    const st = readProviderStatus(provider.state)!;
    expect(st.clients).toEqual([bed.host('cli').addr]);
    expect(st.ganeshaPid).toBeGreaterThan(0);
  });

  it('records the sockets ganesha itself listens on; a second provider in the namespace fails, not "ready"', async () => {
    // nfs-ganesha 4.3 listens on [::] whatever Bind_addr says (docs/nfs.md).
    const st = readProviderStatus(provider.state)!;
    expect(st.listening).toEqual(expect.arrayContaining(['[::]:2049', '[::]:20048']));
    const text = await bed.run(bed.host('prov').ns, SUPERNET_BIN, [
      'storage',
      'status',
      '--state',
      provider.state,
    ]);
    expect(text.stdout).toMatch(/listening on .*\[::\]:2049/);
    // A second ganesha cannot bind the ports the first holds on every address.
    // Connecting to the port would succeed (the first one answers): only the
    // check of the new ganesha's own sockets notices that it never listened.
    await bed.run(null, 'mkdir', ['-p', join(bed.dir, 'export2')]);
    const second = bed.spawn(bed.host('prov').ns, SUPERNET_BIN, [
      'storage',
      'serve',
      '--export',
      join(bed.dir, 'export2'),
      '--clients',
      bed.host('cli').addr,
      '--listen',
      server,
      '--state',
      join(bed.dir, 'provider-second'),
    ]);
    const code = await Promise.race([
      second.exited,
      new Promise<string>((r) => setTimeout(() => r('still running'), 40_000)),
    ]);
    await second.stop('SIGTERM', 10_000);
    expect(second.output()).not.toMatch(/serving nfs:/);
    expect(code).not.toBe('still running');
    expect(code).not.toBe(0);
    expect(second.output()).toMatch(/ganesha did not start listening on ports 2049 and 20048/);
    // The first provider still serves.
    const c = await Nfs3Client.mount(
      { host: server, export: '/export' },
      { connector: cli.connector(server) },
    );
    c.close();
  }, 60_000);
});

describe('NfsStore on ganesha', () => {
  it('keeps the object store contract, and the provider folder holds exactly the objects', async () => {
    const s = await open();
    expect(await s.isEmpty()).toBe(true);
    await s.init();
    const objs = new Map<string, Buffer>();
    for (const size of [0, 1, 4096, 300_000, (1 << 20) + 44, 3 << 20]) {
      const name = randomBytes(16).toString('hex');
      objs.set(name, randomBytes(size));
    }
    await Promise.all([...objs].map(([n, d]) => s.put(n, d)));
    await s.put('volume', Buffer.from('header'), true);
    for (const [n, d] of objs) expect(sha((await s.get(n))!)).toBe(sha(d));
    expect((await s.list()).sort()).toEqual([...objs.keys()].sort());
    for (const [n, d] of objs)
      expect(sha(readFileSync(join(exportDir, 'objects', n)))).toBe(sha(d));
    expect(readdirSync(exportDir).sort()).toEqual(['objects', 'volume']);
    const first = [...objs.keys()][0]!;
    await s.delete(first);
    await s.delete(first);
    expect(await s.get(first)).toBeNull();
    expect(await s.sweepTemp()).toBe(0);
    const fs = await s.statfs();
    expect(fs.blocks).toBeGreaterThan(0);
    expect(fs.bavail).toBeLessThanOrEqual(fs.blocks);
    for (const n of await s.list()) await s.delete(n);
    await s.delete('volume');
    expect(readdirSync(join(exportDir, 'objects'))).toEqual([]);
  });

  it('carries an encrypting volume: files written, committed, reopened, read back', async () => {
    const s = await open();
    const keyring = Keyring.generate(newId());
    const anchor = new MemoryAnchor();
    const v = await Volume.create(s, keyring, anchor, { uid: 0, gid: 0 });
    const data = randomBytes(700_000);
    await v.mkdir('/d', 0o755, 0, 0);
    const fd = await v.create('/d/file', 0o644, 0, 0);
    await v.write(fd, data, data.length, 0);
    await v.release(fd);
    await v.close();
    const s2 = await open();
    const v2 = await Volume.open(s2, keyring, anchor, {});
    const fd2 = await v2.open('/d/file');
    const back = Buffer.alloc(data.length);
    expect(await v2.read(fd2, back, data.length, 0)).toBe(data.length);
    expect(back.equals(data)).toBe(true);
    await v2.release(fd2);
    expect((await v2.check()).damaged).toEqual([]);
    await v2.close();
    // What the provider holds is opaque: no plaintext name or content.
    for (const n of readdirSync(join(exportDir, 'objects'))) {
      const b = readFileSync(join(exportDir, 'objects', n));
      expect(b.includes(Buffer.from('file'))).toBe(false);
      expect(b.includes(data.subarray(1000, 1032))).toBe(false);
    }
  });

  it('survives ganesha being killed and restarted during a stream of puts', async () => {
    const log = new MemoryLogger();
    // UNSTABLE + COMMIT for every put: the verifier check meets a real restart.
    const s = await open({ logger: log, syncSmall: false });
    const objs = Array.from({ length: 120 }, () => ({
      name: randomBytes(16).toString('hex'),
      data: randomBytes(256 * 1024),
    }));
    const before = readProviderStatus(provider.state)!;
    let done = 0;
    const writer = (async () => {
      for (let i = 0; i < objs.length; i += 8)
        await Promise.all(
          objs.slice(i, i + 8).map(async (o) => {
            await s.put(o.name, o.data);
            done++;
          }),
        );
    })();
    await until(async () => (done >= 16 ? true : null), {
      what: '16 puts done',
      timeoutMs: 30_000,
      intervalMs: 5,
    });
    process.kill(before.ganeshaPid!, 'SIGKILL');
    await writer;
    const after = readProviderStatus(provider.state)!;
    expect(after.ganeshaPid).not.toBe(before.ganeshaPid);
    expect(after.starts).toBe(before.starts + 1);
    expect(provider.proc.output()).toMatch(/ganesha exited unexpectedly; restarting/);
    for (const o of objs) expect(sha((await s.get(o.name))!)).toBe(sha(o.data));
    expect(s.client.counters.reconnects).toBeGreaterThanOrEqual(1);
    expect(s.client.counters.retransmits).toBeGreaterThanOrEqual(1);
    expect(await s.list()).toEqual(expect.arrayContaining(objs.map((o) => o.name)));
    process.stderr.write(
      `after the kill: ${JSON.stringify({ ...s.counters, ...s.client.counters })}\n`,
    );
    expect(await s.sweepTemp()).toBe(0);
  }, 120_000);

  it('stops cleanly on SIGTERM: ganesha and rpcbind gone, status removed', async () => {
    const st = readProviderStatus(provider.state)!;
    await provider.proc.stop('SIGTERM', 15_000);
    expect(provider.proc.output()).toMatch(/ganesha stopped/);
    expect(() => process.kill(st.ganeshaPid!, 0)).toThrow();
    expect(readProviderStatus(provider.state)).toBeNull();
    const left = await bed.run('prov', 'ss', ['-ltnH']);
    expect(left.stdout.trim()).toBe('');
    expect(existsSync('/run/rpcbind.sock')).toBe(hostRunHadRpcbind);
  }, 30_000);
});
