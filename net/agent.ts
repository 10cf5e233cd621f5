/**
 * The host agent (design brief §2): one process per physical host. It owns
 * the node TUN devices, the underlay UDP socket, the key ring and the VARP
 * cache; it admits nodes through the admin service (paper §4.3), turns each
 * admitted node into a network namespace, keeps its configuration current
 * from pushed events, and re-registers its endpoint when the host's underlay
 * address changes.
 *
 * State that must survive a restart (node identities, session tokens, the
 * sender session counter) lives in the state directory; node namespaces
 * survive the agent, so processes inside them keep running across a restart.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Identity, fromB64 } from '../admin/identity.js';
import { parseChannelId, parseSupernetId, supernetIdBytes } from '../admin/ids.js';
import { channelKeyContext, type Endpoint, type NodeConfig } from '../admin/protocol.js';
import { AdminRefusal, type AdminLink, type LinkEvent } from './admin-link.js';
import type { DatagramBind } from './bind.js';
import {
  Datapath,
  newStage,
  type LocalNode,
  type NodeCounters,
  type Peer,
  type SupernetTable,
} from './datapath.js';
import { formatIpv4, parseIpv4, parsePrefix } from './ipv4.js';
import { ChannelKeyring } from './keyring.js';
import { NodeTreeKeys } from './member-keys.js';
import { StorageError, type StorageAgent, type VolumeKeyring } from './storage-agent.js';
import type { Logger } from '../admin/logger.js';
import { attachTun, deleteNamespace, ensureNamespace } from './netns.js';
import type { NodeServices } from './node-services.js';
import { packetAeadBackend } from './packet-aead.js';
import { nextSession } from './session.js';
import { startStatsReports } from './stats-report.js';
import type { TunDevice } from './tun.js';
import { innerMtu, supernetKeyOf } from './wire.js';

export interface AgentOptions {
  stateDir: string;
  link: AdminLink;
  bind: DatagramBind;
  /** The endpoint peers should send to now (re-read on every refresh, so renumbering is noticed). */
  endpoint: () => Promise<Endpoint>;
  /** Prefix of node namespace names (tests use a per-run prefix). */
  nsPrefix: string;
  underlayMtu: number;
  openTun: () => TunDevice;
  logger: Logger;
  clock?: () => number;
  /** How often endpoint changes are looked for (ms). */
  endpointPollMs?: number;
  /** How often traffic counters are reported to the admin service (ms; default 10 s). */
  statsEveryMs?: number;
  /** Safety-net config refresh period (ms), in case pushes were lost. */
  refreshMs?: number;
  /** The resolver and configfs side of nodes (docs/dns.md); none: no DNS, host /etc files. */
  services?: NodeServices;
  /** The pinned admin signing key: verifies key-tree messages (docs/keys.md §8). */
  adminSign?: string;
  /** Storage key groups: volume keys and automatic re-encryption (net/storage-agent.ts, issue 5). */
  storage?: StorageAgent;
}

/** What the agent keeps for each node it hosts. */
interface HostedNode {
  local: LocalNode;
  identity: Identity;
  supernet: string;
  requested: string[];
  ns: string;
  token: string;
  nodeId: string;
  prefixLen: number;
  serial: number;
  config: NodeConfig | null;
  abort: AbortController;
  /** The current event stream (replaced when the underlay address changes). */
  events?: AbortController;
  refreshing: Promise<void> | null;
  refreshAgain: boolean;
  /** Key-tree member states (admin `--key-scheme tree`), and whether the next fetch asks for welcomes. */
  treeKeys?: NodeTreeKeys;
  treeResync?: boolean;
  saved: SavedNode;
  /** Endpoint of each member as the last config named it (to tell a VARP change from a stale answer). */
  varpSeen: Map<string, string>;
}

interface SavedNode {
  v: 1;
  name: string;
  supernet: string;
  channels: string[];
  token: string;
  identity: string;
  /** The last verified config, so the node comes back even while the admin service is unreachable. */
  config?: NodeConfig;
}

/** Public summary of a hosted node (control API, `supernet status`). */
export interface NodeInfo {
  name: string;
  supernet: string;
  vip: string;
  ns: string;
  channels: string[];
}

export class HostAgent {
  private readonly nodes = new Map<string, HostedNode>(); // key: `${supernet}/${name}`
  private readonly datapath: Datapath;
  private readonly now: () => number;
  private readonly session: number;
  private readonly mtu: number;
  private timers: NodeJS.Timeout[] = [];
  private lastEndpoint: Endpoint | null = null;
  private behindAt = new Map<string, number>();

  constructor(private readonly o: AgentOptions) {
    this.now = o.clock ?? Date.now;
    mkdirSync(join(o.stateDir, 'nodes'), { recursive: true, mode: 0o700 });
    this.session = nextSession(o.stateDir, this.now());
    this.mtu = innerMtu(o.underlayMtu);
    this.datapath = new Datapath(
      o.bind,
      this.now,
      (sk) => this.behind(sk),
      (node, peer) =>
        o.logger.info('peer moved', {
          node: node.name,
          peer: peer.name,
          endpoint: endpointText(peer),
        }),
    );
  }

  /** Restores the nodes saved by an earlier run, then starts the timers. */
  async start(): Promise<void> {
    this.lastEndpoint = await this.o.endpoint();
    // configfs before any node (docs/dns.md §Agent ↔ configfs).
    await this.o.services?.start();
    const hosted = new Set<string>();
    for (const f of readdirSync(join(this.o.stateDir, 'nodes'))) {
      if (!f.endsWith('.json')) continue;
      let saved: SavedNode;
      try {
        saved = JSON.parse(readFileSync(join(this.o.stateDir, 'nodes', f), 'utf8')) as SavedNode;
      } catch {
        this.o.logger.warn('ignoring unreadable node state', { file: f });
        continue;
      }
      hosted.add(this.nsName(saved.supernet, saved.name));
      try {
        await this.resume(saved);
      } catch (err) {
        this.o.logger.warn('could not restore node', {
          node: saved.name,
          supernet: saved.supernet,
          err: String(err),
        });
      }
    }
    this.o.services?.prune(this.o.nsPrefix, hosted);
    this.timers.push(setInterval(() => this.expireKeys(), 1000));
    this.timers.push(setInterval(() => void this.checkEndpoint(), this.o.endpointPollMs ?? 1000));
    this.timers.push(setInterval(() => this.refreshAll(), this.o.refreshMs ?? 30_000));
    // Traffic counters for the administrator's console (net/stats-report.ts).
    this.timers.push(startStatsReports(this, this.o.link, this.o.logger, this.o.statsEveryMs));
    for (const t of this.timers) t.unref();
  }

  /** Stops timers and event streams and closes TUNs; namespaces and saved state stay for the next start. */
  async stop(): Promise<void> {
    this.o.storage?.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const n of this.nodes.values()) {
      n.abort.abort();
      n.local.tun.close();
    }
    this.nodes.clear();
    this.o.bind.close();
    await this.o.services?.stop();
  }

  /** Admits a node through the admin service and brings it up (paper §4.3 steps 1–3). */
  async login(
    identity: Identity,
    fields: { name: string; supernet: string; channels: string[] },
  ): Promise<NodeInfo> {
    const supernet = parseSupernetId(fields.supernet);
    const key = `${supernet}/${fields.name}`;
    if (this.nodes.has(key))
      throw new AdminRefusal(
        409,
        'node_exists',
        `node ${fields.name} of ${supernet} already runs on this host`,
      );
    const endpoint = await this.o.endpoint();
    const { token, config } = await this.o.link.login(identity, {
      name: fields.name,
      supernet,
      channels: fields.channels,
      endpoint,
    });
    const saved: SavedNode = {
      v: 1,
      name: fields.name,
      supernet,
      channels: fields.channels,
      token,
      identity: identity.serialize(),
    };
    this.save(saved);
    const node = await this.bringUp(identity, saved, config);
    this.o.logger.info('node admitted', {
      node: fields.name,
      supernet,
      vip: config.node.vip,
      ns: node.ns,
    });
    return info(node);
  }

  /** Voluntary logout: tells the admin service, then removes the node. */
  async logout(supernet: string, name: string): Promise<void> {
    const n = this.find(supernet, name);
    try {
      await this.o.link.logout(n.token);
    } finally {
      await this.remove(n, 'logout');
    }
  }

  /** The packet path, for the monitor and metrics (net/monitor.ts, net/metrics.ts): read its counters, set its tap. */
  get packetPath(): Datapath {
    return this.datapath;
  }

  /** Each hosted node's name, session token and counters (net/stats-report.ts). */
  reportables(): Array<{ name: string; token: string; counters: NodeCounters }> {
    return [...this.nodes.values()].map((n) => ({
      name: n.local.name,
      token: n.token,
      counters: n.local.counters,
    }));
  }

  list(): NodeInfo[] {
    return [...this.nodes.values()].map(info);
  }

  /** Finds a hosted node by name (and Supernet, if the name is ambiguous). */
  find(supernet: string | undefined, name: string): HostedNode {
    const hits = [...this.nodes.values()].filter(
      (n) =>
        n.local.name === name &&
        (supernet === undefined || n.supernet === parseSupernetId(supernet)),
    );
    if (hits.length === 0)
      throw new AdminRefusal(404, 'no_such_node', `no node ${name} on this host`);
    if (hits.length > 1)
      throw new AdminRefusal(409, 'ambiguous', `several nodes named ${name}: name the Supernet`);
    return hits[0]!;
  }

  /** Everything `supernet status` shows. */
  status(): Record<string, unknown> {
    const keyrings: unknown[] = [];
    for (const [sk, t] of this.datapath.supernets) {
      for (const r of t.keyrings.values()) {
        keyrings.push({
          supernetKey: Buffer.from(sk, 'latin1').toString('hex'),
          channel: r.channel,
          current: r.current,
          epochs: [...r.epochs.values()].map((e) => ({
            epoch: e.epoch,
            acceptUntil: Number.isFinite(e.acceptUntil) ? e.acceptUntil : null,
          })),
        });
      }
    }
    return {
      endpoint: this.lastEndpoint,
      session: this.session,
      mtu: this.mtu,
      packetAead: packetAeadBackend(),
      drops: { ...this.datapath.drops, not_ipv4: this.datapath.txNotIpv4 },
      underlay: this.o.bind.stats,
      nodes: [...this.nodes.values()].map((n) => ({
        ...info(n),
        serial: n.serial,
        counters: n.local.counters,
        tun: n.local.tun.stats,
        peers: [...n.local.peers.values()].map((p) => ({
          name: p.name,
          vip: formatIpv4(p.vip),
          channels: [...p.channels].sort((a, b) => a - b),
          sendChannel: p.sendChannel,
          endpoint: p.addr ? endpointText(p) : null,
        })),
      })),
      keyrings,
      services: this.o.services?.status() ?? null,
    };
  }

  private save(s: SavedNode): void {
    const path = this.statePath(s.supernet, s.name);
    writeFileSync(`${path}.tmp`, JSON.stringify(s) + '\n', { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private statePath(supernet: string, name: string): string {
    return join(this.o.stateDir, 'nodes', `${supernet.slice(2)}-${name}.json`);
  }

  /** Restores a saved node; while that fails (admin unreachable, no saved config) tries again every 5 s. */
  private async resumeOrRetry(saved: SavedNode): Promise<void> {
    try {
      await this.resume(saved);
    } catch (err) {
      this.o.logger.warn('could not restore node yet; retrying', {
        node: saved.name,
        supernet: saved.supernet,
        err: String(err),
      });
      const t = setTimeout(() => void this.resumeOrRetry(saved), 5000);
      t.unref();
      this.timers.push(t);
    }
  }

  private async resume(saved: SavedNode): Promise<void> {
    const identity = Identity.parse(saved.identity, `saved identity of ${saved.name}`);
    let config: NodeConfig;
    try {
      config = await this.o.link.config(saved.token);
    } catch (err) {
      if (err instanceof AdminRefusal && err.status === 401) {
        this.o.logger.warn('saved node is no longer admitted; removing it', {
          node: saved.name,
          code: err.code,
        });
        rmSync(this.statePath(saved.supernet, saved.name), { force: true });
        this.o.services?.removeNode(this.nsName(saved.supernet, saved.name));
        await deleteNamespace(this.nsName(saved.supernet, saved.name)).catch(() => undefined);
        return;
      }
      throw err;
    }
    await this.bringUp(identity, saved, config);
    this.o.logger.info('node restored', { node: saved.name, supernet: saved.supernet });
  }

  private nsName(supernet: string, name: string): string {
    return `${this.o.nsPrefix}${name}-${supernet.slice(2)}`;
  }

  private async bringUp(
    identity: Identity,
    saved: SavedNode,
    config: NodeConfig,
  ): Promise<HostedNode> {
    const supernet = saved.supernet;
    const ns = this.nsName(supernet, saved.name);
    const idBytes = supernetIdBytes(supernet);
    const sk = supernetKeyOf(idBytes);
    const pool = parsePrefix(config.pool);
    await ensureNamespace(ns);
    const tun = this.o.openTun();
    try {
      await attachTun(tun.name, ns, config.node.vip, config.node.prefixLen, this.mtu);
    } catch (err) {
      tun.close();
      throw err;
    }
    const local: LocalNode = {
      name: saved.name,
      supernetKey: sk,
      vip: parseIpv4(config.node.vip),
      pool,
      channels: new Set(),
      peers: new Map(),
      tun,
      counters: { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, txNoRoute: 0, txNoKey: 0 },
      stage: newStage(),
    };
    let table = this.datapath.supernets.get(sk);
    if (!table) {
      table = { idBytes, nodes: new Map(), keyrings: new Map() };
      this.datapath.supernets.set(sk, table);
    }
    table.nodes.set(local.vip, local);
    const node: HostedNode = {
      local,
      identity,
      supernet,
      requested: saved.channels,
      ns,
      token: saved.token,
      nodeId: config.node.id,
      prefixLen: config.node.prefixLen,
      serial: -1,
      config: null,
      abort: new AbortController(),
      refreshing: null,
      refreshAgain: false,
      treeKeys: this.o.adminSign
        ? new NodeTreeKeys({
            supernet,
            identity,
            adminSign: this.o.adminSign,
            file: this.statePath(supernet, saved.name).replace(/\.json$/, '.keytree'),
            logger: this.o.logger,
          })
        : undefined,
      saved,
      varpSeen: new Map(),
    };
    this.nodes.set(`${supernet}/${saved.name}`, node);
    this.apply(node, config);
    if (node.treeResync) this.refresh(node);
    this.datapath.attach(local);
    this.subscribe(node);
    return node;
  }

  /**
   * (Re)opens the node's event stream. After a renumbering the old TCP
   * connection is silently dead (its source address is gone), so the agent
   * opens a new one at once rather than waiting for the idle timeout.
   */
  private subscribe(node: HostedNode): void {
    node.events?.abort();
    const ac = new AbortController();
    node.events = ac;
    node.abort.signal.addEventListener('abort', () => ac.abort(), { once: true });
    this.o.link.events(node.token, (e) => this.onEvent(node, e), ac.signal);
  }

  private onEvent(node: HostedNode, e: LinkEvent): void {
    if (e.kind === 'expelled') {
      this.o.logger.warn('node expelled by the admin service', {
        node: node.local.name,
        reason: e.reason,
      });
      void this.remove(node, 'expelled');
    } else if (e.kind === 'resync' || e.serial > node.serial) {
      this.refresh(node);
    }
  }

  /** Fetches the node's config again (coalescing overlapping requests). */
  private refresh(node: HostedNode): void {
    if (node.refreshing) {
      node.refreshAgain = true;
      return;
    }
    node.refreshing = (async () => {
      do {
        node.refreshAgain = false;
        const resync = node.treeResync === true;
        node.treeResync = false;
        try {
          const cfg = await this.o.link.config(node.token, resync);
          if (this.nodes.get(`${node.supernet}/${node.local.name}`) === node) this.apply(node, cfg);
          // Behind on a key tree: fetch once more, with the welcomes.
          if (node.treeResync && !resync) node.refreshAgain = true;
        } catch (err) {
          if (err instanceof AdminRefusal && err.status === 401) {
            this.o.logger.warn('node no longer admitted', {
              node: node.local.name,
              code: err.code,
            });
            await this.remove(node, err.code);
            return;
          }
          this.o.logger.debug('config refresh failed; will retry', {
            node: node.local.name,
            err: String(err),
          });
        }
      } while (node.refreshAgain);
    })().finally(() => {
      node.refreshing = null;
    });
  }

  private refreshAll(): void {
    for (const n of this.nodes.values()) this.refresh(n);
  }

  /** A packet named an epoch newer than ours: fetch configs of that Supernet's nodes (at most once a second). */
  private behind(sk: string): void {
    const t = this.now();
    if ((this.behindAt.get(sk) ?? 0) + 1000 > t) return;
    this.behindAt.set(sk, t);
    for (const n of this.nodes.values()) if (n.local.supernetKey === sk) this.refresh(n);
  }

  /** Applies a verified config: channels, peers (VARP view) and channel keys. */
  private apply(node: HostedNode, cfg: NodeConfig): void {
    if (
      cfg.serial < node.serial ||
      cfg.node.name !== node.local.name ||
      cfg.supernet !== node.supernet
    )
      return;
    node.serial = cfg.serial;
    node.config = cfg;
    node.saved.config = cfg;
    this.save(node.saved);
    const local = node.local;
    local.channels = new Set(cfg.node.channels.map((c) => parseChannelId(c)));
    const peers = new Map<number, Peer>();
    for (const m of cfg.members) {
      const vip = parseIpv4(m.vip);
      const channels = new Set(m.channels.map((c) => parseChannelId(c)));
      const shared = [...channels].filter((c) => local.channels.has(c)).sort((a, b) => a - b);
      const old = local.peers.get(vip);
      const peer: Peer = {
        vip,
        name: m.name,
        channels,
        sendChannel: shared[0] ?? 0,
        addr: m.endpoint ? parseIpv4(m.endpoint.host) : (old?.addr ?? 0),
        port: m.endpoint ? m.endpoint.port : (old?.port ?? 0),
      };
      // An endpoint learnt from authenticated traffic is newer than a VARP
      // answer that has not caught up yet; keep it while the admin's is unchanged.
      if (old && m.endpoint && node.varpSeen.get(m.vip) === endpointKey(m.endpoint)) {
        peer.addr = old.addr;
        peer.port = old.port;
      }
      peers.set(vip, peer);
    }
    local.peers = peers;
    // Resolver view and configfs files follow every config (before any process runs in a new node).
    local.service = this.o.services?.node(node.ns, cfg, local.tun);
    const table = this.datapath.supernets.get(local.supernetKey)!;
    const now = this.now();
    const keys = [...cfg.keys].sort((a, b) => a.epoch - b.epoch);
    for (const k of keys) {
      const ch = parseChannelId(k.channel);
      let ring = table.keyrings.get(ch);
      if (!ring) {
        ring = new ChannelKeyring(table.idBytes, ch, this.session);
        table.keyrings.set(ch, ring);
      }
      if (ring.epochs.has(k.epoch)) {
        if (k.acceptUntil !== undefined)
          ring.install(k.epoch, Buffer.alloc(32), k.acceptUntil, now, cfg.graceMs);
        continue;
      }
      let key: Buffer;
      try {
        key = node.identity.open(
          fromB64(k.box, null, 'key box'),
          channelKeyContext(cfg.supernet, k.channel, k.epoch, cfg.node.id),
        );
      } catch {
        this.o.logger.error('a channel key in a signed config does not open', {
          node: local.name,
          channel: k.channel,
        });
        continue;
      }
      ring.install(k.epoch, key, k.acceptUntil, now, cfg.graceMs);
    }
    this.applyTrees(node, cfg, table, now);
    this.pruneKeyrings(table);
    node.varpSeen = new Map(
      cfg.members.map((m) => [m.vip, m.endpoint ? endpointKey(m.endpoint) : '']),
    );
    this.o.storage?.onConfig(storageNode(node));
  }

  /** The keyring of `volume` for hosted node `name` (control API; net/storage-agent.ts). */
  async storageKeyring(
    supernet: string,
    name: string,
    volume: string,
    where?: { backing: string; state?: string },
  ): Promise<VolumeKeyring> {
    const node = this.nodes.get(`${supernet}/${name}`);
    if (!node) throw new StorageError(404, 'not_found', `no node ${name} in ${supernet} here`);
    if (!this.o.storage)
      throw new StorageError(404, 'not_found', 'this agent runs without storage key groups');
    return this.o.storage.keyring(storageNode(node), volume, where);
  }

  /** Key-tree channels (docs/keys.md §8): apply their messages, install the derived traffic keys. */
  private applyTrees(node: HostedNode, cfg: NodeConfig, table: SupernetTable, now: number): void {
    if (!cfg.keytrees) return;
    if (!node.treeKeys) {
      this.o.logger.error('config carries key-tree material but no admin key is pinned', {
        node: node.local.name,
      });
      return;
    }
    const u = node.treeKeys.update(cfg.keytrees, (ch) => table.keyrings.get(ch)?.current ?? 0);
    for (const k of u.keys) {
      let ring = table.keyrings.get(k.channel);
      if (!ring) {
        ring = new ChannelKeyring(table.idBytes, k.channel, this.session);
        table.keyrings.set(k.channel, ring);
      }
      ring.install(k.epoch, k.key, undefined, now, cfg.graceMs);
    }
    if (u.resync) node.treeResync = true;
  }

  private pruneKeyrings(table: SupernetTable): void {
    const used = new Set<number>();
    for (const n of table.nodes.values()) for (const c of n.channels) used.add(c);
    for (const [c, r] of table.keyrings) {
      if (!used.has(c)) {
        r.destroy();
        table.keyrings.delete(c);
      }
    }
  }

  private expireKeys(): void {
    const now = this.now();
    for (const t of this.datapath.supernets.values())
      for (const r of t.keyrings.values()) r.expire(now);
  }

  /** Notices a changed underlay address and re-registers every node's VARP mapping (paper §4.3 (b)). */
  private async checkEndpoint(): Promise<void> {
    let ep: Endpoint;
    try {
      ep = await this.o.endpoint();
    } catch {
      return;
    }
    const changed = !this.lastEndpoint || endpointKey(ep) !== endpointKey(this.lastEndpoint);
    const due = this.now() - this.registeredAt >= this.registerEveryMs();
    if (!changed && !due) return;
    if (changed) {
      this.o.logger.info('underlay endpoint changed', { from: this.lastEndpoint, to: ep });
      if (this.lastEndpoint) for (const n of this.nodes.values()) this.subscribe(n);
    }
    this.lastEndpoint = ep;
    this.registeredAt = this.now();
    for (const n of this.nodes.values()) {
      this.o.link.register(n.token, ep).catch((err: unknown) => {
        if (changed) this.registeredAt = 0; // retry on the next poll
        this.o.logger.debug('VARP register failed', { node: n.local.name, err: String(err) });
      });
    }
  }

  private registeredAt = 0;

  private registerEveryMs(): number {
    let ttl = Infinity;
    for (const n of this.nodes.values()) if (n.config) ttl = Math.min(ttl, n.config.varpTtlMs);
    return Number.isFinite(ttl) ? ttl / 3 : 10_000;
  }

  private async remove(node: HostedNode, why: string): Promise<void> {
    const key = `${node.supernet}/${node.local.name}`;
    if (this.nodes.get(key) !== node) return;
    this.nodes.delete(key);
    node.abort.abort();
    const table = this.datapath.supernets.get(node.local.supernetKey);
    if (table) {
      table.nodes.delete(node.local.vip);
      this.pruneKeyrings(table);
      if (table.nodes.size === 0) this.datapath.supernets.delete(node.local.supernetKey);
    }
    node.local.tun.close();
    node.treeKeys?.wipe();
    rmSync(this.statePath(node.supernet, node.local.name), { force: true });
    this.o.services?.removeNode(node.ns);
    await deleteNamespace(node.ns).catch((err: unknown) =>
      this.o.logger.warn('could not delete node namespace', { ns: node.ns, err: String(err) }),
    );
    this.o.logger.info('node removed', { node: node.local.name, supernet: node.supernet, why });
  }
}

function info(n: HostedNode): NodeInfo {
  return {
    name: n.local.name,
    supernet: n.supernet,
    vip: formatIpv4(n.local.vip),
    ns: n.ns,
    channels: n.config?.node.channels ?? n.requested,
  };
}

function endpointKey(e: Endpoint): string {
  return `${e.host}:${e.port}`;
}

function endpointText(p: Peer): string {
  return `${formatIpv4(p.addr)}:${p.port}`;
}

/** The storage side's view of a hosted node (net/storage-agent.ts). */
function storageNode(n: HostedNode): {
  supernet: string;
  name: string;
  token: string;
  identity: Identity;
  nodeId: string;
} {
  return {
    supernet: n.supernet,
    name: n.local.name,
    token: n.token,
    identity: n.identity,
    nodeId: n.nodeId,
  };
}
