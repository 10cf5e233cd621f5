/**
 * What one node may know about names (docs/dns.md §Names): its own name and
 * address and those of the members it can reach, taken by the host agent
 * from the node's signed configuration. The resolver never sees anything
 * else, which is why names of other Supernets cannot resolve: they are not
 * in the view.
 *
 * A view is treated as immutable: the agent passes a new object when the
 * configuration changes. The resolver indexes each view object once (a
 * WeakMap), so answering is a map lookup, not a scan of the members.
 */
import { parseIpv4, parsePrefix, type Ipv4Prefix } from './ipv4.js';
import { NODE_NAME_RE, domainLabels, nodeFqdn, reverseName } from './dns-names.js';
import type { Logger } from '../admin/logger.js';

/** One name/address pair of a view. */
export interface NameEntry {
  name: string;
  /** Dotted-quad virtual address. */
  vip: string;
}

/** How names outside the Supernet's domain are treated. */
export type ExternalPolicy = 'refuse' | { forward: string[] };

/** Supplied by the agent, per node, from the node's signed config. */
export interface NameView {
  /** Canonical Supernet id, e.g. `0x4711`. */
  supernet: string;
  /** The Supernet's DNS domain, e.g. `4711.sn` (see supernetDomain()). */
  domain: string;
  /** The Supernet's address pool, e.g. `10.71.17.0/24` (NodeConfig.pool). */
  pool: string;
  /** NodeConfig.serial: becomes the SOA serial, so caches can tell versions apart. */
  serial?: number;
  self: NameEntry;
  /** Nodes this node can reach. */
  members: readonly NameEntry[];
  /** The node-local resolver address (the pool's `.1`). */
  resolverVip: string;
  external: ExternalPolicy;
}

/** A view checked and indexed for lookups. */
export interface ViewIndex {
  /** Domain labels, lowercase, e.g. `['4711','sn']`. */
  domain: string[];
  domainText: string;
  pool: Ipv4Prefix;
  /** Labels of the pool's reverse zone apex, e.g. `['17','71','10','in-addr','arpa']`. */
  reverseApex: string[];
  reverseApexText: string;
  /** Node name → address (u32). */
  byName: Map<string, number>;
  /** Address (u32) → fully qualified name. */
  byAddr: Map<number, string>;
  resolver: number;
  serial: number | undefined;
  external: ExternalPolicy;
}

/** Thrown by {@link indexView} when a view is unusable as a whole. */
export class ViewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ViewError';
  }
}

/**
 * Checks and indexes `view`. A view whose domain, pool or resolver address is
 * invalid throws {@link ViewError}; a single bad or duplicate entry is
 * skipped and logged (one bad member must not make the others unresolvable).
 */
export function indexView(view: NameView, logger: Logger): ViewIndex {
  let domain: string[];
  let pool: Ipv4Prefix;
  let resolver: number;
  try {
    domain = domainLabels(view.domain);
    pool = parsePrefix(view.pool);
    resolver = parseIpv4(view.resolverVip);
  } catch (err) {
    throw new ViewError(`unusable name view of ${view.supernet}: ${(err as Error).message}`);
  }
  if (pool.len < 8 || pool.len > 30) {
    throw new ViewError(
      `unusable name view of ${view.supernet}: pool ${view.pool} must be /8../30`,
    );
  }
  const domainText = domain.join('.');
  const byName = new Map<string, number>();
  const byAddr = new Map<number, string>();
  const add = (e: NameEntry, role: string): void => {
    let addr: number;
    if (typeof e?.name !== 'string' || !NODE_NAME_RE.test(e.name)) {
      logger.warn('dns: skipping member with an invalid name', {
        supernet: view.supernet,
        role,
        name: e?.name,
      });
      return;
    }
    try {
      addr = parseIpv4(e.vip);
    } catch {
      logger.warn('dns: skipping member with an invalid address', {
        supernet: view.supernet,
        name: e.name,
        vip: e.vip,
      });
      return;
    }
    if (byName.has(e.name) || byAddr.has(addr)) {
      logger.warn('dns: skipping duplicate member', {
        supernet: view.supernet,
        name: e.name,
        vip: e.vip,
      });
      return;
    }
    byName.set(e.name, addr);
    byAddr.set(addr, nodeFqdn(e.name, domainText));
  };
  add(view.self, 'self');
  for (const m of view.members ?? []) add(m, 'member');

  // The reverse zone apex sits on the octet boundary at or above the pool.
  const octets = Math.floor(pool.len / 8);
  const rev = reverseName(pool.network)
    .split('.')
    .slice(4 - octets);
  return {
    domain,
    domainText,
    pool,
    reverseApex: rev,
    reverseApexText: rev.join('.'),
    byName,
    byAddr,
    resolver,
    serial: view.serial,
    external: view.external,
  };
}
