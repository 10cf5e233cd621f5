/**
 * XDR (RFC 4506) codec: property round trips for every item type, exact
 * padding, and clear errors on truncated or malformed input.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { XdrError, XdrReader, XdrWriter, padLen } from '../../fs/nfs/xdr.js';

type Item =
  | { t: 'u32'; v: number }
  | { t: 'i32'; v: number }
  | { t: 'u64'; v: bigint }
  | { t: 'bool'; v: boolean }
  | { t: 'opaque'; v: Uint8Array }
  | { t: 'fixed'; v: Uint8Array }
  | { t: 'string'; v: string };

const item: fc.Arbitrary<Item> = fc.oneof(
  fc.nat({ max: 0xffffffff }).map((v) => ({ t: 'u32' as const, v })),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((v) => ({ t: 'i32' as const, v })),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((v) => ({ t: 'u64' as const, v })),
  fc.boolean().map((v) => ({ t: 'bool' as const, v })),
  fc.uint8Array({ maxLength: 70 }).map((v) => ({ t: 'opaque' as const, v })),
  fc.uint8Array({ maxLength: 70 }).map((v) => ({ t: 'fixed' as const, v })),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map((v) => ({ t: 'string' as const, v })),
);

function write(w: XdrWriter, x: Item): void {
  switch (x.t) {
    case 'u32':
      return void w.u32(x.v);
    case 'i32':
      return void w.i32(x.v);
    case 'u64':
      return void w.u64(x.v);
    case 'bool':
      return void w.bool(x.v);
    case 'opaque':
      return void w.opaque(x.v);
    case 'fixed':
      return void w.fixed(x.v, x.v.length);
    case 'string':
      return void w.string(x.v);
  }
}

function read(r: XdrReader, x: Item): unknown {
  switch (x.t) {
    case 'u32':
      return r.u32();
    case 'i32':
      return r.i32();
    case 'u64':
      return r.u64();
    case 'bool':
      return r.bool();
    case 'opaque':
      return new Uint8Array(r.opaque());
    case 'fixed':
      return new Uint8Array(r.fixed(x.v.length));
    case 'string':
      return r.string();
  }
}

const size = (x: Item): number => {
  switch (x.t) {
    case 'u64':
      return 8;
    case 'opaque':
      return 4 + x.v.length + padLen(x.v.length);
    case 'fixed':
      return x.v.length + padLen(x.v.length);
    case 'string': {
      const n = Buffer.byteLength(x.v);
      return 4 + n + padLen(n);
    }
    default:
      return 4;
  }
};

describe('XDR', () => {
  it('round-trips any sequence of items, with the exact encoded size', () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 20 }), (items) => {
        const w = new XdrWriter(8); // small: exercises growth
        for (const x of items) write(w, x);
        const buf = Buffer.from(w.bytes);
        expect(buf.length).toBe(items.reduce((n, x) => n + size(x), 0));
        expect(buf.length % 4).toBe(0);
        const r = new XdrReader(buf);
        for (const x of items) expect(read(r, x)).toEqual(x.v);
        r.end('items');
      }),
    );
  });

  it('rejects every truncation of a valid encoding', () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 6 }), fc.nat(), (items, cut) => {
        const w = new XdrWriter();
        for (const x of items) write(w, x);
        const full = Buffer.from(w.bytes);
        if (full.length === 0) return;
        const short = full.subarray(0, cut % full.length);
        const r = new XdrReader(short);
        expect(() => {
          for (const x of items) read(r, x);
        }).toThrow(XdrError);
      }),
    );
  });

  it('pads opaques and strings with zero bytes and refuses non-zero padding', () => {
    const w = new XdrWriter().opaque(Buffer.from([1, 2, 3])).string('ab');
    expect(w.bytes.toString('hex')).toBe('00000003' + '01020300' + '00000002' + '61620000');
    const bad = Buffer.from(w.bytes);
    bad[7] = 9;
    expect(() => new XdrReader(bad).opaque()).toThrow(/padding/);
  });

  it('checks ranges and limits on both sides', () => {
    const w = new XdrWriter();
    expect(() => w.u32(-1)).toThrow(XdrError);
    expect(() => w.u32(2 ** 32)).toThrow(XdrError);
    expect(() => w.u32(1.5)).toThrow(XdrError);
    expect(() => w.i32(2 ** 31)).toThrow(XdrError);
    expect(() => w.u64(-1n)).toThrow(XdrError);
    expect(() => w.u64(1n << 64n)).toThrow(XdrError);
    expect(() => w.opaque(Buffer.alloc(65), 64)).toThrow(/longer than 64/);
    expect(() => w.fixed(Buffer.alloc(7), 8)).toThrow(/must be 8/);
    expect(() => w.string('x'.repeat(10), 9)).toThrow(/longer than 9/);
    const big = new XdrWriter().u32(65).bytes;
    expect(() => new XdrReader(Buffer.from(big)).opaque(64)).toThrow(/longer than 64/);
    expect(() => new XdrReader(Buffer.from([0, 0, 0, 2])).bool()).toThrow(/bool/);
    const huge = new XdrWriter().u64(1n << 60n).bytes;
    expect(() => new XdrReader(Buffer.from(huge)).u64n('size')).toThrow(/size too large/);
    expect(() => new XdrReader(Buffer.alloc(8)).end('x')).toThrow(/8 trailing bytes/);
  });

  it('sends a tail opaque without copying it, padded to a unit', () => {
    const data = Buffer.from('hello');
    const w = new XdrWriter().u32(7).opaqueTail(data);
    const chunks = w.chunks();
    expect(chunks[1]).toBe(data);
    expect(w.length).toBe(4 + 4 + 5 + 3);
    const all = Buffer.concat(chunks);
    const r = new XdrReader(all);
    expect(r.u32()).toBe(7);
    expect(r.opaque().toString()).toBe('hello');
    r.end('tail');
    expect(() => w.u32(1)).toThrow(/nothing may follow/);
  });

  it('patches reserved units and reuses its buffer after reset', () => {
    const w = new XdrWriter(4);
    const at = w.reserveU32();
    w.u32(5).u32(6);
    w.patchU32(at, 0xdeadbeef);
    expect(w.bytes.toString('hex')).toBe('deadbeef0000000500000006');
    w.reset().u32(1);
    expect(w.bytes.toString('hex')).toBe('00000001');
  });
});
