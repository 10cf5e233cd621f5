import { describe, it, expect } from '@jest/globals';
import dnsPacket from 'dns-packet';
import { SupernetResolver, type DnsForwarder, type NameView } from '../../net/dns.js';
import { supernetDomain, nodeFqdn, reverseName, DnsNameError } from '../../net/dns-names.js';
import { parseIpv4 } from '../../net/ipv4.js';
import { MemoryLogger } from '../../admin/logger.js';
import { ManualClock } from '../../admin/clock.js';

const view: NameView = {
  supernet: '0x4711',
  domain: '4711.sn',
  pool: '10.71.17.0/24',
  serial: 42,
  self: { name: 'a1', vip: '10.71.17.10' },
  members: [
    { name: 'c1', vip: '10.71.17.20' },
    { name: 'web-2', vip: '10.71.17.21' },
  ],
  resolverVip: '10.71.17.1',
  external: 'refuse',
};

function q(name: string, type: string = 'A', extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: 0x1234,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    ...extra,
  });
}

/** dns-packet decodes the rcode; its type declarations omit it. */
type Reply = dnsPacket.DecodedPacket & { rcode: string };

function decode(out: Uint8Array): Reply {
  return dnsPacket.decode(Buffer.from(out)) as Reply;
}

function ask(r: SupernetResolver, msg: Uint8Array, v: NameView = view): Reply {
  const out = r.answer(msg, v);
  expect(out).not.toBeNull();
  return decode(out!);
}

/** The views here use the short suffix `sn` (e.g. `4711.sn`), so the resolver is told so. */
function resolver(extra: Partial<ConstructorParameters<typeof SupernetResolver>[0]> = {}) {
  return new SupernetResolver({
    logger: new MemoryLogger(),
    clock: new ManualClock(),
    suffix: 'sn',
    ...extra,
  });
}

describe('naming scheme', () => {
  it('derives the domain from the Supernet id without leading zeros', () => {
    // Default suffix `sn.internal` (ICANN's private-use TLD; `.sn` is Senegal's).
    expect(supernetDomain('0x4711')).toBe('4711.sn.internal');
    expect(supernetDomain('0x0000cafebabe00050100')).toBe('cafebabe00050100.sn.internal');
    expect(supernetDomain('0x4711', 'sn')).toBe('4711.sn');
    expect(supernetDomain('0x4711', 'SN.Internal.')).toBe('4711.sn.internal');
    expect(() => supernetDomain('0x0')).toThrow(/reserved/);
    expect(() => supernetDomain('0x4711', 'bad_suffix')).toThrow(DnsNameError);
  });
  it('builds node and reverse names', () => {
    expect(nodeFqdn('c1', '4711.sn')).toBe('c1.4711.sn');
    expect(() => nodeFqdn('C1', '4711.sn')).toThrow(/not a valid node name/);
    expect(reverseName(parseIpv4('10.71.17.20'))).toBe('20.17.71.10.in-addr.arpa');
  });
});

describe('SupernetResolver answers', () => {
  it('answers A for a member, authoritatively, echoing id, RD and the question', () => {
    const r = resolver();
    const a = ask(r, q('c1.4711.sn'));
    expect(a.id).toBe(0x1234);
    expect(a.type).toBe('response');
    expect(a.flag_aa).toBe(true);
    expect(a.flag_rd).toBe(true);
    expect(a.rcode).toBe('NOERROR');
    expect(a.questions).toEqual([{ name: 'c1.4711.sn', type: 'A', class: 'IN' }]);
    expect(a.answers).toEqual([
      expect.objectContaining({ name: 'c1.4711.sn', type: 'A', ttl: 2, data: '10.71.17.20' }),
    ]);
    expect(r.stats.answered).toBe(1);
  });

  it('answers the node itself and hyphenated names', () => {
    const r = resolver();
    expect(ask(r, q('a1.4711.sn')).answers?.[0]).toMatchObject({ data: '10.71.17.10' });
    expect(ask(r, q('web-2.4711.sn.')).answers?.[0]).toMatchObject({ data: '10.71.17.21' });
  });

  it('matches case-insensitively and returns the case that was asked (0x20)', () => {
    const r = resolver();
    const a = ask(r, q('C1.4711.Sn'));
    expect(a.questions?.[0]?.name).toBe('C1.4711.Sn');
    expect(a.answers?.[0]).toMatchObject({ name: 'C1.4711.Sn', data: '10.71.17.20' });
  });

  it('gives NOERROR/no data with the SOA for AAAA and other types of a member', () => {
    const r = resolver();
    for (const t of ['AAAA', 'MX', 'TXT']) {
      const a = ask(r, q('c1.4711.sn', t));
      expect(a.rcode).toBe('NOERROR');
      expect(a.answers).toEqual([]);
      expect(a.authorities?.[0]).toMatchObject({
        type: 'SOA',
        name: '4711.sn',
        ttl: 1,
        data: expect.objectContaining({ serial: 42, minimum: 1 }),
      });
    }
    expect(r.stats.nodata).toBe(3);
  });

  it('gives NXDOMAIN for unknown names and deeper names in the domain', () => {
    const r = resolver();
    for (const n of ['zz.4711.sn', 'x.c1.4711.sn', 'c1-.4711.sn']) {
      const a = ask(r, q(n));
      expect(a.rcode).toBe('NXDOMAIN');
      expect(a.authorities?.[0]).toMatchObject({ type: 'SOA', name: '4711.sn' });
    }
  });

  it('answers the SOA at the apex and no data for other apex types', () => {
    const r = resolver();
    expect(ask(r, q('4711.sn', 'SOA')).answers?.[0]).toMatchObject({
      type: 'SOA',
      data: expect.objectContaining({ rname: 'hostmaster.4711.sn' }),
    });
    const a = ask(r, q('4711.sn', 'A'));
    expect(a.rcode).toBe('NOERROR');
    expect(a.answers).toEqual([]);
  });

  it('never resolves names of other Supernets, and does not refuse them either', () => {
    const r = resolver();
    const other: NameView = {
      ...view,
      supernet: '0x4712',
      domain: '4712.sn',
      self: { name: 'c1', vip: '10.71.18.20' },
      members: [],
      pool: '10.71.18.0/24',
      resolverVip: '10.71.18.1',
    };
    // c1 exists in both; each view only answers its own.
    expect(ask(r, q('c1.4712.sn'), other).answers?.[0]).toMatchObject({ data: '10.71.18.20' });
    const a = ask(r, q('c1.4712.sn'), view);
    expect(a.rcode).toBe('NXDOMAIN');
    expect(a.answers).toEqual([]);
    expect(ask(r, q('sn')).rcode).toBe('NXDOMAIN');
    // The same with the default suffix and domains under it.
    const d = new SupernetResolver({ logger: new MemoryLogger(), clock: new ManualClock() });
    const mine: NameView = { ...view, domain: supernetDomain('0x4711') };
    expect(ask(d, q('c1.4711.sn.internal'), mine).answers?.[0]).toMatchObject({
      data: '10.71.17.20',
    });
    expect(ask(d, q('c1.4712.sn.internal'), mine).rcode).toBe('NXDOMAIN');
    expect(ask(d, q('c1.4712.sn'), mine).rcode).toBe('REFUSED');
  });

  it('answers PTR for members and NXDOMAIN for other pool addresses', () => {
    const r = resolver();
    const a = ask(r, q('20.17.71.10.in-addr.arpa', 'PTR'));
    expect(a.answers?.[0]).toMatchObject({ type: 'PTR', data: 'c1.4711.sn' });
    expect(ask(r, q('10.17.71.10.in-addr.arpa', 'PTR')).answers?.[0]).toMatchObject({
      data: 'a1.4711.sn',
    });
    const nx = ask(r, q('99.17.71.10.in-addr.arpa', 'PTR'));
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.authorities?.[0]).toMatchObject({ type: 'SOA', name: '17.71.10.in-addr.arpa' });
    // The pool's reverse apex and its ancestors exist (empty non-terminals).
    expect(ask(r, q('17.71.10.in-addr.arpa', 'SOA')).answers?.[0]).toMatchObject({ type: 'SOA' });
    expect(ask(r, q('71.10.in-addr.arpa', 'PTR')).rcode).toBe('NOERROR');
  });

  it('keeps private reverse space local and refuses other external names', () => {
    const r = resolver();
    expect(ask(r, q('1.0.168.192.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
    expect(ask(r, q('5.18.71.10.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
    expect(ask(r, q('8.8.8.8.in-addr.arpa', 'PTR')).rcode).toBe('REFUSED');
    expect(ask(r, q('in-addr.arpa', 'NS')).rcode).toBe('REFUSED');
    const a = ask(r, q('example.com'));
    expect(a.rcode).toBe('REFUSED');
    expect(a.flag_aa).toBe(false);
    expect(a.questions?.[0]?.name).toBe('example.com');
    // A bare node name is not in the domain: the search line makes it one.
    expect(ask(r, q('c1')).rcode).toBe('REFUSED');
    expect(r.stats.refused).toBe(4);
  });

  it('handles the RFC 6761 names localhost and invalid', () => {
    const r = resolver();
    expect(ask(r, q('localhost')).answers?.[0]).toMatchObject({ data: '127.0.0.1' });
    expect(ask(r, q('foo.LOCALHOST')).answers?.[0]).toMatchObject({ data: '127.0.0.1' });
    expect(ask(r, q('localhost', 'AAAA')).answers).toEqual([]);
    expect(ask(r, q('x.invalid')).rcode).toBe('NXDOMAIN');
  });

  it('follows a new view object (membership changes) without restarting', () => {
    const r = resolver();
    expect(ask(r, q('d1.4711.sn')).rcode).toBe('NXDOMAIN');
    const joined = { ...view, members: [...view.members, { name: 'd1', vip: '10.71.17.30' }] };
    expect(ask(r, q('d1.4711.sn'), joined).answers?.[0]).toMatchObject({ data: '10.71.17.30' });
    const expelled = { ...joined, members: joined.members.filter((m) => m.name !== 'c1') };
    expect(ask(r, q('c1.4711.sn'), expelled).rcode).toBe('NXDOMAIN');
    expect(ask(r, q('20.17.71.10.in-addr.arpa', 'PTR'), expelled).rcode).toBe('NXDOMAIN');
  });

  it('skips bad and duplicate members with a warning, and keeps answering the rest', () => {
    const logger = new MemoryLogger();
    const r = resolver({ logger });
    const v: NameView = {
      ...view,
      members: [
        { name: 'Bad_Name', vip: '10.71.17.40' },
        { name: 'e1', vip: 'not-an-ip' },
        { name: 'a1', vip: '10.71.17.41' },
        { name: 'f1', vip: '10.71.17.50' },
      ],
    };
    expect(ask(r, q('f1.4711.sn'), v).answers?.[0]).toMatchObject({ data: '10.71.17.50' });
    expect(ask(r, q('e1.4711.sn'), v).rcode).toBe('NXDOMAIN');
    expect(ask(r, q('a1.4711.sn'), v).answers?.[0]).toMatchObject({ data: '10.71.17.10' });
    expect(logger.records.filter((l) => l.level === 'warn')).toHaveLength(3);
    expect(logger.records.map((l) => l.msg)).toContain('dns: skipping member with an invalid name');
  });

  it('answers SERVFAIL for an unusable view and logs it once', () => {
    const logger = new MemoryLogger();
    const r = resolver({ logger });
    const bad = { ...view, pool: '10.71.17.0/99' };
    expect(ask(r, q('c1.4711.sn'), bad).rcode).toBe('SERVFAIL');
    expect(ask(r, q('c1.4711.sn'), bad).rcode).toBe('SERVFAIL');
    expect(logger.records.filter((l) => l.level === 'error')).toHaveLength(1);
  });
});

describe('SupernetResolver EDNS and limits', () => {
  const opt = (size: number, version = 0): dnsPacket.OptAnswer => ({
    type: 'OPT',
    name: '.',
    udpPayloadSize: size,
    extendedRcode: 0,
    ednsVersion: version,
    flags: 0,
    flag_do: false,
    options: [],
  });

  it('answers an EDNS query with an OPT record advertising 1232 bytes', () => {
    const r = resolver();
    const a = ask(r, q('c1.4711.sn', 'A', { additionals: [opt(4096)] }));
    expect(a.answers?.[0]).toMatchObject({ data: '10.71.17.20' });
    expect(a.additionals?.[0]).toMatchObject({ type: 'OPT', udpPayloadSize: 1232, ednsVersion: 0 });
  });

  it('answers BADVERS to an unknown EDNS version', () => {
    const r = resolver();
    const out = r.answer(q('c1.4711.sn', 'A', { additionals: [opt(1232, 1)] }), view)!;
    const a = dnsPacket.decode(Buffer.from(out));
    expect(a.answers).toEqual([]);
    const o = a.additionals?.[0] as dnsPacket.OptAnswer;
    // BADVERS = 16: upper 8 bits in the OPT record, lower 4 in the header.
    expect(o.extendedRcode).toBe(1);
    expect(out[3]! & 0xf).toBe(0);
    expect(r.stats.badvers).toBe(1);
  });

  it('truncates a reply longer than 512 bytes for a plain-DNS client', () => {
    // A long name inside the domain: question + NXDOMAIN SOA exceed 512.
    const r = resolver();
    const label = 'x'.repeat(63);
    const long = `${label}.${label}.${label}.4711.sn`;
    const longView: NameView = { ...view, domain: `${label}.${label}.4711.sn` };
    const out = r.answer(q(long), longView)!;
    const plain = decode(out);
    expect(plain.rcode).toBe('NXDOMAIN');
    expect(out.length).toBeLessThanOrEqual(512);
    expect(plain.flag_tc).toBe(true);
    expect(plain.authorities).toEqual([]);
    const e = ask(r, q(long, 'A', { additionals: [opt(1232)] }), longView);
    expect(e.flag_tc).toBe(false);
    expect(e.authorities).toHaveLength(1);
  });

  it('refuses zone transfers and other classes, NOTIMP for other opcodes', () => {
    const r = resolver();
    expect(ask(r, q('4711.sn', 'AXFR')).rcode).toBe('REFUSED');
    const ch = dnsPacket.encode({
      type: 'query',
      id: 7,
      questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }],
    });
    expect(ask(r, ch).rcode).toBe('REFUSED');
    const notify = Buffer.from(q('4711.sn', 'SOA'));
    notify[2] = (notify[2]! & 0x87) | (4 << 3); // opcode 4 (NOTIFY)
    expect(ask(r, notify).rcode).toBe('NOTIMP');
  });
});

describe('SupernetResolver forwarding', () => {
  const fwdView: NameView = { ...view, external: { forward: ['192.0.2.53'] } };

  class FakeUpstream implements DnsForwarder {
    calls: {
      query: Uint8Array;
      servers: readonly string[];
      done: (r: Uint8Array | null) => void;
    }[] = [];
    forward(query: Uint8Array, servers: readonly string[], done: (r: Uint8Array | null) => void) {
      this.calls.push({ query, servers, done });
    }
  }

  it('hands external names to the forwarder and restores the id of the reply', () => {
    const up = new FakeUpstream();
    const r = resolver({ forwarder: up });
    const replies: Uint8Array[] = [];
    expect(r.answer(q('example.com'), fwdView, (x) => replies.push(x))).toBeNull();
    expect(up.calls).toHaveLength(1);
    expect(up.calls[0]!.servers).toEqual(['192.0.2.53']);
    const upstreamReply = dnsPacket.encode({
      type: 'response',
      id: 999,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: [{ name: 'example.com', type: 'A', class: 'IN' }],
      answers: [{ type: 'A', name: 'example.com', ttl: 60, data: '192.0.2.80' }],
    });
    up.calls[0]!.done(upstreamReply);
    const a = decode(replies[0]!);
    expect(a.id).toBe(0x1234);
    expect(a.answers?.[0]).toMatchObject({ data: '192.0.2.80' });
    expect(r.stats.forwarded).toBe(1);
  });

  it('keeps what it needs of the query: the caller may reuse its buffer before the reply comes', () => {
    const up = new FakeUpstream();
    const r = resolver({ forwarder: up });
    const replies: Uint8Array[] = [];
    const buf = q('example.com');
    expect(r.answer(buf, fwdView, (x) => replies.push(x))).toBeNull();
    buf.fill(0x5a); // the agent's TUN arena holds the next packets by now
    up.calls[0]!.done(
      dnsPacket.encode({
        type: 'response',
        id: 7,
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: [{ name: 'example.com', type: 'A', class: 'IN' }],
        answers: [{ type: 'A', name: 'example.com', ttl: 60, data: '192.0.2.80' }],
      }),
    );
    const a = decode(replies[0]!);
    expect(a.rcode).toBe('NOERROR');
    expect(a.id).toBe(0x1234);
    expect(a.answers?.[0]).toMatchObject({ data: '192.0.2.80' });
    expect(r.stats.forwardFailed).toBe(0);
  });

  it('answers SERVFAIL when the upstream fails or answers another question', () => {
    const up = new FakeUpstream();
    const r = resolver({ forwarder: up });
    const replies: Uint8Array[] = [];
    r.answer(q('example.com'), fwdView, (x) => replies.push(x));
    r.answer(q('example.org'), fwdView, (x) => replies.push(x));
    up.calls[0]!.done(null);
    up.calls[1]!.done(
      dnsPacket.encode({
        type: 'response',
        id: 1,
        questions: [{ name: 'evil.example', type: 'A', class: 'IN' }],
      }),
    );
    expect(replies.map((x) => decode(x).rcode)).toEqual(['SERVFAIL', 'SERVFAIL']);
    expect(r.stats.forwardFailed).toBe(2);
  });

  it('never forwards Supernet names, and answers SERVFAIL without a forwarder', () => {
    const up = new FakeUpstream();
    const r = resolver({ forwarder: up });
    expect(ask(r, q('c1.4712.sn'), fwdView).rcode).toBe('NXDOMAIN');
    expect(ask(r, q('1.1.168.192.in-addr.arpa', 'PTR'), fwdView).rcode).toBe('NXDOMAIN');
    expect(up.calls).toHaveLength(0);
    expect(ask(resolver(), q('example.com'), fwdView).rcode).toBe('SERVFAIL');
  });
});
