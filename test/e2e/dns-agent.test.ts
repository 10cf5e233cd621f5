/**
 * Issue 6, acceptance 1–4, on the real host agents: Figure 6 (Supernet
 * 0x4711: a1 on h1, c1 on h2, bigdisk1 on h3, admin on h1) plus the second
 * Supernet 0x0000cafebabe00050100 with a2 on h1 (next to a1) and b1 on h2.
 * Every name answer comes from the agent's resolver at the pool's `.1`
 * (net/node-services.ts) through the node's TUN; every /etc file from the
 * agent's supervised configfs. h1's agent forwards external names to a
 * dnsmasq on h1's underlay address; the others refuse them.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed, until, type BedProcess, type RunResult } from '../bed/bed.js';
import { FIGURE6, SupernetBed, type AgentStatus, type LoggedIn } from '../scenario/supernet-bed.js';
import { apacheCommand, writeApacheSite } from '../scenario/apache.js';

const CAFE = '0x0000cafebabe00050100';
const D4711 = '4711.sn.internal';
const DCAFE = 'cafebabe00050100.sn.internal';
/** What the dnsmasq "upstream" on h1 serves (RFC 2606 name, RFC 5737 address). */
const EXTERNAL = { name: 'www.example.test', addr: '192.0.2.7' };

let bed: TestBed;
let sn: SupernetBed;
const nodes = new Map<string, LoggedIn>();
const node = (n: string): LoggedIn => nodes.get(n)!;
let hostResolv: string;
let upstream: BedProcess;

interface ServicesStatus {
  dns: { suffix: string; resolver: Record<string, number> };
  nodes: Record<string, { resolverVip: string; handled: number; dropped: number }>;
  configfs: { pid: number | null; mounted: boolean; restarts: number } | null;
}
const services = (st: AgentStatus): ServicesStatus =>
  (st as unknown as { services: ServicesStatus }).services;

beforeAll(async () => {
  hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  sn = new SupernetBed(bed);
  for (const n of FIGURE6.nodes) await sn.allow(n.name, n.supernet, n.channels);
  await sn.allow('a2', CAFE, ['0x02']);
  await sn.allow('b1', CAFE, ['0x02']);
  await sn.allow('d1', '0x4711', ['0x01']);
  await sn.startAdmin('h1');
  await sn.createSupernet(FIGURE6.supernet);
  await sn.createSupernet({ id: CAFE, pool: '10.202.0.0/24', channels: ['0x02'] });
  const h1 = bed.host('h1').addr;
  upstream = bed.spawn('h1', 'dnsmasq', [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--user=root',
    '--bind-interfaces',
    `--listen-address=${h1}`,
    '--port=53',
    `--address=/${EXTERNAL.name}/${EXTERNAL.addr}`,
    '--log-queries',
    '--log-facility=-',
  ]);
  await sn.startAgent('h1', ['--dns-forward', h1]);
  await sn.startAgent('h2');
  await sn.startAgent('h3');
  for (const n of FIGURE6.nodes) nodes.set(n.name, await sn.login(n));
  nodes.set('a2', await sn.login({ name: 'a2', host: 'h1', supernet: CAFE, channels: ['0x02'] }));
  nodes.set('b1', await sn.login({ name: 'b1', host: 'h2', supernet: CAFE, channels: ['0x02'] }));
}, 180_000);

afterAll(async () => {
  await bed?.teardown();
}, 60_000);

/** A stock program in a node through `supernet exec` (what an operator runs). */
async function exec(host: string, n: string, cmd: string[]): Promise<RunResult> {
  return sn.exec(host, n, cmd, { allowFail: true, timeoutMs: 30_000 });
}

/** A quick one in a node's namespace (`ip netns exec`: the same /etc binds, no CLI start-up). */
async function inNode(n: string, cmd: string, args: string[]): Promise<RunResult> {
  return bed.run(node(n).ns, cmd, args, { allowFail: true, timeoutMs: 20_000 });
}

const dig = (n: string, ...args: string[]): Promise<RunResult> =>
  inNode(n, 'dig', ['+tries=1', '+time=2', ...args]);

describe('acceptance 1: stock programs in a1 find names; the host is untouched', () => {
  it('a1 sees its own resolv.conf and hosts from configfs, and its own host name', async () => {
    const r = await exec('h1', 'a1', [
      'sh',
      '-c',
      'cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname; hostname -f',
    ]);
    expect(r.code).toBe(0);
    const [resolv, hosts, names] = r.stdout.split('---\n');
    expect(resolv).toMatch(/^nameserver 10\.71\.17\.1$/m);
    expect(resolv).toMatch(new RegExp(`^search ${D4711.replace(/\./g, '\\.')}$`, 'm'));
    expect(hosts).toContain(`${node('c1').vip}\tc1.${D4711} c1`);
    expect(hosts).toContain(`${node('bigdisk1').vip}\tbigdisk1.${D4711} bigdisk1`);
    expect(names!.trim().split('\n')).toEqual(['a1', `a1.${D4711}`]);
  });

  it('getent (glibc: files, then the resolver) and dig (DNS only) resolve c1 by name, forward and reverse', async () => {
    const g = await exec('h1', 'a1', ['getent', 'hosts', `c1.${D4711}`]);
    expect(g.code).toBe(0);
    expect(g.stdout).toMatch(new RegExp(`^${node('c1').vip.replace(/\./g, '\\.')}\\s+c1\\.`, 'm'));
    const short = await exec('h1', 'a1', ['getent', 'ahostsv4', 'c1']);
    expect(short.stdout).toContain(node('c1').vip);
    const d = await exec('h1', 'a1', ['dig', '+short', '+tries=1', '+time=2', `c1.${D4711}`]);
    expect(d.stdout.trim()).toBe(node('c1').vip);
    expect(d.stderr).toBe('');
    const ptr = await dig('a1', '+short', '-x', node('bigdisk1').vip);
    expect(ptr.stdout.trim()).toBe(`bigdisk1.${D4711}.`);
    const short2 = await dig('a1', '+short', '+search', 'c1');
    expect(short2.stdout.trim()).toBe(node('c1').vip);
    // glibc really asks the agent's resolver for what /etc/hosts lacks.
    const before = services(await sn.status('h1')).dns.resolver.nxdomain!;
    const none = await inNode('a1', 'getent', ['hosts', `nosuch.${D4711}`]);
    expect(none.code).not.toBe(0);
    expect(services(await sn.status('h1')).dns.resolver.nxdomain!).toBeGreaterThan(before);
  });

  it('Apache started in c1 guesses its own name; curl in a1 fetches http://c1.<domain>/ by name', async () => {
    const site = writeApacheSite(sn.dir, {
      listen: node('c1').vip,
      pages: { 'index.html': 'hello from c1 by name\n' },
    });
    // No ServerName: Apache asks uname(2) (the node's UTS name) and resolves it.
    const start = await exec('h2', 'c1', apacheCommand(site, 'start'));
    expect(start.code).toBe(0);
    expect(start.stderr).not.toMatch(/AH00558|reliably determine/);
    try {
      const url = `http://c1.${D4711}/`;
      const get = (): Promise<RunResult> =>
        exec('h1', 'a1', ['curl', '-s', '-m', '5', '-w', '\\n%{http_code}', url]);
      const page = await until(
        async () => {
          const r = await get();
          return r.stdout.endsWith('\n200') ? r : null;
        },
        { what: `curl ${url} in a1`, timeoutMs: 15_000, intervalMs: 250 },
      );
      expect(page.stdout).toContain('hello from c1 by name');
    } finally {
      await exec('h2', 'c1', apacheCommand(site, 'stop'));
    }
  });

  it('on the host, /etc/resolv.conf is untouched and shows the host resolver (also through configfs)', async () => {
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(hostResolv);
    expect(hostResolv).not.toMatch(/10\.71\.17\.1|sn\.internal/);
    const inHost = await bed.run('h1', 'cat', ['/etc/resolv.conf']);
    expect(inHost.stdout).toBe(hostResolv);
    // A host process reading the configfs file gets the host's own file.
    const through = await bed.run('h1', 'cat', [join(sn.configfsMount('h1'), 'resolv.conf')]);
    expect(through.stdout).toBe(hostResolv);
  });

  it('external names follow each agent’s policy: forwarded on h1, refused on h2; other Supernets never leave', async () => {
    const fwd = await dig('a1', '+short', EXTERNAL.name);
    expect(fwd.stdout.trim()).toBe(EXTERNAL.addr);
    const curlName = await exec('h1', 'a1', ['getent', 'hosts', EXTERNAL.name]);
    expect(curlName.stdout).toContain(EXTERNAL.addr);
    const refused = await dig('c1', EXTERNAL.name);
    expect(refused.stdout).toMatch(/status: REFUSED/);
    const other = await dig('a1', `b1.${DCAFE}`);
    expect(other.stdout).toMatch(/status: NXDOMAIN/);
    // dnsmasq logs every query it got: the external name, never a Supernet name.
    await until(() => upstream.output().includes(EXTERNAL.name), {
      what: 'dnsmasq to log the forwarded query',
      timeoutMs: 5000,
    });
    expect(upstream.output()).not.toMatch(/sn\.internal/);
  });
});

describe('acceptance 2: two Supernets on one host', () => {
  it('a1 and a2 read their own /etc/resolv.conf and /etc/hosts at the same moment', async () => {
    const once = async (n: string): Promise<string> =>
      (await inNode(n, 'cat', ['/etc/resolv.conf', '/etc/hosts'])).stdout;
    const [oneA, oneB] = [await once('a1'), await once('a2')];
    expect(oneA).toMatch(/^nameserver 10\.71\.17\.1$/m);
    expect(oneB).toMatch(/^nameserver 10\.202\.0\.1$/m);
    expect(oneB).toContain(`${node('b1').vip}\tb1.${DCAFE} b1`);
    expect(oneB).not.toMatch(/4711|c1/);
    const loop = 'for i in $(seq 150); do cat /etc/resolv.conf /etc/hosts; done';
    const [manyA, manyB] = await Promise.all([
      inNode('a1', 'sh', ['-c', loop]),
      inNode('a2', 'sh', ['-c', loop]),
    ]);
    expect(manyA.stdout === oneA.repeat(150)).toBe(true);
    expect(manyB.stdout === oneB.repeat(150)).toBe(true);
  });

  it('neither resolves the other Supernet’s names, by DNS or by glibc', async () => {
    expect((await dig('a2', '+short', `b1.${DCAFE}`)).stdout.trim()).toBe(node('b1').vip);
    for (const [from, name] of [
      ['a1', `b1.${DCAFE}`],
      ['a1', 'b1'],
      ['a2', `c1.${D4711}`],
      ['a2', 'c1'],
      ['a2', 'a1'],
    ] as const) {
      const g = await inNode(from, 'getent', ['hosts', name]);
      expect({ from, name, code: g.code, out: g.stdout }).toEqual({
        from,
        name,
        code: 2,
        out: '',
      });
    }
    expect((await dig('a2', `c1.${D4711}`)).stdout).toMatch(/status: NXDOMAIN/);
    expect((await dig('a2', '-x', node('c1').vip)).stdout).toMatch(/status: NXDOMAIN/);
  });
});

describe('acceptance 3: membership changes show within 2 s', () => {
  /** Both lookups of `name` in a1: glibc (hosts file, then DNS) and DNS alone. */
  async function lookups(name: string): Promise<{ getent: boolean; dig: string }> {
    const [g, d] = await Promise.all([
      inNode('a1', 'getent', ['hosts', name]),
      dig('a1', '+short', name),
    ]);
    return { getent: g.code === 0, dig: d.stdout.trim() };
  }

  it('d1 logging in on h3 is resolvable from a1 within 2 s; once expelled it stops resolving', async () => {
    const fqdn = `d1.${D4711}`;
    expect(await lookups(fqdn)).toEqual({ getent: false, dig: '' });
    const tLogin = Date.now();
    const d1 = await sn.login({ name: 'd1', host: 'h3', supernet: '0x4711', channels: ['0x01'] });
    nodes.set('d1', d1);
    const tIn = Date.now();
    await until(
      async () => {
        const l = await lookups(fqdn);
        return l.getent && l.dig === d1.vip;
      },
      { what: `${fqdn} to resolve in a1`, timeoutMs: 10_000, intervalMs: 50 },
    );
    const joinMs = Date.now() - tIn;
    const hosts = (await inNode('a1', 'cat', ['/etc/hosts'])).stdout;
    expect(hosts).toContain(`${d1.vip}\t${fqdn} d1`);

    const tExpel = Date.now();
    await sn.cli(null, ['expel', '0x4711', 'd1']);
    const tOut = Date.now();
    await until(
      async () => {
        const l = await lookups(fqdn);
        return !l.getent && l.dig === '';
      },
      { what: `${fqdn} to stop resolving in a1`, timeoutMs: 10_000, intervalMs: 50 },
    );
    const leaveMs = Date.now() - tOut;
    expect((await dig('a1', fqdn)).stdout).toMatch(/status: NXDOMAIN/);
    expect((await dig('a1', '+short', '-x', d1.vip)).stdout.trim()).toBe('');
    process.stderr.write(
      `membership → names in a1: login command ${tIn - tLogin} ms, then resolvable after ${joinMs} ms; ` +
        `expel command ${tOut - tExpel} ms, then unresolvable after ${leaveMs} ms\n`,
    );
    expect(joinMs).toBeLessThanOrEqual(2000);
    expect(leaveMs).toBeLessThanOrEqual(2000);
  });
});

describe('acceptance 4: malformed queries never stop the resolver', () => {
  it('garbage to 10.71.17.1:53 from a1 is dropped or answered FORMERR; the resolver keeps answering', async () => {
    const before = services(await sn.status('h1'));
    const garbage = [
      // random bytes of several lengths, shorter and longer than a header
      ...[1, 5, 11, 12, 13, 40, 300, 1200].map((n) => `head -c ${n} /dev/urandom`),
      // a response (QR set): must be dropped, never answered
      `printf '\\x12\\x34\\x81\\x80\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'`,
      // one question announced, none there; then a compression loop
      `printf '\\x12\\x35\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'`,
      `printf '\\x12\\x36\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\xc0\\x0c\\x00\\x01\\x00\\x01'`,
    ];
    const script = garbage.map((g) => `${g} > /dev/udp/10.71.17.1/53`).join('; ');
    await inNode('a1', 'bash', ['-c', script]);
    const d = await dig('a1', '+short', `c1.${D4711}`);
    expect(d.stdout.trim()).toBe(node('c1').vip);
    const after = services(await sn.status('h1'));
    const r0 = before.dns.resolver;
    const r1 = after.dns.resolver;
    expect(r1.queries! - r0.queries!).toBeGreaterThanOrEqual(garbage.length + 1);
    // At least: 1, 5 and 11 bytes and the response dropped; the two bad questions FORMERR.
    expect(r1.dropped! - r0.dropped!).toBeGreaterThanOrEqual(4);
    expect(r1.formerr! - r0.formerr!).toBeGreaterThanOrEqual(2);
    expect(r1.answered! - r0.answered!).toBeGreaterThanOrEqual(1);
    expect(after.nodes[node('a1').ns]!.dropped).toBe(0); // the node's own, well-formed UDP
    expect(sn.agents.get('h1')!.output()).not.toMatch(/internal error/);
    expect(sn.agents.get('h1')!.running).toBe(true);
  });
});
