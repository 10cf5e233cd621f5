/**
 * The SNSL packet path of one host agent (paper §4.4–4.6, design brief §2):
 * inner IPv4 packets read from a node's TUN are sealed under the traffic key
 * of a channel both ends share and sent as UDP to the peer's VARP endpoint;
 * datagrams from the underlay are checked, authenticated, replay-filtered and
 * written to the destination node's TUN. Nothing is ever answered on the
 * underlay: every drop is silent and counted by reason.
 *
 * Channel choice (docs/protocol.md §3): a unicast packet goes on the shared
 * channel with the lowest id. Broadcast and multicast are replicated to every
 * member sharing a channel with the sender, each copy on that member's lowest
 * shared channel, so nobody receives a group packet twice.
 */
import type { PacketBatch, TunDevice } from './tun.js';
import type { DatagramBatch, DatagramBind } from './bind.js';
import { ChannelKeyring } from './keyring.js';
import { ReplayWindow } from './replay.js';
import { isGroupAddress, isIpv4, ipv4Dst, ipv4Src, type Ipv4Prefix } from './ipv4.js';
import { SUPERNET_ID_LEN } from '../admin/ids.js';
import {
  DROP_REASONS,
  HEADER_LEN,
  OFF_SUPERNET,
  SNSL_OVERHEAD,
  checkHeader,
  readChannel,
  readEpoch,
  readSender,
  readSeq,
  readSession,
  supernetKey,
  type DropReason,
} from './wire.js';

/** Whether the packet at `off` names the Supernet `id` (10 bytes; a JS loop beats a native compare here). */
function sameSupernet(id: Uint8Array, buf: Buffer, off: number): boolean {
  const o = off + OFF_SUPERNET;
  for (let k = 0; k < SUPERNET_ID_LEN; k++) if (id[k] !== buf[o + k]) return false;
  return true;
}

/** A remote node as the packet path sees it. */
export interface Peer {
  vip: number;
  name: string;
  channels: Set<number>;
  /** Lowest channel id shared with the local node (0 if none). */
  sendChannel: number;
  addr: number; // underlay IPv4 as u32; 0 = unknown
  port: number;
}

/** A node hosted here. */
export interface LocalNode {
  name: string;
  supernetKey: string;
  vip: number;
  pool: Ipv4Prefix;
  channels: Set<number>;
  peers: Map<number, Peer>;
  tun: TunDevice;
  counters: NodeCounters;
  /** Packets decrypted for this node in the current underlay batch, written with one writeMany(). */
  stage: Stage;
  /** A service the agent runs for this node (the resolver at the pool's `.1`, net/node-services.ts). */
  service?: LocalService;
}

/** Something the host agent answers itself at one virtual address of a node (docs/dns.md §Packet path). */
export interface LocalService {
  /** The service's virtual address (u32); only packets to it are offered. */
  readonly vip: number;
  /** Consumes the packet (returns true: it must not be sent on) or declines it (false). */
  handle(buf: Buffer, off: number, len: number): boolean;
}

/**
 * Packets for one node waiting for one TUN writeMany() (offload mode merges
 * TCP runs there). Packets are opened in place in the underlay batch's
 * arena, so the stage only records where they are: `buf` is that arena, and
 * the stage is written out before the batch handler returns (the arena is
 * reused by the next receive).
 */
export interface Stage {
  buf: Buffer;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count: number;
}

const STAGE_PACKETS = 256;
const NO_BUFFER = Buffer.alloc(0);

export function newStage(): Stage {
  return {
    buf: NO_BUFFER,
    offsets: new Uint32Array(STAGE_PACKETS),
    lengths: new Uint32Array(STAGE_PACKETS),
    count: 0,
  };
}

export interface NodeCounters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  txNoRoute: number;
  txNoKey: number;
}

/** One Supernet on this host: its local nodes and the keyrings of their channels. */
export interface SupernetTable {
  idBytes: Uint8Array;
  nodes: Map<number, LocalNode>;
  keyrings: Map<number, ChannelKeyring>;
}

export type Counters = Record<DropReason, number>;

/** Direction of a tapped packet: received (opened after arrival) or sent (before sealing). */
export const TAP_RX = 1;
export const TAP_TX = 2;

/**
 * Receives a copy-free view of every inner packet the packet path opens or
 * seals (net/monitor.ts). It must not keep `buf`: the bytes are reused as
 * soon as it returns. Null when nobody listens, so the cost is one compare.
 */
export type PacketTap = (
  dir: typeof TAP_RX | typeof TAP_TX,
  node: LocalNode,
  channel: number,
  epoch: number,
  buf: Buffer,
  off: number,
  len: number,
) => void;

/** Called when a packet names an epoch newer than any we hold: our config is behind. */
export type BehindHandler = (supernetKey: string, channel: number, epoch: number) => void;
/** Called when an authenticated packet arrives from an endpoint other than the recorded one (roaming). */
export type RoamHandler = (node: LocalNode, peer: Peer) => void;

/** The Supernet table map; tells its owner of every change (so a cached lookup is never stale). */
class SupernetMap extends Map<string, SupernetTable> {
  onChange: (() => void) | undefined;
  override set(key: string, table: SupernetTable): this {
    super.set(key, table);
    this.onChange?.();
    return this;
  }
  override delete(key: string): boolean {
    const had = super.delete(key);
    this.onChange?.();
    return had;
  }
  override clear(): void {
    super.clear();
    this.onChange?.();
  }
}

export class Datapath {
  readonly supernets: Map<string, SupernetTable> = new SupernetMap();
  readonly drops: Counters = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Counters;
  /** Packets read from TUNs that were not IPv4 (e.g. stray IPv6) — dropped. */
  txNotIpv4 = 0;
  /** The monitor's tap (net/monitor.ts), or null. */
  tap: PacketTap | null = null;
  /** The Supernet of the previous underlay packet (most batches are all one); reset on any change of `supernets`. */
  private lastTable: SupernetTable | null = null;

  constructor(
    private readonly bind: DatagramBind,
    private readonly now: () => number,
    private readonly onBehind: BehindHandler,
    private readonly onRoam: RoamHandler,
  ) {
    (this.supernets as SupernetMap).onChange = () => {
      this.lastTable = null;
    };
    bind.onDatagrams((b) => this.fromUnderlay(b));
  }

  /** Starts reading a node's TUN. */
  attach(node: LocalNode): void {
    node.tun.onPackets((b) => this.fromTun(node, b));
  }

  private fromTun(node: LocalNode, b: PacketBatch): void {
    const table = this.supernets.get(node.supernetKey);
    if (!table) return;
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i]!;
      const len = b.lengths[i]!;
      if (!isIpv4(b.buf, off, len)) {
        this.txNotIpv4++;
        continue;
      }
      const dst = ipv4Dst(b.buf, off);
      if (node.service !== undefined && dst === node.service.vip) {
        if (node.service.handle(b.buf, off, len)) continue;
      }
      if (isGroupAddress(dst, node.pool)) {
        for (const peer of node.peers.values()) this.sendTo(node, table, peer, b.buf, off, len);
        continue;
      }
      const peer = node.peers.get(dst);
      if (!peer) {
        node.counters.txNoRoute++;
        continue;
      }
      this.sendTo(node, table, peer, b.buf, off, len);
    }
    this.bind.flush();
  }

  private sendTo(
    node: LocalNode,
    table: SupernetTable,
    peer: Peer,
    buf: Buffer,
    off: number,
    len: number,
  ): void {
    if (peer.sendChannel === 0 || peer.addr === 0) {
      node.counters.txNoRoute++;
      return;
    }
    const ring = table.keyrings.get(peer.sendChannel);
    const sealer = ring?.sealerFor(node.vip);
    if (!ring || !sealer || sealer.exhausted) {
      node.counters.txNoKey++;
      return;
    }
    if (this.tap !== null) this.tap(TAP_TX, node, peer.sendChannel, ring.current, buf, off, len);
    // Seal straight into the bind's send queue: the encryption is the only copy.
    const bind = this.bind;
    const at = bind.reserve(len + SNSL_OVERHEAD);
    if (at < 0) return; // queue full while the socket is blocked: counted by the bind (txDropped)
    const n = sealer.seal(buf, off, len, bind.sendArena, at);
    bind.commit(n, peer.addr, peer.port);
    node.counters.txPackets++;
    node.counters.txBytes += len;
    ring.traffic.txPackets++;
    ring.traffic.txBytes += len;
  }

  private drop(reason: DropReason): void {
    this.drops[reason]++;
  }

  private fromUnderlay(b: DatagramBatch): void {
    const now = this.now();
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i]!;
      const len = b.lengths[i]!;
      const buf = b.buf;
      const bad = checkHeader(buf, off, len);
      if (bad) {
        this.drop(bad);
        continue;
      }
      let table = this.lastTable;
      if (table === null || !sameSupernet(table.idBytes, buf, off)) {
        table = this.supernets.get(supernetKey(buf, off)) ?? null;
        if (table === null) {
          this.drop('unknown_supernet');
          continue;
        }
        this.lastTable = table;
      }
      const channel = readChannel(buf, off);
      const ring = table.keyrings.get(channel);
      if (!ring) {
        this.drop('unknown_channel');
        continue;
      }
      const epoch = readEpoch(buf, off);
      const sender = readSender(buf, off);
      const st = ring.receiverFor(epoch, sender, now);
      if (!st) {
        if (epoch > ring.current) this.onBehind(supernetKey(buf, off), channel, epoch);
        this.drop('stale_epoch');
        continue;
      }
      // Opened in place: the plaintext replaces the ciphertext in the batch's
      // arena and is staged for its TUN from there (no copy). The tag is
      // checked before anything reads it; on failure the region is wiped.
      const at = off + HEADER_LEN;
      const plainLen = st.cipher.open(buf, off, len, buf, at);
      if (plainLen < 0) {
        this.drop('bad_tag');
        continue;
      }
      // Replay filtering only after the tag verified (RFC 4303 §3.4.3).
      const session = readSession(buf, off);
      if (session < st.session) {
        this.drop('stale_session');
        continue;
      }
      if (session > st.session) {
        st.session = session;
        st.window = new ReplayWindow();
      }
      if (!st.window.accept(readSeq(buf, off))) {
        this.drop('replay');
        continue;
      }
      if (!isIpv4(buf, at, plainLen)) {
        this.drop('malformed');
        continue;
      }
      if (ipv4Src(buf, at) !== sender) {
        this.drop('spoofed_source');
        continue;
      }
      const dst = ipv4Dst(buf, at);
      const addr = b.addrs[i]!;
      const port = b.ports[i]!;
      const dstNode = table.nodes.get(dst);
      let any = false;
      if (dstNode) {
        any = this.deliver(dstNode, channel, epoch, sender, buf, at, plainLen, addr, port);
      } else {
        for (const n of table.nodes.values()) {
          if (isGroupAddress(dst, n.pool) && n.vip !== sender) {
            any = this.deliver(n, channel, epoch, sender, buf, at, plainLen, addr, port) || any;
          }
        }
        if (!any) this.drop('no_route');
      }
      if (any) {
        ring.traffic.rxPackets++;
        ring.traffic.rxBytes += plainLen;
      }
    }
    for (const n of this.staged) this.flushStage(n);
    this.staged.length = 0;
  }

  private readonly staged: LocalNode[] = [];

  private flushStage(node: LocalNode): void {
    const st = node.stage;
    if (st.count === 0) return;
    const ok = node.tun.writeMany(st.buf, st.offsets, st.lengths, st.count);
    if (ok < st.count) {
      this.drops.tun_write += st.count - ok;
      node.counters.rxPackets -= st.count - ok;
    }
    st.count = 0;
    st.buf = NO_BUFFER;
  }

  private deliver(
    node: LocalNode,
    channel: number,
    epoch: number,
    sender: number,
    buf: Buffer,
    at: number,
    len: number,
    addr: number,
    port: number,
  ): boolean {
    const peer = node.peers.get(sender);
    if (!node.channels.has(channel) || !peer || !peer.channels.has(channel)) {
      this.drop('not_member');
      return false;
    }
    if (peer.addr !== addr || peer.port !== port) {
      // Authenticated traffic from a new endpoint: the peer's host was
      // renumbered (or NAT moved it). Follow it at once; VARP confirms later.
      peer.addr = addr;
      peer.port = port;
      this.onRoam(node, peer);
    }
    const st = node.stage;
    if (st.count === STAGE_PACKETS || (st.count > 0 && st.buf !== buf)) this.flushStage(node);
    if (st.count === 0) {
      if (!this.staged.includes(node)) this.staged.push(node);
      st.buf = buf;
    }
    if (this.tap !== null) this.tap(TAP_RX, node, channel, epoch, buf, at, len);
    st.offsets[st.count] = at;
    st.lengths[st.count] = len;
    st.count++;
    node.counters.rxPackets++;
    node.counters.rxBytes += len;
    return true;
  }
}
