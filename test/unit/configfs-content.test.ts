import { describe, it, expect } from '@jest/globals';
import { MemoryLogger } from '../../admin/logger.js';
import { ManualClock } from '../../admin/clock.js';
import type { NameView } from '../../net/dns.js';
import { HOST, NodeLocator, UNKNOWN, type NsId, type NsProbe } from '../../configfs/caller.js';
import { ConfigContent, ERRNO, type FileView, type HostFiles } from '../../configfs/content.js';
import { nodeNsswitch, renderNodeFiles, type ConfigFileName } from '../../configfs/files.js';

const view: NameView = {
  supernet: '0x4711',
  domain: '4711.sn',
  pool: '10.71.17.0/24',
  self: { name: 'a1', vip: '10.71.17.10' },
  members: [
    { name: 'web', vip: '10.71.17.30' },
    { name: 'c1', vip: '10.71.17.20' },
  ],
  resolverVip: '10.71.17.1',
  external: 'refuse',
};

const HOST_NSSWITCH = `# /etc/nsswitch.conf
passwd:         files systemd
group:          files systemd
hosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname resolve
networks:       files
protocols:      db files
`;

/** Namespaces as a map pid → ns and path → ns; tests move processes between them. */
class FakeProbe implements NsProbe {
  pids = new Map<number, NsId>();
  files = new Map<string, NsId>();
  fileStats = 0;
  netnsOfPid(pid: number): NsId | null {
    return this.pids.get(pid) ?? null;
  }
  netnsOfFile(path: string): NsId | null {
    this.fileStats++;
    return this.files.get(path) ?? null;
  }
}

const ns = (ino: number): NsId => ({ dev: 4, ino });

class FakeHost implements HostFiles {
  files = new Map<string, FileView>([
    ['resolv.conf', { data: Buffer.from('nameserver 192.0.2.53\n'), mtime: 1000 }],
    ['nsswitch.conf', { data: Buffer.from(HOST_NSSWITCH), mtime: 1000 }],
  ]);
  read(name: ConfigFileName): FileView | null {
    if (name === 'hostname') throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
    return this.files.get(name) ?? null;
  }
}

describe('configfs files', () => {
  it('renders resolv.conf with the resolver and the search domain', () => {
    const f = renderNodeFiles({ view }, () => null);
    const text = f.get('resolv.conf')!.toString();
    expect(text).toMatch(/^nameserver 10\.71\.17\.1$/m);
    expect(text).toMatch(/^search 4711\.sn$/m);
    expect(text).toMatch(/^options ndots:1 timeout:1 attempts:2$/m);
    expect(text.split('\n').filter((l) => l.startsWith('nameserver'))).toHaveLength(1);
  });

  it('renders hosts with localhost, the node first, then members by name', () => {
    const lines = renderNodeFiles({ view }, () => null)
      .get('hosts')!
      .toString()
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(lines).toEqual([
      '127.0.0.1\tlocalhost',
      '10.71.17.10\ta1.4711.sn a1',
      '10.71.17.20\tc1.4711.sn c1',
      '10.71.17.30\tweb.4711.sn web',
    ]);
  });

  it('renders hostname and networks', () => {
    const f = renderNodeFiles({ view, hostname: 'a1.4711.sn' }, () => null);
    expect(f.get('hostname')!.toString()).toBe('a1.4711.sn\n');
    expect(f.get('networks')!.toString()).toMatch(/^4711\.sn\t10\.71\.17\.0$/m);
    const logger = new MemoryLogger();
    const bad = renderNodeFiles({ view, hostname: 'x\nnameserver 1.2.3.4' }, () => null, logger);
    expect(bad.get('hostname')!.toString()).toBe('a1\n');
    expect(logger.records[0]?.level).toBe('warn');
  });

  it('keeps the host nsswitch.conf except the hosts and networks sources', () => {
    const out = nodeNsswitch(HOST_NSSWITCH);
    expect(out).toMatch(/^passwd:\s+files systemd$/m);
    expect(out).toMatch(/^hosts:\s+files dns$/m);
    expect(out).not.toMatch(/mdns|myhostname|resolve/);
    expect(out).toMatch(/^protocols:\s+db files$/m);
    expect(nodeNsswitch('passwd: files\n')).toBe(
      'passwd: files\nhosts:          files dns\nnetworks:       files\n',
    );
    expect(nodeNsswitch(null)).toMatch(/^hosts:\s+files dns$/m);
  });
});

describe('NodeLocator', () => {
  it('maps callers by namespace identity, host otherwise, unknown if unreadable', () => {
    const p = new FakeProbe();
    p.files.set('/run/netns/a', ns(100));
    p.files.set('/run/netns/b', ns(200));
    p.pids.set(10, ns(100));
    p.pids.set(20, ns(200));
    p.pids.set(30, ns(1));
    const l = new NodeLocator<string>(p);
    l.set('a', '/run/netns/a');
    l.set('b', '/run/netns/b');
    expect(l.locate(10)).toBe('a');
    expect(l.locate(20)).toBe('b');
    expect(l.locate(30)).toBe(HOST);
    expect(l.locate(99)).toBe(UNKNOWN);
    // Same inode on another device is another namespace.
    p.pids.set(40, { dev: 5, ino: 100 });
    expect(l.locate(40)).toBe(HOST);
  });

  it('notices a namespace recreated under the same path, and forgets deleted nodes', () => {
    const p = new FakeProbe();
    p.files.set('/run/netns/a', ns(100));
    const l = new NodeLocator<string>(p);
    l.set('a', '/run/netns/a');
    p.files.set('/run/netns/a', ns(101));
    p.pids.set(10, ns(101));
    expect(l.locate(10)).toBe('a');
    // A process left in the old namespace is neither the node's nor the host's.
    p.pids.set(11, ns(100));
    expect(l.locate(11)).toBe(UNKNOWN);
    l.delete('a');
    expect(l.locate(10)).toBe(UNKNOWN);
    expect(l.size).toBe(0);
    // A namespace that becomes a node again is served again.
    l.set('b', '/run/netns/a');
    expect(l.locate(10)).toBe('b');
  });

  it('does not re-stat the pinned files on hits', () => {
    const p = new FakeProbe();
    p.files.set('/run/netns/a', ns(100));
    p.pids.set(10, ns(100));
    const l = new NodeLocator<string>(p);
    l.set('a', '/run/netns/a');
    const before = p.fileStats;
    for (let i = 0; i < 10; i++) l.locate(10);
    expect(p.fileStats).toBe(before);
  });
});

describe('ConfigContent', () => {
  function setup() {
    const probe = new FakeProbe();
    probe.files.set('/run/netns/a', ns(100));
    probe.files.set('/run/netns/b', ns(200));
    probe.pids.set(10, ns(100));
    probe.pids.set(20, ns(200));
    probe.pids.set(30, ns(1));
    const clock = new ManualClock(5_000);
    const logger = new MemoryLogger();
    const c = new ConfigContent({ logger, probe, clock, host: new FakeHost() });
    c.setNode('a', '/run/netns/a', { view });
    c.setNode('b', '/run/netns/b', {
      view: {
        ...view,
        supernet: '0x4712',
        domain: '4712.sn',
        pool: '10.72.0.0/24',
        resolverVip: '10.72.0.1',
        self: { name: 'b1', vip: '10.72.0.10' },
        members: [],
      },
    });
    return { c, probe, clock, logger };
  }
  const text = (v: unknown) => (v as FileView).data.toString();

  it('serves each caller its own node files, and the host its own', () => {
    const { c } = setup();
    expect(text(c.lookup(10, 'resolv.conf'))).toMatch(/nameserver 10\.71\.17\.1/);
    expect(text(c.lookup(20, 'resolv.conf'))).toMatch(/nameserver 10\.72\.0\.1/);
    expect(text(c.lookup(20, 'hosts'))).not.toMatch(/4711/);
    expect(text(c.lookup(30, 'resolv.conf'))).toBe('nameserver 192.0.2.53\n');
    expect(c.lookup(30, 'hosts')).toBeNull();
    expect(c.lookup(30, 'hostname')).toBe(ERRNO.EIO);
    expect(c.lookup(99, 'resolv.conf')).toBe(ERRNO.EACCES);
    expect(c.stats).toMatchObject({ nodeReads: 3, hostReads: 3, unknownCallers: 1, hostErrors: 1 });
    // The node's nsswitch.conf is derived from the host's.
    expect(text(c.lookup(10, 'nsswitch.conf'))).toMatch(/^passwd:\s+files systemd$/m);
  });

  it('refuses a request without a caller (pid 0, none): never the host file', () => {
    // The agent kill -9 leak: requests that reached configfs while its FUSE
    // session closed carried no caller and were served the host's files.
    const { c, probe } = setup();
    probe.pids.set(0, ns(1)); // even if pid 0 somehow had a namespace
    for (const pid of [0, -1, 1.5, Number.NaN]) {
      expect(c.lookup(pid, 'resolv.conf')).toBe(ERRNO.EACCES);
      expect(c.whoIs(pid)).toBe('unknown');
    }
    expect(c.stats).toMatchObject({ hostReads: 0, unknownCallers: 4 });
  });

  it('follows membership changes, keeping the mtime of unchanged files', () => {
    const { c, clock } = setup();
    const before = c.lookup(10, 'hosts') as FileView;
    const resolvBefore = c.lookup(10, 'resolv.conf') as FileView;
    clock.advance(60_000);
    c.setNode('a', '/run/netns/a', {
      view: { ...view, members: [...view.members, { name: 'd1', vip: '10.71.17.40' }] },
    });
    const after = c.lookup(10, 'hosts') as FileView;
    expect(after.data.toString()).toMatch(/10\.71\.17\.40\td1\.4711\.sn d1/);
    expect(after.mtime).toBe(before.mtime + 60_000);
    expect((c.lookup(10, 'resolv.conf') as FileView).mtime).toBe(resolvBefore.mtime);
  });

  it('answers EIO for a broken node instead of showing it the host files', () => {
    const { c, logger } = setup();
    c.breakNode('a');
    expect(c.lookup(10, 'resolv.conf')).toBe(ERRNO.EIO);
    c.setNode('a', '/run/netns/a', { view: { ...view, pool: 'garbage' } });
    expect(c.lookup(10, 'resolv.conf')).toBe(ERRNO.EIO);
    expect(logger.records.some((r) => r.level === 'error')).toBe(true);
    c.setNode('a', '/run/netns/a', { view });
    expect(text(c.lookup(10, 'resolv.conf'))).toMatch(/10\.71\.17\.1/);
  });

  it('denies callers left in a removed node, never showing them the host files', () => {
    const { c } = setup();
    c.removeNode('a');
    expect(c.lookup(10, 'resolv.conf')).toBe(ERRNO.EACCES);
    expect(c.whoIs(20)).toBe('b');
    expect(c.whoIs(10)).toBe('unknown');
    expect(c.whoIs(30)).toBe('host');
    expect(c.whoIs(99)).toBe('unknown');
  });
});
