/**
 * The two AEAD backends of fs/format.ts (the native addon in fs/native and
 * node:crypto) must produce interchangeable objects: each opens what the
 * other sealed, and both refuse the same tampering, wiping their output.
 * The threadpool variants (sealObjectAsync/openObjectAsync) must give the
 * same bytes as the synchronous ones and refuse the same tampering.
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
  openObjectAsync,
  openObjectInto,
  sealObjectAsync,
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

  withNative('threadpool seal and open agree with the synchronous ones', async () => {
    aeadBackend('native');
    const key = randomBytes(32);
    const lens = [0, 1, 4095, 4096, 70_000, CHUNK_SIZE];
    // Several jobs at once, each with its own buffers, as the volume runs them.
    const jobs = lens.map((len) => {
      const payload = randomBytes(len);
      const b = { owner: 5, level: 0, index: len };
      const out = Buffer.alloc(objectSize(bucketFor(len)));
      const r = sealObjectAsync(out, 3, key, Kind.Chunk, newId(), b, payload);
      return { payload, b, out, ...r };
    });
    for (const j of jobs) {
      await j.sealed;
      expect(j.size).toBe(j.out.length);
      // The tag is filled in on completion and is the stored one.
      expect(j.ref.tag.equals(j.out.subarray(j.size - 16))).toBe(true);
      const dst = Buffer.alloc(j.out.length - objectSize(0));
      expect(openObjectInto(() => key, Kind.Chunk, j.ref, j.b, j.out, dst)).toBe(j.payload.length);
      expect(dst.subarray(0, j.payload.length).equals(j.payload)).toBe(true);
      const dst2 = Buffer.alloc(dst.length);
      await expect(openObjectAsync(() => key, Kind.Chunk, j.ref, j.b, j.out, dst2)).resolves.toBe(
        j.payload.length,
      );
      expect(dst2.equals(dst)).toBe(true);
    }
    // A synchronous seal opens on the threadpool too.
    const payload = randomBytes(9000);
    const b = { owner: 1, level: 0, index: 2 };
    const sealed = seal('native', key, payload, b);
    const dst = Buffer.alloc(sealed.data.length - objectSize(0));
    await expect(
      openObjectAsync(() => key, Kind.Chunk, sealed.ref, b, sealed.data, dst),
    ).resolves.toBe(payload.length);
    expect(dst.subarray(0, payload.length).equals(payload)).toBe(true);
  });

  withNative(
    'threadpool open refuses tampering and a wrong key, and wipes the output',
    async () => {
      aeadBackend('native');
      const key = randomBytes(32);
      const payload = randomBytes(100_000);
      const b = { owner: 3, level: 0, index: 9 };
      const sealed = seal('native', key, payload, b);
      const tries: Array<[string, Buffer, Buffer, Binding]> = [];
      const flipped = Buffer.from(sealed.data);
      flipped[1000]! ^= 1;
      tries.push(['flipped ciphertext bit', flipped, key, b]);
      const trailer = Buffer.from(sealed.data);
      trailer[trailer.length - 18]! ^= 1;
      tries.push(['flipped length trailer', trailer, key, b]);
      tries.push(['other index', sealed.data, key, { ...b, index: 10 }]);
      tries.push(['other key', sealed.data, randomBytes(32), b]);
      for (const [what, data, k, bind] of tries) {
        const dst = Buffer.alloc(sealed.data.length - objectSize(0), 0xaa);
        let caught: unknown = null;
        try {
          await openObjectAsync(() => k, Kind.Chunk, sealed.ref, bind, data, dst);
        } catch (e) {
          caught = e;
        }
        expect({ what, integrity: caught instanceof IntegrityError }).toEqual({
          what,
          integrity: true,
        });
        expect({ what, wiped: dst.every((x) => x === 0) }).toEqual({ what, wiped: true });
      }
      // The key-free checks throw before any job starts.
      const short = sealed.data.subarray(0, 20);
      expect(() =>
        openObjectAsync(() => key, Kind.Chunk, sealed.ref, b, short, Buffer.alloc(CHUNK_SIZE)),
      ).toThrow(IntegrityError);
    },
  );
});
