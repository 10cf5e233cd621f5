/**
 * The push channel to host agents: `GET /v1/events` as Server-Sent Events
 * (protocol.ts {@link NodeEvent}).
 *
 * Events carry no secrets and no authority — a `config` event only says
 * "fetch your signed config again" — so losing or reordering them is
 * harmless: the agent compares serials and the first event on every
 * connection is the current serial. Events to one stream are coalesced for
 * `coalesceMs` (a burst of joins costs each member one fetch, not one per
 * join), and a slow reader is never buffered more than one pending serial.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from './logger.js';

export const KEEPALIVE_MS = 15_000;
export const COALESCE_MS = 50;

interface Stream {
  key: string;
  session: string;
  res: ServerResponse;
  pendingSerial: number | null;
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

/** `<supernet>|<node name>`: whom a stream belongs to. */
export const streamKey = (sid: string, name: string): string => `${sid}|${name}`;

export class EventHub {
  private readonly byKey = new Map<string, Set<Stream>>();
  private keepalive: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly opts: { keepAliveMs?: number; coalesceMs?: number } = {},
  ) {}

  /** Number of open streams. */
  get size(): number {
    let n = 0;
    for (const s of this.byKey.values()) n += s.size;
    return n;
  }

  /** Whether node `key` has an event stream open now (the console's "online"). */
  connected(key: string): boolean {
    return (this.byKey.get(key)?.size ?? 0) > 0;
  }

  /**
   * Takes over the HTTP response as an event stream for node `key` (holding
   * session `session`) and sends the current serial at once.
   */
  attach(
    key: string,
    session: string,
    req: IncomingMessage,
    res: ServerResponse,
    serial: number,
  ): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    if (!this.keepalive) {
      this.keepalive = setInterval(() => this.ping(), this.opts.keepAliveMs ?? KEEPALIVE_MS);
      this.keepalive.unref();
    }
    const s: Stream = { key, session, res, pendingSerial: null, timer: null, closed: false };
    let set = this.byKey.get(key);
    if (!set) this.byKey.set(key, (set = new Set()));
    set.add(s);
    const drop = (): void => this.drop(s);
    res.on('close', drop);
    res.on('error', drop);
    res.on('drain', () => this.flush(s));
    res.write('retry: 2000\n\n');
    this.send(s, 'config', { serial });
    this.logger.debug('event stream opened', { node: key });
  }

  private drop(s: Stream): void {
    if (s.closed) return;
    s.closed = true;
    if (s.timer) clearTimeout(s.timer);
    const set = this.byKey.get(s.key);
    set?.delete(s);
    if (set && set.size === 0) this.byKey.delete(s.key);
    this.logger.debug('event stream closed', { node: s.key });
  }

  private send(s: Stream, event: string, data: unknown): void {
    if (s.closed || s.res.writableEnded) return;
    s.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private flush(s: Stream): void {
    if (s.timer) {
      clearTimeout(s.timer);
      s.timer = null;
    }
    if (s.pendingSerial === null || s.closed) return;
    if (s.res.writableNeedDrain) return; // 'drain' calls flush again
    const serial = s.pendingSerial;
    s.pendingSerial = null;
    this.send(s, 'config', { serial });
  }

  /** Tells node `key` that its config may have changed (now at `serial`). */
  config(key: string, serial: number): void {
    const set = this.byKey.get(key);
    if (!set) return;
    const delay = this.opts.coalesceMs ?? COALESCE_MS;
    for (const s of set) {
      s.pendingSerial = Math.max(s.pendingSerial ?? 0, serial);
      if (delay <= 0) this.flush(s);
      else if (!s.timer) s.timer = setTimeout(() => this.flush(s), delay);
    }
  }

  /** Sends `expelled` to every stream of node `key` and closes them. */
  expelled(key: string, reason: string): void {
    for (const s of [...(this.byKey.get(key) ?? [])]) {
      this.send(s, 'expelled', { reason });
      s.res.end();
      this.drop(s);
    }
  }

  /** Ends the streams opened with session `session` (logout, replaced session). */
  endSession(session: string): void {
    for (const set of this.byKey.values()) {
      for (const s of [...set]) {
        if (s.session !== session) continue;
        s.res.end();
        this.drop(s);
      }
    }
  }

  private ping(): void {
    for (const set of this.byKey.values()) {
      for (const s of set)
        if (!s.closed && !s.res.writableNeedDrain) s.res.write(': keep-alive\n\n');
    }
  }

  /** Ends every stream (service shutdown). */
  close(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    for (const set of [...this.byKey.values()]) {
      for (const s of [...set]) {
        s.res.end();
        this.drop(s);
      }
    }
  }
}
