/**
 * The host agent's side of the node-local resolver (docs/dns.md §Packet
 * path): what to do with one IPv4 packet a node wrote to its TUN. If it is
 * UDP to the resolver address, port 53, it is answered here and never
 * forwarded onto a channel; the reply is written back to the same TUN.
 *
 * One call per packet; the reply is built in a buffer owned by the port; a
 * forwarded query's reply arrives later and is sent through the same
 * `send`.
 */
import type { NameView, SupernetResolver } from './dns.js';
import {
  buildUdpReply,
  parseUdp,
  udpChecksumOk,
  UDP_OVERHEAD,
  type UdpInfo,
} from './udp-packet.js';

export const DNS_PORT = 53;

/** Counters of {@link ResolverPort}. */
export interface ResolverPortStats {
  /** Packets taken as resolver traffic. */
  handled: number;
  /** Of them, dropped: bad UDP checksum, or not from the node's own address. */
  dropped: number;
  /** Replies too large for the reply buffer (never expected: replies are ≤ 1232 bytes). */
  oversize: number;
}

/** Writes a packet to the node's TUN (TunDevice.write). */
export type PacketSink = (buf: Uint8Array, off: number, len: number) => unknown;

/**
 * One node's resolver endpoint. `resolverIp` and `nodeIp` are the view's
 * resolver and self addresses as unsigned 32-bit numbers (the agent has
 * them parsed already). `checkUdpChecksum` must be false when the TUN
 * hands over packets with partial checksums (virtio-net header offload).
 */
export class ResolverPort {
  readonly stats: ResolverPortStats = { handled: 0, dropped: 0, oversize: 0 };
  private readonly out: Uint8Array;

  constructor(
    private readonly resolver: SupernetResolver,
    private readonly resolverIp: number,
    private readonly nodeIp: number,
    private readonly send: PacketSink,
    private readonly checkUdpChecksum = true,
    mtu = 1500,
  ) {
    this.out = new Uint8Array(mtu);
  }

  /**
   * Handles `pkt[off..off+len)` if it is a query to the resolver, answering
   * from `view`; returns true if it was (the caller must then not forward
   * it anywhere), false if it is other traffic.
   */
  handle(pkt: Uint8Array, off: number, len: number, view: NameView): boolean {
    const info = parseUdp(pkt, off, len);
    if (info === null || info.dst !== this.resolverIp || info.dport !== DNS_PORT) return false;
    this.stats.handled++;
    // A node can only send from its own address; anything else is spoofed
    // (or a misconfigured node) and gets no answer.
    if (info.src !== this.nodeIp || (this.checkUdpChecksum && !udpChecksumOk(pkt, info))) {
      this.stats.dropped++;
      return true;
    }
    const reply = this.resolver.answer(
      pkt.subarray(info.payloadOff, info.payloadOff + info.payloadLen),
      view,
      (later) => this.reply(info, later),
    );
    if (reply !== null) this.reply(info, reply);
    return true;
  }

  private reply(to: UdpInfo, payload: Uint8Array): void {
    if (UDP_OVERHEAD + payload.length > this.out.length) {
      this.stats.oversize++;
      return;
    }
    const n = buildUdpReply(this.out, 0, to, payload);
    this.send(this.out, 0, n);
  }
}
