/**
 * Shared set-up of the configfs end-to-end tests: two node namespaces of two
 * Supernets (the test bed's hosts serve as node namespaces), a spool
 * directory, /etc/netns links, and the configfs process itself
 * (`supernet configfs run`), started the way the host agent starts it.
 */
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestBed, until, type BedProcess } from '../bed/bed.js';
import type { NameView } from '../../net/dns.js';
import { linkEtcNetns, unlinkEtcNetns, ETC_NETNS_DIR } from '../../configfs/etc-netns.js';
import { writeSpoolEntry } from '../../configfs/spool.js';
import { readMountInfo } from '../../configfs/mountinfo.js';
import { FS_SUBTYPE } from '../../configfs/content.js';

const here = dirname(fileURLToPath(import.meta.url));
export const CLI = join(here, '..', '..', 'bin', 'supernet.js');

export function viewA(extra: NameView['members'] = []): NameView {
  return {
    supernet: '0x4711',
    domain: '4711.sn',
    pool: '10.71.17.0/24',
    serial: 1,
    self: { name: 'a1', vip: '10.71.17.10' },
    members: [{ name: 'c1', vip: '10.71.17.20' }, ...extra],
    resolverVip: '10.71.17.1',
    external: 'refuse',
  };
}

export function viewB(): NameView {
  return {
    supernet: '0x4712',
    domain: '4712.sn',
    pool: '10.72.5.0/24',
    serial: 1,
    self: { name: 'b1', vip: '10.72.5.10' },
    members: [{ name: 'c1', vip: '10.72.5.20' }],
    resolverVip: '10.72.5.1',
    external: 'refuse',
  };
}

export interface Kit {
  bed: TestBed;
  /** Node namespaces. */
  a: string;
  b: string;
  mnt: string;
  spool: string;
  daemon: BedProcess;
  /** Starts (again) the configfs process and waits until it serves node a. */
  start(): Promise<BedProcess>;
  teardown(): Promise<void>;
}

/** True while a live configfs is mounted at `mnt` (seen from this process's mount table). */
export function mounted(mnt: string): boolean {
  return readMountInfo('self').some(
    (e) => e.mountPoint === mnt && e.fstype === `fuse.${FS_SUBTYPE}`,
  );
}

export async function setUp(): Promise<Kit> {
  const bed = await TestBed.create({ hosts: ['a', 'b'] });
  const a = bed.host('a').ns;
  const b = bed.host('b').ns;
  const mnt = join(bed.dir, 'configfs');
  const spool = join(bed.dir, 'spool');
  const kit: Kit = {
    bed,
    a,
    b,
    mnt,
    spool,
    daemon: null as unknown as BedProcess,
    async start() {
      const p = bed.spawn(null, process.execPath, [
        CLI,
        'configfs',
        'run',
        '--mount',
        mnt,
        '--spool',
        spool,
        '--log-level',
        'debug',
      ]);
      kit.daemon = p;
      await until(() => mounted(mnt), { what: 'configfs mounted', timeoutMs: 10_000 });
      await until(
        async () =>
          (await bed.run(a, 'cat', ['/etc/resolv.conf'], { allowFail: true })).stdout.includes(
            'nameserver 10.71.17.1',
          ),
        { what: 'node a served', timeoutMs: 10_000 },
      );
      return p;
    },
    async teardown() {
      try {
        await kit.daemon?.stop('SIGTERM', 5000);
        // configfs made the mount point's parent (the bed's dir) a shared bind mount.
        for (const m of [mnt, bed.dir]) {
          for (let i = 0; i < 4 && readMountInfo('self').some((e) => e.mountPoint === m); i++) {
            await bed.run(null, 'umount', ['-l', m], { allowFail: true });
          }
        }
      } finally {
        for (const ns of [a, b]) unlinkEtcNetns(ns);
        await bed.teardown();
        rmSync(join(ETC_NETNS_DIR, a), { recursive: true, force: true });
        rmSync(join(ETC_NETNS_DIR, b), { recursive: true, force: true });
      }
    },
  };
  writeSpoolEntry(spool, a, { netns: `/run/netns/${a}`, spec: { view: viewA() } });
  writeSpoolEntry(spool, b, { netns: `/run/netns/${b}`, spec: { view: viewB() } });
  for (const ns of [a, b]) linkEtcNetns(ns, { mountpoint: mnt });
  return kit;
}
