/**
 * The host agent's side of `supernet monitor` (paper §4.7: "a modified
 * tcpdump and other monitors to observe and verify behavior"; docs/console.md
 * §Monitor): live counters per Supernet, channel and node, drops by reason,
 * and a feed of decrypted inner packets.
 *
 * What "the channels whose keys the operator holds" means here: the agent
 * holds the traffic keys of exactly the channels its own nodes are members
 * of (its keyring), and only root on this host can open its control socket.
 * So the operator of a host sees, in clear, the traffic of that host's nodes
 * on those channels — no more: packets of channels this host holds no key
 * for never decrypt here, and are visible only as counted drops. A feed is
 * restricted with `supernet`, `channel` and `node`; asking for a channel the
 * keyring lacks is refused, naming the channels that are held.
 *
 * The copy is taken in the packet path (net/datapath.ts, `tap`) after a
 * received packet was authenticated, decrypted and accepted, and before a
 * sent packet is sealed. While no feed is open the tap is null: the packet
 * path pays one compare per packet. A slow reader never slows the packet
 * path: frames that do not fit its socket are dropped and counted, and it
 * is told how many (a `lost` frame).
 *
 * Feed frame (all integers big-endian; `GET /monitor/packets` streams them):
 *
 *   0        4     5     6     7        8               16
 *   +--------+-----+-----+-----+--------+---------------+
 *   | length | ver | type| dir | namelen| time s | µs   |
 *   +--------+-----+-----+-----+--------+---------------+
 *   16                    26        30        34        38
 *   +---------------------+---------+---------+---------+------------+--------+
 *   | Supernet id (80 b)  | channel | epoch   | orig len| node name  | packet |
 *   +---------------------+---------+---------+---------+------------+--------+
 *
 * `length` counts the whole frame. type 1 = packet (dir 1 = received, 2 =
 * sent); type 2 = lost: `orig len` holds how many packets were dropped
 * for this reader since the previous frame, no name, no packet.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  formatChannelId,
  parseChannelId,
  parseSupernetId,
  supernetIdBytes,
  supernetIdFromBytes,
  SUPERNET_ID_LEN,
  IdError,
} from '../admin/ids.js';
import type { Datapath, LocalNode, PacketTap } from './datapath.js';
import { TAP_RX, TAP_TX } from './datapath.js';
import { formatIpv4 } from './ipv4.js';
import { DROP_REASONS } from './wire.js';
import { supernetKeyOf } from './wire.js';

export const FEED_VERSION = 1;
export const FRAME_PACKET = 1;
export const FRAME_LOST = 2;
export const OFF_F_LEN = 0;
export const OFF_F_VERSION = OFF_F_LEN + 4;
export const OFF_F_TYPE = OFF_F_VERSION + 1;
export const OFF_F_DIR = OFF_F_TYPE + 1;
export const OFF_F_NAMELEN = OFF_F_DIR + 1;
export const OFF_F_SEC = OFF_F_NAMELEN + 1;
export const OFF_F_USEC = OFF_F_SEC + 4;
export const OFF_F_SUPERNET = OFF_F_USEC + 4;
export const OFF_F_CHANNEL = OFF_F_SUPERNET + SUPERNET_ID_LEN;
export const OFF_F_EPOCH = OFF_F_CHANNEL + 4;
export const OFF_F_ORIGLEN = OFF_F_EPOCH + 4;
export const FRAME_HEADER_LEN = OFF_F_ORIGLEN + 4;
/** Longest frame a reader accepts (header + name + a 64 KiB packet). */
export const MAX_FRAME_LEN = FRAME_HEADER_LEN + 255 + 65535;
export const DEFAULT_FEED_SNAPLEN = 65535;

/** The subset of the host agent the monitor needs. */
export interface MonitoredAgent {
  readonly packetPath: Datapath;
  status(): Record<string, unknown>;
}

/** One decoded frame. */
export interface FeedFrame {
  type: typeof FRAME_PACKET | typeof FRAME_LOST;
  dir: number;
  timeUs: number;
  supernet: string;
  channel: number;
  epoch: number;
  origLen: number;
  node: string;
  packet: Buffer;
}

/** Splits a byte stream into frames; throws on a frame that cannot be one. */
export class FeedParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): FeedFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: FeedFrame[] = [];
    let off = 0;
    while (this.buf.length - off >= 4) {
      const len = this.buf.readUInt32BE(off + OFF_F_LEN);
      if (len < FRAME_HEADER_LEN || len > MAX_FRAME_LEN)
        throw new Error(`monitor feed: bad frame length ${len}`);
      if (this.buf.length - off < len) break;
      const f = this.buf.subarray(off, off + len);
      if (f[OFF_F_VERSION] !== FEED_VERSION)
        throw new Error(`monitor feed: version ${f[OFF_F_VERSION]}`);
      const type = f[OFF_F_TYPE];
      if (type !== FRAME_PACKET && type !== FRAME_LOST)
        throw new Error(`monitor feed: frame type ${type}`);
      const nameLen = f[OFF_F_NAMELEN];
      if (FRAME_HEADER_LEN + nameLen > len) throw new Error('monitor feed: name beyond the frame');
      out.push({
        type,
        dir: f[OFF_F_DIR],
        timeUs: f.readUInt32BE(OFF_F_SEC) * 1e6 + f.readUInt32BE(OFF_F_USEC),
        supernet: supernetIdFromBytes(f.subarray(OFF_F_SUPERNET, OFF_F_SUPERNET + SUPERNET_ID_LEN)),
        channel: f.readUInt32BE(OFF_F_CHANNEL),
        epoch: f.readUInt32BE(OFF_F_EPOCH),
        origLen: f.readUInt32BE(OFF_F_ORIGLEN),
        node: f.toString('utf8', FRAME_HEADER_LEN, FRAME_HEADER_LEN + nameLen),
        packet: Buffer.from(f.subarray(FRAME_HEADER_LEN + nameLen)),
      });
      off += len;
    }
    this.buf = this.buf.subarray(off);
    return out;
  }
}

/** What a feed shows. */
export interface FeedFilter {
  /** Key of the Supernet table (net/wire.ts supernetKeyOf), or null for all. */
  supernetKey: string | null;
  channel: number | null;
  node: string | null;
  snaplen: number;
}

interface Reader {
  filter: FeedFilter;
  /** Queues a frame; false = the socket is full (the frame is queued, later ones are not). */
  write(frame: Buffer): boolean;
  /** Waiting for the socket to drain: frames are counted, not copied. */
  paused: boolean;
  lost: number;
}

const nowUs = (): number => Math.floor((performance.timeOrigin + performance.now()) * 1000);

/** Fans tapped packets out to the open feeds; installs the tap only while one is open. */
export class PacketMonitor {
  private readonly readers = new Set<Reader>();
  private readonly tapFn: PacketTap = (dir, node, channel, epoch, buf, off, len) =>
    this.onPacket(dir, node, channel, epoch, buf, off, len);

  constructor(private readonly datapath: Datapath) {}

  get listeners(): number {
    return this.readers.size;
  }

  /** Opens a feed; returns its close function. */
  open(
    filter: FeedFilter,
    write: (frame: Buffer) => boolean,
  ): { close(): void; lost(): number; resume(): void } {
    const r: Reader = { filter, write, paused: false, lost: 0 };
    this.readers.add(r);
    this.datapath.tap = this.tapFn;
    return {
      close: () => {
        this.readers.delete(r);
        if (this.readers.size === 0) this.datapath.tap = null;
      },
      lost: () => r.lost,
      // After a drain: tell the reader how much it missed.
      resume: () => {
        r.paused = false;
        if (r.lost > 0) {
          const n = r.lost;
          r.lost = 0;
          if (!r.write(lostFrame(n))) r.paused = true;
        }
      },
    };
  }

  private onPacket(
    dir: typeof TAP_RX | typeof TAP_TX,
    node: LocalNode,
    channel: number,
    epoch: number,
    buf: Buffer,
    off: number,
    len: number,
  ): void {
    const table = this.datapath.supernets.get(node.supernetKey);
    if (!table) return;
    for (const r of this.readers) {
      const f = r.filter;
      if (f.supernetKey !== null && f.supernetKey !== node.supernetKey) continue;
      if (f.channel !== null && f.channel !== channel) continue;
      if (f.node !== null && f.node !== node.name) continue;
      if (r.paused) {
        // Behind: count until the socket drains (the packet path never waits).
        r.lost++;
        continue;
      }
      const frame = packetFrame(
        dir,
        node.name,
        table.idBytes,
        channel,
        epoch,
        buf,
        off,
        len,
        f.snaplen,
      );
      if (!r.write(frame)) r.paused = true;
    }
  }
}

function header(type: number, dir: number, nameLen: number, total: number): Buffer {
  const t = nowUs();
  const b = Buffer.allocUnsafe(total);
  b.writeUInt32BE(total, OFF_F_LEN);
  b[OFF_F_VERSION] = FEED_VERSION;
  b[OFF_F_TYPE] = type;
  b[OFF_F_DIR] = dir;
  b[OFF_F_NAMELEN] = nameLen;
  b.writeUInt32BE(Math.floor(t / 1e6), OFF_F_SEC);
  b.writeUInt32BE(t % 1e6, OFF_F_USEC);
  return b;
}

function packetFrame(
  dir: number,
  name: string,
  supernet: Uint8Array,
  channel: number,
  epoch: number,
  buf: Buffer,
  off: number,
  len: number,
  snaplen: number,
): Buffer {
  const incl = Math.min(len, snaplen);
  const nameBytes = Buffer.from(name, 'utf8').subarray(0, 255);
  const b = header(FRAME_PACKET, dir, nameBytes.length, FRAME_HEADER_LEN + nameBytes.length + incl);
  b.set(supernet, OFF_F_SUPERNET);
  b.writeUInt32BE(channel >>> 0, OFF_F_CHANNEL);
  b.writeUInt32BE(epoch >>> 0, OFF_F_EPOCH);
  b.writeUInt32BE(len, OFF_F_ORIGLEN);
  nameBytes.copy(b, FRAME_HEADER_LEN);
  buf.copy(b, FRAME_HEADER_LEN + nameBytes.length, off, off + incl);
  return b;
}

function lostFrame(count: number): Buffer {
  const b = header(FRAME_LOST, 0, 0, FRAME_HEADER_LEN);
  b.fill(0, OFF_F_SUPERNET, OFF_F_ORIGLEN);
  b.writeUInt32BE(Math.min(count, 0xffff_ffff), OFF_F_ORIGLEN);
  return b;
}

// ---- counters ----------------------------------------------------------------------------------

export interface ChannelView {
  id: string;
  /** Current epoch and how many epochs are held (current + in grace). */
  epoch: number;
  epochs: number;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

export interface NodeView {
  name: string;
  vip: string;
  channels: string[];
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  txNoRoute: number;
  txNoKey: number;
}

export interface MonitorSnapshot {
  /** ms since the Unix epoch. */
  time: number;
  supernets: Array<{ id: string; channels: ChannelView[]; nodes: NodeView[] }>;
  /** Underlay datagrams dropped, by reason, plus `not_ipv4` (from TUNs). */
  drops: Record<string, number>;
  underlay: Record<string, number>;
  /** Open packet feeds. */
  feeds: number;
}

/** The agent's counters now (cheap: reads the packet path's numbers). */
export function snapshot(agent: MonitoredAgent, feeds = 0): MonitorSnapshot {
  const dp = agent.packetPath;
  const supernets: MonitorSnapshot['supernets'] = [];
  for (const t of dp.supernets.values()) {
    const channels: ChannelView[] = [...t.keyrings.values()]
      .sort((a, b) => a.channel - b.channel)
      .map((r) => ({
        id: formatChannelId(r.channel),
        epoch: r.current,
        epochs: r.epochs.size,
        ...r.traffic,
      }));
    const nodes: NodeView[] = [...t.nodes.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((n) => ({
        name: n.name,
        vip: formatIpv4(n.vip),
        channels: [...n.channels].sort((a, b) => a - b).map(formatChannelId),
        ...n.counters,
      }));
    supernets.push({ id: supernetIdFromBytes(t.idBytes), channels, nodes });
  }
  supernets.sort((a, b) => (a.id < b.id ? -1 : 1));
  const drops: Record<string, number> = {};
  for (const r of DROP_REASONS) drops[r] = dp.drops[r];
  drops.not_ipv4 = dp.txNotIpv4;
  const st = agent.status() as { underlay?: Record<string, number> };
  return { time: Date.now(), supernets, drops, underlay: { ...(st.underlay ?? {}) }, feeds };
}

// ---- control API ----------------------------------------------------------------------------------

/** An error the control API answers with (mapped by net/control.ts). */
export class MonitorError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MonitorError';
  }
}

/** Parses the feed query (`supernet`, `channel`, `node`, `snaplen`) against what this host holds. */
export function feedFilter(agent: MonitoredAgent, q: URLSearchParams): FeedFilter {
  for (const k of q.keys())
    if (!['supernet', 'channel', 'node', 'snaplen'].includes(k))
      throw new MonitorError(400, 'bad_request', `${k}: unknown parameter`);
  const dp = agent.packetPath;
  let supernetKey: string | null = null;
  let sid: string | null = null;
  try {
    if (q.get('supernet')) {
      sid = parseSupernetId(q.get('supernet')!, 'supernet');
      supernetKey = supernetKeyOf(supernetIdBytes(sid));
    }
  } catch (err) {
    if (err instanceof IdError) throw new MonitorError(400, 'bad_request', err.message);
    throw err;
  }
  let channel: number | null = null;
  if (q.get('channel')) {
    try {
      channel = parseChannelId(q.get('channel')!, 'channel');
    } catch (err) {
      if (err instanceof IdError) throw new MonitorError(400, 'bad_request', err.message);
      throw err;
    }
  }
  if (sid !== null && !dp.supernets.has(supernetKey!))
    throw new MonitorError(
      404,
      'no_key',
      `supernet: this host carries no node of ${sid}, so it holds none of its keys`,
    );
  if (channel !== null) {
    const tables =
      supernetKey !== null ? [dp.supernets.get(supernetKey)!] : [...dp.supernets.values()];
    if (!tables.some((t) => t.keyrings.has(channel!))) {
      const held = tables.flatMap((t) =>
        [...t.keyrings.keys()].map(
          (c) => `${supernetIdFromBytes(t.idBytes)}/${formatChannelId(c)}`,
        ),
      );
      throw new MonitorError(
        404,
        'no_key',
        `channel: this host holds no key of channel ${formatChannelId(channel)}${sid ? ` in ${sid}` : ''} (none of its nodes is a member); it holds ${held.join(', ') || 'no channel keys'}`,
      );
    }
  }
  const node = q.get('node');
  if (node !== null) {
    const known = [...dp.supernets.values()].some((t) =>
      [...t.nodes.values()].some(
        (n) => n.name === node && (supernetKey === null || n.supernetKey === supernetKey),
      ),
    );
    if (!known) throw new MonitorError(404, 'no_such_node', `node: no node ${node} on this host`);
  }
  const snap = q.get('snaplen');
  let snaplen = DEFAULT_FEED_SNAPLEN;
  if (snap !== null) {
    if (!/^\d{1,5}$/.test(snap) || Number(snap) < 20 || Number(snap) > 65535)
      throw new MonitorError(400, 'bad_request', 'snaplen: expected 20 to 65535');
    snaplen = Number(snap);
  }
  return { supernetKey, channel, node, snaplen };
}

/**
 * Serves `GET /monitor/counters` and `GET /monitor/packets`; returns false
 * for other paths. The packet feed streams until the client goes away.
 */
export function serveMonitor(
  agent: MonitoredAgent,
  monitor: PacketMonitor,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): boolean {
  if (req.method !== 'GET') return false;
  if (url.pathname === '/monitor/counters') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(snapshot(agent, monitor.listeners)));
    return true;
  }
  if (url.pathname !== '/monitor/packets') return false;
  const filter = feedFilter(agent, url.searchParams);
  res.writeHead(200, {
    'content-type': 'application/vnd.supernet.monitor-feed',
    'cache-control': 'no-store',
  });
  res.flushHeaders();
  const feed = monitor.open(filter, (frame) => res.write(frame));
  res.on('drain', () => feed.resume());
  const end = (): void => feed.close();
  res.on('close', end);
  req.on('close', end);
  return true;
}
