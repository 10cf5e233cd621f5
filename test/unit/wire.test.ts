import { describe, it, expect } from '@jest/globals';
import { createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { supernetIdBytes } from '../../admin/ids.js';
import { ChannelKeyring, Sealer, openPacket, senderSubkey } from '../../net/keyring.js';
import {
  HEADER_LEN,
  NONCE_LEN,
  OFF_SESSION,
  SNSL_OVERHEAD,
  TAG_LEN,
  checkHeader,
  innerMtu,
  readChannel,
  readEpoch,
  readSender,
  readSeq,
  readSession,
  writeHeader,
} from '../../net/wire.js';

const SID = supernetIdBytes('0x0000cafebabe00050100');

function innerPacket(len: number): Buffer {
  const p = randomBytes(len);
  p[0] = 0x45;
  p.writeUInt16BE(len, 2);
  return p;
}

describe('SNSL header (docs/protocol.md §2)', () => {
  it('has the documented layout', () => {
    expect(HEADER_LEN).toBe(36);
    expect(SNSL_OVERHEAD).toBe(52);
    expect(innerMtu(1500)).toBe(1420);
  });

  it('round-trips every field (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          channel: fc.integer({ min: 1, max: 0xffffffff }),
          epoch: fc.integer({ min: 1, max: 0xffffffff }),
          sender: fc.integer({ min: 1, max: 0xffffffff }),
          session: fc.integer({ min: 0, max: 0xffffffff }),
          seq: fc.integer({ min: 1, max: 2 ** 48 }),
        }),
        (f) => {
          const b = Buffer.alloc(HEADER_LEN + 20 + TAG_LEN);
          writeHeader(b, 0, SID, f);
          expect(checkHeader(b, 0, b.length)).toBeNull();
          expect([
            readChannel(b, 0),
            readEpoch(b, 0),
            readSender(b, 0),
            readSession(b, 0),
            readSeq(b, 0),
          ]).toEqual([f.channel, f.epoch, f.sender, f.session, f.seq]);
        },
      ),
    );
  });

  it('rejects short, wrong-version, all-zero and zero-sequence packets', () => {
    const b = Buffer.alloc(HEADER_LEN + 20 + TAG_LEN);
    expect(checkHeader(b, 0, b.length)).toBe('version');
    writeHeader(b, 0, SID, { channel: 1, epoch: 1, sender: 1, session: 1, seq: 1 });
    expect(checkHeader(b, 0, b.length - 1)).toBe('malformed');
    b[0] = 2;
    expect(checkHeader(b, 0, b.length)).toBe('version');
    writeHeader(b, 0, SID, { channel: 1, epoch: 1, sender: 1, session: 1, seq: 0 });
    expect(checkHeader(b, 0, b.length)).toBe('malformed');
    writeHeader(b, 0, SID, { channel: 1, epoch: 0, sender: 1, session: 1, seq: 1 });
    expect(checkHeader(b, 0, b.length)).toBe('malformed');
  });
});

describe('seal/open', () => {
  const key = randomBytes(32);
  const sub = senderSubkey(key, SID, 0x123, 7, 0x0a471102);

  it('opens what it sealed, and the result cross-checks with a plain node:crypto decryption', () => {
    const s = new Sealer(Buffer.from(sub), SID, 0x123, 7, 0x0a471102, 99);
    const inner = innerPacket(300);
    const out = Buffer.alloc(inner.length + SNSL_OVERHEAD);
    const n = s.seal(inner, 0, inner.length, out, 0);
    expect(n).toBe(inner.length + SNSL_OVERHEAD);
    expect(readSeq(out, 0)).toBe(1);
    const plain = Buffer.alloc(2000);
    expect(openPacket(sub, out, 0, n, plain, 0, Buffer.alloc(NONCE_LEN))).toBe(inner.length);
    expect(plain.subarray(0, inner.length).equals(inner)).toBe(true);
    // Independent check: nonce = session ‖ seq, AAD = header.
    const d = createDecipheriv(
      'aes-256-gcm',
      sub,
      out.subarray(OFF_SESSION, OFF_SESSION + NONCE_LEN),
    );
    d.setAAD(out.subarray(0, HEADER_LEN));
    d.setAuthTag(out.subarray(n - TAG_LEN, n));
    const ref = Buffer.concat([d.update(out.subarray(HEADER_LEN, n - TAG_LEN)), d.final()]);
    expect(ref.equals(inner)).toBe(true);
  });

  it('fails on any flipped bit of header, body or tag, and writes nothing then (property)', () => {
    const s = new Sealer(Buffer.from(sub), SID, 0x123, 7, 0x0a471102, 99);
    const inner = innerPacket(64);
    const pkt = Buffer.alloc(inner.length + SNSL_OVERHEAD);
    const n = s.seal(inner, 0, inner.length, pkt, 0);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: n * 8 - 1 }), (bit) => {
        const bad = Buffer.from(pkt);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        const out = Buffer.alloc(200, 0xaa);
        expect(openPacket(sub, bad, 0, n, out, 0, Buffer.alloc(NONCE_LEN))).toBe(-1);
        expect(out.every((x) => x === 0xaa)).toBe(true);
      }),
    );
  });

  it('gives every sender its own subkey: same inner packet, same seq, different ciphertext', () => {
    const a = new Sealer(senderSubkey(key, SID, 1, 1, 1), SID, 1, 1, 1, 5);
    const b = new Sealer(senderSubkey(key, SID, 1, 1, 2), SID, 1, 1, 2, 5);
    const inner = innerPacket(40);
    const pa = Buffer.alloc(200);
    const pb = Buffer.alloc(200);
    const n = a.seal(inner, 0, inner.length, pa, 0);
    b.seal(inner, 0, inner.length, pb, 0);
    expect(pa.subarray(HEADER_LEN, n).equals(pb.subarray(HEADER_LEN, n))).toBe(false);
  });
});

describe('ChannelKeyring epochs', () => {
  it('switches to a newer epoch and accepts the old one only until the grace ends', () => {
    const r = new ChannelKeyring(SID, 1, 1);
    r.install(1, randomBytes(32), undefined, 1000, 5000);
    expect(r.current).toBe(1);
    expect(r.receiverFor(1, 9, 1000)).not.toBeNull();
    r.install(2, randomBytes(32), undefined, 2000, 5000);
    expect(r.current).toBe(2);
    expect(r.receiverFor(1, 9, 6999)).not.toBeNull();
    expect(r.receiverFor(1, 9, 7000)).toBeNull();
    expect(r.expire(7000)).toBe(1);
    expect(r.epochs.has(1)).toBe(false);
    expect(r.sealerFor(9)).not.toBeNull();
  });

  it('does not let an older epoch become current', () => {
    const r = new ChannelKeyring(SID, 1, 1);
    r.install(5, randomBytes(32), undefined, 0, 1000);
    r.install(4, randomBytes(32), 500, 0, 1000);
    expect(r.current).toBe(5);
    expect(r.receiverFor(4, 3, 499)).not.toBeNull();
    expect(r.receiverFor(4, 3, 500)).toBeNull();
  });
});
