/**
 * Supernet DNS end to end with stock clients (issue 6, acceptance 1 and 2
 * for names): two node namespaces of two Supernets, each with a real TUN
 * device; their resolv.conf comes from configfs; a stand-in for the host
 * agent's packet loop (`serve` below) gives every packet to a ResolverPort
 * (net/dns-tun.ts, what the agent uses), which answers UDP/53 packets to the
 * resolver address and writes the replies back. dig, host and glibc
 * (getent) must resolve names, reverse names and short names, and the
 * kernel must accept the reply packets (checksums).
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { parseIpv4 } from '../../net/ipv4.js';
import { attachTun } from '../../net/netns.js';
import { openTun, type TunDevice } from '../../net/tun.js';
import { SupernetResolver, type NameView } from '../../net/dns.js';
import { ResolverPort } from '../../net/dns-tun.js';
import { MemoryLogger } from '../../admin/logger.js';
import { setUp, viewA, viewB, type Kit } from './configfs-kit.js';

let kit: Kit;
const tuns: TunDevice[] = [];
// The kit's views use the short suffix `sn` (4711.sn), not the default sn.internal.
const resolver = new SupernetResolver({ logger: new MemoryLogger(), suffix: 'sn' });
const ports: ResolverPort[] = [];

/** The resolver's views: like configfs's, plus a member only DNS knows (to see glibc use DNS). */
const dnsViewA: NameView = {
  ...viewA(),
  members: [...viewA().members, { name: 'dnsonly', vip: '10.71.17.99' }],
};
const dnsViewB: NameView = viewB();

/** What the agent does with every packet a node writes to its TUN (net/dns-tun.ts). */
function serve(tun: TunDevice, view: NameView): ResolverPort {
  const port = new ResolverPort(
    resolver,
    parseIpv4(view.resolverVip),
    parseIpv4(view.self.vip),
    (buf, off, len) => tun.write(buf, off, len),
  );
  tun.onPackets((b) => {
    for (let i = 0; i < b.count; i++) port.handle(b.buf, b.offsets[i]!, b.lengths[i]!, view);
  });
  return port;
}

beforeAll(async () => {
  kit = await setUp();
  await kit.start();
  for (const [ns, view] of [
    [kit.a, dnsViewA],
    [kit.b, dnsViewB],
  ] as const) {
    const tun = openTun({ name: `${kit.bed.prefix}d%d` });
    tuns.push(tun);
    ports.push(serve(tun, view));
    await attachTun(tun.name, ns, view.self.vip, 24, 1420);
  }
}, 60_000);

afterAll(async () => {
  for (const t of tuns) t.close();
  await kit?.teardown();
});

async function inNode(ns: string, cmd: string, args: string[]) {
  return kit.bed.run(ns, cmd, args, { allowFail: true, timeoutMs: 20_000 });
}

describe('Supernet DNS through a TUN, stock clients', () => {
  it('dig resolves member names, reverse names, and reports NXDOMAIN/REFUSED', async () => {
    const a = await inNode(kit.a, 'dig', ['+short', '+tries=1', '+time=2', 'c1.4711.sn']);
    expect(a.stdout.trim()).toBe('10.71.17.20');
    const ptr = await inNode(kit.a, 'dig', ['+short', '+tries=1', '+time=2', '-x', '10.71.17.20']);
    expect(ptr.stdout.trim()).toBe('c1.4711.sn.');
    const cross = await inNode(kit.a, 'dig', ['+tries=1', '+time=2', 'c1.4712.sn']);
    expect(cross.stdout).toMatch(/status: NXDOMAIN/);
    const ext = await inNode(kit.a, 'dig', ['+tries=1', '+time=2', 'example.com']);
    expect(ext.stdout).toMatch(/status: REFUSED/);
    const aaaa = await inNode(kit.a, 'dig', ['+tries=1', '+time=2', 'AAAA', 'c1.4711.sn']);
    expect(aaaa.stdout).toMatch(/status: NOERROR/);
    expect(aaaa.stdout).toMatch(/ANSWER: 0,/);
    // dig's own EDNS cookie option and a TCP-less server: no complaints about the reply.
    expect(a.stderr).toBe('');
  });

  it('host and glibc use the configfs resolv.conf: search domain, then DNS', async () => {
    const h = await inNode(kit.a, 'host', ['-W', '2', 'c1']);
    expect(h.stdout).toMatch(/^c1\.4711\.sn has address 10\.71\.17\.20$/m);
    // Not in /etc/hosts: glibc must have asked the resolver, with the search domain.
    const g = await inNode(kit.a, 'getent', ['hosts', 'dnsonly']);
    expect(g.code).toBe(0);
    expect(g.stdout).toMatch(/^10\.71\.17\.99\s+dnsonly\.4711\.sn/m);
    const gx = await inNode(kit.a, 'getent', ['hosts', 'dnsonly.4712.sn']);
    expect(gx.code).not.toBe(0);
  });

  it('the other Supernet has its own resolver and names', async () => {
    const b = await inNode(kit.b, 'dig', ['+short', '+tries=1', '+time=2', 'c1.4712.sn']);
    expect(b.stdout.trim()).toBe('10.72.5.20');
    const bx = await inNode(kit.b, 'dig', ['+tries=1', '+time=2', 'c1.4711.sn']);
    expect(bx.stdout).toMatch(/status: NXDOMAIN/);
    const resolvB = await inNode(kit.b, 'cat', ['/etc/resolv.conf']);
    expect(resolvB.stdout).toMatch(/^nameserver 10\.72\.5\.1$/m);
  });

  it('survives garbage sent to the resolver and keeps answering', async () => {
    const before = { ...resolver.stats };
    const send = `for i in 1 2 3 4 5; do head -c $((i*7)) /dev/urandom > /dev/udp/10.71.17.1/53; done; printf '\\x12\\x34\\x01' > /dev/udp/10.71.17.1/53`;
    await inNode(kit.a, 'bash', ['-c', send]);
    const after = await inNode(kit.a, 'dig', ['+short', '+tries=1', '+time=2', 'c1.4711.sn']);
    expect(after.stdout.trim()).toBe('10.71.17.20');
    const s = resolver.stats;
    expect(s.queries - before.queries).toBeGreaterThanOrEqual(7);
    expect(
      s.dropped + s.formerr + s.notimp - (before.dropped + before.formerr + before.notimp),
    ).toBeGreaterThanOrEqual(6);
    // Every packet the kernel sent had a valid checksum and the node's own source.
    for (const p of ports) expect(p.stats.dropped).toBe(0);
  });
});
