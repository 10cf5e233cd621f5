/**
 * Zero-copy sends on real UDP sockets on loopback (net/bind.ts reserve() +
 * commit(), which the packet path seals into): datagrams written straight
 * into the send arena arrive exact and in order, mixed with ordinary send()s,
 * on the native bind (with and without GSO) and the node:dgram fallback; a
 * commit without a live reservation is refused.
 */
import { describe, it, expect } from '@jest/globals';
import {
  UDP_MAX_PAYLOAD,
  ipv4ToU32,
  openBind,
  openDgramBind,
  type BindOptions,
  type DatagramBind,
} from '../../net/bind.js';

const LOOPBACK = ipv4ToU32('127.0.0.1');
const COUNT = 3000;

/** Datagram `seq`: its sequence number, then a pattern derived from it. */
function pattern(buf: Buffer, at: number, seq: number, len: number): void {
  buf.writeUInt32BE(seq, at);
  for (let j = 4; j < len; j++) buf[at + j] = (seq * 13 + j * 5) & 255;
}

function lengthOf(seq: number): number {
  // Runs of equal sizes (GSO groups them), with a shorter tail now and then.
  return seq % 17 === 16 ? 300 : 1200;
}

type Opener = (o: BindOptions) => Promise<DatagramBind>;

const KINDS: [string, Opener, BindOptions][] = [
  ['native', openBind, { port: 0, host: '127.0.0.1' }],
  ['native with GSO/GRO', openBind, { port: 0, host: '127.0.0.1', gso: true, gro: true }],
  ['node:dgram', openDgramBind, { port: 0, host: '127.0.0.1', rcvBuf: 8 << 20 }],
];

describe.each(KINDS)('reserve/commit on the %s bind', (_name, open, opts) => {
  it('sends what was written into the arena, in order with send()', async () => {
    const tx = await open({ ...opts, port: 0 });
    const rx = await open({ ...opts, port: 0, rcvBuf: 8 << 20 });
    const got: { seq: number; ok: boolean }[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`received ${got.length} of ${COUNT}`)),
        15000,
      );
      rx.onDatagrams((b) => {
        for (let i = 0; i < b.count; i++) {
          const off = b.offsets[i]!;
          const len = b.lengths[i]!;
          const seq = b.buf.readUInt32BE(off);
          let ok = len === lengthOf(seq) && b.ports[i] === tx.port;
          for (let j = 4; ok && j < len; j++) ok = b.buf[off + j] === ((seq * 13 + j * 5) & 255);
          got.push({ seq, ok });
        }
        if (got.length >= COUNT) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const scratch = Buffer.alloc(2000);
    try {
      // Paced in rounds so loopback's socket buffer never overflows.
      for (let seq = 0; seq < COUNT;) {
        for (let k = 0; k < 100 && seq < COUNT; k++, seq++) {
          const len = lengthOf(seq);
          if (seq % 3 === 0) {
            pattern(scratch, 0, seq, len);
            tx.send(scratch, 0, len, LOOPBACK, rx.port);
          } else {
            const at = tx.reserve(1500);
            expect(at).toBeGreaterThanOrEqual(0);
            pattern(tx.sendArena, at, seq, len);
            tx.commit(len, LOOPBACK, rx.port);
          }
        }
        tx.flush();
        await new Promise((r) => setTimeout(r, 2));
      }
      await done;
      expect(got.filter((g) => !g.ok)).toEqual([]);
      expect(got.map((g) => g.seq)).toEqual([...Array(COUNT).keys()]);
    } finally {
      tx.close();
      rx.close();
    }
  });

  it('refuses a commit without a reservation, beyond it, or after a flush, and oversize reserves', async () => {
    const tx = await open({ ...opts, port: 0 });
    try {
      expect(() => tx.commit(10, LOOPBACK, 9)).toThrow(/bind\.commit/);
      expect(tx.reserve(100)).toBeGreaterThanOrEqual(0);
      expect(() => tx.commit(101, LOOPBACK, 9)).toThrow(/bind\.commit/);
      tx.reserve(100);
      tx.flush();
      expect(() => tx.commit(50, LOOPBACK, 9)).toThrow(/bind\.commit/);
      tx.reserve(100);
      expect(() => tx.commit(50, LOOPBACK, 0)).toThrow(/bind\.commit/);
      expect(() => tx.reserve(UDP_MAX_PAYLOAD + 1)).toThrow(/bind\.reserve/);
    } finally {
      tx.close();
    }
  });
});
