/**
 * In-memory implementations of the packet-path seams (TunDevice,
 * DatagramBind) for unit tests of the modules built on them. They keep the
 * batch/arena shape of the native versions: handlers get reused views that are
 * valid only during the call, so code that wrongly keeps them breaks here too.
 */

import type { PacketBatch, TunDevice, TunStats } from '../../net/tun.js';
import type { BindOptions, BindStats, DatagramBatch, DatagramBind } from '../../net/bind.js';
import { ipv4ToU32 } from '../../net/bind.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const MAX_BATCH = 64;
/** Room for a full batch of maximal packets, as in the native arenas. */
const ARENA = MAX_BATCH * 65536;
/** Source address seen for a bind on 0.0.0.0 (the kernel would pick the outgoing interface's). */
const LOOPBACK = 0x7f000001;

function zeroTunStats(): Mutable<TunStats> {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txErrors: 0,
    rxErrors: 0,
    rxDropped: 0,
    rxSuperPackets: 0,
    txSuperPackets: 0,
    lastTxErrno: 0,
  };
}

function zeroBindStats(): Mutable<BindStats> {
  return {
    rxDatagrams: 0,
    rxBytes: 0,
    txDatagrams: 0,
    txBytes: 0,
    txErrors: 0,
    rxErrors: 0,
    rxTruncated: 0,
    rxKernelDrops: 0,
    txDropped: 0,
    rxGroMessages: 0,
    txGsoMessages: 0,
    txBlocked: 0,
    lastTxErrno: 0,
    gsoDisabled: 0,
  };
}

/** errno values the memory versions report, as the kernel would. */
const EIO = 5;
const EBADF = 9;

/**
 * A TUN device in memory: `inject()` plays packets the node's stack would
 * send; `written` records what was written to it (copies).
 */
export class MemoryTun implements TunDevice {
  readonly fd = -1;
  readonly offload = false;
  readonly stats: Mutable<TunStats> = zeroTunStats();
  /** Copies of the packets accepted by write()/writeMany(), in order. */
  readonly written: Buffer[] = [];
  /** While false, writes fail with EIO as on a down link. */
  linkUp = true;
  private readonly batch: PacketBatch = {
    count: 0,
    buf: Buffer.allocUnsafeSlow(ARENA),
    offsets: new Uint32Array(MAX_BATCH),
    lengths: new Uint32Array(MAX_BATCH),
  };
  private handler: ((b: PacketBatch) => void) | undefined;
  private errorHandler: ((err: Error) => void) | undefined;
  private isClosed = false;

  constructor(readonly name = 'mem0') {}

  get closed(): boolean {
    return this.isClosed;
  }

  onPackets(handler: (b: PacketBatch) => void): void {
    this.handler = handler;
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  /**
   * Delivers `packets` to the handler in batches of up to 64, like one
   * wake-up of the native reader each. Returns the number delivered (0 if
   * closed or no handler is set).
   */
  inject(...packets: Uint8Array[]): number {
    if (this.isClosed || !this.handler) return 0;
    const b = this.batch;
    let delivered = 0;
    for (let start = 0; start < packets.length; start += MAX_BATCH) {
      let off = 0;
      b.count = 0;
      for (const p of packets.slice(start, start + MAX_BATCH)) {
        if (off + p.length > b.buf.length)
          throw new RangeError('MemoryTun.inject: batch too large');
        b.buf.set(p, off);
        b.offsets[b.count] = off;
        b.lengths[b.count] = p.length;
        b.count++;
        off += p.length;
        this.stats.rxPackets++;
        this.stats.rxBytes += p.length;
      }
      delivered += b.count;
      this.handler(b);
      // Scribble over the arena: a handler that kept views must not see its data again.
      b.buf.fill(0xee, 0, off);
      if (this.isClosed) break;
    }
    return delivered;
  }

  /** Simulates the device disappearing (e.g. its namespace was deleted). */
  fail(
    err: Error = Object.assign(new Error('TUN mem: File descriptor in bad state'), {
      code: 'EBADFD',
    }),
  ): void {
    if (this.isClosed) return;
    this.close();
    this.errorHandler?.(err);
  }

  write(buf: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < 0 || off + len > buf.length)
      throw new RangeError('tun.write: off + len exceeds the buffer');
    if (this.isClosed || !this.linkUp) {
      this.stats.txErrors++;
      this.stats.lastTxErrno = this.isClosed ? EBADF : EIO;
      return false;
    }
    this.written.push(Buffer.from(buf.subarray(off, off + len)));
    this.stats.txPackets++;
    this.stats.txBytes += len;
    return true;
  }

  writeMany(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    let ok = 0;
    for (let i = 0; i < count; i++) if (this.write(buf, offsets[i]!, lengths[i]!)) ok++;
    return ok;
  }

  close(): void {
    this.isClosed = true;
  }
}

/** One datagram in flight, as a delivery hook sees it. */
export interface InFlight {
  readonly fromAddr: number;
  readonly fromPort: number;
  readonly toAddr: number;
  readonly toPort: number;
  readonly data: Buffer;
}

/**
 * What a hook does with a datagram: deliver it, drop it, deliver it twice,
 * or hold it until {@link MemoryNetwork.release} (which reorders it behind
 * everything delivered meanwhile).
 */
export type Fate = 'deliver' | 'drop' | 'duplicate' | 'hold';

/**
 * A network of {@link MemoryBind}s addressed by (IPv4, port). Datagrams move
 * asynchronously (setImmediate after flush(), like a real network) in
 * batches of up to 64 per receiver.
 */
export class MemoryNetwork {
  /** Datagrams sent to an address no bind holds. */
  undeliverable = 0;
  private readonly binds = new Map<string, MemoryBind>();
  private readonly held: InFlight[] = [];
  private readonly pending: InFlight[] = [];
  private scheduled = false;
  private idle: (() => void)[] = [];
  private nextPort = 40000;
  private hook: (d: InFlight) => Fate = () => 'deliver';

  /** Installs the drop/duplicate/reorder hook (default: deliver everything). */
  setHook(hook: (d: InFlight) => Fate): void {
    this.hook = hook;
  }

  /** Same contract as openBind(); `host` defaults to 127.0.0.1 here (0.0.0.0 is treated alike). */
  async openBind(opts: BindOptions): Promise<DatagramBind> {
    return this.bind(opts.host ?? '127.0.0.1', opts.port);
  }

  /** Opens a bind at (host, port); port 0 picks a free one. Throws EADDRINUSE like the kernel. */
  bind(host: string | number, port: number): MemoryBind {
    const addr = typeof host === 'number' ? host >>> 0 : ipv4ToU32(host);
    if (port === 0) {
      while (this.binds.has(key(addr, this.nextPort))) this.nextPort++;
      port = this.nextPort++;
    }
    if (this.binds.has(key(addr, port))) {
      throw Object.assign(new Error(`bind ${addr}:${port}: Address already in use`), {
        code: 'EADDRINUSE',
      });
    }
    const b = new MemoryBind(this, addr, port);
    this.binds.set(key(addr, port), b);
    return b;
  }

  /** Delivers the held datagrams now (after everything sent before). */
  release(): void {
    this.pending.push(...this.held.splice(0));
    this.schedule();
  }

  /** Resolves once nothing is waiting for delivery (held datagrams excepted). */
  settle(): Promise<void> {
    if (!this.scheduled && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** @internal used by MemoryBind.flush */
  submit(d: InFlight): void {
    switch (this.hook(d)) {
      case 'drop':
        return;
      case 'duplicate':
        this.pending.push(d, d);
        break;
      case 'hold':
        this.held.push(d);
        return;
      default:
        this.pending.push(d);
    }
    this.schedule();
  }

  /** @internal used by MemoryBind.close */
  unbind(b: MemoryBind): void {
    if (this.binds.get(key(b.addr, b.port)) === b) this.binds.delete(key(b.addr, b.port));
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    const batch = this.pending.splice(0);
    const byDest = new Map<MemoryBind, InFlight[]>();
    for (const d of batch) {
      const dest = this.binds.get(key(d.toAddr, d.toPort)) ?? this.binds.get(key(0, d.toPort));
      if (!dest) {
        this.undeliverable++;
        continue;
      }
      let list = byDest.get(dest);
      if (!list) byDest.set(dest, (list = []));
      list.push(d);
    }
    for (const [dest, list] of byDest) dest.receive(list);
    if (this.pending.length > 0) this.schedule();
    else for (const resolve of this.idle.splice(0)) resolve();
  }
}

function key(addr: number, port: number): string {
  return `${addr}:${port}`;
}

/** A bind on a {@link MemoryNetwork}. */
export class MemoryBind implements DatagramBind {
  readonly gso = false;
  readonly gro = false;
  readonly stats: Mutable<BindStats> = zeroBindStats();
  private readonly queue: InFlight[] = [];
  private readonly batch: DatagramBatch = {
    count: 0,
    buf: Buffer.allocUnsafeSlow(ARENA),
    offsets: new Uint32Array(MAX_BATCH),
    lengths: new Uint32Array(MAX_BATCH),
    addrs: new Uint32Array(MAX_BATCH),
    ports: new Uint16Array(MAX_BATCH),
  };
  /** reserve() hands out this scratch; commit() copies from it like send(). */
  readonly sendArena = Buffer.alloc(65507);
  private reserved = -1;
  private handler: ((b: DatagramBatch) => void) | undefined;
  private closed = false;

  constructor(
    private readonly net: MemoryNetwork,
    readonly addr: number,
    readonly port: number,
  ) {}

  onDatagrams(handler: (b: DatagramBatch) => void): void {
    this.handler = handler;
  }

  send(buf: Uint8Array, off: number, len: number, addr: number, port: number): void {
    if (
      !(off >= 0 && len >= 0 && len <= 65507 && off + len <= buf.length) ||
      !(port > 0 && port <= 65535)
    ) {
      throw new RangeError(
        `bind.send: bad datagram (off ${off}, len ${len} of ${buf.length}, port ${port})`,
      );
    }
    if (this.closed) return;
    this.queue.push({
      fromAddr: this.addr === 0 ? LOOPBACK : this.addr,
      fromPort: this.port,
      toAddr: addr >>> 0,
      toPort: port,
      data: Buffer.from(buf.subarray(off, off + len)),
    });
    if (this.queue.length >= 1024) this.flush();
  }

  reserve(maxLen: number): number {
    if (!(maxLen >= 0 && maxLen <= 65507))
      throw new RangeError(`bind.reserve: maxLen must be 0..65507, got ${maxLen}`);
    this.reserved = maxLen;
    // Scribble over the scratch: a caller that commits bytes it did not write sends garbage here too.
    this.sendArena.fill(0xdd, 0, maxLen);
    return 0;
  }

  commit(len: number, addr: number, port: number): void {
    if (!(len >= 0 && len <= this.reserved))
      throw new RangeError(`bind.commit: len ${len} of ${this.reserved} reserved`);
    this.reserved = -1;
    this.send(this.sendArena, 0, len, addr, port);
  }

  flush(): void {
    this.reserved = -1;
    for (const d of this.queue.splice(0)) {
      this.stats.txDatagrams++;
      this.stats.txBytes += d.data.length;
      this.net.submit(d);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.net.unbind(this);
  }

  /** @internal delivery from the network, in batches of up to 64. */
  receive(list: InFlight[]): void {
    if (this.closed) return;
    const b = this.batch;
    for (let start = 0; start < list.length; start += MAX_BATCH) {
      let off = 0;
      b.count = 0;
      for (const d of list.slice(start, start + MAX_BATCH)) {
        b.buf.set(d.data, off);
        b.offsets[b.count] = off;
        b.lengths[b.count] = d.data.length;
        b.addrs[b.count] = d.fromAddr;
        b.ports[b.count] = d.fromPort;
        b.count++;
        off += d.data.length;
        this.stats.rxDatagrams++;
        this.stats.rxBytes += d.data.length;
      }
      this.handler?.(b);
      b.buf.fill(0xee, 0, off);
      if (this.closed) return;
    }
  }
}
