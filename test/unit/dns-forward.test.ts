/**
 * The UDP forwarder against a tiny upstream on loopback: replies are matched
 * by server, port and a fresh id; a silent server is skipped after the
 * timeout; the resolver relays the answer with the node's own id.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { UdpForwarder } from '../../net/dns-forward.js';
import { SupernetResolver, type NameView } from '../../net/dns.js';
import { MemoryLogger } from '../../admin/logger.js';

let upstream: Socket;
let port = 0;
const seenIds: number[] = [];
/** When set, the upstream first sends a reply with a wrong id. */
let spoofFirst = false;

beforeAll(async () => {
  upstream = createSocket('udp4');
  upstream.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    seenIds.push(q.id!);
    const reply = (id: number) =>
      dnsPacket.encode({
        type: 'response',
        id,
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: q.questions,
        answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 30, data: '192.0.2.7' }],
      });
    if (spoofFirst) upstream.send(reply((q.id! + 1) & 0xffff), rinfo.port, rinfo.address);
    upstream.send(reply(q.id!), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
  port = upstream.address().port;
});
afterAll(() => {
  upstream.close();
});

function query(name: string, id = 0x4242): Buffer {
  return dnsPacket.encode({ type: 'query', id, questions: [{ name, type: 'A' }] });
}

function forwardOnce(
  f: UdpForwarder,
  q: Uint8Array,
  servers: string[],
): Promise<Uint8Array | null> {
  return new Promise((resolve) => f.forward(q, servers, resolve));
}

describe('UdpForwarder', () => {
  it('gets the answer with a fresh id per query', async () => {
    const f = new UdpForwarder({ logger: new MemoryLogger(), port, timeoutMs: 500 });
    const r1 = await forwardOnce(f, query('example.com'), ['127.0.0.1']);
    const r2 = await forwardOnce(f, query('example.com'), ['127.0.0.1']);
    expect(dnsPacket.decode(Buffer.from(r1!)).answers?.[0]).toMatchObject({ data: '192.0.2.7' });
    expect(r2).not.toBeNull();
    // The node's id (0x4242) never goes upstream as such, and ids differ (2^-16 chance to fail).
    expect(seenIds.slice(-2)[0]).not.toBe(seenIds.slice(-2)[1]);
    expect(f.stats).toMatchObject({ sent: 2, replies: 2 });
  });

  it('ignores a reply with the wrong id and waits for the right one', async () => {
    spoofFirst = true;
    try {
      const f = new UdpForwarder({ logger: new MemoryLogger(), port, timeoutMs: 500 });
      const r = await forwardOnce(f, query('example.org'), ['127.0.0.1']);
      expect(r).not.toBeNull();
      expect(f.stats.ignored).toBe(1);
    } finally {
      spoofFirst = false;
    }
  });

  it('moves on from a silent server, and gives up after the last', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(port, '127.0.0.2', () => r()));
    try {
      const f = new UdpForwarder({ logger: new MemoryLogger(), port, timeoutMs: 150 });
      const r = await forwardOnce(f, query('example.net'), ['127.0.0.2', '127.0.0.1']);
      expect(r).not.toBeNull();
      expect(f.stats.timeouts).toBe(1);
      const none = await forwardOnce(f, query('example.net'), ['127.0.0.2', 'not-an-ip']);
      expect(none).toBeNull();
    } finally {
      silent.close();
    }
  });

  it('refuses beyond its in-flight limit', async () => {
    const f = new UdpForwarder({
      logger: new MemoryLogger(),
      port,
      timeoutMs: 500,
      maxInFlight: 1,
    });
    const [a, b] = await Promise.all([
      forwardOnce(f, query('a.example'), ['127.0.0.1']),
      forwardOnce(f, query('b.example'), ['127.0.0.1']),
    ]);
    expect(a).not.toBeNull();
    expect(b).toBeNull();
    expect(f.stats.overload).toBe(1);
  });

  it("serves a forwarding view through the resolver, with the node's id restored", async () => {
    const view: NameView = {
      supernet: '0x4711',
      domain: '4711.sn',
      pool: '10.71.17.0/24',
      self: { name: 'a1', vip: '10.71.17.10' },
      members: [],
      resolverVip: '10.71.17.1',
      external: { forward: ['127.0.0.1'] },
    };
    const forwarder = new UdpForwarder({ logger: new MemoryLogger(), port, timeoutMs: 500 });
    const r = new SupernetResolver({ logger: new MemoryLogger(), forwarder });
    const reply = await new Promise<Uint8Array>((resolve) => {
      expect(r.answer(query('WWW.Example.com', 0x1111), view, resolve)).toBeNull();
    });
    const d = dnsPacket.decode(Buffer.from(reply));
    expect(d.id).toBe(0x1111);
    expect(d.questions?.[0]?.name).toBe('WWW.Example.com');
    expect(d.answers?.[0]).toMatchObject({ data: '192.0.2.7' });
  });
});
