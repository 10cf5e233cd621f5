/**
 * TUN devices: the node side of the packet path (design brief §2, §4).
 *
 * A node is a network namespace whose only interfaces are `lo` and one TUN
 * device. The host agent opens the device in the host namespace, moves it into
 * the node's namespace (`ip link set DEV netns NS`, then configures it there
 * with `ip -n NS ...`) and keeps the file descriptor, which keeps working after
 * the move. Reads are batched: on each wake-up of the event loop the addon
 * reads up to {@link TUN_MAX_BATCH} packets into a preallocated arena and makes
 * one JS call for the whole batch; the hot path allocates nothing.
 *
 * Modes (docs/native.md):
 * - plain (default): `IFF_TUN | IFF_NO_PI`, one packet per read() and write().
 * - `offload: true`: `IFF_VNET_HDR` + `TUNSETOFFLOAD(TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO_ECN)`.
 *   The node's TCP stack then hands over super-segments of up to 64 KiB in
 *   one read; the addon splits them into MSS-sized IPv4/TCP packets with
 *   correct headers and checksums, so handlers still see ordinary IP packets,
 *   only more per read() system call. In the other direction writeMany()
 *   merges runs of TCP segments back into super-packets (userspace GRO), so
 *   the node's stack handles one packet per run.
 * - `multiQueue: true`: `IFF_MULTI_QUEUE`; opening the same name again adds a
 *   queue (one fd each; the kernel spreads flows over queues by hash). All
 *   queues must be opened before the device is moved to another namespace,
 *   because the name is looked up in the opener's namespace.
 */

import { closeSync } from 'node:fs';
import {
  loadNative,
  TUN_OPEN_MULTI_QUEUE,
  TUN_OPEN_VNET_HDR,
  TUN_STAT,
  TUN_STAT_COUNT,
  type NativeAddon,
  type NativeHandle,
} from './native/addon.js';

/** A batch handed to a handler; views into a reused arena — valid only during the call. */
export interface PacketBatch {
  /** Number of packets in this batch; entries `0..count-1` of the arrays are valid. */
  count: number;
  /** The arena; packet `i` is `buf[offsets[i] .. offsets[i] + lengths[i])`. */
  buf: Buffer;
  /** Start of each packet in `buf`. */
  offsets: Uint32Array;
  /** Length of each packet in bytes. */
  lengths: Uint32Array;
}

/** Counters of a TUN device (live: read them whenever needed). */
export interface TunStats {
  /** Packets handed to the handler. */
  readonly rxPackets: number;
  /** Bytes handed to the handler. */
  readonly rxBytes: number;
  /** Packets the kernel accepted from write()/writeMany(). */
  readonly txPackets: number;
  /** Bytes the kernel accepted. */
  readonly txBytes: number;
  /** Writes the kernel refused (EIO while the link is down, EINVAL for a malformed packet, ...). */
  readonly txErrors: number;
  /** Read errors other than "no more packets". */
  readonly rxErrors: number;
  /** Packets read but dropped as malformed (offload mode: bad virtio-net header or GSO packet). */
  readonly rxDropped: number;
  /** Offload mode: TCP super-segments read and split. */
  readonly rxSuperPackets: number;
  /** Offload mode: super-packets written by writeMany() (each counts its segments in txPackets). */
  readonly txSuperPackets: number;
  /** errno of the most recent failed write (0 if none): a hint for diagnostics. */
  readonly lastTxErrno: number;
}

/** An open TUN device (one queue of it, in multi-queue mode). */
export interface TunDevice {
  /** Kernel interface name at creation (the device may be renamed after moving it). */
  readonly name: string;
  /** The file descriptor (owned by this object; closed by close()). */
  readonly fd: number;
  /** True if opened with `offload: true`. */
  readonly offload: boolean;
  /**
   * Sets the batch handler and starts reading. The batch and its arrays are
   * reused: copy out anything needed after the handler returns. Calling it
   * again replaces the handler.
   */
  onPackets(handler: (b: PacketBatch) => void): void;
  /**
   * Called once if the device becomes unusable (for example it was destroyed
   * together with its namespace); reading has stopped then. Without a handler
   * the condition is only visible as `closed`.
   */
  onError(handler: (err: Error) => void): void;
  /**
   * Writes one IP packet `buf[off .. off+len)`. Returns false, and counts it in
   * `stats.txErrors`, if the kernel refuses it (EIO while the link is down is
   * normal at start-up). Throws only on a bad range (a programming error).
   */
  write(buf: Uint8Array, off: number, len: number): boolean;
  /**
   * Writes `count` packets `buf[offsets[i] .. offsets[i]+lengths[i])` in one
   * native call; returns how many the kernel accepted (failures are counted).
   * In offload mode, consecutive in-sequence segments of one TCP flow (with
   * valid checksums) are handed over as one super-packet, so prefer this to
   * write() in a loop: collect a batch's packets for one device, then call it.
   */
  writeMany(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  /** Live counters. */
  readonly stats: TunStats;
  /** True once close() ran or the device failed. */
  readonly closed: boolean;
  /** Stops reading and closes the fd. Idempotent. */
  close(): void;
}

/** Options of {@link openTun}. */
export interface TunOptions {
  /** Interface name, exact (`snt0`) or a kernel pattern (`snt%d`); default `snt%d`. At most 15 bytes. */
  name?: string;
  /** Open with IFF_MULTI_QUEUE (another openTun with the same name adds a queue). */
  multiQueue?: boolean;
  /** IFF_VNET_HDR + TSO4/checksum offload, split in the addon (see module comment). */
  offload?: boolean;
}

/** Most packets per handler call in plain mode (design brief §4: "up to 64 per wake-up"). */
export const TUN_MAX_BATCH = 64;
/** Most packets per handler call in offload mode (one read may yield ~45 segments). */
export const TUN_MAX_BATCH_OFFLOAD = 1024;
/** Arena sizes: room for a full batch plus one maximal (64 KiB) read. */
const TUN_ARENA_PLAIN = 1 << 20;
const TUN_ARENA_OFFLOAD = 2 << 20;
/** Linux IFNAMSIZ is 16 including the terminating NUL. */
const IFNAME_MAX = 15;
/** linux/if_tun.h offload bits. */
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO_ECN = 0x08;

/** Linux interface names: no '/', ':', whitespace; '%d' allowed once as a kernel pattern. */
const IFNAME_RE = /^[A-Za-z0-9_.-]*(%d)?[A-Za-z0-9_.-]*$/;

function checkName(name: string): void {
  if (
    name.length === 0 ||
    Buffer.byteLength(name) > IFNAME_MAX ||
    !IFNAME_RE.test(name) ||
    name === '.' ||
    name === '..'
  ) {
    throw Object.assign(
      new Error(
        `openTun: invalid interface name ${JSON.stringify(name)} (1..15 of [A-Za-z0-9_.-], optional %d)`,
      ),
      { code: 'EINVAL' },
    );
  }
}

function statsView(stats: Float64Array): TunStats {
  const view = {};
  for (const [key, idx] of Object.entries(TUN_STAT)) {
    Object.defineProperty(view, key, { enumerable: true, get: () => stats[idx] });
  }
  return view as TunStats;
}

class NativeTun implements TunDevice {
  readonly stats: TunStats;
  private readonly batch: PacketBatch;
  private readonly handle: NativeHandle;
  private handler: ((b: PacketBatch) => void) | undefined;
  private errorHandler: ((err: Error) => void) | undefined;
  private started = false;
  private isClosed = false;

  constructor(
    private readonly addon: NativeAddon,
    readonly name: string,
    readonly fd: number,
    readonly offload: boolean,
  ) {
    const max = offload ? TUN_MAX_BATCH_OFFLOAD : TUN_MAX_BATCH;
    const counters = new Float64Array(TUN_STAT_COUNT);
    this.batch = {
      count: 0,
      buf: Buffer.allocUnsafeSlow(offload ? TUN_ARENA_OFFLOAD : TUN_ARENA_PLAIN),
      offsets: new Uint32Array(max),
      lengths: new Uint32Array(max),
    };
    this.stats = statsView(counters);
    this.handle = addon.tunCreate(
      fd,
      offload,
      {
        arena: this.batch.buf,
        offsets: this.batch.offsets,
        lengths: this.batch.lengths,
        stats: counters,
      },
      (count) => this.deliver(count),
      (err) => this.fail(err),
    );
  }

  get closed(): boolean {
    return this.isClosed;
  }

  onPackets(handler: (b: PacketBatch) => void): void {
    this.handler = handler;
    if (!this.started && !this.isClosed) {
      this.started = true;
      this.addon.tunStart(this.handle);
    }
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  write(buf: Uint8Array, off: number, len: number): boolean {
    return this.addon.tunWrite(this.handle, buf, off, len);
  }

  writeMany(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    return this.addon.tunWriteMany(this.handle, buf, offsets, lengths, count);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.addon.close(this.handle);
  }

  private deliver(count: number): void {
    const b = this.batch;
    b.count = count;
    this.handler?.(b);
  }

  private fail(err: Error): void {
    this.close();
    this.errorHandler?.(err);
  }
}

/**
 * Opens a TUN device (`IFF_TUN | IFF_NO_PI`, non-blocking). Requires
 * CAP_NET_ADMIN. Throws an Error whose `code` is the errno name (EPERM,
 * EBUSY if the exact name is taken, EINVAL for a bad name, ENATIVE if the
 * addon is not built).
 */
export function openTun(opts: TunOptions = {}): TunDevice {
  const name = opts.name ?? 'snt%d';
  checkName(name);
  const addon = loadNative();
  const flags =
    (opts.multiQueue ? TUN_OPEN_MULTI_QUEUE : 0) | (opts.offload ? TUN_OPEN_VNET_HDR : 0);
  const [fd, actual] = addon.tunOpen(name, flags);
  if (opts.offload) {
    try {
      addon.tunSetOffload(fd, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN);
    } catch (err) {
      closeFdQuietly(fd);
      throw err;
    }
  }
  // tunCreate owns the fd from the call on, also when it throws.
  return new NativeTun(addon, actual, fd, opts.offload === true);
}

/** For an fd that no native handle owns yet. */
function closeFdQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing left to release
  }
}
