/**
 * ONC RPC messages and record marking (RFC 5531): the call header layout,
 * AUTH_SYS, fragment reassembly from arbitrary chunking, and every kind of
 * refused reply.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import {
  beginCall,
  decodeAuthSys,
  decodeReply,
  encodeAuthSys,
  finishRecord,
  frameRecord,
  LAST_FRAGMENT,
  MAX_RECORD,
  RecordDecoder,
  AUTH_SYS,
} from '../../fs/nfs/rpc.js';
import { XdrError, XdrReader, XdrWriter } from '../../fs/nfs/xdr.js';

const NFS = { prog: 100003, vers: 3, name: 'NFSv3' };

function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe('record marking', () => {
  it('reassembles multi-fragment records from any chunking of the stream', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 4 }),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        fc.array(fc.nat(), { maxLength: 12 }),
        (records, cuts) => {
          const parts: Buffer[] = [];
          for (const frags of records)
            frags.forEach((f, i) => {
              const mark = Buffer.alloc(4);
              mark.writeUInt32BE(((i === frags.length - 1 ? LAST_FRAGMENT : 0) | f.length) >>> 0);
              parts.push(mark, Buffer.from(f));
            });
          const stream = Buffer.concat(parts);
          const dec = new RecordDecoder();
          const got: string[] = [];
          for (const c of split(stream, cuts)) dec.push(c, (r) => got.push(r.toString('hex')));
          expect(got).toEqual(records.map((fr) => Buffer.concat(fr).toString('hex')));
          expect(dec.pending).toBe(0);
        },
      ),
    );
  });

  it('refuses a fragment larger than the limit and an empty non-final fragment', () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE((LAST_FRAGMENT | 2000) >>> 0);
    expect(() => new RecordDecoder(1000).push(big, () => {})).toThrow(XdrError);
    expect(() => new RecordDecoder().push(Buffer.alloc(4), () => {})).toThrow(/empty non-final/);
    // Two fragments that together pass the limit.
    const f = Buffer.alloc(4 + 600);
    f.writeUInt32BE(600);
    const d = new RecordDecoder(1000);
    d.push(f, () => {});
    expect(() => d.push(f, () => {})).toThrow(/larger than 1000/);
  });

  it('puts single-fragment records where alloc says, from any chunking, and copies all others', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 60 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (bodies, cuts) => {
          const lent: Array<{ xid: number; buf: Buffer }> = [];
          const stream = Buffer.concat(bodies.map((b) => frameRecord(Buffer.from(b))));
          const dec = new RecordDecoder(MAX_RECORD, (len, xid) => {
            const b = Buffer.alloc(len + 7, 0xee); // longer than asked: only len is used
            lent.push({ xid, buf: b });
            return b;
          });
          const got: Buffer[] = [];
          // The pushed bytes are overwritten after each push: nothing may alias them.
          for (const c of split(stream, cuts)) {
            const scratch = Buffer.from(c);
            dec.push(scratch, (r) => got.push(r));
            scratch.fill(0xaa);
          }
          expect(got.map((r) => r.toString('hex'))).toEqual(
            bodies.map((b) => Buffer.from(b).toString('hex')),
          );
          expect(lent.map((l) => l.xid)).toEqual(got.map((r) => r.readUInt32BE(0)));
          got.forEach((r, i) => expect(r.buffer).toBe(lent[i]!.buf.buffer));
          expect(dec.pending).toBe(0);
        },
      ),
    );
  });

  it('disown() moves a half-received record out of the lent buffer', () => {
    const body = Buffer.from('0000002a' + 'ab'.repeat(20), 'hex');
    const framed = frameRecord(body);
    const lent = Buffer.alloc(64, 0x11);
    const dec = new RecordDecoder(MAX_RECORD, () => lent);
    const got: Buffer[] = [];
    dec.push(framed.subarray(0, 12), (r) => got.push(r));
    expect(lent.subarray(0, 8).toString('hex')).toBe(body.subarray(0, 8).toString('hex'));
    dec.disown(lent);
    lent.fill(0x22);
    dec.push(framed.subarray(12), (r) => got.push(r));
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(body)).toBe(true);
    expect(got[0]!.buffer).not.toBe(lent.buffer);
    expect(lent.every((x) => x === 0x22)).toBe(true);
  });

  it('frameRecord makes one last fragment', () => {
    const r = frameRecord(Buffer.from('abcd'));
    expect(r.toString('hex')).toBe('8000000461626364');
  });
});

describe('calls', () => {
  it('lays out the call header with AUTH_SYS and an AUTH_NONE verifier (RFC 5531 §9)', () => {
    const cred = encodeAuthSys({ stamp: 7, machinename: 'h1', uid: 1000, gid: 100, gids: [4, 5] });
    const w = new XdrWriter();
    const mark = beginCall(w, 0x01020304, NFS, 1, AUTH_SYS, cred);
    w.u32(0xabcdef01);
    finishRecord(w, mark);
    const b = Buffer.from(w.bytes);
    expect(b.readUInt32BE(0)).toBe((LAST_FRAGMENT | (b.length - 4)) >>> 0);
    const r = new XdrReader(b, 4);
    expect([r.u32(), r.u32(), r.u32(), r.u32(), r.u32(), r.u32()]).toEqual([
      0x01020304, 0, 2, 100003, 3, 1,
    ]);
    expect(r.u32()).toBe(AUTH_SYS);
    expect(decodeAuthSys(Buffer.from(r.opaque(400)))).toEqual({
      stamp: 7,
      machinename: 'h1',
      uid: 1000,
      gid: 100,
      gids: [4, 5],
    });
    expect([r.u32(), r.u32(), r.u32()]).toEqual([0, 0, 0xabcdef01]);
    r.end('call');
  });

  it('refuses AUTH_SYS with too many groups or a long machine name', () => {
    const base = { stamp: 0, machinename: 'x', uid: 0, gid: 0, gids: [] as number[] };
    expect(() => encodeAuthSys({ ...base, gids: Array.from({ length: 17 }, (_, i) => i) })).toThrow(
      /16 groups/,
    );
    expect(() => encodeAuthSys({ ...base, machinename: 'm'.repeat(256) })).toThrow(XdrError);
  });
});

describe('replies', () => {
  const hdr = (...u: number[]): Buffer => {
    const w = new XdrWriter();
    for (const x of u) w.u32(x);
    return Buffer.from(w.bytes);
  };
  it('decodes accepted success with the results positioned after the header', () => {
    const rep = decodeReply(hdr(9, 1, 0, 0, 0, 0, 42));
    expect(rep.ok).toBe(true);
    if (rep.ok) expect(rep.body.u32()).toBe(42);
  });
  it('decodes every refusal kind', () => {
    expect(decodeReply(hdr(9, 1, 0, 0, 0, 1))).toMatchObject({
      ok: false,
      failure: { kind: 'prog-unavail' },
    });
    expect(decodeReply(hdr(9, 1, 0, 0, 0, 2, 2, 4))).toMatchObject({
      failure: { kind: 'prog-mismatch', low: 2, high: 4 },
    });
    expect(decodeReply(hdr(9, 1, 0, 0, 0, 3))).toMatchObject({ failure: { kind: 'proc-unavail' } });
    expect(decodeReply(hdr(9, 1, 0, 0, 0, 4))).toMatchObject({ failure: { kind: 'garbage-args' } });
    expect(decodeReply(hdr(9, 1, 0, 0, 0, 5))).toMatchObject({ failure: { kind: 'system-err' } });
    expect(decodeReply(hdr(9, 1, 1, 0, 2, 2))).toMatchObject({
      failure: { kind: 'rpc-mismatch', low: 2, high: 2 },
    });
    expect(decodeReply(hdr(9, 1, 1, 1, 5))).toMatchObject({
      failure: { kind: 'auth-error', stat: 5 },
    });
  });
  it('rejects what is not a reply', () => {
    expect(() => decodeReply(hdr(9, 0))).toThrow(/not a reply/);
    expect(() => decodeReply(hdr(9, 1, 2))).toThrow(/reply_stat/);
    expect(() => decodeReply(hdr(9, 1, 0, 0, 0, 6))).toThrow(/accept_stat/);
    expect(() => decodeReply(hdr(9, 1, 1, 2))).toThrow(/reject_stat/);
    expect(() => decodeReply(hdr(9, 1, 0, 0, 500))).toThrow(XdrError); // verifier too long
    expect(() => decodeReply(Buffer.alloc(3))).toThrow(XdrError);
  });
});
