/**
 * The underlay datagram socket of a host agent (design brief §2, §4).
 *
 * Every sealed packet travels as one UDP/IPv4 datagram. The native bind keeps
 * the socket in the project's addon and moves datagrams in batches:
 * recvmmsg() fills a preallocated arena with up to {@link BIND_RECV_BATCH}
 * datagrams per wake-up and makes one JS call; send() only copies a datagram
 * into a send arena (or the caller writes it there itself: reserve() +
 * commit(), which the packet path uses to seal straight into the queue), and
 * flush() hands the whole queue to the kernel with sendmmsg(). Measured ~35–45% faster than node:dgram on this machine.
 *
 * Options (docs/native.md): `gso` groups runs of equal-sized datagrams to the
 * same peer into one UDP_SEGMENT message (the kernel splits it, late and
 * cheaply); `gro` lets the kernel hand over coalesced runs (UDP_GRO), which
 * the addon splits back into datagrams. Handlers see the same batches either way.
 *
 * {@link openDgramBind} implements the same interface on node:dgram, as a
 * fallback where the addon cannot be built, and as a second implementation
 * for interoperability tests.
 */

import dgram from 'node:dgram';
import type { PacketBatch } from './tun.js';
import {
  loadNative,
  UDP_OPT_GRO,
  UDP_OPT_GSO,
  UDP_STAT,
  UDP_STAT_COUNT,
  type NativeAddon,
  type NativeHandle,
} from './native/addon.js';

/** Datagram batch: addr is IPv4 as uint32 (host order), port as number. */
export interface DatagramBatch extends PacketBatch {
  /** Source address of datagram `i`, IPv4 as an unsigned 32-bit number (host order). */
  addrs: Uint32Array;
  /** Source port of datagram `i`. */
  ports: Uint16Array;
}

/** Counters of a bind (live). */
export interface BindStats {
  /** Datagrams handed to the handler (after GRO splitting). */
  readonly rxDatagrams: number;
  /** Bytes handed to the handler. */
  readonly rxBytes: number;
  /** Datagrams the kernel accepted for sending. */
  readonly txDatagrams: number;
  /** Bytes the kernel accepted. */
  readonly txBytes: number;
  /** Datagrams the kernel refused (EMSGSIZE, ENETUNREACH, EPERM, ...): dropped. */
  readonly txErrors: number;
  /** Receive errors other than "nothing more to read". */
  readonly rxErrors: number;
  /** Datagrams larger than the receive slot: dropped. */
  readonly rxTruncated: number;
  /** Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL; native only). */
  readonly rxKernelDrops: number;
  /** Datagrams dropped by send() because the send queue was full while the socket was blocked. */
  readonly txDropped: number;
  /** GRO: coalesced messages received (each split into several datagrams). */
  readonly rxGroMessages: number;
  /** GSO: multi-datagram messages sent. */
  readonly txGsoMessages: number;
  /** Times flush() found the socket buffer full and waited for writability. */
  readonly txBlocked: number;
  /** errno of the most recent refused datagram (0 if none). */
  readonly lastTxErrno: number;
  /** 1 if GSO was requested but turned off because the kernel or route refused it. */
  readonly gsoDisabled: number;
}

/** A bound UDP/IPv4 socket with batched receive and send. */
export interface DatagramBind {
  /** The bound local port (the kernel's choice when opened with port 0). */
  readonly port: number;
  /** Whether UDP GSO / GRO are active (requested and supported). */
  readonly gso: boolean;
  readonly gro: boolean;
  /**
   * Sets the batch handler and starts receiving. The batch and its arrays are
   * reused: valid only during the call. Calling it again replaces the handler.
   */
  onDatagrams(handler: (b: DatagramBatch) => void): void;
  /**
   * Queues one datagram (copied into a send arena; the caller may reuse `buf`
   * at once); it leaves on flush() or when the arena is full. If the socket
   * is blocked and the queue full, the datagram is dropped and counted.
   * Throws RangeError on a bad range, length over {@link UDP_MAX_PAYLOAD} or bad port.
   */
  send(buf: Uint8Array, off: number, len: number, addr: number, port: number): void;
  /**
   * Zero-copy send, step 1 (the packet path seals straight into the send
   * queue, net/datapath.ts): reserves room for one datagram of up to `maxLen`
   * bytes and returns its offset in {@link sendArena}, or -1 if the queue is
   * full while the socket is blocked (the datagram is then dropped: counted
   * in `txDropped`). Write the datagram there, then {@link commit} it; a
   * reserve() without commit abandons the slot. Throws RangeError if
   * `maxLen` exceeds {@link UDP_MAX_PAYLOAD}.
   */
  reserve(maxLen: number): number;
  /**
   * Zero-copy send, step 2: queues the `len` bytes written at the offset the
   * last reserve() returned (len ≤ its maxLen). Throws RangeError on a bad
   * length, address or port.
   */
  commit(len: number, addr: number, port: number): void;
  /** The buffer reserve() offsets point into; the same object for the bind's life. */
  readonly sendArena: Buffer;
  /** Hands every queued datagram to the kernel (one sendmmsg per ≤1024). */
  flush(): void;
  /** Live counters. */
  readonly stats: BindStats;
  /** Stops receiving and closes the socket; the port is free when this returns. Idempotent. */
  close(): void;
}

/** Options of {@link openBind} and {@link openDgramBind}. */
export interface BindOptions {
  /** Local port; 0 lets the kernel choose. */
  port: number;
  /** Local IPv4 address; default 0.0.0.0. */
  host?: string;
  /** SO_RCVBUF bytes (as root beyond rmem_max via SO_RCVBUFFORCE); default 4 MiB native, kernel default for dgram. */
  rcvBuf?: number;
  /** SO_SNDBUF bytes; default 4 MiB native, kernel default for dgram. */
  sndBuf?: number;
  /** Native only: send runs of equal-sized datagrams as UDP GSO messages. */
  gso?: boolean;
  /** Native only: accept UDP GRO coalesced receives. */
  gro?: boolean;
}

/** Largest UDP/IPv4 payload (65535 − 20-byte IP header − 8-byte UDP header). */
export const UDP_MAX_PAYLOAD = 65535 - 20 - 8;
/** recvmmsg() vector length: datagrams per wake-up (before GRO splitting). */
export const BIND_RECV_BATCH = 64;
/** Kernel limit on segments in one GRO message (UDP_GRO_CNT_MAX). */
const GRO_MAX_SEGMENTS = 64;
/** One receive slot per message: a maximal datagram or GRO message fits. */
const RECV_SLOT = 65536;
/** Send queue: datagrams and bytes before send() flushes by itself. */
export const BIND_SEND_QUEUE = 1024;
const SEND_ARENA = 2 << 20;
const DEFAULT_SOCKET_BUFFER = 4 << 20;

/** Parses dotted-quad IPv4 text to an unsigned 32-bit number; throws TypeError on anything else. */
export function ipv4ToU32(s: string): number {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(s);
  if (m) {
    const a = +m[1]!,
      b = +m[2]!,
      c = +m[3]!,
      d = +m[4]!;
    if (a <= 255 && b <= 255 && c <= 255 && d <= 255)
      return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  }
  throw new TypeError(`not a dotted-quad IPv4 address: ${JSON.stringify(s)}`);
}

/** Formats an unsigned 32-bit number as dotted-quad IPv4 text. */
export function u32ToIpv4(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new TypeError(`not a uint32 IPv4 address: ${n}`);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function checkOptions(opts: BindOptions): number {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new RangeError(`bind: port must be an integer 0..65535, got ${opts.port}`);
  }
  for (const key of ['rcvBuf', 'sndBuf'] as const) {
    const v = opts[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 4096 || v > 1 << 30)) {
      throw new RangeError(`bind: ${key} must be an integer 4096..2^30, got ${v}`);
    }
  }
  return ipv4ToU32(opts.host ?? '0.0.0.0');
}

function checkSend(buf: Uint8Array, off: number, len: number, addr: number, port: number): void {
  if (
    !(off >= 0 && len >= 0 && len <= UDP_MAX_PAYLOAD && off + len <= buf.length) ||
    !(port > 0 && port <= 65535) ||
    !(addr >= 0 && addr <= 0xffffffff)
  ) {
    throw new RangeError(
      `bind.send: bad datagram (off ${off}, len ${len} of ${buf.length}, addr ${addr}, port ${port})`,
    );
  }
}

function checkReserve(maxLen: number): void {
  if (!(maxLen >= 0 && maxLen <= UDP_MAX_PAYLOAD))
    throw new RangeError(`bind.reserve: maxLen must be 0..${UDP_MAX_PAYLOAD}, got ${maxLen}`);
}

function checkCommit(len: number, reserved: number, addr: number, port: number): void {
  if (
    !(len >= 0 && len <= reserved) ||
    !(port > 0 && port <= 65535) ||
    !(addr >= 0 && addr <= 0xffffffff)
  )
    throw new RangeError(
      `bind.commit: bad datagram (len ${len} of ${reserved} reserved, addr ${addr}, port ${port})`,
    );
}

function statsView(stats: Float64Array): BindStats {
  const view = {};
  for (const [key, idx] of Object.entries(UDP_STAT)) {
    Object.defineProperty(view, key, { enumerable: true, get: () => stats[idx] });
  }
  return view as BindStats;
}

class NativeBind implements DatagramBind {
  readonly stats: BindStats;
  readonly port: number;
  readonly gso: boolean;
  readonly gro: boolean;
  private readonly counters = new Float64Array(UDP_STAT_COUNT);
  private readonly batch: DatagramBatch;
  readonly sendArena = Buffer.allocUnsafeSlow(SEND_ARENA);
  private readonly sendOffsets = new Uint32Array(BIND_SEND_QUEUE);
  private readonly sendLengths = new Uint32Array(BIND_SEND_QUEUE);
  private readonly sendAddrs = new Uint32Array(BIND_SEND_QUEUE);
  private readonly sendPorts = new Uint16Array(BIND_SEND_QUEUE);
  private readonly handle: NativeHandle;
  private queued = 0;
  private pos = 0;
  /** maxLen of the open reserve() (-1: none). */
  private reserved = -1;
  private handler: ((b: DatagramBatch) => void) | undefined;
  private started = false;
  private closed = false;

  constructor(
    private readonly addon: NativeAddon,
    addr: number,
    opts: BindOptions,
  ) {
    const entries = BIND_RECV_BATCH * (opts.gro ? GRO_MAX_SEGMENTS : 1);
    this.batch = {
      count: 0,
      buf: Buffer.allocUnsafeSlow(BIND_RECV_BATCH * RECV_SLOT),
      offsets: new Uint32Array(entries),
      lengths: new Uint32Array(entries),
      addrs: new Uint32Array(entries),
      ports: new Uint16Array(entries),
    };
    this.stats = statsView(this.counters);
    this.handle = addon.udpCreate(
      addr,
      opts.port,
      opts.rcvBuf ?? DEFAULT_SOCKET_BUFFER,
      opts.sndBuf ?? DEFAULT_SOCKET_BUFFER,
      (opts.gso ? UDP_OPT_GSO : 0) | (opts.gro ? UDP_OPT_GRO : 0),
      {
        recvArena: this.batch.buf,
        recvOffsets: this.batch.offsets,
        recvLengths: this.batch.lengths,
        recvAddrs: this.batch.addrs,
        recvPorts: this.batch.ports,
        sendArena: this.sendArena,
        sendOffsets: this.sendOffsets,
        sendLengths: this.sendLengths,
        sendAddrs: this.sendAddrs,
        sendPorts: this.sendPorts,
        stats: this.counters,
      },
      (count) => this.deliver(count),
      () => this.flush(),
      () => this.close(),
    );
    this.port = addon.udpPort(this.handle);
    const flags = addon.udpFlags(this.handle);
    this.gso = (flags & UDP_OPT_GSO) !== 0;
    this.gro = (flags & UDP_OPT_GRO) !== 0;
  }

  onDatagrams(handler: (b: DatagramBatch) => void): void {
    this.handler = handler;
    if (!this.started && !this.closed) {
      this.started = true;
      this.addon.udpStart(this.handle);
    }
  }

  send(buf: Uint8Array, off: number, len: number, addr: number, port: number): void {
    checkSend(buf, off, len, addr, port);
    const at = this.reserve(len);
    if (at < 0) return;
    this.sendArena.set(off === 0 && len === buf.length ? buf : buf.subarray(off, off + len), at);
    this.commit(len, addr, port);
  }

  reserve(maxLen: number): number {
    checkReserve(maxLen);
    this.reserved = -1;
    if (this.queued === BIND_SEND_QUEUE || this.pos + maxLen > SEND_ARENA) {
      this.flush();
      if (this.queued === BIND_SEND_QUEUE || this.pos + maxLen > SEND_ARENA) {
        this.counters[UDP_STAT.txDropped]!++;
        return -1;
      }
    }
    this.reserved = maxLen;
    return this.pos;
  }

  commit(len: number, addr: number, port: number): void {
    checkCommit(len, this.reserved, addr, port);
    this.reserved = -1;
    const i = this.queued++;
    const pos = this.pos;
    this.sendOffsets[i] = pos;
    this.sendLengths[i] = len;
    this.sendAddrs[i] = addr;
    this.sendPorts[i] = port;
    // 8-byte alignment keeps the kernel's copies word-aligned.
    this.pos = pos + ((len + 7) & ~7);
  }

  flush(): void {
    // A flush may move queued bytes, so an open reservation is void (commit() then throws).
    this.reserved = -1;
    const queued = this.queued;
    if (queued === 0 || this.closed) return;
    const done = this.addon.udpSend(this.handle, queued);
    if (done >= queued) {
      this.queued = 0;
      this.pos = 0;
      return;
    }
    // The socket buffer is full; the addon calls flush() again when it drains.
    // Move the unsent tail to the front so send() can keep queueing behind it.
    let pos = 0;
    for (let j = done; j < queued; j++) {
      const from = this.sendOffsets[j]!;
      const len = this.sendLengths[j]!;
      const k = j - done;
      this.sendArena.copyWithin(pos, from, from + len);
      this.sendOffsets[k] = pos;
      this.sendLengths[k] = len;
      this.sendAddrs[k] = this.sendAddrs[j]!;
      this.sendPorts[k] = this.sendPorts[j]!;
      pos += (len + 7) & ~7;
    }
    this.queued = queued - done;
    this.pos = pos;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queued = 0;
    this.reserved = -1;
    this.addon.close(this.handle);
  }

  private deliver(count: number): void {
    const b = this.batch;
    b.count = count;
    this.handler?.(b);
  }
}

/**
 * Opens a native UDP/IPv4 bind (recvmmsg/sendmmsg in the addon). Rejects with
 * an Error whose `code` is the errno name (EADDRINUSE, EACCES, ...), or
 * ENATIVE if the addon is not built; with RangeError/TypeError on bad options.
 */
export async function openBind(opts: BindOptions): Promise<DatagramBind> {
  const addr = checkOptions(opts);
  return new NativeBind(loadNative(), addr, opts);
}

/** Mutable counters of the dgram fallback, same keys as {@link BindStats}. */
type MutableStats = { -readonly [K in keyof BindStats]: number };

class DgramBind implements DatagramBind {
  readonly stats: MutableStats;
  readonly gso = false;
  readonly gro = false;
  private readonly batch: DatagramBatch = {
    count: 0,
    buf: Buffer.alloc(0),
    offsets: new Uint32Array(1),
    lengths: new Uint32Array(1),
    addrs: new Uint32Array(1),
    ports: new Uint16Array(1),
  };
  private readonly queue: { data: Buffer; addr: number; port: number }[] = [];
  /** reserve() hands out this scratch; commit() copies from it (dgram keeps buffers until sent). */
  readonly sendArena = Buffer.alloc(UDP_MAX_PAYLOAD);
  private reserved = -1;
  private handler: ((b: DatagramBatch) => void) | undefined;
  private closed = false;

  constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
  ) {
    this.stats = Object.fromEntries(Object.keys(UDP_STAT).map((k) => [k, 0])) as MutableStats;
    socket.on('message', (msg, rinfo) => this.deliver(msg, rinfo));
    // After bind, errors are per-send (reported to the send callback); count anything else.
    socket.on('error', () => this.stats.rxErrors++);
  }

  onDatagrams(handler: (b: DatagramBatch) => void): void {
    this.handler = handler;
  }

  send(buf: Uint8Array, off: number, len: number, addr: number, port: number): void {
    checkSend(buf, off, len, addr, port);
    if (this.queue.length >= BIND_SEND_QUEUE) this.flush();
    // dgram may keep the buffer until the send completes, so it gets its own copy.
    this.queue.push({ data: Buffer.from(buf.subarray(off, off + len)), addr, port });
  }

  reserve(maxLen: number): number {
    checkReserve(maxLen);
    this.reserved = maxLen;
    return 0;
  }

  commit(len: number, addr: number, port: number): void {
    checkCommit(len, this.reserved, addr, port);
    this.reserved = -1;
    this.send(this.sendArena, 0, len, addr, port);
  }

  flush(): void {
    this.reserved = -1;
    if (this.closed) {
      this.queue.length = 0;
      return;
    }
    for (const { data, addr, port } of this.queue) {
      this.socket.send(data, port, u32ToIpv4(addr), (err) => {
        if (err) {
          this.stats.txErrors++;
        } else {
          this.stats.txDatagrams++;
          this.stats.txBytes += data.length;
        }
      });
    }
    this.queue.length = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.socket.close();
  }

  private deliver(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (rinfo.family !== 'IPv4') return;
    const b = this.batch;
    b.buf = msg;
    b.offsets[0] = 0;
    b.lengths[0] = msg.length;
    b.addrs[0] = ipv4ToU32(rinfo.address);
    b.ports[0] = rinfo.port;
    b.count = 1;
    this.stats.rxDatagrams++;
    this.stats.rxBytes += msg.length;
    this.handler?.(b);
  }
}

/**
 * Opens a bind on node:dgram implementing {@link DatagramBind} (one datagram
 * per batch; `gso`/`gro` are ignored). Rejects with the socket's bind error
 * (code EADDRINUSE, ...).
 */
export async function openDgramBind(opts: BindOptions): Promise<DatagramBind> {
  checkOptions(opts);
  const socket = dgram.createSocket({
    type: 'udp4',
    recvBufferSize: opts.rcvBuf,
    sendBufferSize: opts.sndBuf,
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ port: opts.port, address: opts.host ?? '0.0.0.0', exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  return new DgramBind(socket, socket.address().port);
}
