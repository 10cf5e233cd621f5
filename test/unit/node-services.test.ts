/**
 * The agent's DNS/configfs glue without an agent (net/node-services.ts,
 * net/configfs-supervisor.ts, net/node-exec.ts): views from configs, the
 * packet hook answering through a fake TUN, spool entries and /etc/netns
 * links in a temporary directory, the supervisor's restart loop with a
 * stand-in program, and the exec wrapper's argv and configfs check.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { MemoryLogger } from '../../admin/logger.js';
import type { NodeConfig } from '../../admin/protocol.js';
import { NodeServices, nameViewOf } from '../../net/node-services.js';
import { ConfigfsSupervisor } from '../../net/configfs-supervisor.js';
import { configfsState, nodeExecArgv, MASKED_DIRS } from '../../net/node-exec.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { buildUdpReply, parseUdp } from '../../net/udp-packet.js';
import { listSpool } from '../../configfs/spool.js';

const dir = mkdtempSync(join(tmpdir(), 'sn-node-services-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(serial: number, members: Array<[string, string]>): NodeConfig {
  return {
    type: 'node-config',
    v: 1,
    supernet: '0x4711',
    serial,
    issuedAt: 0,
    node: { name: 'a1', id: 'x', vip: '10.71.17.10', prefixLen: 24, channels: ['0x01'] },
    pool: '10.71.17.0/24',
    members: members.map(([name, vip]) => ({
      name,
      id: name,
      vip,
      channels: ['0x01'],
      endpoint: null,
      expiresAt: 0,
    })),
    keys: [],
    graceMs: 1000,
    varpTtlMs: 60_000,
  };
}

/** An IPv4/UDP query from the node to the resolver (checksums computed). */
function query(name: string, src = '10.71.17.10', dst = '10.71.17.1'): Buffer {
  const payload = dnsPacket.encode({
    type: 'query',
    id: 77,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: 'A', class: 'IN' }],
  });
  const out = new Uint8Array(1500);
  // buildUdpReply swaps ends: describe the packet as the reply to one from dst.
  const n = buildUdpReply(
    out,
    0,
    { src: parseIpv4(dst), dst: parseIpv4(src), sport: 53, dport: 40000 },
    payload,
  );
  return Buffer.from(out.subarray(0, n));
}

class FakeTun {
  readonly sent: Buffer[] = [];
  write(buf: Uint8Array, off: number, len: number): boolean {
    this.sent.push(Buffer.from(buf.subarray(off, off + len)));
    return true;
  }
}

/** dns-packet decodes the rcode; its type declarations omit it. */
type Reply = dnsPacket.DecodedPacket & { rcode: string };

function answerOf(pkt: Buffer): Reply {
  const u = parseUdp(pkt, 0, pkt.length)!;
  return dnsPacket.decode(pkt.subarray(u.payloadOff, u.payloadOff + u.payloadLen)) as Reply;
}

describe('nameViewOf', () => {
  it('derives domain, resolver address (pool .1) and members from the config', () => {
    const v = nameViewOf(config(3, [['c1', '10.71.17.20']]));
    expect(v).toEqual({
      supernet: '0x4711',
      domain: '4711.sn.internal',
      pool: '10.71.17.0/24',
      serial: 3,
      self: { name: 'a1', vip: '10.71.17.10' },
      members: [{ name: 'c1', vip: '10.71.17.20' }],
      resolverVip: '10.71.17.1',
      external: 'refuse',
    });
    expect(nameViewOf(config(1, []), 'corp.internal', { forward: ['192.0.2.1'] })).toMatchObject({
      domain: '4711.corp.internal',
      external: { forward: ['192.0.2.1'] },
    });
  });
});

describe('NodeServices', () => {
  const mountpoint = join(dir, 'mnt');
  const spoolDir = join(dir, 'spool');
  const etcNetnsDir = join(dir, 'etc-netns');
  const make = (): NodeServices =>
    new NodeServices({
      logger: new MemoryLogger(),
      checkUdpChecksum: true,
      configfs: { mountpoint, spoolDir, etcNetnsDir, supervise: false },
    });

  it('answers queries to the resolver address through the node TUN and follows config changes', () => {
    const s = make();
    const tun = new FakeTun();
    const hook = s.node('snT-a1', config(1, [['c1', '10.71.17.20']]), tun)!;
    expect(hook.vip).toBe(parseIpv4('10.71.17.1'));
    const q = query('c1.4711.sn.internal');
    expect(hook.handle(q, 0, q.length)).toBe(true);
    expect(answerOf(tun.sent[0]!).answers?.[0]).toMatchObject({ data: '10.71.17.20' });
    // A new config: same hook object, new view.
    const again = s.node('snT-a1', config(2, [['d1', '10.71.17.30']]), tun);
    expect(again).toBe(hook);
    const q2 = query('d1.4711.sn.internal');
    hook.handle(q2, 0, q2.length);
    expect(answerOf(tun.sent[1]!).answers?.[0]).toMatchObject({ data: '10.71.17.30' });
    hook.handle(q, 0, q.length);
    expect(answerOf(tun.sent[2]!).rcode).toBe('NXDOMAIN');
    // Other traffic to the address is declined; spoofed sources consumed silently.
    const other = query('c1.4711.sn.internal', '10.71.17.10', '10.71.17.2');
    expect(hook.handle(other, 0, other.length)).toBe(false);
    const spoofed = query('c1.4711.sn.internal', '10.71.17.99');
    expect(hook.handle(spoofed, 0, spoofed.length)).toBe(true);
    expect(tun.sent).toHaveLength(3);
    expect(s.status().nodes['snT-a1']).toMatchObject({ handled: 4, dropped: 1, serial: 2 });
  });

  it('writes the spool entry and /etc/netns links, rewrites on change, removes with the node', () => {
    const s = make();
    mkdirSync(mountpoint, { recursive: true });
    s.node('snT-b1', config(5, [['c1', '10.71.17.20']]), new FakeTun());
    const entry = JSON.parse(readFileSync(join(spoolDir, 'snT-b1.json'), 'utf8')) as {
      netns: string;
      spec: { view: { serial: number; members: unknown[] }; hostname: string };
    };
    expect(entry.netns).toBe('/run/netns/snT-b1');
    expect(entry.spec.hostname).toBe('a1');
    expect(entry.spec.view.serial).toBe(5);
    expect(readlinkSync(join(etcNetnsDir, 'snT-b1', 'resolv.conf'))).toBe(
      join(mountpoint, 'resolv.conf'),
    );
    s.node('snT-b1', config(6, []), new FakeTun());
    expect(
      (JSON.parse(readFileSync(join(spoolDir, 'snT-b1.json'), 'utf8')) as typeof entry).spec.view
        .members,
    ).toEqual([]);
    s.removeNode('snT-b1');
    expect(existsSync(join(spoolDir, 'snT-b1.json'))).toBe(false);
    expect(existsSync(join(etcNetnsDir, 'snT-b1'))).toBe(false);
  });

  it('prunes only its own prefix, and keeps what it hosts', () => {
    const s = make();
    s.node('snP-keep', config(1, []), new FakeTun());
    s.node('snP-gone', config(1, []), new FakeTun());
    s.node('other-x', config(1, []), new FakeTun());
    const fresh = make(); // a restarted agent: knows nothing yet
    fresh.prune('snP-', new Set(['snP-keep']));
    expect(listSpool(spoolDir).filter((k) => k !== 'snT-a1')).toEqual(
      expect.arrayContaining(['snP-keep', 'other-x']),
    );
    expect(listSpool(spoolDir)).not.toContain('snP-gone');
  });

  it('refuses a bad DNS suffix at once', () => {
    expect(
      () =>
        new NodeServices({
          logger: new MemoryLogger(),
          checkUdpChecksum: true,
          configfs: null,
          dnsSuffix: 'bad_suffix',
        }),
    ).toThrow(/suffix/);
  });
});

describe('ConfigfsSupervisor', () => {
  it('restarts a process that exits, backing off, and stops it for good', async () => {
    const count = join(dir, 'starts');
    writeFileSync(count, '');
    const log = new MemoryLogger();
    const sup = new ConfigfsSupervisor({
      mountpoint: join(dir, 'never-mounted'),
      spoolDir: join(dir, 'sup-spool'),
      logger: log,
      // Stands in for `supernet configfs run`: records its start, exits at once.
      command: ['sh', '-c', `echo "$*" >> ${count}; exit 3`, 'stand-in'],
      minBackoffMs: 20,
      maxBackoffMs: 80,
    });
    sup.start();
    for (let i = 0; i < 100 && sup.status().restarts < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const st = sup.status();
    expect(st.restarts).toBeGreaterThanOrEqual(3);
    expect(st.lastExit).toMatchObject({ code: 3, signal: null });
    expect(st.mounted).toBe(false);
    await sup.stop();
    const lines = readFileSync(count, 'utf8').trim().split('\n');
    expect(lines[0]).toContain(`--mount ${join(dir, 'never-mounted')}`);
    expect(lines[0]).toContain('--parent-pipe');
    const n = lines.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(readFileSync(count, 'utf8').trim().split('\n')).toHaveLength(n);
    expect(await sup.ready(100)).toBe(false);
  });

  it('stops a running process with SIGTERM', async () => {
    const sup = new ConfigfsSupervisor({
      mountpoint: join(dir, 'm2'),
      spoolDir: join(dir, 's2'),
      logger: new MemoryLogger(),
      command: ['sh', '-c', 'exec sleep 30', 'stand-in'],
    });
    sup.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(sup.status().pid).toBeGreaterThan(0);
    await sup.stop();
    expect(sup.status()).toMatchObject({ pid: null, restarts: 0 });
    expect(sup.status().lastExit?.signal).toBe('SIGTERM');
  });
});

describe('supernet exec wrapper', () => {
  it('enters the node namespace, then a UTS namespace, then the setup shell, then the program', () => {
    const argv = nodeExecArgv('sn-a1-4711', 'a1', ['curl', '-s', 'http://c1/']);
    expect(argv.slice(0, 8)).toEqual([
      'ip',
      'netns',
      'exec',
      'sn-a1-4711',
      'unshare',
      '--uts',
      '--',
      'sh',
    ]);
    expect(argv.slice(-5)).toEqual(['supernet-exec', 'a1', 'curl', '-s', 'http://c1/']);
    const script = argv[9]!;
    expect(script).toContain('hostname "$name"');
    for (const d of MASKED_DIRS) expect(script).toContain(d);
    expect(script.trim().endsWith('exec "$@"')).toBe(true);
  });

  it('tells a node without configfs links from one whose configfs is down', () => {
    const etc = join(dir, 'etc-netns-2');
    expect(configfsState('sn-x', etc)).toEqual({ state: 'none', mountpoint: null });
    mkdirSync(join(etc, 'sn-x'), { recursive: true });
    symlinkSync(join(dir, 'no-configfs-here', 'resolv.conf'), join(etc, 'sn-x', 'resolv.conf'));
    expect(configfsState('sn-x', etc)).toEqual({
      state: 'down',
      mountpoint: join(dir, 'no-configfs-here'),
    });
  });
});
