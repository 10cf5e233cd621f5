/**
 * The member side of the group key tree (docs/keys.md §Member), used by host
 * agents: one {@link MemberKeyState} per group the node belongs to. It holds
 * the member's path keys (leaf to root) and the traffic keys of the current
 * and a few previous epochs, and applies the admin's signed messages in epoch
 * order:
 *
 * - a join notice: grow the path if the tree grew, move forward every path
 *   key the joiners share, check the new root against the notice;
 * - a rekey message: open, bottom-up, the sealed keys meant for this path,
 *   check the new root; or learn that this member was removed;
 * - a welcome: replace the whole path (first admission, or resynchronisation).
 *
 * A gap in the epochs (a missed message) or a check that fails (state gone
 * wrong) sets {@link MemberKeyState.needsResync}; the agent then fetches a
 * fresh welcome. Every update is computed on a scratch copy and committed
 * only when it checks out, so a bad message never damages a good state.
 * Replaced key material is wiped.
 */
import { ctEqual, type Identity } from './identity.js';
import { nullLogger, type Logger } from './logger.js';
import {
  ENTRY_NONCE_LEN,
  KeyTreeError,
  MAX_HEIGHT,
  NODE_KEY_LEN,
  allZero,
  checkGroupId,
  forwardKey,
  growKey,
  kekOf,
  openEntry,
  rootCheckOf,
  trafficKeyOf,
} from './keytree-crypto.js';
import {
  ENTRY_AAD_LEN,
  FLAG_EMPTY,
  TYPE_JOIN,
  TYPE_WELCOME,
  decodeMessage,
  entryAad,
  isVerifiedBy,
  entryNonce,
  pathLen,
  welcomeContext,
  type JoinNotice,
  type KeyTreeMessage,
  type RekeyMessage,
  type WelcomeMessage,
} from './keytree-wire.js';

/** Previous epochs' traffic keys kept by default (receivers accept them during the grace period). */
export const DEFAULT_KEEP_PREVIOUS = 2;
/** How far ahead {@link MemberKeyState.speculativeKey} hashes forward at most. */
export const MAX_SPECULATE = 16;

export interface MemberKeyStateOptions {
  /** The group this state belongs to (16 bytes). */
  group: Uint8Array;
  /** The node's own identity: opens welcomes. */
  identity: Identity;
  /** The admin service's pinned Ed25519 public key (base64url). */
  adminSign: string;
  /** Previous epochs' traffic keys to keep (default {@link DEFAULT_KEEP_PREVIOUS}). */
  keepPrevious?: number;
  logger?: Logger;
}

/** What applying one message did. */
export type ApplyOutcome =
  /** The state moved to `epoch`. */
  | { kind: 'applied'; epoch: number }
  /** The message is for an epoch this state already has (duplicate or late): ignored. */
  | { kind: 'old'; epoch: number }
  /**
   * The message cannot be applied: `gap` (a message before it was missed) or
   * `stale` (this state's keys do not fit it). State unchanged; fetch a welcome.
   */
  | { kind: 'resync'; reason: 'gap' | 'stale'; epoch: number }
  /** This member was removed at `epoch`; every key was wiped. */
  | { kind: 'removed'; epoch: number };

export type MemberStatus = 'current' | 'behind' | 'removed';

const MEMBER_RECORD_KIND = 'supernet-keytree-member';
const MEMBER_RECORD_VERSION = 1;

/** Bit length of x (x > 0): the level of the lowest common ancestor of two leaves is bitLength(a ^ b). */
function bitLength(x: number): number {
  return x === 0 ? 0 : Math.floor(Math.log2(x)) + 1;
}

/** A member's key state in one group. */
export class MemberKeyState {
  private readonly group: Buffer;
  private readonly identity: Identity;
  private readonly adminSign: string;
  private readonly keep: number;
  private readonly log: Logger;
  /** Path keys, level 0 (leaf) to `height` (root), 32 bytes each. */
  private keys = Buffer.alloc((MAX_HEIGHT + 1) * NODE_KEY_LEN);
  private scratch = Buffer.alloc((MAX_HEIGHT + 1) * NODE_KEY_LEN);
  private _epoch = 0;
  private _leaf = 0;
  private _height = 0;
  private _status: MemberStatus = 'current';
  /** Traffic keys by epoch: the current one and up to `keep` earlier ones. */
  private readonly traffic = new Map<number, Buffer>();
  private readonly aad = Buffer.alloc(ENTRY_AAD_LEN);
  private readonly nonce = Buffer.alloc(ENTRY_NONCE_LEN);

  private constructor(opts: MemberKeyStateOptions) {
    checkGroupId(opts.group);
    this.group = Buffer.from(opts.group);
    this.identity = opts.identity;
    this.adminSign = opts.adminSign;
    this.keep = opts.keepPrevious ?? DEFAULT_KEEP_PREVIOUS;
    if (!Number.isInteger(this.keep) || this.keep < 0 || this.keep > 64)
      throw new KeyTreeError('malformed', 'keepPrevious must be an integer from 0 to 64');
    this.log = opts.logger ?? nullLogger;
  }

  /** Starts a member state from its (signed, sealed) welcome. */
  static fromWelcome(
    opts: MemberKeyStateOptions,
    welcome: Uint8Array | KeyTreeMessage,
  ): MemberKeyState {
    const m = new MemberKeyState(opts);
    const msg = m.decode(welcome);
    if (msg.type !== TYPE_WELCOME) throw new KeyTreeError('malformed', 'expected a welcome');
    m.takeWelcome(msg);
    return m;
  }

  /** Restores a state written by {@link serialize} (the agent's own file, mode 0600). */
  static restore(opts: MemberKeyStateOptions, text: string): MemberKeyState {
    const bad = (w: string): KeyTreeError =>
      new KeyTreeError('bad_record', `stored member key state: ${w}`);
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw bad('not JSON');
    }
    if (j.kind !== MEMBER_RECORD_KIND || j.v !== MEMBER_RECORD_VERSION) throw bad('kind/version');
    const m = new MemberKeyState(opts);
    if (j.group !== m.group.toString('hex')) throw bad('belongs to another group');
    const int = (x: unknown, max: number): number => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > max) throw bad('number');
      return x;
    };
    const epoch = int(j.epoch, 0xffff_ffff);
    const height = int(j.height, MAX_HEIGHT);
    const leaf = int(j.leaf, 2 ** height - 1);
    if (j.status !== 'current' && j.status !== 'behind') throw bad('status');
    const keys = typeof j.keys === 'string' ? Buffer.from(j.keys, 'base64url') : Buffer.alloc(0);
    if (epoch === 0 || keys.length !== pathLen(height)) throw bad('keys');
    for (let l = 0; l <= height; l++)
      if (allZero(keys.subarray(l * NODE_KEY_LEN, (l + 1) * NODE_KEY_LEN))) throw bad('zero key');
    keys.copy(m.keys);
    keys.fill(0);
    m._epoch = epoch;
    m._height = height;
    m._leaf = leaf;
    m._status = j.status;
    if (!Array.isArray(j.traffic)) throw bad('traffic');
    for (const t of j.traffic as unknown[]) {
      if (!Array.isArray(t) || t.length !== 2 || typeof t[1] !== 'string') throw bad('traffic');
      const e = int(t[0], epoch);
      const k = Buffer.from(t[1], 'base64url');
      if (k.length !== NODE_KEY_LEN || allZero(k)) throw bad('traffic key');
      m.traffic.set(e, k);
    }
    if (!m.traffic.has(epoch)) m.traffic.set(epoch, m.deriveTraffic(epoch));
    return m;
  }

  /** The current epoch: the one to send with. */
  get epoch(): number {
    return this._epoch;
  }
  get leaf(): number {
    return this._leaf;
  }
  get height(): number {
    return this._height;
  }
  get status(): MemberStatus {
    return this._status;
  }
  /** True when the agent must fetch a fresh welcome (missed or unusable message). */
  get needsResync(): boolean {
    return this._status === 'behind';
  }

  private keyAt(buf: Buffer, level: number): Buffer {
    return buf.subarray(level * NODE_KEY_LEN, (level + 1) * NODE_KEY_LEN);
  }

  private deriveTraffic(epoch: number): Buffer {
    return trafficKeyOf(this.keyAt(this.keys, this._height), this.group, epoch);
  }

  private decode(input: Uint8Array | KeyTreeMessage): KeyTreeMessage {
    let msg: KeyTreeMessage;
    if (input instanceof Uint8Array) msg = decodeMessage(input, this.adminSign);
    else if (isVerifiedBy(input, this.adminSign)) msg = input;
    else
      throw new KeyTreeError(
        'bad_signature',
        'keytree message was not verified with the admin key',
      );
    if (!ctEqual(msg.group, this.group))
      throw new KeyTreeError('wrong_group', 'keytree message is for another group');
    return msg;
  }

  private takeWelcome(msg: WelcomeMessage): void {
    let plain: Buffer;
    try {
      plain = this.identity.open(
        msg.box,
        welcomeContext(this.group, msg.epoch, msg.leaf, msg.height),
      );
    } catch {
      throw new KeyTreeError('sealed_box', 'welcome does not open with this identity');
    }
    if (plain.length !== pathLen(msg.height)) {
      plain.fill(0);
      throw new KeyTreeError('malformed', 'welcome path has the wrong length');
    }
    for (let l = 0; l <= msg.height; l++)
      if (allZero(this.keyAt(plain, l))) {
        plain.fill(0);
        throw new KeyTreeError('malformed', 'welcome holds an all-zero key');
      }
    this.keys.fill(0);
    plain.copy(this.keys);
    plain.fill(0);
    this._height = msg.height;
    this._leaf = msg.leaf;
    this._status = 'current';
    this.enterEpoch(msg.epoch);
  }

  /** Makes `epoch` current: derives its traffic key, keeps `keep` earlier ones, wipes the rest. */
  private enterEpoch(epoch: number): void {
    this._epoch = epoch;
    const old = this.traffic.get(epoch);
    old?.fill(0);
    this.traffic.set(epoch, this.deriveTraffic(epoch));
    const epochs = [...this.traffic.keys()].sort((a, b) => b - a);
    for (const e of epochs.slice(this.keep + 1)) this.dropTraffic(e);
    for (const e of epochs) if (e > epoch) this.dropTraffic(e);
  }

  private dropTraffic(e: number): void {
    this.traffic.get(e)?.fill(0);
    this.traffic.delete(e);
  }

  /**
   * Applies one message (welcome, join notice or rekey message) from the
   * admin service: its bytes, or what {@link decodeMessage} made of them with
   * this admin key (verify once, apply to several members on one host).
   * Throws {@link KeyTreeError} for a message that is malformed, not signed by
   * the admin or for another group (count and drop it); otherwise says what
   * happened.
   */
  apply(input: Uint8Array | KeyTreeMessage): ApplyOutcome {
    const msg = this.decode(input);
    if (msg.type === TYPE_WELCOME) {
      // Never roll back: an older welcome (replayed, or delayed behind a
      // resync) is ignored, and a removed member is revived only by a welcome
      // from after its removal (a new admission).
      if (msg.epoch < this._epoch || (msg.epoch === this._epoch && this._status === 'removed'))
        return { kind: 'old', epoch: msg.epoch };
      this.takeWelcome(msg);
      this.log.info('keytree resynchronised', { epoch: msg.epoch, height: msg.height });
      return { kind: 'applied', epoch: msg.epoch };
    }
    if (this._status === 'removed') return { kind: 'removed', epoch: this._epoch };
    if (msg.epoch <= this._epoch) return { kind: 'old', epoch: msg.epoch };
    if (msg.epoch > this._epoch + 1) return this.behind('gap', msg.epoch);
    if (msg.type === TYPE_JOIN) return this.applyJoin(msg);
    return this.applyRekey(msg);
  }

  private behind(reason: 'gap' | 'stale', epoch: number): ApplyOutcome {
    this._status = 'behind';
    this.log.warn('keytree state behind, resynchronisation needed', {
      reason,
      have: this._epoch,
      got: epoch,
    });
    return { kind: 'resync', reason, epoch };
  }

  private commit(msg: JoinNotice | RekeyMessage): ApplyOutcome {
    const root = this.keyAt(this.scratch, msg.height);
    if (!ctEqual(rootCheckOf(root, this.group, msg.epoch), msg.rootCheck)) {
      this.scratch.fill(0);
      return this.behind('stale', msg.epoch);
    }
    const old = this.keys;
    this.keys = this.scratch;
    this.scratch = old;
    this.scratch.fill(0);
    this._height = msg.height;
    this._status = 'current';
    this.enterEpoch(msg.epoch);
    return { kind: 'applied', epoch: msg.epoch };
  }

  private applyJoin(msg: JoinNotice): ApplyOutcome {
    const h = this._height;
    const H = msg.height;
    if (H < h || msg.leaves.includes(this._leaf)) return this.behind('stale', msg.epoch);
    const s = this.scratch;
    this.keys.copy(s, 0, 0, pathLen(h));
    if (H > h) {
      // The tree grew: the root's chain continues at the new root; the left
      // spine below it is derived from the old root (KeyTree.join does the same).
      const oldRoot = Buffer.from(this.keyAt(s, h));
      oldRoot.copy(s, H * NODE_KEY_LEN);
      for (let l = h; l < H; l++) {
        const g = growKey(oldRoot, l);
        g.copy(s, l * NODE_KEY_LEN);
        g.fill(0);
      }
      oldRoot.fill(0);
    }
    // Every path key from the lowest level shared with some joiner upwards moves forward.
    let lowest = H + 1;
    for (const j of msg.leaves) lowest = Math.min(lowest, bitLength(j ^ this._leaf));
    for (let l = lowest; l <= H; l++) {
      const k = this.keyAt(s, l);
      const f = forwardKey(k);
      f.copy(k);
      f.fill(0);
    }
    return this.commit(msg);
  }

  private applyRekey(msg: RekeyMessage): ApplyOutcome {
    if (msg.removed.includes(this._leaf)) {
      this.keys.fill(0);
      for (const e of [...this.traffic.keys()]) this.dropTraffic(e);
      this._status = 'removed';
      this._epoch = msg.epoch;
      this.log.info('keytree: this member was removed', { epoch: msg.epoch });
      return { kind: 'removed', epoch: msg.epoch };
    }
    const H = msg.height;
    if (msg.flags & FLAG_EMPTY || H > this._height || this._leaf >= 2 ** H)
      return this.behind('stale', msg.epoch);
    const s = this.scratch;
    this.keys.copy(s, 0, 0, pathLen(H));
    for (let i = 0; i < msg.entries.length; i++) {
      const e = msg.entries[i];
      if (this._leaf >>> e.level !== e.index) continue;
      const kek = kekOf(this.keyAt(s, e.level));
      const plain = openEntry(
        kek,
        entryNonce(msg.nonceBase, i, this.nonce),
        entryAad(msg.headerBytes, e.level, e.index, this.aad),
        e.box,
      );
      kek.fill(0);
      if (plain === null) {
        s.fill(0);
        return this.behind('stale', msg.epoch);
      }
      plain.copy(s, (e.level + 1) * NODE_KEY_LEN);
      plain.fill(0);
    }
    return this.commit(msg);
  }

  /** The traffic key of `epoch` (current, or a kept earlier one), as a copy; null if not held. */
  trafficKey(epoch: number = this._epoch): Buffer | null {
    const k = this.traffic.get(epoch);
    return k ? Buffer.from(k) : null;
  }

  /** Epochs whose traffic keys are held, newest first. */
  heldEpochs(): number[] {
    return [...this.traffic.keys()].sort((a, b) => b - a);
  }

  /**
   * Records an epoch seen on the wire (a data packet's header). One newer
   * than ours means a message was missed: marks the state behind and returns
   * true (fetch a welcome).
   */
  noteEpoch(epoch: number): boolean {
    if (this._status === 'removed' || epoch <= this._epoch) return false;
    if (this._status !== 'behind') this.behind('gap', epoch);
    return true;
  }

  /**
   * The traffic key `epoch` would have if every epoch after ours was a join
   * (joins move the root forward, so the epoch number alone suffices). Lets
   * an agent that missed join notices keep decrypting until its welcome
   * arrives: the packet's AEAD tells whether the guess was right. Null when
   * more than {@link MAX_SPECULATE} epochs ahead or removed.
   */
  speculativeKey(epoch: number): Buffer | null {
    if (this._status === 'removed') return null;
    if (epoch <= this._epoch) return this.trafficKey(epoch);
    if (epoch - this._epoch > MAX_SPECULATE) return null;
    let k: Buffer = Buffer.from(this.keyAt(this.keys, this._height));
    for (let e = this._epoch; e < epoch; e++) {
      const f = forwardKey(k);
      k.fill(0);
      k = f;
    }
    const t = trafficKeyOf(k, this.group, epoch);
    k.fill(0);
    return t;
  }

  /** Wipes the traffic keys of epochs before `epoch` (their grace period ended). */
  forgetBefore(epoch: number): void {
    for (const e of [...this.traffic.keys()])
      if (e < epoch && e !== this._epoch) this.dropTraffic(e);
  }

  /** The state as JSON text (holds keys: the agent stores it with mode 0600). */
  serialize(): string {
    if (this._status === 'removed')
      throw new KeyTreeError('empty', 'a removed member has no key state to store');
    return JSON.stringify({
      kind: MEMBER_RECORD_KIND,
      v: MEMBER_RECORD_VERSION,
      group: this.group.toString('hex'),
      epoch: this._epoch,
      leaf: this._leaf,
      height: this._height,
      status: this._status,
      keys: this.keys.subarray(0, pathLen(this._height)).toString('base64url'),
      traffic: this.heldEpochs().map((e) => [e, this.traffic.get(e)!.toString('base64url')]),
    });
  }

  /** Wipes every key; the state is unusable afterwards. */
  destroy(): void {
    this.keys.fill(0);
    this.scratch.fill(0);
    for (const e of [...this.traffic.keys()]) this.dropTraffic(e);
    this._status = 'removed';
  }
}
