/** Removal batching (admin/keytree-batch.ts) on a hand-driven timer. */
import { describe, it, expect } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { KeyTree } from '../../admin/keytree.js';
import { RemovalBatcher, type Timers } from '../../admin/keytree-batch.js';
import { channelGroupId } from '../../admin/keytree-crypto.js';
import { MemoryLogger } from '../../admin/logger.js';

class HandTimers implements Timers {
  private next = 1;
  readonly due = new Map<number, { fn: () => void; at: number }>();
  now = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const h = this.next++;
    this.due.set(h, { fn, at: this.now + ms });
    return h;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  advance(ms: number): void {
    this.now += ms;
    for (const [h, t] of [...this.due])
      if (t.at <= this.now) {
        this.due.delete(h);
        t.fn();
      }
  }
}

describe('removal batcher', () => {
  it('sends the removals of one window as one rekey message', () => {
    const admin = Identity.generate('admin');
    const tree = KeyTree.create({ group: channelGroupId(Buffer.alloc(10, 1), 9), signer: admin });
    tree.join(Array.from({ length: 32 }, (_, i) => `n${i}`));
    const timers = new HandTimers();
    const batches: Array<{ ids: string[]; epoch: number; entries: number }> = [];
    const b = new RemovalBatcher({
      windowMs: 200,
      timers,
      onBatch: (ids) => batches.push({ ids, ...tree.remove(ids) }),
    });
    b.add('n3');
    timers.advance(100);
    b.add('n17');
    b.add('n3');
    expect(b.pending()).toEqual(['n3', 'n17']);
    timers.advance(99);
    expect(batches).toHaveLength(0);
    timers.advance(1);
    expect(batches).toHaveLength(1);
    expect(batches[0].ids).toEqual(['n3', 'n17']);
    expect(batches[0].epoch).toBe(2);
    expect(tree.size).toBe(30);
    // Two separate removals would have sealed 2 × (2·5 − 1) keys.
    expect(batches[0].entries).toBeLessThan(18);
    b.add('n20');
    b.flush();
    expect(batches).toHaveLength(2);
    expect(timers.due.size).toBe(0);
  });

  it('sends a full batch at once, logs a failing batch, and closes', () => {
    const timers = new HandTimers();
    const log = new MemoryLogger();
    const seen: string[][] = [];
    const b = new RemovalBatcher({
      windowMs: 1000,
      maxBatch: 3,
      timers,
      logger: log,
      onBatch: (ids) => {
        seen.push(ids);
        if (ids.includes('bad')) throw new Error('unknown member');
      },
    });
    b.add('a');
    b.add('b');
    b.add('c');
    expect(seen).toEqual([['a', 'b', 'c']]);
    b.add('bad');
    timers.advance(1000);
    expect(seen).toHaveLength(2);
    expect(log.records.some((r) => r.level === 'error')).toBe(true);
    b.add('d');
    b.close();
    expect(seen[2]).toEqual(['d']);
    expect(() => b.add('e')).toThrow(/closed/);
    expect(() => new RemovalBatcher({ windowMs: -1, onBatch: () => {} })).toThrow(/windowMs/);
  });
});
