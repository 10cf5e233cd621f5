/**
 * Virtual address pools and underlay endpoints.
 *
 * A Supernet has one IPv4 pool (`10.71.17.0/24`). Inside it the network
 * address and the broadcast address are never assigned, and the first host
 * address (`.1` of a /24) is RESERVED for the Supernet's in-node services
 * such as DNS (docs/admin-api.md §Addresses), so nodes get addresses from
 * network+2 to broadcast−1.
 */
import { isIP } from 'node:net';
import type { Endpoint } from './protocol.js';
import { badField } from './errors.js';

/** Smallest pool: a /30 has network, reserved, one node, broadcast. */
export const MAX_POOL_PREFIX = 30;
/** Largest pool accepted (/8, 16 M addresses). */
export const MIN_POOL_PREFIX = 8;
/** Host offsets that are never assigned to nodes: the network (0) and the reserved services address (1). */
export const RESERVED_HOST_OFFSETS = 2;

/** A parsed IPv4 CIDR block. */
export interface Pool {
  /** Canonical text, e.g. `10.71.17.0/24`. */
  text: string;
  network: number;
  prefixLen: number;
  /** Number of addresses in the block. */
  size: number;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Parses dotted-quad IPv4 text (no leading zeros) to an unsigned 32-bit number, or null. */
export function ipv4ToInt(text: string): number | null {
  if (typeof text !== 'string' || !IPV4_RE.test(text)) return null;
  const p = text.split('.').map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses a pool (`a.b.c.d/len`, host bits zero, /8../30); errors name `field`. */
export function parsePool(text: unknown, field = 'pool'): Pool {
  if (typeof text !== 'string')
    throw badField(field, 'expected an IPv4 CIDR block such as 10.71.17.0/24');
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  const net = m ? ipv4ToInt(m[1]) : null;
  if (!m || net === null) {
    throw badField(
      field,
      `expected an IPv4 CIDR block such as 10.71.17.0/24, got ${JSON.stringify(text)}`,
    );
  }
  const len = Number(m[2]);
  if (len < MIN_POOL_PREFIX || len > MAX_POOL_PREFIX) {
    throw badField(
      field,
      `prefix length must be between /${MIN_POOL_PREFIX} and /${MAX_POOL_PREFIX}`,
    );
  }
  const size = 2 ** (32 - len);
  if (net % size !== 0) {
    throw badField(
      field,
      `${text} has host bits set; did you mean ${intToIpv4(net - (net % size))}/${len}?`,
    );
  }
  return { text: `${intToIpv4(net)}/${len}`, network: net, prefixLen: len, size };
}

/** True when `inner` lies completely inside `outer`. */
export function poolContains(outer: Pool, inner: Pool): boolean {
  return inner.network >= outer.network && inner.network + inner.size <= outer.network + outer.size;
}

/** True when the address `vip` lies inside `pool`. */
export function inPool(pool: Pool, vip: string): boolean {
  const n = ipv4ToInt(vip);
  return n !== null && n >= pool.network && n < pool.network + pool.size;
}

/** The reserved services address of a pool (network + 1). */
export function reservedVip(pool: Pool): string {
  return intToIpv4(pool.network + 1);
}

/** Why `vip` cannot be a node address in `pool`, or null if it can. */
export function vipProblem(pool: Pool, vip: string): string | null {
  const n = ipv4ToInt(vip);
  if (n === null) return `expected an IPv4 address, got ${JSON.stringify(vip)}`;
  if (n < pool.network || n >= pool.network + pool.size)
    return `${vip} is outside the pool ${pool.text}`;
  const off = n - pool.network;
  if (off === 0) return `${vip} is the network address of ${pool.text}`;
  if (off === 1) return `${vip} is reserved for the Supernet's in-node services`;
  if (off === pool.size - 1) return `${vip} is the broadcast address of ${pool.text}`;
  return null;
}

/**
 * First assignable address of `range` (a sub-range of `pool`, or the pool)
 * for which `free` is true, scanning from the lowest; null if none.
 */
export function firstFreeVip(
  pool: Pool,
  range: Pool,
  free: (vip: string) => boolean,
): string | null {
  // Offsets 0 (network), 1 (reserved) and size-1 (broadcast) of the POOL are never assigned.
  const lo = Math.max(range.network, pool.network + RESERVED_HOST_OFFSETS);
  const hi = Math.min(range.network + range.size, pool.network + pool.size - 1);
  for (let n = lo; n < hi; n++) {
    const vip = intToIpv4(n);
    if (free(vip)) return vip;
  }
  return null;
}

/**
 * Validates an underlay endpoint: an IP literal (v4 or v6; no names, so a
 * member never has to trust a resolver) that is neither unspecified nor
 * multicast/broadcast, and a port 1..65535.
 */
export function parseEndpoint(v: unknown, field = 'endpoint'): Endpoint {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw badField(field, 'expected an object {host, port}');
  }
  const e = v as Record<string, unknown>;
  for (const k of Object.keys(e))
    if (k !== 'host' && k !== 'port') throw badField(`${field}.${k}`, 'unknown field');
  if (typeof e.host !== 'string' || isIP(e.host) === 0) {
    throw badField(`${field}.host`, 'expected an IPv4 or IPv6 address literal');
  }
  const host = e.host.toLowerCase();
  if (isIP(host) === 4) {
    const n = ipv4ToInt(host);
    if (n === null)
      throw badField(`${field}.host`, 'expected a dotted-quad IPv4 address without leading zeros');
    if (n === 0) throw badField(`${field}.host`, '0.0.0.0 is not a reachable address');
    if (n >>> 28 === 0xe) throw badField(`${field}.host`, 'multicast addresses are not endpoints');
    if (n === 0xffffffff)
      throw badField(`${field}.host`, 'the broadcast address is not an endpoint');
  } else {
    if (/^[0:]+$/.test(host)) throw badField(`${field}.host`, ':: is not a reachable address');
    if (host.startsWith('ff'))
      throw badField(`${field}.host`, 'multicast addresses are not endpoints');
  }
  if (typeof e.port !== 'number' || !Number.isInteger(e.port) || e.port < 1 || e.port > 65535) {
    throw badField(`${field}.port`, 'expected an integer from 1 to 65535');
  }
  return { host, port: e.port };
}

export function sameEndpoint(
  a: Endpoint | null | undefined,
  b: Endpoint | null | undefined,
): boolean {
  if (!a || !b) return !a && !b;
  return a.host === b.host && a.port === b.port;
}
