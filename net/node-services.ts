/**
 * What the host agent provides inside each node besides its channels
 * (paper §4.7; docs/dns.md): the Supernet resolver at the pool's `.1`
 * address, and the node's own /etc files through configfs.
 *
 * Both are fed from the node's signed configuration, through one
 * {@link NameView} per config: the resolver answers from it, and the same
 * object goes to configfs in the node's spool entry, so the files and the
 * DNS answers always agree. For every node:
 *
 * - a {@link ResolverPort} on its TUN: the datapath hands it every packet
 *   the node sends to the resolver address (LocalNode.service) and does not
 *   forward what it consumed;
 * - its spool entry (`<ns>.json`: which namespace, which view), rewritten on
 *   every config change, removed with the node;
 * - `/etc/netns/<ns>/` links to the configfs files, which `ip netns exec`
 *   (what `supernet exec` runs) binds over the node's /etc files.
 *
 * The configfs process itself is supervised here too (ConfigfsSupervisor):
 * started before any node is created, restarted when it exits.
 */
import type { Logger, LogLevel } from '../admin/logger.js';
import type { NodeConfig } from '../admin/protocol.js';
import { linkEtcNetns, unlinkEtcNetns, ETC_NETNS_DIR } from '../configfs/etc-netns.js';
import { listSpool, removeSpoolEntry, writeSpoolEntry } from '../configfs/spool.js';
import { ConfigfsSupervisor, type ConfigfsStatus } from './configfs-supervisor.js';
import type { LocalService } from './datapath.js';
import {
  SupernetResolver,
  type DnsForwarder,
  type ExternalPolicy,
  type NameView,
  type ResolverStats,
} from './dns.js';
import { SUPERNET_DNS_SUFFIX, supernetDomain } from './dns-names.js';
import { ResolverPort, type PacketSink, type ResolverPortStats } from './dns-tun.js';
import { formatIpv4, parseIpv4, parsePrefix } from './ipv4.js';

/** Where `ip netns add` pins namespaces (and so where configfs finds a node's). */
const NETNS_PIN_DIR = '/run/netns';

export interface ConfigfsWiring {
  /** Mount point of this host's configfs (e.g. /run/supernet/configfs). */
  mountpoint: string;
  /** Spool directory the agent writes and configfs reads (e.g. /run/supernet/configfs.d). */
  spoolDir: string;
  /** Default /etc/netns (iproute2's fixed path); unit tests only. */
  etcNetnsDir?: string;
  /** Start and supervise `supernet configfs run` (default true; false if someone else runs it). */
  supervise?: boolean;
  logLevel?: LogLevel;
  /** Program and first arguments of the configfs process (default: `supernet configfs run`). */
  command?: string[];
}

export interface NodeServicesOptions {
  logger: Logger;
  /** Parent of every Supernet domain (default `sn.internal`, docs/dns.md §Names). */
  dnsSuffix?: string;
  /** Names outside the node's Supernet: refused (default) or forwarded from the host. */
  external?: ExternalPolicy;
  /** Sends forwarded queries (needed for a `forward` policy). */
  forwarder?: DnsForwarder;
  /** False when node TUNs hand over packets with partial checksums (virtio-net header offload). */
  checkUdpChecksum: boolean;
  /** configfs; null: nodes see the host's /etc files (not recommended). */
  configfs: ConfigfsWiring | null;
}

/**
 * The name view of a node from its signed config. The resolver address is
 * the pool's `.1`, which the admin service reserves and never assigns.
 */
export function nameViewOf(
  cfg: NodeConfig,
  suffix: string = SUPERNET_DNS_SUFFIX,
  external: ExternalPolicy = 'refuse',
): NameView {
  const pool = parsePrefix(cfg.pool);
  return {
    supernet: cfg.supernet,
    domain: supernetDomain(cfg.supernet, suffix),
    pool: cfg.pool,
    serial: cfg.serial,
    self: { name: cfg.node.name, vip: cfg.node.vip },
    members: cfg.members.map((m) => ({ name: m.name, vip: m.vip })),
    resolverVip: formatIpv4((pool.network + 1) >>> 0),
    external,
  };
}

/** One node's services; its `view` is replaced (never mutated) on every config change. */
class NodeService implements LocalService {
  readonly vip: number;
  readonly port: ResolverPort;
  /** The spool text last written, so an unchanged config is not rewritten. */
  spoolText = '';

  constructor(
    resolver: SupernetResolver,
    public view: NameView,
    send: PacketSink,
    checkUdpChecksum: boolean,
  ) {
    this.vip = parseIpv4(view.resolverVip);
    this.port = new ResolverPort(
      resolver,
      this.vip,
      parseIpv4(view.self.vip),
      send,
      checkUdpChecksum,
    );
  }

  handle(buf: Buffer, off: number, len: number): boolean {
    return this.port.handle(buf, off, len, this.view);
  }
}

/** The resolver and configfs side of every node on this host. */
export class NodeServices {
  readonly resolver: SupernetResolver;
  readonly supervisor: ConfigfsSupervisor | null;
  private readonly nodes = new Map<string, NodeService>();
  private readonly suffix: string;
  private readonly external: ExternalPolicy;

  constructor(private readonly o: NodeServicesOptions) {
    this.suffix = o.dnsSuffix ?? SUPERNET_DNS_SUFFIX;
    this.external = o.external ?? 'refuse';
    // Checks the suffix now, not at the first node.
    supernetDomain('0x1', this.suffix);
    this.resolver = new SupernetResolver({
      logger: o.logger,
      suffix: this.suffix,
      forwarder: o.forwarder,
    });
    const c = o.configfs;
    this.supervisor =
      c && c.supervise !== false
        ? new ConfigfsSupervisor({
            mountpoint: c.mountpoint,
            spoolDir: c.spoolDir,
            logger: o.logger,
            logLevel: c.logLevel,
            command: c.command,
          })
        : null;
  }

  /**
   * Starts configfs and waits (at most `timeoutMs`) until it serves, so
   * that nodes restored next are served from their first process on. If it
   * does not come up the agent runs anyway (the packet path does not need
   * it): nodes then see configfs's fail-closed placeholders, `supernet
   * exec` refuses to start programs, and the supervisor keeps trying.
   */
  async start(timeoutMs = 10_000): Promise<void> {
    if (!this.supervisor) return;
    this.supervisor.start();
    if (!(await this.supervisor.ready(timeoutMs))) {
      this.o.logger.error('configfs did not come up; nodes have no name service until it does', {
        mountpoint: this.supervisor.status().mountpoint,
        lastExit: this.supervisor.status().lastExit,
      });
    }
  }

  async stop(): Promise<void> {
    await this.supervisor?.stop();
  }

  /**
   * Sets up or updates node `ns` from `cfg`: its name view, spool entry and
   * /etc/netns links. Call it before any process runs in the node and on
   * every config change. Returns the node's packet hook (the same object
   * for the node's lifetime) for LocalNode.service; `tun` receives replies.
   */
  node(ns: string, cfg: NodeConfig, tun: { write: PacketSink }): LocalService | undefined {
    let view: NameView;
    try {
      view = nameViewOf(cfg, this.suffix, this.external);
    } catch (err) {
      // Never expected of a verified config; the node keeps its last view.
      this.o.logger.error('cannot build the name view of a node', { ns, err: String(err) });
      return this.nodes.get(ns);
    }
    let svc = this.nodes.get(ns);
    if (!svc || svc.vip !== parseIpv4(view.resolverVip) || svc.view.self.vip !== view.self.vip) {
      svc = new NodeService(
        this.resolver,
        view,
        (b, off, len) => tun.write(b, off, len),
        this.o.checkUdpChecksum,
      );
      this.nodes.set(ns, svc);
    } else {
      svc.view = view;
    }
    const c = this.o.configfs;
    if (c) {
      const entry = { netns: `${NETNS_PIN_DIR}/${ns}`, spec: { view, hostname: cfg.node.name } };
      const text = JSON.stringify(entry);
      if (text !== svc.spoolText) {
        try {
          writeSpoolEntry(c.spoolDir, ns, entry);
          svc.spoolText = text;
        } catch (err) {
          this.o.logger.error('cannot write the configfs spool entry of a node', {
            ns,
            err: String(err),
          });
        }
      }
      try {
        linkEtcNetns(ns, { mountpoint: c.mountpoint, etcNetnsDir: c.etcNetnsDir });
      } catch (err) {
        this.o.logger.error('cannot link the /etc files of a node to configfs', {
          ns,
          err: String(err),
        });
      }
    }
    return svc;
  }

  /** Forgets node `ns`: no more answers, no more files (its processes get EACCES from configfs). */
  removeNode(ns: string): void {
    this.nodes.delete(ns);
    const c = this.o.configfs;
    if (!c) return;
    try {
      removeSpoolEntry(c.spoolDir, ns);
      unlinkEtcNetns(ns, c.etcNetnsDir ?? ETC_NETNS_DIR);
    } catch (err) {
      this.o.logger.warn('cannot remove the configfs entries of a node', { ns, err: String(err) });
    }
  }

  /**
   * Removes spool entries and links of namespaces named with `prefix` that
   * are not in `keep` (nodes this agent no longer hosts, left by a crash).
   */
  prune(prefix: string, keep: ReadonlySet<string>): void {
    const c = this.o.configfs;
    if (!c) return;
    for (const ns of listSpool(c.spoolDir)) {
      if (!ns.startsWith(prefix) || keep.has(ns) || this.nodes.has(ns)) continue;
      this.o.logger.info('removing the configfs entry of a node no longer hosted', { ns });
      this.removeNode(ns);
    }
  }

  /** What `supernet status` shows. */
  status(): {
    dns: { suffix: string; external: ExternalPolicy; resolver: ResolverStats };
    nodes: Record<string, { resolverVip: string; serial: number | undefined } & ResolverPortStats>;
    configfs: ConfigfsStatus | { mountpoint: string; spool: string; supervised: false } | null;
  } {
    const nodes: Record<
      string,
      { resolverVip: string; serial: number | undefined } & ResolverPortStats
    > = {};
    for (const [ns, s] of this.nodes) {
      nodes[ns] = { resolverVip: s.view.resolverVip, serial: s.view.serial, ...s.port.stats };
    }
    const c = this.o.configfs;
    return {
      dns: { suffix: this.suffix, external: this.external, resolver: { ...this.resolver.stats } },
      nodes,
      configfs: this.supervisor
        ? this.supervisor.status()
        : c
          ? { mountpoint: c.mountpoint, spool: c.spoolDir, supervised: false }
          : null,
    };
  }
}
