import { describe, it, expect, afterAll } from '@jest/globals';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLogger } from '../../admin/logger.js';
import type { NameView } from '../../net/dns.js';
import {
  makeDev,
  mountOf,
  parseMountInfo,
  readMountInfo,
  type MountEntry,
} from '../../configfs/mountinfo.js';
import { findStale } from '../../configfs/repair.js';
import { configfsSource } from '../../configfs/content.js';
import {
  SpoolWatcher,
  parseSpoolEntry,
  removeSpoolEntry,
  writeSpoolEntry,
  type SpoolEntry,
} from '../../configfs/spool.js';
import { linkEtcNetns, unlinkEtcNetns } from '../../configfs/etc-netns.js';

const dir = mkdtempSync(join(tmpdir(), 'sn-cfs-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const view: NameView = {
  supernet: '0x4711',
  domain: '4711.sn',
  pool: '10.71.17.0/24',
  self: { name: 'a1', vip: '10.71.17.10' },
  members: [],
  resolverVip: '10.71.17.1',
  external: 'refuse',
};

describe('mountinfo', () => {
  const sample = [
    '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw',
    '30 22 0:55 / /run/supernet/configfs rw,nosuid master:7 - fuse.supernet-configfs supernet-configfs rw,user_id=0',
    '31 22 0:44 /resolv.conf /etc/resolv.conf rw - fuse.supernet-configfs supernet-configfs rw',
    '32 31 0:55 /resolv.conf /etc/resolv.conf rw - fuse.supernet-configfs supernet-configfs rw',
    '33 22 0:44 /hosts /etc/hosts rw - fuse.supernet-configfs supernet-configfs rw',
    '34 22 0:30 / /mnt/with\\040space rw - tmpfs none rw',
    'garbage line',
  ].join('\n');

  it('parses fields, optional fields and escapes; skips junk', () => {
    const t = parseMountInfo(sample);
    expect(t).toHaveLength(6);
    expect(t[1]).toMatchObject({ id: 30, parent: 22, major: 0, minor: 55, root: '/' });
    expect(t[1]!.fstype).toBe('fuse.supernet-configfs');
    expect(t[5]!.mountPoint).toBe('/mnt/with space');
  });

  it('finds the mount a path is on, the topmost of stacked ones', () => {
    const t = parseMountInfo(sample);
    expect(mountOf(t, '/etc/passwd')!.id).toBe(22);
    expect(mountOf(t, '/etc/resolv.conf')!.id).toBe(32);
    expect(mountOf(t, '/run/supernet/configfs/hosts')!.id).toBe(30);
    expect(mountOf(t, '/run/supernet/configfsx')!.id).toBe(22);
  });

  it('encodes devices as stat(2) reports them', () => {
    const self = readMountInfo('self');
    const root = mountOf(self, '/') as MountEntry;
    expect(makeDev(root.major, root.minor)).toBe(statSync('/').dev);
    const proc = mountOf(self, '/proc') as MountEntry;
    expect(makeDev(proc.major, proc.minor)).toBe(statSync('/proc').dev);
  });

  it('finds stale binds that are on top, not those already covered', () => {
    const t = parseMountInfo(sample);
    const live = makeDev(0, 55);
    const r = findStale(t, '/run/supernet/configfs', live);
    // /etc/resolv.conf is covered by a live bind (32 on 31); /etc/hosts is stale.
    expect(r.stale).toEqual([{ target: '/etc/hosts', file: '/hosts' }]);
    expect(r.liveVisible).toBe(true);
    const noLive = findStale(t.slice(0, 1).concat(t.slice(2)), '/run/supernet/configfs', live);
    expect(noLive.liveVisible).toBe(false);
  });

  it("leaves another configfs instance's binds alone (matched by mount source)", () => {
    const src = configfsSource('/run/supernet/configfs');
    expect(src).toBe('supernet-configfs@/run/supernet/configfs');
    expect(configfsSource('/odd,dir')).toMatch(/^supernet-configfs@sha256:[0-9a-f]{16}$/);
    const other = configfsSource('/tmp/other/configfs');
    const t = parseMountInfo(
      [
        '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw',
        `30 22 0:55 / /run/supernet/configfs rw master:7 - fuse.supernet-configfs ${src} rw`,
        `31 22 0:44 /resolv.conf /etc/resolv.conf rw - fuse.supernet-configfs ${src} rw`,
        `33 22 0:66 /hosts /etc/hosts rw - fuse.supernet-configfs ${other} rw`,
      ].join('\n'),
    );
    const live = makeDev(0, 55);
    expect(findStale(t, '/run/supernet/configfs', live, null, src).stale).toEqual([
      { target: '/etc/resolv.conf', file: '/resolv.conf' },
    ]);
    // Without a source every foreign bind would look stale.
    expect(findStale(t, '/run/supernet/configfs', live).stale).toHaveLength(2);
  });
});

describe('spool', () => {
  const entry: SpoolEntry = { netns: '/run/netns/snX-a1', spec: { view } };

  it('writes atomically and parses back; rejects bad keys and entries', () => {
    const d = join(dir, 'spool1');
    writeSpoolEntry(d, 'snX-a1', entry);
    const logger = new MemoryLogger();
    const text = JSON.stringify({ v: 1, ...entry });
    expect(parseSpoolEntry(text, 'k', logger)).toEqual(entry);
    expect(() => writeSpoolEntry(d, '../evil', entry)).toThrow(/spool key/);
    for (const bad of ['{', '{"v":2}', '{"v":1,"netns":"rel","spec":{}}', '{"v":1,"netns":"/x"}']) {
      expect(parseSpoolEntry(bad, 'k', logger)).toBeNull();
    }
    expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(4);
  });

  it('reports existing entries, changes, malformed files and removals', async () => {
    const d = join(dir, 'spool2');
    writeSpoolEntry(d, 'n1', entry);
    const events: [string, unknown][] = [];
    const w = new SpoolWatcher(d, (k, e) => events.push([k, e]), new MemoryLogger(), 60_000);
    w.start();
    try {
      expect(events).toEqual([['n1', entry]]);
      const next = { ...entry, spec: { view, hostname: 'x' } };
      writeSpoolEntry(d, 'n1', next);
      writeSpoolEntry(d, 'n2', entry);
      await waitFor(() => events.length >= 3);
      writeFileSync(join(d, 'n2.json'), '{broken');
      await waitFor(() => events.some(([k, e]) => k === 'n2' && e === 'invalid'));
      removeSpoolEntry(d, 'n1');
      await waitFor(() => events.some(([k, e]) => k === 'n1' && e === null));
      expect(events).toContainEqual(['n1', next]);
      expect(events).toContainEqual(['n2', entry]);
      // Rewriting the same bytes reports nothing new.
      const count = events.length;
      writeFileSync(join(d, 'n2.json'), '{broken');
      w.rescan();
      expect(events.length).toBe(count);
    } finally {
      w.stop();
    }
  });
});

describe('/etc/netns links', () => {
  it('links only files the host has, replaces wrong links, and removes only its own', () => {
    const etc = join(dir, 'etc');
    const netns = join(dir, 'netns');
    // A fake host /etc with two of the five files.
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'resolv.conf'), '');
    writeFileSync(join(etc, 'hosts'), '');
    const linked = linkEtcNetns('snX-a1', {
      mountpoint: '/run/cfs',
      etcNetnsDir: netns,
      hostEtcDir: etc,
    });
    expect(linked.sort()).toEqual(['hosts', 'resolv.conf']);
    expect(readlinkSync(join(netns, 'snX-a1', 'resolv.conf'))).toBe('/run/cfs/resolv.conf');
    linkEtcNetns('snX-a1', { mountpoint: '/run/other', etcNetnsDir: netns, hostEtcDir: etc });
    expect(readlinkSync(join(netns, 'snX-a1', 'hosts'))).toBe('/run/other/hosts');
    writeFileSync(join(netns, 'snX-a1', 'operator-file'), 'keep');
    unlinkEtcNetns('snX-a1', netns);
    expect(existsSync(join(netns, 'snX-a1', 'operator-file'))).toBe(true);
    expect(() => lstatSync(join(netns, 'snX-a1', 'hosts'))).toThrow();
    rmSync(join(netns, 'snX-a1', 'operator-file'));
    unlinkEtcNetns('snX-a1', netns);
    expect(existsSync(join(netns, 'snX-a1'))).toBe(false);
    expect(() => linkEtcNetns('../x', { mountpoint: '/m', etcNetnsDir: netns })).toThrow();
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
