import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { ReplayWindow, REPLAY_WINDOW } from '../../net/replay.js';

/** Slow reference: remembers every accepted number; rejects anything at or below top - WINDOW. */
class ReferenceWindow {
  private seen = new Set<number>();
  private top = 0;
  accept(seq: number): boolean {
    if (seq <= 0) return false;
    if (seq <= this.top && this.top - seq >= REPLAY_WINDOW) return false;
    if (this.seen.has(seq)) return false;
    this.seen.add(seq);
    if (seq > this.top) this.top = seq;
    return true;
  }
}

describe('ReplayWindow (RFC 4303 §3.4.3 / RFC 6479)', () => {
  it('accepts each number once, in any order inside the window', () => {
    const w = new ReplayWindow();
    for (const s of [5, 1, 3, 2, 4]) expect(w.accept(s)).toBe(true);
    for (const s of [1, 2, 3, 4, 5]) expect(w.accept(s)).toBe(false);
    expect(w.highest).toBe(5);
  });

  it('rejects zero and numbers that fell out of the window', () => {
    const w = new ReplayWindow();
    expect(w.accept(0)).toBe(false);
    expect(w.accept(REPLAY_WINDOW + 10)).toBe(true);
    expect(w.accept(10)).toBe(false);
    expect(w.accept(11)).toBe(true);
  });

  it('handles jumps larger than the ring and 48-bit numbers', () => {
    const w = new ReplayWindow();
    expect(w.accept(2 ** 40)).toBe(true);
    expect(w.accept(2 ** 40 - 1)).toBe(true);
    expect(w.accept(2 ** 47 + 5)).toBe(true);
    expect(w.accept(2 ** 47 + 4)).toBe(true);
    expect(w.accept(2 ** 47 + 5)).toBe(false);
    expect(w.accept(2 ** 40)).toBe(false);
  });

  it('agrees with a slow reference on random sequences (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 20_000 })), {
          maxLength: 400,
        }),
        (seqs) => {
          const w = new ReplayWindow();
          const r = new ReferenceWindow();
          for (const s of seqs) {
            // The reference keeps everything; the window may only forget
            // numbers older than REPLAY_WINDOW, which both then reject.
            expect(w.accept(s)).toBe(r.accept(s));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
