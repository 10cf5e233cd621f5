/**
 * Forwarding external names (docs/dns.md §Forwarding): when a view's policy
 * is `{ forward: [servers] }`, the resolver hands such queries to a
 * {@link DnsForwarder}. This one sends them from the host agent's own
 * network namespace (the host's, where the listed servers are reachable)
 * over UDP, one fresh socket per query (so the kernel picks a random source
 * port) and a fresh random id (RFC 5452 §9.2), trying the servers in order.
 *
 * The upstream sees the host, not the node. What a node may learn through
 * it is exactly what the policy grants; names of Supernets and private
 * reverse zones never reach it (the resolver answers those itself).
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Logger } from '../admin/logger.js';
import type { DnsForwarder } from './dns.js';
import { DNS_HEADER_LEN, FLAG_QR, readHeader } from './dns-wire.js';

export interface UdpForwarderOptions {
  logger: Logger;
  /** Per-server wait for a reply, ms (default 2000). */
  timeoutMs?: number;
  /** Queries in flight at once; more are answered SERVFAIL at once (default 256). */
  maxInFlight?: number;
  /** Port of the servers (default 53; tests use another). */
  port?: number;
}

/** Counters, all monotonic. */
export interface ForwarderStats {
  sent: number;
  replies: number;
  timeouts: number;
  /** Datagrams that were not the reply (wrong source, id or not a response): ignored. */
  ignored: number;
  /** Queries refused because too many were in flight. */
  overload: number;
  errors: number;
}

const MAX_REPLY = 65535;

/** Forwards over UDP from the host namespace. */
export class UdpForwarder implements DnsForwarder {
  readonly stats: ForwarderStats = {
    sent: 0,
    replies: 0,
    timeouts: 0,
    ignored: 0,
    overload: 0,
    errors: 0,
  };
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly port: number;
  private inFlight = 0;

  constructor(opts: UdpForwarderOptions) {
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxInFlight = opts.maxInFlight ?? 256;
    this.port = opts.port ?? 53;
  }

  forward(
    query: Uint8Array,
    servers: readonly string[],
    done: (r: Uint8Array | null) => void,
  ): void {
    const usable = servers.filter((s) => isIPv4(s));
    if (usable.length === 0 || query.length < DNS_HEADER_LEN) return done(null);
    if (this.inFlight >= this.maxInFlight) {
      this.stats.overload++;
      return done(null);
    }
    this.inFlight++;
    const finish = (r: Uint8Array | null): void => {
      this.inFlight--;
      done(r);
    };
    this.tryServer(Uint8Array.from(query), usable, 0, finish);
  }

  private tryServer(
    query: Uint8Array,
    servers: readonly string[],
    i: number,
    done: (r: Uint8Array | null) => void,
  ): void {
    if (i >= servers.length) return done(null);
    const server = servers[i]!;
    const id = randomInt(0, 0x10000);
    query[0] = id >> 8;
    query[1] = id & 0xff;
    let sock: Socket;
    try {
      sock = createSocket('udp4');
    } catch (err) {
      this.stats.errors++;
      this.logger.warn('dns: cannot open a forwarding socket', { error: String(err) });
      return done(null);
    }
    let settled = false;
    const settle = (reply: Uint8Array | null, next: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      if (reply === null && next) this.tryServer(query, servers, i + 1, done);
      else done(reply);
    };
    const timer = setTimeout(() => {
      this.stats.timeouts++;
      settle(null, true);
    }, this.timeoutMs);
    sock.on('error', (err) => {
      this.stats.errors++;
      this.logger.debug('dns: forwarding error', { server, error: err.message });
      settle(null, true);
    });
    sock.on('message', (msg, rinfo) => {
      const hdr = readHeader(msg);
      // Only the server we asked, from its port, answering our id, counts
      // (RFC 5452 §4); anything else is ignored and the wait goes on.
      if (
        rinfo.address !== server ||
        rinfo.port !== this.port ||
        hdr === null ||
        hdr.id !== id ||
        (hdr.flags & FLAG_QR) === 0 ||
        msg.length > MAX_REPLY
      ) {
        this.stats.ignored++;
        return;
      }
      this.stats.replies++;
      settle(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), false);
    });
    this.stats.sent++;
    sock.send(query, this.port, server, (err) => {
      if (err) {
        this.stats.errors++;
        settle(null, true);
      }
    });
  }
}
