/**
 * Real TUN devices: open one in the host namespace, move it into a test
 * namespace, configure it there, and answer `ping` from JS (proves batched
 * read and write); the kernel's own replies to packets written with
 * writeMany(); EIO on a down link counted, not thrown; device loss reported.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ScratchNamespaces, ip } from '../bed/scratch-ns.js';
import { openTun, type PacketBatch, type TunDevice } from '../../net/tun.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const scratch = new ScratchNamespaces('T');
const PREFIX = scratch.prefix;
const NS = `${PREFIX}a`;
const NS_GONE = `${PREFIX}b`;
const LOCAL = '10.201.0.1'; // the node's address on the TUN
const PEER = '10.201.0.2'; // "behind" the TUN: answered by this test
const EIO = 5;

/** Moves `dev` into `ns` and configures it there (moving clears addresses: configure after). */
async function attach(dev: string, ns: string): Promise<void> {
  await ip('link', 'set', dev, 'netns', ns);
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await ip('-n', ns, 'addr', 'add', `${LOCAL}/24`, 'dev', dev);
  await ip('-n', ns, 'link', 'set', dev, 'up');
}

function ipU32(s: string): number {
  return s.split('.').reduce((a, b) => a * 256 + Number(b), 0);
}

/** RFC 1071 checksum of buf[off, off+len). */
function csum(buf: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i + 1 < len; i += 2) s += buf.readUInt16BE(off + i);
  if (len & 1) s += buf[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;

/** An IPv4 ICMP echo packet src → dst. */
function echo(
  type: number,
  src: string,
  dst: string,
  id: number,
  seq: number,
  payload: Buffer,
): Buffer {
  const p = Buffer.alloc(28 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(0x4000, 6); // DF
  p[8] = 64;
  p[9] = 1;
  p.writeUInt32BE(ipU32(src), 12);
  p.writeUInt32BE(ipU32(dst), 16);
  p.writeUInt16BE(csum(p, 0, 20), 10);
  p[20] = type;
  p.writeUInt16BE(id, 24);
  p.writeUInt16BE(seq, 26);
  payload.copy(p, 28);
  p.writeUInt16BE(csum(p, 20, p.length - 20), 22);
  return p;
}

interface Icmp {
  type: number;
  src: number;
  dst: number;
  id: number;
  seq: number;
  packet: Buffer;
}

/** Parses the ICMP packets of a batch (copies: the batch is reused). */
function icmpOf(b: PacketBatch): Icmp[] {
  const out: Icmp[] = [];
  for (let i = 0; i < b.count; i++) {
    const p = Buffer.from(b.buf.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    if (p.length < 28 || p[0]! >> 4 !== 4 || p[9] !== 1) continue; // IPv6 noise, other protocols
    const ihl = (p[0]! & 15) * 4;
    out.push({
      type: p[ihl]!,
      src: p.readUInt32BE(12),
      dst: p.readUInt32BE(16),
      id: p.readUInt16BE(ihl + 4),
      seq: p.readUInt16BE(ihl + 6),
      packet: p,
    });
  }
  return out;
}

/** Turns an echo request (as read from the TUN) into its reply, in place. */
function toReply(p: Buffer): Buffer {
  const ihl = (p[0]! & 15) * 4;
  const src = p.readUInt32BE(12);
  p.writeUInt32BE(p.readUInt32BE(16), 12); // swapping addresses keeps the IP checksum
  p.writeUInt32BE(src, 16);
  p[ihl] = ICMP_ECHO_REPLY;
  p.writeUInt16BE(0, ihl + 2);
  p.writeUInt16BE(csum(p, ihl, p.length - ihl), ihl + 2);
  return p;
}

function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() - started > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

const suite = isRoot ? describe : describe.skip;
if (!isRoot) it.skip('TUN tests need root (CAP_NET_ADMIN, namespaces): skipped', () => undefined);

suite('TUN device in a namespace', () => {
  let tun: TunDevice;
  let handler: (b: PacketBatch) => void = () => undefined;

  beforeAll(async () => {
    await scratch.add(NS);
    tun = openTun({ name: `${PREFIX}t%d` });
    tun.onPackets((b) => handler(b));
    await attach(tun.name, NS);
  });

  afterAll(() => {
    tun?.close();
    scratch.cleanup();
  });

  it('opens under the requested pattern and refuses a name in use', () => {
    expect(tun.name).toMatch(new RegExp(`^${PREFIX}t\\d+$`));
    expect(tun.fd).toBeGreaterThan(2);
    const other = openTun({ name: `${PREFIX}x%d` });
    try {
      expect(() => openTun({ name: other.name })).toThrow(
        expect.objectContaining({ code: 'EBUSY' }),
      );
    } finally {
      other.close();
    }
    expect(() => openTun({ name: 'bad/name' })).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(() => openTun({ name: 'x'.repeat(16) })).toThrow(/invalid interface name/);
  });

  it('answers ping from inside the namespace (read + write)', async () => {
    const requests: Icmp[] = [];
    const before = { ...tun.stats };
    handler = (b) => {
      for (const m of icmpOf(b)) {
        if (m.type !== ICMP_ECHO_REQUEST || m.dst !== ipU32(PEER)) continue;
        requests.push(m);
        expect(tun.write(toReply(m.packet), 0, m.packet.length)).toBe(true);
      }
    };
    const { stdout } = await run('ip', [
      'netns',
      'exec',
      NS,
      'ping',
      '-n',
      '-c',
      '3',
      '-i',
      '0.2',
      '-W',
      '2',
      PEER,
    ]);
    expect(stdout).toMatch(/3 packets transmitted, 3 received/);
    expect(requests.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(requests.every((r) => r.src === ipU32(LOCAL))).toBe(true);
    expect(tun.stats.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(3);
    expect(tun.stats.txPackets - before.txPackets).toBe(3);
    expect(tun.stats.txErrors).toBe(before.txErrors);
    expect(tun.stats.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(3 * 84);
  });

  it('writes a batch with writeMany and reads the kernel’s replies', async () => {
    const replies: Icmp[] = [];
    handler = (b) => {
      for (const m of icmpOf(b))
        if (m.type === ICMP_ECHO_REPLY && m.dst === ipU32(PEER)) replies.push(m);
    };
    const n = 8;
    const arena = Buffer.alloc(n * 256);
    const offsets = new Uint32Array(n);
    const lengths = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const p = echo(ICMP_ECHO_REQUEST, PEER, LOCAL, 0x5e, i, Buffer.alloc(40 + i, i));
      p.copy(arena, i * 256);
      offsets[i] = i * 256;
      lengths[i] = p.length;
    }
    expect(tun.writeMany(arena, offsets, lengths, n)).toBe(n);
    await until(() => replies.length === n, 5000, 'echo replies');
    expect(replies.map((r) => r.seq).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const r of replies) expect(r.packet.subarray(28)).toEqual(Buffer.alloc(40 + r.seq, r.seq));
    // Native errors come from the main realm, not Jest's: match code and message.
    const outOfRange = expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' });
    expect(() => tun.writeMany(arena, offsets, lengths, n + 1)).toThrow(outOfRange);
    expect(() => tun.write(arena, arena.length - 10, 20)).toThrow(outOfRange);
  });

  it('counts EIO on a down link instead of throwing', async () => {
    await ip('-n', NS, 'link', 'set', tun.name, 'down');
    const before = tun.stats.txErrors;
    const p = echo(ICMP_ECHO_REPLY, PEER, LOCAL, 1, 1, Buffer.alloc(8));
    expect(tun.write(p, 0, p.length)).toBe(false);
    expect(tun.stats.txErrors).toBe(before + 1);
    expect(tun.stats.lastTxErrno).toBe(EIO);
    await ip('-n', NS, 'link', 'set', tun.name, 'up');
    expect(tun.write(p, 0, p.length)).toBe(true);
  });

  it('reports the device going away with its namespace', async () => {
    await scratch.add(NS_GONE);
    const doomed = openTun({ name: `${PREFIX}g%d` });
    const errors: Error[] = [];
    doomed.onPackets(() => undefined);
    doomed.onError((e) => errors.push(e));
    await attach(doomed.name, NS_GONE);
    await scratch.delete(NS_GONE);
    await until(() => errors.length > 0, 10000, 'the error callback');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/^TUN fd \d+: /);
    expect((errors[0] as Error & { code?: string }).code).toMatch(/^EBADF/);
    expect(doomed.closed).toBe(true);
    const p = echo(ICMP_ECHO_REPLY, PEER, LOCAL, 1, 1, Buffer.alloc(8));
    expect(doomed.write(p, 0, p.length)).toBe(false);
    doomed.close();
  });
});
