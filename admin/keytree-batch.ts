/**
 * Batching of removals (issue: "several leaves inside a short window are
 * batched into one message"): a {@link RemovalBatcher} collects leaves and
 * expels for a short window after the first one and hands them over as one
 * batch, so a burst of departures costs one rekey message (and one epoch)
 * instead of many. A batch of r removals from n members seals fewer keys than
 * r single removals, since the replaced paths share their upper part
 * (docs/keys.md §Batching).
 *
 * The window delays a removal's effect by at most `windowMs`; a caller that
 * must not wait (an expel for cause) calls {@link RemovalBatcher.flush} right
 * after adding.
 */
import { nullLogger, type Logger } from './logger.js';

/** The timer seam (tests drive it by hand). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface RemovalBatcherOptions {
  /** How long after the first pending removal the batch goes out (ms). */
  windowMs: number;
  /** A batch this large goes out at once (default 1024). */
  maxBatch?: number;
  /** Performs one batch (KeyTree.remove and pushing its message). */
  onBatch: (ids: string[]) => void;
  timers?: Timers;
  logger?: Logger;
}

/** Collects removals of one group into batches. */
export class RemovalBatcher {
  private readonly pendingIds = new Set<string>();
  private timer: unknown = null;
  private readonly timers: Timers;
  private readonly log: Logger;
  private readonly max: number;
  private closed = false;

  constructor(private readonly opts: RemovalBatcherOptions) {
    if (!Number.isFinite(opts.windowMs) || opts.windowMs < 0)
      throw new RangeError('windowMs must be a non-negative number of milliseconds');
    this.max = opts.maxBatch ?? 1024;
    if (!Number.isInteger(this.max) || this.max < 1)
      throw new RangeError('maxBatch must be a positive integer');
    this.timers = opts.timers ?? systemTimers;
    this.log = opts.logger ?? nullLogger;
  }

  /** Queues the removal of `id` (a second add of the same id is a no-op). */
  add(id: string): void {
    if (this.closed) throw new Error('removal batcher is closed');
    this.pendingIds.add(id);
    if (this.pendingIds.size >= this.max) this.flush();
    else if (this.timer === null)
      this.timer = this.timers.setTimeout(() => {
        this.timer = null;
        this.flush();
      }, this.opts.windowMs);
  }

  /** Ids waiting for the next batch. */
  pending(): string[] {
    return [...this.pendingIds];
  }

  /** Sends the pending removals now (nothing if none). */
  flush(): void {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pendingIds.size === 0) return;
    const ids = [...this.pendingIds];
    this.pendingIds.clear();
    try {
      this.opts.onBatch(ids);
    } catch (err) {
      // The batch's members stay in the group; the caller sees this in the log
      // and may add them again. Never let a timer callback throw.
      this.log.error('keytree removal batch failed', { ids: ids.length, error: String(err) });
    }
  }

  /** Sends what is pending and refuses further adds. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
