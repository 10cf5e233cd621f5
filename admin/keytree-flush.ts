/**
 * Sends batched key-tree removals (issue 3: "several leaves inside a short
 * window are batched into one message"; docs/keys.md §Batching).
 *
 * {@link TreeKeyScheme.onLeave} with a batching window only records the
 * removal in the store (so an aborted transaction drops it too) and calls
 * {@link RekeyFlusher.schedule}. One {@link RemovalBatcher} per Supernet
 * collects the channels with pending removals; when its window ends, one
 * store transaction replaces the leavers' keys of every such channel (one
 * signed rekey message per channel, whatever the number of leavers), bumps the
 * Supernet's config serial, and the effects push the new config to the
 * remaining members.
 *
 * An operator's expel answers only after its batch is out
 * ({@link RekeyFlusher.settled}): when the command returns, the expelled
 * node's keys are replaced.
 */
import type { Store, WriteTx } from './store.js';
import type { Logger } from './logger.js';
import { nullLogger } from './logger.js';
import { RemovalBatcher, systemTimers, type Timers } from './keytree-batch.js';
import type { TreeKeyScheme } from './keys-tree.js';

/** Default batching window of leaves and expels (ms), `--rekey-batch-ms`. */
export const DEFAULT_REKEY_BATCH_MS = 150;

/** What one flushed batch changed (for the caller to publish). */
export interface FlushResult {
  supernet: string;
  /** The Supernet's new config serial. */
  serial: number;
  /** channel → new epoch. */
  epochs: Record<string, number>;
  /** Remaining members of the rekeyed channels. */
  members: string[];
}

export interface RekeyFlusherOptions {
  store: Store;
  scheme: () => TreeKeyScheme;
  /** Bumps and returns the Supernet's config serial inside `tx` (null: Supernet gone). */
  bumpSerial: (tx: WriteTx, supernet: string) => number | null;
  /** Publishes a flushed batch (config pushes). */
  publish: (r: FlushResult) => void;
  timers?: Timers;
  logger?: Logger;
}

/** Per-Supernet removal batches of a tree scheme with a batching window. */
export class RekeyFlusher {
  private readonly batchers = new Map<string, RemovalBatcher>();
  /** Callers waiting for the next flush of a Supernet. */
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly log: Logger;
  private closed = false;

  constructor(
    private readonly windowMs: number,
    private readonly opts: RekeyFlusherOptions,
  ) {
    this.log = opts.logger ?? nullLogger;
  }

  /** A removal of `channel` in `supernet` waits for its batch. */
  schedule(supernet: string, channel: string): void {
    if (this.closed) return;
    let b = this.batchers.get(supernet);
    if (!b) {
      b = new RemovalBatcher({
        windowMs: this.windowMs,
        onBatch: (channels) => this.run(supernet, channels),
        timers: this.opts.timers ?? systemTimers,
        logger: this.log,
      });
      this.batchers.set(supernet, b);
    }
    b.add(channel);
  }

  private run(supernet: string, channels: string[]): void {
    const waiting = this.waiters.get(supernet) ?? [];
    this.waiters.delete(supernet);
    const before = this.inflight.get(supernet) ?? Promise.resolve();
    const p = before
      .then(() => this.flush(supernet, channels))
      .catch((err: unknown) =>
        this.log.error('keytree batch flush failed', { supernet, error: String(err) }),
      )
      .finally(() => {
        if (this.inflight.get(supernet) === p) this.inflight.delete(supernet);
        for (const w of waiting) w();
      });
    this.inflight.set(supernet, p);
  }

  private async flush(supernet: string, channels: string[]): Promise<void> {
    const r = await this.opts.store.write((tx): FlushResult | null => {
      const scheme = this.opts.scheme();
      const epochs: Record<string, number> = {};
      const members = new Set<string>();
      for (const ch of channels) {
        const f = scheme.flushPending(tx, supernet, ch);
        if (!f) continue;
        epochs[ch] = f.epoch;
        for (const m of scheme.members(tx, supernet, ch)) members.add(m);
      }
      if (Object.keys(epochs).length === 0) return null;
      const serial = this.opts.bumpSerial(tx, supernet);
      if (serial === null) return null;
      return { supernet, serial, epochs, members: [...members] };
    });
    if (r) this.opts.publish(r);
  }

  /** Settles once every removal of `supernet` scheduled so far has been sent (or failed and logged). */
  settled(supernet: string): Promise<void> {
    const b = this.batchers.get(supernet);
    if (b && b.pending().length > 0) {
      return new Promise<void>((resolve) => {
        const w = this.waiters.get(supernet) ?? [];
        w.push(resolve);
        this.waiters.set(supernet, w);
      });
    }
    return this.inflight.get(supernet) ?? Promise.resolve();
  }

  /** Sends every pending batch now and waits for them (service shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    for (const b of this.batchers.values()) b.close();
    await Promise.all([...this.inflight.values()]);
  }
}
