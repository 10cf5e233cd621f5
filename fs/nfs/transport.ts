/**
 * An ONC RPC client over one TCP connection (RFC 5531 §11 record marking):
 * calls are pipelined and their replies matched by xid, so up to
 * `maxInFlight` calls share the connection. When the connection drops (the
 * server restarted, a reply is overdue), the client reconnects with backoff
 * and retransmits every outstanding call under its original xid, so a server
 * with a duplicate-request cache answers a repeated non-idempotent call from
 * the cache (RFC 1813 §4.3 about TCP and retransmission). A call that gets no
 * reply within `deadlineMs` fails with a clear {@link RpcTimeout}; nothing is
 * ever reported as done without the server's reply.
 *
 * The connection is made by a {@link Connector} (the transport seam): plain
 * TCP in production (the process already runs inside the node's network
 * namespace), something else in tests.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { XdrError, XdrReader, XdrWriter } from './xdr.js';
import {
  AUTH_SYS,
  beginCall,
  decodeReply,
  encodeAuthSys,
  finishRecord,
  peekXid,
  MAX_RECORD,
  RecordDecoder,
  RpcError,
  type AuthSys,
  type Program,
} from './rpc.js';
import { type Logger, nullLogger } from '../../admin/logger.js';

/**
 * Opens a new connection to the server; resolves once it is connected. A
 * connector may hand received bytes to `onread` itself (a view valid only
 * during the call; it then emits no 'data'); one that ignores it emits
 * 'data' as any Duplex does. The client accepts either.
 */
export type Connector = (onread?: (chunk: Buffer) => void) => Promise<Duplex>;

/**
 * Size of the one buffer a TCP connection reads into. Replies are copied out
 * of it as they are framed (RecordDecoder), so no read allocates: a buffer
 * per socket read was most of the mount daemon's garbage (docs/nfs.md).
 */
const TCP_READ_BUFFER = 256 * 1024;

/** A plain TCP {@link Connector}. */
export function tcpConnector(host: string, port: number, timeoutMs = 10_000): Connector {
  return (onread) =>
    new Promise<Duplex>((resolve, reject) => {
      const s: Socket = tcpConnect({
        host,
        port,
        ...(onread && {
          onread: {
            buffer: Buffer.allocUnsafe(TCP_READ_BUFFER),
            callback: (n: number, buf: Uint8Array) => {
              onread(Buffer.from(buf.buffer, buf.byteOffset, n));
              return true;
            },
          },
        }),
      });
      const t = setTimeout(() => {
        s.destroy();
        reject(
          Object.assign(new Error(`connect to ${host}:${port} timed out`), { code: 'ETIMEDOUT' }),
        );
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.setNoDelay(true);
        s.setKeepAlive(true, 10_000);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
}

/** A call that got no reply in time (the server is down or unreachable). */
export class RpcTimeout extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string) {
    super(message);
    this.name = 'RpcTimeout';
  }
}

/** The client was closed while the call was outstanding. */
export class RpcClosed extends Error {
  readonly code = 'ESHUTDOWN';
  constructor(message = 'RPC client closed') {
    super(message);
    this.name = 'RpcClosed';
  }
}

/** A reply arrived for this call but was not valid XDR. */
export class RpcProtocolError extends Error {
  readonly code = 'EPROTO';
  constructor(message: string) {
    super(message);
    this.name = 'RpcProtocolError';
  }
}

export interface RpcClientOptions {
  program: Program;
  connect: Connector;
  /** Where the connector goes, for messages (`10.71.17.3:2049`). */
  server: string;
  /** AUTH_SYS identity; default uid/gid 0 and this host's name. */
  cred?: Partial<AuthSys>;
  /** Calls on the wire at once (default 16). */
  maxInFlight?: number;
  /** A reply overdue by this long makes the client reconnect and retransmit (default 20 s). */
  timeoutMs?: number;
  /** A call without a reply after this long fails with {@link RpcTimeout} (default 120 s). */
  deadlineMs?: number;
  logger?: Logger;
  now?: () => number;
  /** Procedure names for messages (default: the number). */
  procNames?: Record<number, string>;
  /** Sees every call and reply record (fixture capture, debugging). */
  tap?: (dir: 'call' | 'reply', proc: number, record: Buffer) => void;
}

/** The decoded result of a successful call. */
export interface CallResult {
  /** Reader positioned at the procedure's results. */
  body: XdrReader;
  /** True when the call was sent more than once (after a reconnect). */
  retransmitted: boolean;
}

/** Counters, for status output and tests. */
export interface RpcCounters {
  calls: number;
  replies: number;
  retransmits: number;
  reconnects: number;
  connectFailures: number;
  /** replies whose xid matched no outstanding call (dropped) */
  unmatched: number;
  /** records that were not valid RPC replies (dropped) */
  malformed: number;
}

interface Slot {
  w: XdrWriter;
  xid: number;
  proc: number;
  firstSent: number;
  lastSent: number;
  sends: number;
  resolve: (r: CallResult) => void;
  reject: (e: Error) => void;
  /** Where the reply record goes if it fits (lent by the caller until the call settles). */
  into: Buffer | undefined;
}

const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 2_000;
const TICK_MS = 500;

/** A pipelining RPC client for one program/version on one server. */
export class RpcClient {
  readonly counters: RpcCounters = {
    calls: 0,
    replies: 0,
    retransmits: 0,
    reconnects: 0,
    connectFailures: 0,
    unmatched: 0,
    malformed: 0,
  };
  private readonly credBody: Buffer;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  private readonly deadlineMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly free: XdrWriter[] = [];
  private readonly pending = new Map<number, Slot>();
  private readonly waiting: Array<() => void> = [];
  private xid = randomInt(0, 0x100000000);
  private sock: Duplex | null = null;
  private connecting: Promise<void> | null = null;
  private decoder = this.newDecoder();
  private backoff = BACKOFF_MIN_MS;
  private lastError = '';
  private closed = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: RpcClientOptions) {
    const c = o.cred ?? {};
    this.credBody = encodeAuthSys({
      stamp: c.stamp ?? Math.floor(Date.now() / 1000),
      machinename: (c.machinename ?? hostname()).slice(0, 255),
      uid: c.uid ?? 0,
      gid: c.gid ?? 0,
      gids: c.gids ?? [],
    });
    this.maxInFlight = o.maxInFlight ?? 16;
    this.timeoutMs = o.timeoutMs ?? 20_000;
    this.deadlineMs = o.deadlineMs ?? 120_000;
    this.log = o.logger ?? nullLogger;
    this.now = o.now ?? Date.now;
    for (let i = 0; i < this.maxInFlight; i++) this.free.push(new XdrWriter(256));
  }

  /** Calls currently on the wire or waiting for a connection. */
  get outstanding(): number {
    return this.pending.size;
  }

  /**
   * Calls procedure `proc`: `args` writes the arguments; `tail` is a bulk
   * opaque appended without a copy (WRITE data; `args` must end with its
   * length via {@link XdrWriter.opaqueTail}). Resolves with the results, or
   * rejects with {@link RpcError} (the server refused the call),
   * {@link RpcTimeout}, {@link RpcProtocolError} or {@link RpcClosed}.
   * `into`, if given, receives the reply record when it fits (the result's
   * body then reads from it): the caller lends it until the promise settles
   * and must not touch it before.
   */
  async call(proc: number, args: (w: XdrWriter) => void, into?: Buffer): Promise<CallResult> {
    if (this.closed) throw new RpcClosed();
    let w = this.free.pop();
    while (!w) {
      await new Promise<void>((r) => this.waiting.push(r));
      if (this.closed) throw new RpcClosed();
      w = this.free.pop();
    }
    const xid = (this.xid = (this.xid + 1) >>> 0);
    try {
      const mark = beginCall(w, xid, this.o.program, proc, AUTH_SYS, this.credBody);
      args(w);
      finishRecord(w, mark);
    } catch (e) {
      this.release(w);
      throw e;
    }
    this.counters.calls++;
    const t = this.now();
    return new Promise<CallResult>((resolve, reject) => {
      const slot: Slot = {
        w: w!,
        xid,
        proc,
        firstSent: t,
        lastSent: t,
        sends: 0,
        resolve,
        reject,
        into,
      };
      this.pending.set(xid, slot);
      this.armTimer();
      if (this.sock) this.send(slot);
      else void this.ensureConnected();
    });
  }

  /** Fails outstanding calls and closes the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const err = new RpcClosed();
    for (const s of [...this.pending.values()]) this.finish(s, err);
    for (const wake of this.waiting.splice(0)) wake();
    this.sock?.destroy();
    this.sock = null;
  }

  private release(w: XdrWriter): void {
    w.reset();
    this.free.push(w);
    this.waiting.shift()?.();
  }

  private finish(s: Slot, result: CallResult | Error): void {
    if (!this.pending.delete(s.xid)) return;
    // Ended without its reply (a record of its may be half received): the
    // caller takes its buffer back as soon as this settles.
    if (s.into && result instanceof Error) this.decoder.disown(s.into);
    // Failed before its reply: its bytes may still sit in the socket's queue,
    // and the writer is about to be reused. Start over on a new connection.
    const sock = this.sock as Socket | null;
    if (result instanceof Error && sock && (sock.writableLength ?? 0) > 0) this.drop(sock);
    this.release(s.w);
    if (this.pending.size === 0) this.idle();
    if (result instanceof Error) s.reject(result);
    else s.resolve(result);
  }

  /** A decoder that puts each reply where its call asked (`into`), else in a buffer of its own. */
  private newDecoder(): RecordDecoder {
    return new RecordDecoder(MAX_RECORD, (len, xid) => {
      const into = this.pending.get(xid)?.into;
      return into !== undefined && into.length >= len ? into : Buffer.allocUnsafe(len);
    });
  }

  /** Lets the process exit while nothing is outstanding. */
  private idle(): void {
    (this.sock as Socket | null)?.unref?.();
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private armTimer(): void {
    (this.sock as Socket | null)?.ref?.();
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Overdue replies: reconnect and retransmit; past the deadline: fail. */
  private tick(): void {
    const t = this.now();
    let overdue = false;
    for (const s of [...this.pending.values()]) {
      if (t - s.firstSent >= this.deadlineMs) {
        const why = this.lastError ? ` (last error: ${this.lastError})` : '';
        this.finish(
          s,
          new RpcTimeout(
            `${this.o.program.name} ${this.o.procNames?.[s.proc] ?? `call ${s.proc}`} to ${this.o.server}: no reply after ${Math.round(
              (t - s.firstSent) / 1000,
            )} s${why}`,
          ),
        );
      } else if (this.sock && s.sends > 0 && t - s.lastSent >= this.timeoutMs) overdue = true;
    }
    if (overdue && this.sock) {
      this.log.warn('rpc reply overdue; reconnecting', {
        server: this.o.server,
        program: this.o.program.name,
        outstanding: this.pending.size,
      });
      this.lastError = 'reply overdue';
      this.drop(this.sock);
    }
  }

  private send(s: Slot): void {
    const sock = this.sock!;
    if (s.sends > 0) this.counters.retransmits++;
    s.sends++;
    s.lastSent = this.now();
    const chunks = s.w.chunks();
    if (this.o.tap) this.o.tap('call', s.proc, Buffer.concat(chunks).subarray(4));
    if (chunks.length === 1) sock.write(chunks[0]);
    else {
      (sock as Socket).cork?.();
      for (const c of chunks) sock.write(c);
      (sock as Socket).uncork?.();
    }
  }

  private ensureConnected(): Promise<void> {
    this.connecting ??= this.connectLoop().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connectLoop(): Promise<void> {
    while (!this.closed && !this.sock && this.pending.size > 0) {
      try {
        // Replies cannot arrive before the first call, which attach() sends.
        let live: Duplex | null = null;
        const sock = await this.o.connect((d) => {
          if (live !== null && live === this.sock) this.onData(live, d);
        });
        live = sock;
        if (this.closed) {
          sock.destroy();
          return;
        }
        this.attach(sock);
        this.backoff = BACKOFF_MIN_MS;
        return;
      } catch (e) {
        this.counters.connectFailures++;
        this.lastError = String((e as Error).message ?? e);
        this.log.debug('rpc connect failed', { server: this.o.server, error: this.lastError });
        await new Promise((r) => setTimeout(r, this.backoff));
        this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private attach(sock: Duplex): void {
    this.sock = sock;
    this.decoder = this.newDecoder();
    sock.on('data', (d: Buffer) => this.onData(sock, d));
    sock.on('error', (e: Error) => {
      this.lastError = e.message;
    });
    sock.on('close', () => this.onClose(sock));
    const retransmit = [...this.pending.values()];
    if (retransmit.some((s) => s.sends > 0)) {
      this.counters.reconnects++;
      this.log.info('rpc reconnected; retransmitting', {
        server: this.o.server,
        program: this.o.program.name,
        calls: retransmit.length,
      });
    }
    for (const s of retransmit) this.send(s);
    if (this.pending.size === 0) this.idle();
  }

  private drop(sock: Duplex): void {
    sock.destroy();
    this.onClose(sock);
  }

  private onClose(sock: Duplex): void {
    if (this.sock !== sock) return;
    this.sock = null;
    if (!this.closed && this.pending.size > 0) {
      this.log.debug('rpc connection lost', {
        server: this.o.server,
        outstanding: this.pending.size,
        error: this.lastError,
      });
      void this.ensureConnected();
    }
  }

  private onData(sock: Duplex, d: Buffer): void {
    try {
      this.decoder.push(d, (rec) => this.onRecord(rec));
    } catch (e) {
      // Framing is lost: nothing after this point can be trusted.
      this.counters.malformed++;
      this.lastError = String((e as Error).message);
      this.log.warn('rpc stream is not record-marked RPC; reconnecting', {
        server: this.o.server,
        error: this.lastError,
      });
      this.drop(sock);
    }
  }

  private onRecord(rec: Buffer): void {
    const xid = peekXid(rec);
    const slot = xid === null ? undefined : this.pending.get(xid);
    if (!slot) {
      this.counters.unmatched++;
      return;
    }
    if (this.o.tap) this.o.tap('reply', slot.proc, rec);
    let reply;
    try {
      reply = decodeReply(rec);
    } catch (e) {
      this.counters.malformed++;
      const msg = e instanceof XdrError ? e.message : String(e);
      this.finish(
        slot,
        new RpcProtocolError(`${this.o.program.name} reply from ${this.o.server}: ${msg}`),
      );
      return;
    }
    this.counters.replies++;
    if (!reply.ok) this.finish(slot, new RpcError(reply.failure, this.o.program.name));
    else this.finish(slot, { body: reply.body, retransmitted: slot.sends > 1 });
  }
}
