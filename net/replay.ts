/**
 * Anti-replay window (RFC 4303 §3.4.3, with RFC 6479's ring of bit blocks so
 * advancing the window never shifts the whole bitmap).
 *
 * The window is updated only by {@link ReplayWindow.accept}, which the packet
 * path calls after the AEAD tag verified: an attacker cannot move the window
 * with forged packets.
 */

const BLOCK_BITS = 32;
/** Number of 32-bit blocks in the ring (a power of two). */
const BLOCKS = 64;
const RING_BITS = BLOCKS * BLOCK_BITS;
/** Sequence numbers this far behind the highest seen are always rejected. */
export const REPLAY_WINDOW = RING_BITS - BLOCK_BITS;

export class ReplayWindow {
  private readonly ring = new Uint32Array(BLOCKS);
  private top = 0; // highest accepted sequence number; 0 = none yet

  /** True if `seq` was not seen and is inside the window. Does not change state. */
  check(seq: number): boolean {
    if (seq <= 0 || !Number.isSafeInteger(seq)) return false;
    if (seq > this.top) return true;
    if (this.top - seq >= REPLAY_WINDOW) return false;
    const block = Math.floor(seq / BLOCK_BITS) % BLOCKS;
    return (this.ring[block]! & (1 << (seq & (BLOCK_BITS - 1)))) === 0;
  }

  /** Marks `seq` as seen if {@link check} allows it; returns whether it was accepted. */
  accept(seq: number): boolean {
    if (!this.check(seq)) return false;
    if (seq > this.top) {
      const oldBlock = Math.floor(this.top / BLOCK_BITS);
      const newBlock = Math.floor(seq / BLOCK_BITS);
      // Clear the blocks the window slides over (at most the whole ring).
      const n = Math.min(newBlock - oldBlock, BLOCKS);
      for (let i = 1; i <= n; i++) this.ring[(oldBlock + i) % BLOCKS] = 0;
      this.top = seq;
    }
    const block = Math.floor(seq / BLOCK_BITS) % BLOCKS;
    this.ring[block]! |= 1 << (seq & (BLOCK_BITS - 1));
    return true;
  }

  /** Highest sequence number accepted so far (0 if none). */
  get highest(): number {
    return this.top;
  }
}
