/**
 * Free lists of equally sized buffers. On a virtual machine, the first touch
 * of every freshly mapped page is a fault that costs more than encrypting the
 * page (docs/storage.md, "Speed"), and malloc hands large buffers back to the
 * kernel when they are freed. The hot paths (sealing objects for a put,
 * reading stored objects) therefore borrow their large buffers from a pool
 * and give them back when the I/O is over, so the same pages serve again.
 */
export class BufferPool {
  private free = new Map<number, Buffer[]>();
  private held = 0;

  /** @param limit most bytes kept on the free lists (beyond it, returned buffers are dropped) */
  constructor(readonly limit: number) {}

  /** A buffer of exactly `size` bytes with undefined contents, owned by the caller until {@link give}. */
  take(size: number): Buffer {
    const b = this.free.get(size)?.pop();
    if (b) {
      this.held -= size;
      return b;
    }
    // Its own ArrayBuffer (never a slice of Node's shared pool), so giving it
    // back cannot hand out memory anything else still uses.
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a buffer from {@link take}; the caller must not touch it afterwards. */
  give(b: Buffer): void {
    if (b.byteOffset !== 0 || b.buffer.byteLength !== b.length) return;
    if (this.held + b.length > this.limit) return;
    let list = this.free.get(b.length);
    if (!list) this.free.set(b.length, (list = []));
    list.push(b);
    this.held += b.length;
  }

  /** Bytes on the free lists now. */
  get idleBytes(): number {
    return this.held;
  }
}
