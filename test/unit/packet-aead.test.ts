/**
 * The packet AEAD's two backends (net/packet-aead.ts): the native OpenSSL
 * contexts of net/native/aead.c and node:crypto must produce identical
 * packets, open each other's, and refuse every tampered, truncated or
 * foreign-key packet without leaving plaintext behind. The native addon is
 * part of every build (bin/dev setup), so its absence fails this test.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { supernetIdBytes } from '../../admin/ids.js';
import { Sealer } from '../../net/keyring.js';
import {
  MAX_INNER_LEN,
  createPacketCipher,
  packetAeadBackend,
  type PacketAeadBackend,
  type PacketCipher,
} from '../../net/packet-aead.js';
import {
  HEADER_LEN,
  OFF_SESSION,
  SNSL_OVERHEAD,
  TAG_LEN,
  readSeq,
  writeHeader,
} from '../../net/wire.js';

const SID = supernetIdBytes('0x0000cafebabe00050100');
const BACKENDS: PacketAeadBackend[] = ['native', 'node'];
const initial = packetAeadBackend();

afterAll(() => {
  packetAeadBackend(initial);
});

function cipher(which: PacketAeadBackend, key: Buffer): PacketCipher {
  packetAeadBackend(which);
  return createPacketCipher(key);
}

/** A packet buffer with a header for (session, seq) at `at`, room for `len` inner bytes. */
function headed(len: number, session: number, seq: number, at = 0): Buffer {
  const b = Buffer.alloc(at + len + SNSL_OVERHEAD + 8, 0x5c);
  writeHeader(b, at, SID, { channel: 0x123, epoch: 7, sender: 0x0a471102, session, seq });
  return b;
}

/** Reference sealing with a one-off node:crypto cipher, straight from the wire format. */
function referenceSeal(key: Buffer, header: Buffer, inner: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, header.subarray(OFF_SESSION, HEADER_LEN), {
    authTagLength: TAG_LEN,
  });
  c.setAAD(header);
  const body = Buffer.concat([c.update(inner), c.final()]);
  return Buffer.concat([header, body, c.getAuthTag()]);
}

describe('packet AEAD backends', () => {
  it('has the native backend built', () => {
    expect(packetAeadBackend('native')).toBe('native');
  });

  it('seal identical bytes for the same key, nonce and header, equal to a plain node:crypto reference (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 0, maxLength: 3000 }),
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.integer({ min: 1, max: 2 ** 48 - 1 }),
        fc.integer({ min: 0, max: 9 }),
        (k, data, session, seq, at) => {
          const key = Buffer.from(k);
          const inner = Buffer.from(data);
          const outs = BACKENDS.map((w) => {
            const c = cipher(w, key);
            const out = headed(inner.length, session, seq, at);
            expect(c.seal(inner, 0, inner.length, out, at)).toBe(inner.length + SNSL_OVERHEAD);
            c.wipe();
            return out;
          });
          expect(outs[0]!.equals(outs[1]!)).toBe(true);
          const pkt = outs[0]!.subarray(at, at + inner.length + SNSL_OVERHEAD);
          const ref = referenceSeal(key, Buffer.from(pkt.subarray(0, HEADER_LEN)), inner);
          expect(pkt.equals(ref)).toBe(true);
          // Nothing past the packet was touched.
          expect(outs[0]!.subarray(at + pkt.length).every((x) => x === 0x5c)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('agree at the size limits: empty body, one block boundary, MTU, largest datagram', () => {
    const key = randomBytes(32);
    for (const len of [0, 1, 15, 16, 17, 1392, MAX_INNER_LEN]) {
      const inner = randomBytes(len);
      const [a, b] = BACKENDS.map((w) => {
        const c = cipher(w, key);
        const out = headed(len, 3, 9);
        c.seal(inner, 0, len, out, 0);
        return out;
      });
      expect(a!.equals(b!)).toBe(true);
    }
  });

  it('each opens the packets the other sealed, also in place', () => {
    const key = randomBytes(32);
    for (const [from, to] of [
      ['native', 'node'],
      ['node', 'native'],
    ] as const) {
      const sealer = cipher(from, key);
      const opener = cipher(to, key);
      const inner = randomBytes(1400);
      const pkt = headed(inner.length, 77, 12345);
      const n = sealer.seal(inner, 0, inner.length, pkt, 0);
      const out = Buffer.alloc(2000);
      expect(opener.open(pkt, 0, n, out, 100)).toBe(inner.length);
      expect(out.subarray(100, 100 + inner.length).equals(inner)).toBe(true);
      // In place: plaintext replaces the ciphertext region of the packet.
      expect(opener.open(pkt, 0, n, pkt, HEADER_LEN)).toBe(inner.length);
      expect(pkt.subarray(HEADER_LEN, HEADER_LEN + inner.length).equals(inner)).toBe(true);
    }
  });

  it('seal in place: the inner packet already sits where its ciphertext goes', () => {
    const key = randomBytes(32);
    const inner = randomBytes(500);
    const [a, b] = BACKENDS.map((w) => {
      const c = cipher(w, key);
      const out = headed(inner.length, 1, 2);
      inner.copy(out, HEADER_LEN);
      c.seal(out, HEADER_LEN, inner.length, out, 0);
      return out;
    });
    expect(a!.equals(b!)).toBe(true);
    const ref = referenceSeal(key, a!.subarray(0, HEADER_LEN), inner);
    expect(a!.subarray(0, ref.length).equals(ref)).toBe(true);
  });

  it('refuse any flipped bit of header, body or tag and leave no plaintext (property)', () => {
    const key = randomBytes(32);
    const inner = randomBytes(80);
    const pkt = headed(inner.length, 5, 6);
    const n = cipher('native', key).seal(inner, 0, inner.length, pkt, 0);
    const openers = BACKENDS.map((w) => cipher(w, key));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: n * 8 - 1 }),
        fc.integer({ min: 0, max: 1 }),
        (bit, which) => {
          const bad = Buffer.from(pkt.subarray(0, n));
          bad[bit >> 3]! ^= 1 << (bit & 7);
          const out = Buffer.alloc(300, 0xaa);
          expect(openers[which]!.open(bad, 0, n, out, 10)).toBe(-1);
          // The plaintext region is wiped, everything else untouched.
          expect(out.subarray(10, 10 + inner.length).every((x) => x === 0)).toBe(true);
          expect(out.subarray(0, 10).every((x) => x === 0xaa)).toBe(true);
          expect(out.subarray(10 + inner.length).every((x) => x === 0xaa)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuse truncated packets and a wrong key', () => {
    const key = randomBytes(32);
    const inner = randomBytes(200);
    const pkt = headed(inner.length, 5, 6);
    const n = cipher('native', key).seal(inner, 0, inner.length, pkt, 0);
    for (const w of BACKENDS) {
      const c = cipher(w, key);
      for (const len of [0, 1, HEADER_LEN, SNSL_OVERHEAD - 1, SNSL_OVERHEAD, n - 16, n - 1]) {
        const out = Buffer.alloc(400, 0xaa);
        expect(c.open(pkt, 0, len, out, 0)).toBe(-1);
        expect(out.includes(inner.subarray(0, 16))).toBe(false);
      }
      const wrong = cipher(w, randomBytes(32));
      const out = Buffer.alloc(400, 0xaa);
      expect(wrong.open(pkt, 0, n, out, 0)).toBe(-1);
      expect(out.subarray(0, inner.length).every((x) => x === 0)).toBe(true);
      // The right key still opens the untouched packet.
      expect(c.open(pkt, 0, n, out, 0)).toBe(inner.length);
    }
  });

  it('reject bad ranges and keys with clear errors, and refuse use after wipe', () => {
    for (const w of BACKENDS) {
      packetAeadBackend(w);
      expect(() => createPacketCipher(Buffer.alloc(16))).toThrow(/32 bytes/);
      const c = createPacketCipher(randomBytes(32));
      const out = headed(100, 1, 1);
      // (Matched by message: the addon's RangeError comes from another realm than Jest's.)
      expect(() => c.seal(Buffer.alloc(100), 0, 100, out, out.length - 50)).toThrow(/too small/);
      expect(() => c.seal(Buffer.alloc(10), 5, 10, out, 0)).toThrow(/past the end/);
      expect(() => c.open(out, 0, out.length + 1, out, 0)).toThrow(/past the end/);
      const n = c.seal(Buffer.alloc(100), 0, 100, out, 0);
      expect(() => c.open(out, 0, n, Buffer.alloc(50), 0)).toThrow(/too small/);
      c.wipe();
      c.wipe();
      expect(() => c.seal(Buffer.alloc(10), 0, 10, out, 0)).toThrow(/wiped/);
      expect(() => c.open(out, 0, n, Buffer.alloc(200), 0)).toThrow(/wiped/);
    }
  });

  it('native: rejects partially overlapping regions rather than producing garbage', () => {
    const c = cipher('native', randomBytes(32));
    const out = headed(100, 1, 1);
    expect(() => c.seal(out, HEADER_LEN + 1, 100, out, 0)).toThrow(/overlap/);
    expect(() => c.seal(out, 0, 100, out, 0)).toThrow(/overlap/);
  });
});

describe('Sealer on both backends', () => {
  it('produces the same packets and numbers them from 1', () => {
    const sub = randomBytes(32);
    const inner = randomBytes(300);
    const pkts = BACKENDS.map((w) => {
      packetAeadBackend(w);
      const s = new Sealer(Buffer.from(sub), SID, 0x123, 7, 0x0a471102, 42);
      const out = Buffer.alloc(2 * (inner.length + SNSL_OVERHEAD));
      const n = s.seal(inner, 0, inner.length, out, 0);
      s.seal(inner, 0, inner.length, out, n);
      expect(readSeq(out, 0)).toBe(1);
      expect(readSeq(out, n)).toBe(2);
      return out;
    });
    expect(pkts[0]!.equals(pkts[1]!)).toBe(true);
  });

  it('wipes the subkey it was given and refuses to seal after wipe()', () => {
    packetAeadBackend('native');
    const sub = randomBytes(32);
    const s = new Sealer(sub, SID, 1, 1, 1, 1);
    expect(sub.every((x) => x === 0)).toBe(true);
    s.wipe();
    expect(s.exhausted).toBe(true);
    expect(() => s.seal(Buffer.alloc(20), 0, 20, Buffer.alloc(100), 0)).toThrow(/exhausted/);
  });
});
