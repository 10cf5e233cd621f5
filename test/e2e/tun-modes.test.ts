/**
 * The optional TUN modes, against the real kernel:
 * - offload (IFF_VNET_HDR + TSO4): a TCP transfer between two namespaces
 *   whose TUNs are joined by a JS forwarder; the sender's stack hands over
 *   64 KiB super-segments that the addon splits. A wrong header or checksum
 *   would stall or corrupt the transfer, so both ends hash the byte stream.
 *   Plus crafted super-packets through the addon's segmenter.
 * - multi-queue (IFF_MULTI_QUEUE): two queues of one device share the flows.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ScratchNamespaces, ip } from '../bed/scratch-ns.js';
import { openTun, type TunDevice } from '../../net/tun.js';
import { loadNative } from '../../net/native/addon.js';

const isRoot = process.getuid?.() === 0;
const scratch = new ScratchNamespaces('M');
const PREFIX = scratch.prefix;
async function attach(
  dev: string,
  ns: string,
  addr: string,
  peer: string,
  mtu = 1400,
): Promise<void> {
  await ip('link', 'set', dev, 'netns', ns);
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await ip('-n', ns, 'link', 'set', dev, 'mtu', String(mtu));
  await ip('-n', ns, 'addr', 'add', `${addr}/32`, 'dev', dev);
  await ip('-n', ns, 'link', 'set', dev, 'up');
  await ip('-n', ns, 'route', 'add', `${peer}/32`, 'dev', dev);
}

/** Runs `node -e script` inside a namespace; resolves with stdout; `onLine` sees lines as they come. */
function nodeIn(ns: string, script: string, onLine?: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      const text = d.toString();
      out += text;
      for (const line of text.split('\n')) if (line) onLine?.(line);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`node in ${ns} exited ${code}: ${err}`));
    });
  });
}

function csumRaw(buf: Buffer, off: number, len: number, seed = 0): number {
  let s = seed;
  for (let i = 0; i + 1 < len; i += 2) s += buf.readUInt16BE(off + i);
  if (len & 1) s += buf[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** True if the IPv4 header and TCP/UDP checksums of packet p verify. */
function checksumsValid(p: Buffer): boolean {
  const ihl = (p[0]! & 15) * 4;
  if (csumRaw(p, 0, ihl) !== 0xffff) return false;
  const l4len = p.readUInt16BE(2) - ihl;
  const pseudo = Buffer.alloc(12);
  p.copy(pseudo, 0, 12, 20);
  pseudo[9] = p[9]!;
  pseudo.writeUInt16BE(l4len, 10);
  return csumRaw(p, ihl, l4len, csumRaw(pseudo, 0, 12)) === 0xffff;
}

const VNET_HDR = 10;
const GSO_TCPV4 = 1;
const NEEDS_CSUM = 1;

/** A virtio_net_hdr (host byte order, as the TUN uses) followed by `packet`. */
function vnet(
  packet: Buffer,
  h: {
    flags?: number;
    gsoType?: number;
    gsoSize?: number;
    csumStart?: number;
    csumOffset?: number;
  },
): Buffer {
  const out = Buffer.alloc(VNET_HDR + packet.length);
  out[0] = h.flags ?? 0;
  out[1] = h.gsoType ?? 0;
  out.writeUInt16LE(0, 2);
  out.writeUInt16LE(h.gsoSize ?? 0, 4);
  out.writeUInt16LE(h.csumStart ?? 0, 6);
  out.writeUInt16LE(h.csumOffset ?? 0, 8);
  packet.copy(out, VNET_HDR);
  return out;
}

/** IPv4/TCP packet with a 12-byte option block (like timestamps) and the given payload. */
function tcpPacket(payload: Buffer, flags: number, seq: number, id: number): Buffer {
  const ihl = 20;
  const thl = 32;
  const p = Buffer.alloc(ihl + thl + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(id, 4);
  p.writeUInt16BE(0x4000, 6);
  p[8] = 64;
  p[9] = 6;
  p.writeUInt32BE(0x0aca0001, 12);
  p.writeUInt32BE(0x0aca0002, 16);
  p.writeUInt16BE(40000, ihl);
  p.writeUInt16BE(5001, ihl + 2);
  p.writeUInt32BE(seq, ihl + 4);
  p.writeUInt32BE(777, ihl + 8);
  p[ihl + 12] = (thl / 4) << 4;
  p[ihl + 13] = flags;
  p.writeUInt16BE(502, ihl + 14);
  p.fill(1, ihl + 20, ihl + thl); // NOP options
  payload.copy(p, ihl + thl);
  return p;
}

const suite = isRoot ? describe : describe.skip;
if (!isRoot)
  it.skip('TUN mode tests need root (CAP_NET_ADMIN, namespaces): skipped', () => undefined);

suite('addon segmenter on crafted packets', () => {
  const addon = loadNative();
  const out = Buffer.alloc(1 << 17);
  const offsets = new Uint32Array(256);
  const lengths = new Uint32Array(256);

  it('splits a TCPv4 super-packet exactly like the kernel would', () => {
    const payload = randomBytes(5000);
    const FIN = 1,
      PSH = 8,
      ACK = 16,
      CWR = 128;
    const seq0 = 0xfffff000; // wraps within the packet
    const sp = tcpPacket(payload, FIN | PSH | ACK | CWR, seq0, 0xfffe);
    const n = addon.segmentForTest(
      vnet(sp, { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, gsoSize: 1400 }),
      out,
      offsets,
      lengths,
    );
    expect(n).toBe(4);
    const joined: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const s = Buffer.from(out.subarray(offsets[i]!, offsets[i]! + lengths[i]!));
      const plen = i < 3 ? 1400 : 5000 - 3 * 1400;
      expect(s.length).toBe(52 + plen);
      expect(s.readUInt16BE(2)).toBe(s.length);
      expect(s.readUInt16BE(4)).toBe((0xfffe + i) & 0xffff);
      expect(s.readUInt32BE(24)).toBe((seq0 + i * 1400) >>> 0);
      const fl = s[33]!;
      expect(fl & ACK).toBe(ACK);
      expect((fl & (FIN | PSH)) !== 0).toBe(i === n - 1);
      expect((fl & CWR) !== 0).toBe(i === 0);
      expect(s.subarray(40, 52)).toEqual(sp.subarray(40, 52)); // options copied
      expect(checksumsValid(s)).toBe(true);
      joined.push(s.subarray(52));
    }
    expect(Buffer.concat(joined)).toEqual(payload);
  });

  it('completes a partial (NEEDS_CSUM) UDP checksum and passes plain packets through', () => {
    const p = Buffer.alloc(20 + 8 + 333, 0x5a);
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    p[8] = 64;
    p[9] = 17;
    p.writeUInt32BE(0x0aca0001, 12);
    p.writeUInt32BE(0x0aca0002, 16);
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(0xffff - csumRaw(p, 0, 20), 10);
    p.writeUInt16BE(1111, 20);
    p.writeUInt16BE(2222, 22);
    p.writeUInt16BE(8 + 333, 24);
    // What the kernel leaves in the field: the (uncomplemented) pseudo-header sum.
    const pseudo = Buffer.alloc(12);
    p.copy(pseudo, 0, 12, 20);
    pseudo[9] = 17;
    pseudo.writeUInt16BE(8 + 333, 10);
    p.writeUInt16BE(csumRaw(pseudo, 0, 12), 26);
    expect(
      addon.segmentForTest(
        vnet(p, { flags: NEEDS_CSUM, csumStart: 20, csumOffset: 6 }),
        out,
        offsets,
        lengths,
      ),
    ).toBe(1);
    const done = out.subarray(0, lengths[0]!);
    expect(checksumsValid(Buffer.from(done))).toBe(true);
    expect(addon.segmentForTest(vnet(p, {}), out, offsets, lengths)).toBe(1);
    expect(out.subarray(0, p.length)).toEqual(p);
  });

  it('property: any valid super-packet splits into checksum-valid, in-order segments', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65535 - 52 }),
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.constantFrom(0x10, 0x18, 0x19, 0x90, 0x11),
        (plen, mss, seq, id, flags) => {
          fc.pre(Math.ceil(plen / mss) <= 256);
          const payload = randomBytes(plen);
          const sp = tcpPacket(payload, flags, seq, id);
          const n = addon.segmentForTest(
            vnet(sp, { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, gsoSize: mss }),
            out,
            offsets,
            lengths,
          );
          expect(n).toBe(Math.max(1, Math.ceil(plen / mss)));
          let at = 0;
          for (let i = 0; i < n; i++) {
            const seg = Buffer.from(out.subarray(offsets[i]!, offsets[i]! + lengths[i]!));
            expect(checksumsValid(seg)).toBe(true);
            expect(seg.readUInt32BE(24)).toBe((seq + at) >>> 0);
            expect(seg.subarray(52).equals(payload.subarray(at, at + mss))).toBe(true);
            at += seg.length - 52;
          }
          expect(at).toBe(plen);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('drops malformed GSO packets', () => {
    const sp = tcpPacket(randomBytes(3000), 16, 1, 1);
    const notTcp = Buffer.from(sp);
    notTcp[9] = 17;
    const fragment = Buffer.from(sp);
    fragment.writeUInt16BE(0x2000, 6); // MF
    const badLen = Buffer.from(sp);
    badLen.writeUInt16BE(sp.length + 1, 2);
    for (const [pkt, h] of [
      [notTcp, { gsoType: GSO_TCPV4, gsoSize: 1400 }],
      [fragment, { gsoType: GSO_TCPV4, gsoSize: 1400 }],
      [badLen, { gsoType: GSO_TCPV4, gsoSize: 1400 }],
      [sp, { gsoType: GSO_TCPV4, gsoSize: 0 }],
      [sp, { gsoType: 4 /* TCPV6: not enabled */, gsoSize: 1400 }],
      [sp, { flags: NEEDS_CSUM, csumStart: sp.length, csumOffset: 0 }],
    ] as const) {
      expect(addon.segmentForTest(vnet(pkt, h), out, offsets, lengths)).toBe(-1);
    }
  });
});

suite('offload mode: TCP through two TUNs and a JS forwarder', () => {
  const nsA = `${PREFIX}a`;
  const nsB = `${PREFIX}b`;
  let a: TunDevice;
  let b: TunDevice;

  beforeAll(async () => {
    await scratch.add(nsA);
    await scratch.add(nsB);
    a = openTun({ name: `${PREFIX}a%d`, offload: true });
    b = openTun({ name: `${PREFIX}b%d` });
    a.onPackets((batch) => b.writeMany(batch.buf, batch.offsets, batch.lengths, batch.count));
    b.onPackets((batch) => a.writeMany(batch.buf, batch.offsets, batch.lengths, batch.count));
    await attach(a.name, nsA, '10.202.0.1', '10.202.0.2');
    await attach(b.name, nsB, '10.202.0.2', '10.202.0.1');
  });

  afterAll(() => {
    a?.close();
    b?.close();
    scratch.cleanup();
  });

  /** Streams 16 MiB of random bytes over TCP from `fromNs` to `to` in `toNs`; both ends hash. */
  async function transfer(fromNs: string, toNs: string, to: string): Promise<void> {
    const server = `
      const net = require('net'), crypto = require('crypto');
      const srv = net.createServer((s) => {
        const h = crypto.createHash('sha256'); let n = 0;
        s.on('data', (d) => { h.update(d); n += d.length; });
        s.on('end', () => { console.log('done ' + n + ' ' + h.digest('hex')); s.end(); srv.close(); });
      });
      srv.listen(5001, '${to}', () => console.log('ready'));`;
    const client = `
      const net = require('net'), crypto = require('crypto');
      const h = crypto.createHash('sha256'); let left = 16 << 20;
      const s = net.connect(5001, '${to}', () => {
        const more = () => {
          while (left > 0) {
            const chunk = crypto.randomBytes(256 << 10);
            left -= chunk.length; h.update(chunk);
            if (!s.write(chunk)) return s.once('drain', more);
          }
          s.end(); console.log('sent ' + (16 << 20) + ' ' + h.digest('hex'));
        };
        more();
      });`;
    let ready!: () => void;
    const listening = new Promise<void>((res) => (ready = res));
    const served = nodeIn(toNs, server, (line) => line === 'ready' && ready());
    await listening;
    const sent = await nodeIn(fromNs, client);
    const got = await served;
    const [, sentBytes, sentHash] = /sent (\d+) ([0-9a-f]+)/.exec(sent)!;
    const [, gotBytes, gotHash] = /done (\d+) ([0-9a-f]+)/.exec(got)!;
    expect(gotBytes).toBe(sentBytes);
    expect(gotHash).toBe(sentHash);
  }

  it('splits the sender’s super-segments: 16 MiB arrive intact (offload → plain)', async () => {
    expect(a.offload).toBe(true);
    // Deltas: IPv6 chatter written while the other link was still down counts EIO.
    const errorsBefore = a.stats.txErrors + b.stats.txErrors;
    await transfer(nsA, nsB, '10.202.0.2');
    expect(a.stats.rxSuperPackets).toBeGreaterThan(0);
    expect(a.stats.rxDropped).toBe(0);
    expect(a.stats.txErrors + b.stats.txErrors).toBe(errorsBefore);
  });

  it('coalesces the kernel’s segments on writeMany: 16 MiB arrive intact (plain → offload)', async () => {
    const errorsBefore = a.stats.txErrors + b.stats.txErrors;
    const superBefore = a.stats.txSuperPackets;
    const packetsBefore = a.stats.txPackets;
    await transfer(nsB, nsA, '10.202.0.1');
    expect(a.stats.txSuperPackets).toBeGreaterThan(superBefore);
    // Most of the ~12,000 data segments went in as parts of super-packets.
    expect(a.stats.txPackets - packetsBefore).toBeGreaterThan((16 * 2 ** 20) / 1400);
    expect(a.stats.txErrors + b.stats.txErrors).toBe(errorsBefore);
  });
});

suite('multi-queue mode', () => {
  const ns = `${PREFIX}q`;
  const queues: TunDevice[] = [];

  afterAll(() => {
    for (const q of queues) q.close();
    scratch.cleanup();
  });

  it('spreads flows over two queues of one device', async () => {
    await scratch.add(ns);
    queues.push(openTun({ name: `${PREFIX}q%d`, multiQueue: true }));
    queues.push(openTun({ name: queues[0]!.name, multiQueue: true }));
    expect(queues[1]!.name).toBe(queues[0]!.name);
    expect(() => openTun({ name: queues[0]!.name })).toThrow(); // single-queue attach refused
    const perQueue = [0, 0];
    queues.forEach((q, i) =>
      q.onPackets((b) => {
        for (let j = 0; j < b.count; j++) {
          const off = b.offsets[j]!;
          if (b.buf[off]! >> 4 === 4 && b.buf[off + 9] === 17) perQueue[i]!++;
        }
      }),
    );
    await attach(queues[0]!.name, ns, '10.203.0.1', '10.203.0.2');
    // 64 flows (source ports), 4 datagrams each.
    await nodeIn(
      ns,
      `const d = require('dgram'); let open = 64;
       for (let i = 0; i < 64; i++) {
         const s = d.createSocket('udp4');
         s.bind(0, '10.203.0.1', () => {
           let k = 0; const next = () => k++ < 4 ? s.send('x'.repeat(100), 9, '10.203.0.2', next) : (s.close(), --open || process.exit(0));
           next();
         });
       }`,
    );
    const t0 = Date.now();
    while (perQueue[0]! + perQueue[1]! < 256 && Date.now() - t0 < 5000)
      await new Promise((r) => setTimeout(r, 10));
    expect(perQueue[0]! + perQueue[1]!).toBe(256);
    expect(perQueue[0]).toBeGreaterThan(0);
    expect(perQueue[1]).toBeGreaterThan(0);
  });
});
