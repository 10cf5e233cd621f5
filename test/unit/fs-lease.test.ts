/**
 * The writer lease (fs/lease.ts): its blob format, taking it over from a
 * silent or dead holder, refusing a live one, two openers racing, a holder
 * that loses it, and the Volume-level guarantee it exists for: a second
 * read-write open never sweeps the first one's uncommitted objects.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import {
  LEASE_LEN,
  LEASE_NAME,
  OFF_COUNTER,
  OFF_RENEW,
  OFF_TOKEN,
  OFF_VERSION,
  TOKEN_LEN,
  VolumeLease,
  decodeLease,
  encodeLease,
} from '../../fs/lease.js';
import { MemStore } from '../../fs/store.js';
import { MemoryAnchor } from '../../fs/anchor.js';
import { Keyring } from '../../fs/keys.js';
import { CHUNK_SIZE, newId } from '../../fs/format.js';
import { FsErrno, VolumeError } from '../../fs/errors.js';
import { Volume } from '../../fs/volume.js';

const FAST = { renewMs: 40 };
const tok = (b: number): Buffer => Buffer.alloc(TOKEN_LEN, b);

describe('writer lease blob', () => {
  it('round-trips every record', () => {
    fc.assert(
      fc.property(
        fc
          .uint8Array({ minLength: TOKEN_LEN, maxLength: TOKEN_LEN })
          .filter((t) => t.some((x) => x)),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.integer({ min: 1, max: 0xffffffff }),
        (t, counter, renewMs) => {
          const r = { token: Buffer.from(t), counter, renewMs };
          const b = encodeLease(r);
          expect(b.length).toBe(LEASE_LEN);
          expect(decodeLease(b)).toEqual(r);
        },
      ),
    );
  });

  it('rejects anything but an exact v1 record', () => {
    const good = encodeLease({ token: tok(7), counter: 3n, renewMs: 2000 });
    const bad = (f: (b: Buffer) => Buffer): Buffer => f(Buffer.from(good));
    expect(decodeLease(null)).toBeNull();
    expect(decodeLease(Buffer.alloc(0))).toBeNull();
    expect(decodeLease(Buffer.alloc(LEASE_LEN))).toBeNull();
    expect(decodeLease(good.subarray(0, LEASE_LEN - 1))).toBeNull();
    expect(decodeLease(Buffer.concat([good, Buffer.alloc(1)]))).toBeNull();
    expect(decodeLease(bad((b) => (b.writeUInt8(0x41, 0), b)))).toBeNull(); // magic
    expect(decodeLease(bad((b) => (b.writeUInt8(2, OFF_VERSION), b)))).toBeNull();
    expect(decodeLease(bad((b) => (b.writeUInt8(1, OFF_VERSION + 2), b)))).toBeNull();
    expect(decodeLease(bad((b) => (b.fill(0, OFF_TOKEN, OFF_COUNTER), b)))).toBeNull();
    expect(decodeLease(bad((b) => (b.writeUInt32BE(0, OFF_RENEW), b)))).toBeNull();
    expect(() => encodeLease({ token: Buffer.alloc(3, 1), counter: 0n, renewMs: 1 })).toThrow(
      RangeError,
    );
  });
});

describe('writer lease', () => {
  it('is taken on a free store, renewed while held, and removed on release', async () => {
    const store = new MemStore();
    const l = await VolumeLease.acquire(store, FAST);
    const first = decodeLease(await store.get(LEASE_NAME))!;
    expect(first.token).toEqual(l.token);
    await new Promise((r) => setTimeout(r, 5 * FAST.renewMs));
    const later = decodeLease(await store.get(LEASE_NAME))!;
    expect(later.counter).toBeGreaterThan(first.counter);
    await l.release();
    expect(await store.get(LEASE_NAME)).toBeNull();
  });

  it('refuses a second taker while the holder renews', async () => {
    const store = new MemStore();
    const l = await VolumeLease.acquire(store, FAST);
    const err = await VolumeLease.acquire(store, FAST).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeError);
    expect((err as VolumeError).kind).toBe('busy');
    expect(decodeLease(await store.get(LEASE_NAME))!.token).toEqual(l.token);
    await l.release();
  });

  it('takes over from a holder that fell silent, after its TTL', async () => {
    const store = new MemStore();
    await store.put(LEASE_NAME, encodeLease({ token: tok(9), counter: 5n, renewMs: 30 }));
    let t = 0;
    const slept: number[] = [];
    const l = await VolumeLease.acquire(store, {
      renewMs: 30,
      now: () => t,
      sleep: async (ms) => {
        slept.push(ms);
        t += ms;
      },
    });
    // Watched for 3 renewal intervals before taking it.
    expect(t).toBeGreaterThanOrEqual(90);
    expect(decodeLease(await store.get(LEASE_NAME))!.token).toEqual(l.token);
    await l.release();
  });

  it('takes over at once from a holder known to be dead', async () => {
    const store = new MemStore();
    await store.put(LEASE_NAME, encodeLease({ token: tok(9), counter: 5n, renewMs: 60_000 }));
    const slept: number[] = [];
    const asked: Buffer[] = [];
    const l = await VolumeLease.acquire(store, {
      holderDead: async (token) => (asked.push(token), true),
      sleep: async (ms) => void slept.push(ms),
    });
    expect(asked).toEqual([tok(9)]);
    expect(slept).toHaveLength(1); // only the read-back settle, no TTL wait
    await l.release();
  });

  it('lets exactly one of two racing takers win', async () => {
    const store = new MemStore();
    const got = await Promise.allSettled([
      VolumeLease.acquire(store, FAST),
      VolumeLease.acquire(store, FAST),
    ]);
    const won = got.filter((g) => g.status === 'fulfilled');
    const lost = got.filter((g) => g.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(((lost[0] as PromiseRejectedResult).reason as VolumeError).kind).toBe('busy');
    await (won[0] as PromiseFulfilledResult<VolumeLease>).value.release();
  });

  it('tells its holder when another taker replaced it, and release then leaves that lease alone', async () => {
    const store = new MemStore();
    const l = await VolumeLease.acquire(store, FAST);
    const why = new Promise<string>((r) => l.onLost(r));
    const other = encodeLease({ token: tok(3), counter: 0n, renewMs: 40 });
    await store.put(LEASE_NAME, other);
    expect(await why).toMatch(/another process took over/);
    expect(l.lost).toBe(true);
    await l.release();
    expect(await store.get(LEASE_NAME)).toEqual(other);
  });
});

describe('writer lease on a volume', () => {
  it('a second read-write open is refused and sweeps nothing; reads stay possible', async () => {
    const store = new MemStore();
    const keys = Keyring.generate(newId());
    const anchor = new MemoryAnchor();
    const init = await Volume.create(store, keys, anchor, { uid: 0, gid: 0 });
    await init.close();
    const v = await Volume.open(store, keys, anchor, { commitIntervalMs: 0, lease: FAST });
    // A whole chunk goes to the store at once (write-behind), before any commit.
    const fh = await v.create('/f', 0o644, 0, 0);
    const data = Buffer.alloc(CHUNK_SIZE, 5);
    await v.write(fh, data, data.length, 0);
    const before = (await store.list()).sort();
    const err = await Volume.open(store, keys, anchor, { lease: FAST }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeError);
    expect((err as VolumeError).kind).toBe('busy');
    for (const n of before) expect(await store.get(n)).not.toBeNull();
    const ro = await Volume.open(store, keys, anchor, { readOnly: true });
    expect((await ro.getattr('/')).mode & 0o170000).toBe(0o040000);
    await v.release(fh);
    await v.close();
    expect(await store.get(LEASE_NAME)).toBeNull();
    const w = await Volume.open(store, keys, anchor, { lease: FAST });
    expect((await w.getattr('/f')).size).toBe(CHUNK_SIZE);
    await w.close();
  });

  it('a holder that loses the lease refuses further changes', async () => {
    const store = new MemStore();
    const keys = Keyring.generate(newId());
    const anchor = new MemoryAnchor();
    await (await Volume.create(store, keys, anchor, { uid: 0, gid: 0 })).close();
    const v = await Volume.open(store, keys, anchor, { commitIntervalMs: 0, lease: FAST });
    await store.put(LEASE_NAME, encodeLease({ token: tok(4), counter: 0n, renewMs: 40 }));
    await new Promise((r) => setTimeout(r, 4 * FAST.renewMs));
    await v.mkdir('/d', 0o755, 0, 0).catch(() => {});
    await expect(v.commit()).rejects.toThrow(FsErrno);
    await v.close().catch(() => {});
  });
});
