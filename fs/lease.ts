/**
 * The writer lease: at most one process changes a volume at a time.
 *
 * The engine is single-writer (docs/storage.md, "Writer lease"): a second
 * writer would sweep the first one's not yet committed objects as orphans,
 * or its commit would replace the other's superblock and its garbage
 * collection delete objects the other still references. Before a
 * read-write open reads anything, the opener takes the lease: a small
 * `lease` blob next to the superblock, holding a random holder token and a
 * counter the holder bumps every {@link LeaseOptions.renewMs}.
 *
 * Taking it: no lease (or our own token) → write ours. Someone else's →
 * watch it: if it changes within the TTL (3 renewals), its holder is alive
 * and the open fails with `busy`; if it does not, the holder is gone and we
 * write ours. A caller may know sooner that the holder is dead
 * ({@link LeaseOptions.holderDead}: a crashed mount on this host). After
 * writing, we wait {@link SETTLE_MS} and read back: of two openers racing
 * for a free lease only the later write survives, and the earlier one sees
 * it and backs off. While held, every renewal first reads the lease: a
 * token other than ours means another opener decided we were gone (we could
 * not renew for a whole TTL), and the holder is told to stop writing.
 *
 * The lease coordinates honest members; it is no security boundary. The
 * provider learns from it only that some mount is active (it sees the NFS
 * traffic anyway); a provider that rewrites it can at worst refuse service,
 * which it can always do.
 *
 *  0        4    5        8                        24                32      36
 *  +--------+----+--------+------------------------+-----------------+-------+
 *  | "SNLE" | v1 |  zero  |  holder token (16)     | counter (u64)   | renew |
 *  +--------+----+--------+------------------------+-----------------+-------+
 *  renew: the holder's renewal interval in ms (u32), so a watcher knows how
 *  long silence means "gone". Integers big-endian.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { VolumeError } from './errors.js';
import { type Logger, nullLogger } from '../admin/logger.js';

/** The blob the lease lives in (a special name, like `superblock`). */
export const LEASE_NAME = 'lease';
export const LEASE_MAGIC = 0x534e4c45; // "SNLE"
export const LEASE_VERSION = 1;
export const TOKEN_LEN = 16;
export const OFF_MAGIC = 0;
export const OFF_VERSION = OFF_MAGIC + 4;
export const OFF_TOKEN = OFF_VERSION + 4;
export const OFF_COUNTER = OFF_TOKEN + TOKEN_LEN;
export const OFF_RENEW = OFF_COUNTER + 8;
export const LEASE_LEN = OFF_RENEW + 4;
/** Silence for this many renewal intervals means the holder is gone. */
export const TTL_RENEWALS = 3;
/** How long a new holder waits before reading its write back (racing openers). */
export const SETTLE_MS = 300;
const DEFAULT_RENEW_MS = 2000;

/** The few store calls the lease needs (any {@link ObjectStore} has them). */
export interface LeaseStore {
  get(name: string): Promise<Buffer | null>;
  put(name: string, data: Buffer, durable?: boolean): Promise<void>;
  delete(name: string): Promise<void>;
}

export interface LeaseOptions {
  /** Renewal interval, ms (default 2000; the TTL is 3 intervals). */
  renewMs?: number;
  /**
   * Says whether the holder with `token` is known to be dead (e.g. it was a
   * mount on this host whose process is gone), so its lease is taken at once.
   */
  holderDead?: (token: Buffer) => Promise<boolean>;
  /** Called with every token this process takes (to record it for holderDead). */
  onTaken?: (token: Buffer) => Promise<void>;
  logger?: Logger;
  /** Clock and sleep seams (tests). */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** A decoded lease blob, or null if the bytes are not one. */
export interface LeaseRecord {
  token: Buffer;
  counter: bigint;
  renewMs: number;
}

export function encodeLease(r: LeaseRecord): Buffer {
  if (r.token.length !== TOKEN_LEN) throw new RangeError('lease token must be 16 bytes');
  const b = Buffer.alloc(LEASE_LEN);
  const dv = new DataView(b.buffer, b.byteOffset, LEASE_LEN);
  dv.setUint32(OFF_MAGIC, LEASE_MAGIC);
  dv.setUint8(OFF_VERSION, LEASE_VERSION);
  b.set(r.token, OFF_TOKEN);
  dv.setBigUint64(OFF_COUNTER, r.counter);
  dv.setUint32(OFF_RENEW, r.renewMs);
  return b;
}

/** Parses a lease blob; anything but an exact, versioned, non-zero-token record is null. */
export function decodeLease(b: Buffer | null): LeaseRecord | null {
  if (!b || b.length !== LEASE_LEN) return null;
  const dv = new DataView(b.buffer, b.byteOffset, LEASE_LEN);
  if (dv.getUint32(OFF_MAGIC) !== LEASE_MAGIC || dv.getUint8(OFF_VERSION) !== LEASE_VERSION)
    return null;
  if (b[OFF_VERSION + 1] !== 0 || b[OFF_VERSION + 2] !== 0 || b[OFF_VERSION + 3] !== 0) return null;
  const token = Buffer.from(b.subarray(OFF_TOKEN, OFF_TOKEN + TOKEN_LEN));
  if (token.every((x) => x === 0)) return null;
  const renewMs = dv.getUint32(OFF_RENEW);
  if (renewMs === 0) return null;
  return { token, counter: dv.getBigUint64(OFF_COUNTER), renewMs };
}

const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A held writer lease; {@link release} it when the volume closes. */
export class VolumeLease {
  private counter = 0n;
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> = Promise.resolve();
  private lostHandler: ((why: string) => void) | null = null;
  private released = false;
  /** True once another opener took the lease from us. */
  lost = false;

  private constructor(
    private readonly store: LeaseStore,
    readonly token: Buffer,
    private readonly renewMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Takes the lease, waiting out a silent holder's TTL (logged, as it can
   * take a few seconds). Throws VolumeError `busy` while another holder renews.
   */
  static async acquire(store: LeaseStore, o: LeaseOptions = {}): Promise<VolumeLease> {
    const renewMs = o.renewMs ?? DEFAULT_RENEW_MS;
    const now = o.now ?? Date.now;
    const sleep = o.sleep ?? realSleep;
    const log = o.logger ?? nullLogger;
    const first = await store.get(LEASE_NAME);
    const seen = decodeLease(first);
    if (first && !seen) log.warn('the lease blob is malformed; it is replaced', {});
    if (seen && !(o.holderDead && (await o.holderDead(seen.token)))) {
      // Watch for a whole TTL of the holder's own interval (ours if longer).
      const ttl = TTL_RENEWALS * Math.max(seen.renewMs, renewMs);
      log.info('the volume lease is held; waiting to see whether its holder is alive', {
        waitMs: ttl,
      });
      const until = now() + ttl;
      while (now() < until) {
        await sleep(Math.min(seen.renewMs / 2, Math.max(1, until - now())));
        const again = await store.get(LEASE_NAME);
        if (again === null || !first!.equals(again)) {
          throw new VolumeError(
            'busy',
            again === null
              ? 'another process just released the volume; try again'
              : 'the volume is in use by another mount or tool (its writer lease is being renewed)',
          );
        }
      }
      log.warn('the volume lease was not renewed for its whole TTL: its holder is gone', {
        ttlMs: ttl,
      });
    }
    const lease = new VolumeLease(store, randomBytes(TOKEN_LEN), renewMs, log);
    await store.put(LEASE_NAME, lease.record(), true);
    if (o.onTaken) await o.onTaken(lease.token);
    await sleep(SETTLE_MS);
    const back = decodeLease(await store.get(LEASE_NAME));
    if (!back || !timingSafeEqual(back.token, lease.token)) {
      throw new VolumeError(
        'busy',
        'another process took the volume at the same moment; the volume is in use',
      );
    }
    lease.start();
    return lease;
  }

  /** Called (once) when another opener takes the lease: stop writing at once. */
  onLost(fn: (why: string) => void): void {
    this.lostHandler = fn;
  }

  private record(): Buffer {
    return encodeLease({ token: this.token, counter: this.counter, renewMs: this.renewMs });
  }

  private start(): void {
    this.timer = setInterval(() => {
      this.renewing = this.renewing.then(() => this.renew()).catch(() => {});
    }, this.renewMs);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.lost || this.released) return;
    let cur: LeaseRecord | null;
    try {
      cur = decodeLease(await this.store.get(LEASE_NAME));
    } catch (e) {
      // The provider is away: keep trying; if it stays away for a TTL,
      // another opener may take over, and the next read tells us.
      this.log.warn('cannot read the volume lease; retrying', { error: String(e) });
      return;
    }
    if (!cur || !timingSafeEqual(cur.token, this.token)) {
      this.lost = true;
      if (this.timer) clearInterval(this.timer);
      const why = cur
        ? 'another process took over the volume lease (this one could not renew it in time)'
        : 'the volume lease disappeared from the provider';
      this.log.error('writer lease lost', { reason: why });
      this.lostHandler?.(why);
      return;
    }
    this.counter++;
    try {
      await this.store.put(LEASE_NAME, this.record(), true);
    } catch (e) {
      this.log.warn('cannot renew the volume lease; retrying', { error: String(e) });
    }
  }

  /** Stops renewing and removes the lease if it still is ours. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.renewing;
    if (this.lost) return;
    const cur = decodeLease(await this.store.get(LEASE_NAME).catch(() => null));
    if (cur && timingSafeEqual(cur.token, this.token)) await this.store.delete(LEASE_NAME);
  }
}
