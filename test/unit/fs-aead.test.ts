/**
 * The two AEAD backends of fs/format.ts (the native addon in fs/native and
 * node:crypto) must produce interchangeable objects: each opens what the
 * other sealed, and both refuse the same tampering, wiping their output.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  aeadBackend,
  bucketFor,
  CHUNK_SIZE,
  Kind,
  newId,
  objectSize,
  openObjectInto,
  sealObjectInto,
  type Binding,
} from '../../fs/format.js';
import { IntegrityError } from '../../fs/errors.js';
import { aeadAddon } from '../../fs/native/aead.js';

const initial = aeadBackend();
afterAll(() => {
  aeadBackend(initial);
});

const haveNative = aeadAddon() !== null;
const withNative = haveNative ? it : it.skip;

function seal(
  backend: 'native' | 'node',
  key: Buffer,
  payload: Buffer,
  b: Binding,
): { data: Buffer; ref: ReturnType<typeof sealObjectInto>['ref'] } {
  aeadBackend(backend);
  const out = Buffer.alloc(objectSize(bucketFor(payload.length)));
  const { ref, size } = sealObjectInto(out, 7, key, Kind.Chunk, newId(), b, payload);
  expect(size).toBe(out.length);
  return { data: out, ref };
}

function open(
  backend: 'native' | 'node',
  key: Buffer,
  sealed: { data: Buffer; ref: ReturnType<typeof sealObjectInto>['ref'] },
  b: Binding,
): { len: number; dst: Buffer } {
  aeadBackend(backend);
  const dst = Buffer.alloc(sealed.data.length - objectSize(0));
  const len = openObjectInto(() => key, Kind.Chunk, sealed.ref, b, sealed.data, dst);
  return { len, dst };
}

describe('fs AEAD backends', () => {
  it('reports which backend is in use', () => {
    expect(['native', 'node']).toContain(initial);
    if (haveNative) expect(initial).toBe('native');
  });

  withNative('open what the other sealed, for any payload', () => {
    const key = randomBytes(32);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: CHUNK_SIZE }),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom<['native' | 'node', 'native' | 'node']>(
          ['native', 'node'],
          ['node', 'native'],
        ),
        (len, fill, [a, z]) => {
          const payload = Buffer.alloc(len, fill);
          if (len > 0) payload[len - 1] = fill ^ 0xff;
          const b = { owner: 42, level: 0, index: len };
          const sealed = seal(a, key, payload, b);
          const { len: got, dst } = open(z, key, sealed, b);
          expect(got).toBe(len);
          expect(dst.subarray(0, len).equals(payload)).toBe(true);
          // padding comes back as zeros
          expect(dst.subarray(len).every((x) => x === 0)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  withNative('refuse tampering, a wrong place or a wrong key, and wipe the output', () => {
    const key = randomBytes(32);
    const payload = randomBytes(100_000);
    const b = { owner: 3, level: 0, index: 9 };
    for (const backend of ['native', 'node'] as const) {
      const sealed = seal(backend === 'native' ? 'node' : 'native', key, payload, b);
      const attempts: Array<[string, () => { len: number; dst: Buffer }]> = [
        [
          'flipped ciphertext bit',
          () => {
            const bad = { ...sealed, data: Buffer.from(sealed.data) };
            bad.data[1000]! ^= 1;
            return open(backend, key, bad, b);
          },
        ],
        ['other index', () => open(backend, key, sealed, { ...b, index: 10 })],
        ['other owner', () => open(backend, key, sealed, { ...b, owner: 4 })],
        ['other key', () => open(backend, randomBytes(32), sealed, b)],
      ];
      for (const [what, attempt] of attempts) {
        let caught: unknown = null;
        try {
          attempt();
        } catch (e) {
          caught = e;
        }
        expect({ backend, what, integrity: caught instanceof IntegrityError }).toEqual({
          backend,
          what,
          integrity: true,
        });
      }
      // the output buffer holds no plaintext after a failed open
      aeadBackend(backend);
      const dst = Buffer.alloc(sealed.data.length - objectSize(0));
      const bad = Buffer.from(sealed.data);
      bad[bad.length - 30]! ^= 1;
      expect(() => openObjectInto(() => key, Kind.Chunk, sealed.ref, b, bad, dst)).toThrow(
        IntegrityError,
      );
      expect(dst.every((x) => x === 0)).toBe(true);
    }
  });
});
