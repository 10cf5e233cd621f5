/**
 * Channel traffic keys on a host agent, by epoch (design brief §5), and the
 * per-sender subkeys the packet path actually uses.
 *
 * All members of a channel share the epoch's traffic key, and each starts its
 * sequence numbers at 1, so the key itself must never seal: every sender
 * derives its own subkey (HKDF-SHA256 over the traffic key, bound to the
 * Supernet, channel, epoch and the sender's virtual address), and the nonce
 * is its session ‖ sequence number (net/wire.ts). The session is a number
 * that grows with every start of the agent (net/session.ts), so a restart
 * never reuses a nonce either.
 */
import { hkdfSync } from 'node:crypto';
import { createPacketCipher, type PacketCipher } from './packet-aead.js';
import { ReplayWindow } from './replay.js';
import { HEADER_LEN, OFF_SEQ, SEQ_LIMIT, SNSL_OVERHEAD, writeHeader } from './wire.js';

export const TRAFFIC_KEY_LEN = 32;
const SUBKEY_INFO = 'supernet snsl v1 sender';

/** Derives a sender's subkey of an epoch's traffic key. */
export function senderSubkey(
  traffic: Uint8Array,
  supernet: Uint8Array,
  channel: number,
  epoch: number,
  sender: number,
): Buffer {
  const info = Buffer.alloc(SUBKEY_INFO.length + supernet.length + 12);
  info.write(SUBKEY_INFO, 0, 'latin1');
  let o = SUBKEY_INFO.length;
  info.set(supernet, o);
  o += supernet.length;
  info.writeUInt32BE(channel >>> 0, o);
  info.writeUInt32BE(epoch >>> 0, o + 4);
  info.writeUInt32BE(sender >>> 0, o + 8);
  return Buffer.from(hkdfSync('sha256', traffic, Buffer.alloc(0), info, TRAFFIC_KEY_LEN));
}

/**
 * Seals with one sender subkey. It owns its sequence counter and refuses to
 * go past {@link SEQ_LIMIT}: the caller must then switch to a new epoch.
 * The AEAD runs in a {@link PacketCipher} keyed once (net/packet-aead.ts).
 */
export class Sealer {
  private seq = 0;
  /** Header bytes 0..OFF_SEQ, fixed for the sealer's life; only the sequence number changes. */
  private readonly prefix = Buffer.alloc(OFF_SEQ);
  private readonly cipher: PacketCipher;

  /** Takes ownership of `subkey`: it is wiped once the cipher holds the key. */
  constructor(
    subkey: Buffer,
    supernet: Uint8Array,
    channel: number,
    epoch: number,
    sender: number,
    session: number,
  ) {
    this.cipher = createPacketCipher(subkey);
    subkey.fill(0);
    const head = Buffer.alloc(HEADER_LEN);
    writeHeader(head, 0, supernet, { channel, epoch, sender, session, seq: 0 });
    head.copy(this.prefix, 0, 0, OFF_SEQ);
  }

  get exhausted(): boolean {
    return this.seq >= SEQ_LIMIT;
  }

  /**
   * Writes header ‖ ciphertext ‖ tag of `inner[off..off+len)` into `out` at
   * `outOff` and returns the packet length. `out` needs len + SNSL_OVERHEAD
   * bytes there; `inner` must not overlap that region except as exactly its
   * ciphertext part (`outOff + HEADER_LEN`, sealing in place).
   */
  seal(inner: Buffer, off: number, len: number, out: Buffer, outOff: number): number {
    if (this.seq >= SEQ_LIMIT) throw new Error('sender sequence space exhausted; rekey required');
    const seq = ++this.seq;
    out.set(this.prefix, outOff);
    out.writeUInt32BE(Math.floor(seq / 2 ** 32), outOff + OFF_SEQ);
    out.writeUInt32BE(seq >>> 0, outOff + OFF_SEQ + 4);
    return this.cipher.seal(inner, off, len, out, outOff);
  }

  /** Forgets the key; seal() throws afterwards. */
  wipe(): void {
    this.cipher.wipe();
    this.seq = SEQ_LIMIT;
  }
}

/**
 * One-shot: authenticates and decrypts one packet with a sender subkey
 * (tests and tools; the packet path keeps a {@link PacketCipher} per sender
 * instead). Returns the plaintext length written to `out` at `outOff`, or -1
 * if the tag does not verify; nothing is written to `out` then. `_nonce` is
 * unused and kept for callers of the earlier signature.
 */
export function openPacket(
  subkey: Buffer,
  pkt: Buffer,
  off: number,
  len: number,
  out: Buffer,
  outOff: number,
  _nonce?: Buffer,
): number {
  const c = createPacketCipher(subkey);
  const scratch = Buffer.alloc(Math.max(0, len - SNSL_OVERHEAD));
  try {
    const n = c.open(pkt, off, len, scratch, 0);
    if (n >= 0) scratch.copy(out, outOff, 0, n);
    return n;
  } finally {
    c.wipe();
    scratch.fill(0);
  }
}

/** Receive state for one sender in one epoch: its subkey and its replay window. */
export interface SenderState {
  /** The sender's subkey, keyed into a cipher once (the key bytes themselves are not kept). */
  cipher: PacketCipher;
  session: number;
  window: ReplayWindow;
}

/** One epoch of one channel's traffic key. */
export interface EpochKey {
  epoch: number;
  key: Buffer;
  /** ms since epoch after which this key is no longer accepted (Infinity while current). */
  acceptUntil: number;
  /** Receive state per sender virtual address. */
  senders: Map<number, SenderState>;
}

/** Inner packets and bytes sealed and opened on one channel by this host (monitor, metrics). */
export interface ChannelTraffic {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

/**
 * Every epoch key the agent holds for one (Supernet, channel), the sealers of
 * its local nodes, and the receive state of remote senders.
 */
export class ChannelKeyring {
  readonly epochs = new Map<number, EpochKey>();
  /** Counted by the packet path (net/datapath.ts); lives as long as the keyring. */
  readonly traffic: ChannelTraffic = { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
  current = 0;
  private sealers = new Map<number, Sealer>(); // by local sender vip, for the current epoch

  constructor(
    readonly supernet: Uint8Array,
    readonly channel: number,
    private readonly session: number,
  ) {}

  /**
   * Installs an epoch key (idempotent). A higher epoch than the current one
   * becomes current: the old current is then accepted until `now + graceMs`,
   * unless the admin named an earlier end.
   */
  install(
    epoch: number,
    key: Buffer,
    acceptUntil: number | undefined,
    now: number,
    graceMs: number,
  ): void {
    const have = this.epochs.get(epoch);
    if (have) {
      if (acceptUntil !== undefined) have.acceptUntil = Math.min(have.acceptUntil, acceptUntil);
      key.fill(0);
      return;
    }
    this.epochs.set(epoch, {
      epoch,
      key,
      acceptUntil: acceptUntil ?? Infinity,
      senders: new Map(),
    });
    if (acceptUntil === undefined && epoch > this.current) {
      const old = this.epochs.get(this.current);
      if (old && old.acceptUntil === Infinity) old.acceptUntil = now + graceMs;
      this.current = epoch;
      for (const s of this.sealers.values()) s.wipe();
      this.sealers.clear();
    }
  }

  /** Forgets epochs whose grace ended (wiping their keys); returns how many were removed. */
  expire(now: number): number {
    let n = 0;
    for (const [e, k] of this.epochs) {
      if (e !== this.current && k.acceptUntil <= now) {
        k.key.fill(0);
        for (const s of k.senders.values()) s.cipher.wipe();
        this.epochs.delete(e);
        n++;
      }
    }
    return n;
  }

  /** The sealer a local node with virtual address `sender` uses now (null if no key yet). */
  sealerFor(sender: number): Sealer | null {
    let s = this.sealers.get(sender);
    if (s && !s.exhausted) return s;
    const cur = this.epochs.get(this.current);
    if (!cur) return null;
    s = new Sealer(
      senderSubkey(cur.key, this.supernet, this.channel, cur.epoch, sender),
      this.supernet,
      this.channel,
      cur.epoch,
      sender,
      this.session,
    );
    this.sealers.set(sender, s);
    return s;
  }

  /** Receive state for a remote sender in `epoch`, or null if the epoch is unknown or past its grace. */
  receiverFor(epoch: number, sender: number, now: number): SenderState | null {
    const ek = this.epochs.get(epoch);
    if (!ek || ek.acceptUntil <= now) return null;
    let st = ek.senders.get(sender);
    if (!st) {
      const subkey = senderSubkey(ek.key, this.supernet, this.channel, epoch, sender);
      st = {
        cipher: createPacketCipher(subkey),
        session: 0,
        window: new ReplayWindow(),
      };
      subkey.fill(0);
      ek.senders.set(sender, st);
    }
    return st;
  }

  /** Wipes all key material. */
  destroy(): void {
    for (const k of this.epochs.values()) {
      k.key.fill(0);
      for (const s of k.senders.values()) s.cipher.wipe();
    }
    this.epochs.clear();
    for (const s of this.sealers.values()) s.wipe();
    this.sealers.clear();
  }
}
