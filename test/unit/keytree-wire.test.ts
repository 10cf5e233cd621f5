/**
 * Wire formats of the key tree (docs/keys.md §Messages): every encodable
 * message decodes to exactly its fields, and every truncated, extended or
 * bit-flipped one is refused with a KeyTreeError — never accepted, never
 * another kind of exception.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { Identity, SEAL_OVERHEAD } from '../../admin/identity.js';
import {
  CHECK_LEN,
  ENTRY_NONCE_LEN,
  KeyTreeError,
  MAX_HEIGHT,
  channelGroupId,
  storageGroupId,
} from '../../admin/keytree-crypto.js';
import {
  ENTRY_BOX_LEN,
  ENTRY_LEN,
  FLAG_EMPTY,
  HEADER_LEN,
  OFF_FLAGS,
  OFF_HEIGHT,
  OFF_RESERVED,
  OFF_R_ENTRIES,
  OFF_R_LIST,
  OFF_TYPE,
  OFF_VERSION,
  TYPE_JOIN,
  TYPE_REKEY,
  TYPE_WELCOME,
  decodeMessage,
  encodeJoinNotice,
  encodeRekey,
  encodeWelcome,
  isVerifiedBy,
  joinLen,
  pathLen,
  peekHeader,
  rekeyLen,
  welcomeLen,
  type RekeyEntry,
} from '../../admin/keytree-wire.js';

const admin = Identity.generate('admin');
const other = Identity.generate('impostor');

const nonZero = (len: number) =>
  fc.uint8Array({ minLength: len, maxLength: len }).filter((b) => b.some((x) => x !== 0));

const groupArb = fc
  .tuple(nonZero(10), fc.integer({ min: 1, max: 0xffff_ffff }), fc.boolean())
  .map(([sn, n, ch]) => (ch ? channelGroupId(sn, n) : storageGroupId(sn, n)));
const epochArb = fc.integer({ min: 1, max: 0xffff_ffff });

/** Strictly ascending distinct values below `limit`. */
const ascending = (limit: number, min: number, max: number) =>
  fc
    .uniqueArray(fc.integer({ min: 0, max: limit - 1 }), { minLength: min, maxLength: max })
    .map((a) => a.sort((x, y) => x - y));

const welcomeArb = fc
  .record({ group: groupArb, epoch: epochArb, height: fc.integer({ min: 0, max: MAX_HEIGHT }) })
  .chain((h) =>
    fc.record({
      group: fc.constant(h.group),
      epoch: fc.constant(h.epoch),
      height: fc.constant(h.height),
      leaf: fc.integer({ min: 0, max: 2 ** h.height - 1 }),
      box: fc.uint8Array({
        minLength: SEAL_OVERHEAD + pathLen(h.height),
        maxLength: SEAL_OVERHEAD + pathLen(h.height),
      }),
    }),
  );

const joinArb = fc
  .record({ group: groupArb, epoch: epochArb, height: fc.integer({ min: 0, max: MAX_HEIGHT }) })
  .chain((h) =>
    fc.record({
      group: fc.constant(h.group),
      epoch: fc.constant(h.epoch),
      height: fc.constant(h.height),
      leaves: ascending(2 ** h.height, 1, 12),
      rootCheck: nonZero(CHECK_LEN),
    }),
  );

const entriesArb = (height: number) =>
  height === 0
    ? fc.constant([] as RekeyEntry[])
    : fc
        .uniqueArray(
          fc.integer({ min: 0, max: height - 1 }).chain((level) =>
            fc.record({
              level: fc.constant(level),
              index: fc.integer({ min: 0, max: 2 ** (height - level) - 1 }),
              box: fc
                .uint8Array({ minLength: ENTRY_BOX_LEN, maxLength: ENTRY_BOX_LEN })
                .map((b) => Buffer.from(b)),
            }),
          ),
          { maxLength: 2 * height, selector: (e) => `${e.level}/${e.index}` },
        )
        .map((es) => es.sort((a, b) => a.level - b.level || a.index - b.index));

const rekeyArb = fc
  .record({
    group: groupArb,
    epoch: epochArb,
    empty: fc.boolean(),
    height: fc.integer({ min: 0, max: MAX_HEIGHT }),
  })
  .chain((h) => {
    const height = h.empty ? 0 : h.height;
    return fc.record({
      group: fc.constant(h.group),
      epoch: fc.constant(h.epoch),
      height: fc.constant(height),
      empty: fc.constant(h.empty),
      removed: ascending(2 ** MAX_HEIGHT, 1, 8),
      nonceBase: nonZero(ENTRY_NONCE_LEN),
      rootCheck: h.empty ? fc.constant(new Uint8Array(CHECK_LEN)) : nonZero(CHECK_LEN),
      entries: h.empty ? fc.constant([] as RekeyEntry[]) : entriesArb(height),
    });
  });

/** Every encodable message, as bytes with the fields it came from. */
const messageArb = fc.oneof(
  welcomeArb.map((f) => ({ bytes: encodeWelcome(f, admin), type: TYPE_WELCOME, f })),
  joinArb.map((f) => ({ bytes: encodeJoinNotice(f, admin), type: TYPE_JOIN, f })),
  rekeyArb.map((f) => ({ bytes: encodeRekey(f, admin), type: TYPE_REKEY, f })),
);

const b = (x: Uint8Array): string => Buffer.from(x).toString('hex');

/** Decoding must fail with a KeyTreeError of one of the expected codes. */
function refused(bytes: Uint8Array): string {
  try {
    decodeMessage(bytes, admin.pub.sign);
  } catch (err) {
    if (err instanceof KeyTreeError) return err.code;
    throw err;
  }
  throw new Error('tampered message was accepted');
}

describe('key tree wire formats', () => {
  it('decodes every encoded message to exactly its fields', () => {
    fc.assert(
      fc.property(messageArb, ({ bytes, type, f }) => {
        const m = decodeMessage(bytes, admin.pub.sign);
        expect(m.type).toBe(type);
        expect(b(m.group)).toBe(b(f.group));
        expect(m.epoch).toBe(f.epoch);
        expect(m.height).toBe(f.height);
        expect(isVerifiedBy(m, admin.pub.sign)).toBe(true);
        expect(isVerifiedBy(m, other.pub.sign)).toBe(false);
        if (m.type === TYPE_WELCOME && 'leaf' in f) {
          expect(bytes.length).toBe(welcomeLen(f.height));
          expect(m.leaf).toBe(f.leaf);
          expect(b(m.box)).toBe(b(f.box));
          expect(m.flags).toBe(0);
        } else if (m.type === TYPE_JOIN && 'leaves' in f) {
          expect(bytes.length).toBe(joinLen(f.leaves.length));
          expect([...m.leaves]).toEqual([...f.leaves]);
          expect(b(m.rootCheck)).toBe(b(f.rootCheck));
        } else if (m.type === TYPE_REKEY && 'removed' in f) {
          expect(bytes.length).toBe(rekeyLen(f.removed.length, f.entries.length));
          expect(m.flags).toBe(f.empty ? FLAG_EMPTY : 0);
          expect([...m.removed]).toEqual([...f.removed]);
          expect(b(m.nonceBase)).toBe(b(f.nonceBase));
          expect(b(m.rootCheck)).toBe(b(f.rootCheck));
          expect(m.entries.map((e) => [e.level, e.index, b(e.box)])).toEqual(
            f.entries.map((e) => [e.level, e.index, b(e.box)]),
          );
          expect(b(m.headerBytes)).toBe(b(bytes.subarray(0, HEADER_LEN)));
        } else throw new Error('type and fields disagree');
        expect(peekHeader(bytes).epoch).toBe(f.epoch);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses every truncation and every extension', () => {
    fc.assert(
      fc.property(
        messageArb,
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        (m, cut, tail) => {
          const short = m.bytes.subarray(0, cut % m.bytes.length);
          expect(['malformed', 'bad_signature']).toContain(refused(short));
          const long = Buffer.concat([m.bytes, tail]);
          expect(['malformed', 'bad_signature']).toContain(refused(long));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses every single bit flip', () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (m, at, bit) => {
        const t = Buffer.from(m.bytes);
        t[at % t.length] ^= 1 << bit;
        expect(['malformed', 'bad_signature', 'wrong_group']).toContain(refused(t));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a message signed by anyone but the pinned admin', () => {
    fc.assert(
      fc.property(joinArb, (f) => {
        const forged = encodeJoinNotice(f, other);
        expect(refused(forged)).toBe('bad_signature');
      }),
      { numRuns: 20 },
    );
  });

  it('names what is wrong with a malformed header', () => {
    const f = {
      group: channelGroupId(Buffer.alloc(10, 7), 1),
      epoch: 5,
      height: 3,
      leaves: [2, 6],
      rootCheck: Buffer.alloc(CHECK_LEN, 9),
    };
    const good = encodeJoinNotice(f, admin);
    const with_ = (off: number, v: number): Buffer => {
      const t = Buffer.from(good);
      t[off] = v;
      return t;
    };
    const msg = (bytes: Uint8Array): string => {
      try {
        decodeMessage(bytes, admin.pub.sign);
        return 'accepted';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(msg(with_(OFF_VERSION, 2))).toMatch(/unknown version 2/);
    expect(msg(with_(OFF_TYPE, 9))).toMatch(/unknown type 9/);
    expect(msg(with_(OFF_FLAGS, FLAG_EMPTY))).toMatch(/unknown flags/);
    expect(msg(with_(OFF_RESERVED, 1))).toMatch(/reserved/);
    expect(msg(with_(OFF_HEIGHT, MAX_HEIGHT + 1))).toMatch(/height 25 exceeds/);
    expect(msg(with_(OFF_HEIGHT, 2))).toMatch(/joined leaf 6 out of range/);
    expect(msg(Buffer.alloc(10))).toMatch(/too short/);
    expect(msg(good)).toBe('accepted');
  });

  it('refuses non-canonical rekey entries even when signed', () => {
    const base = {
      group: channelGroupId(Buffer.alloc(10, 7), 1),
      epoch: 9,
      height: 2,
      empty: false,
      removed: [1],
      nonceBase: Buffer.alloc(ENTRY_NONCE_LEN, 1),
      rootCheck: Buffer.alloc(CHECK_LEN, 2),
      entries: [
        { level: 0, index: 0, box: Buffer.alloc(ENTRY_BOX_LEN, 3) },
        { level: 1, index: 1, box: Buffer.alloc(ENTRY_BOX_LEN, 4) },
      ],
    };
    const good = encodeRekey(base, admin);
    expect(decodeMessage(good, admin.pub.sign).type).toBe(TYPE_REKEY);
    // The encoder refuses out-of-order entries and a non-empty "empty" group.
    expect(() => encodeRekey({ ...base, entries: [...base.entries].reverse() }, admin)).toThrow(
      /entries must be in \(level, index\) order/,
    );
    expect(() => encodeRekey({ ...base, empty: true }, admin)).toThrow(/root check/);
    // Hand-made: swap the two entries and re-sign; the decoder still refuses.
    const swapped = Buffer.from(good);
    const first = OFF_R_LIST + 4;
    good.copy(swapped, first, first + ENTRY_LEN, first + 2 * ENTRY_LEN);
    good.copy(swapped, first + ENTRY_LEN, first, first + ENTRY_LEN);
    expect(refusedResigned(swapped)).toMatch(/not in \(level, index\) order/);
    // An entry count that does not match the length.
    const counted = Buffer.from(good);
    counted.writeUInt32BE(3, OFF_R_ENTRIES);
    expect(refusedResigned(counted)).toMatch(/rekey length/);
  });
});

/** Re-signs tampered bytes with the real admin key, so only the structure can be wrong. */
function refusedResigned(bytes: Buffer): string {
  const body = bytes.subarray(0, bytes.length - 64);
  admin
    .sign(Buffer.concat([Buffer.from('supernet keytree v1\0', 'latin1'), body]))
    .copy(bytes, bytes.length - 64);
  try {
    decodeMessage(bytes, admin.pub.sign);
  } catch (err) {
    if (err instanceof KeyTreeError && err.code === 'malformed') return err.message;
    throw err;
  }
  throw new Error('accepted');
}
