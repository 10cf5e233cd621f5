/**
 * A FIFO readers–writer lock. Reads (lookups, reads of clean data) overlap
 * their I/O; anything that changes the in-memory tree, and every commit, runs
 * alone, so a commit never deletes an object a reader is still loading.
 */
type Waiter = { write: boolean; wake: () => void };

export class RwLock {
  private readers = 0;
  private writer = false;
  private queue: Waiter[] = [];

  private pump(): void {
    while (this.queue.length) {
      const w = this.queue[0]!;
      if (w.write) {
        if (this.writer || this.readers > 0) return;
        this.writer = true;
      } else {
        if (this.writer) return;
        this.readers++;
      }
      this.queue.shift();
      w.wake();
    }
  }

  private acquire(write: boolean): Promise<() => void> {
    return new Promise((resolve) => {
      this.queue.push({
        write,
        wake: () =>
          resolve(() => {
            if (write) this.writer = false;
            else this.readers--;
            this.pump();
          }),
      });
      this.pump();
    });
  }

  /** Runs `fn` while holding the lock shared. */
  async read<T>(fn: () => Promise<T>): Promise<T> {
    // Uncontended (the common case): take it at once, without a queue turn.
    if (!this.writer && this.queue.length === 0) {
      this.readers++;
      try {
        return await fn();
      } finally {
        this.readers--;
        this.pump();
      }
    }
    const release = await this.acquire(false);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Runs `fn` while holding the lock exclusively. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.writer && this.readers === 0 && this.queue.length === 0) {
      this.writer = true;
      try {
        return await fn();
      } finally {
        this.writer = false;
        this.pump();
      }
    }
    const release = await this.acquire(true);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
