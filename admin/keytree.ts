/**
 * The admin-side group key tree (paper §4.2 "Groupkey management service",
 * [CWSP98] Versakey; design brief §5; docs/keys.md): one {@link KeyTree} per
 * group (a channel, or a storage key group). Leaves are members; the root is
 * the group key of the current epoch, from which the traffic key is derived.
 *
 * - join: no key material is broadcast. Every key on a joiner's path moves
 *   forward through a one-way function (the root always does, so the traffic
 *   key follows the epoch number alone); members learn the new epoch and the
 *   joined positions from a signed join notice and move their own keys. The
 *   joiner gets only its path keys, sealed to its identity (a welcome).
 * - remove (leave or expel, several in one batch): every key a removed member
 *   knew is replaced by a fresh random one, each sealed under the keys of its
 *   children that no removed member knows, all in one signed rekey message of
 *   at most 2·log2(n) − 1 sealed keys for a single removal.
 *
 * The tree is binary (docs/keys.md §Degree). Nodes are addressed by
 * (level, index), level 0 being the leaves, and stored in in-order layout
 * (position = index·2^(level+1) + 2^level − 1), which does not move when the
 * tree grows or shrinks: the old root stays at its position and the new root
 * lands after it. Keys live in one flat buffer, 32 bytes per position; a node
 * holds a key exactly when its subtree holds a member. Replaced keys are
 * overwritten in place (and so wiped); the stored form is chunked so only the
 * chunks an operation touched need rewriting (keytree-store.ts).
 */
import { randomFillSync } from 'node:crypto';
import { seal, type Identity } from './identity.js';
import { nullLogger, type Logger } from './logger.js';
import {
  CHECK_LEN,
  ENTRY_NONCE_LEN,
  KeyTreeError,
  MAX_EPOCH,
  MAX_HEIGHT,
  NODE_KEY_LEN,
  allZero,
  checkGroupId,
  forwardKey,
  growKey,
  kekOf,
  rootCheckOf,
  sealEntry,
  trafficKeyOf,
} from './keytree-crypto.js';
import {
  ENTRY_AAD_LEN,
  ENTRY_BOX_LEN,
  FLAG_EMPTY,
  TYPE_REKEY,
  encodeJoinNotice,
  encodeRekey,
  encodeWelcome,
  entryAad,
  entryNonce,
  headerBytes,
  pathLen,
  welcomeContext,
  type RekeyEntry,
} from './keytree-wire.js';
import {
  CHUNK_POSITIONS,
  MEMBER_ID_MAX,
  MemberIndex,
  checkMemberId,
  chunkRecord,
  nodePos,
  headerRecord,
  loadTreeState,
  type KeyTreeChanges,
  type KeyTreeChunkRecord,
  type KeyTreeHeaderRecord,
  type TreeState,
} from './keytree-store.js';

export { nodePos, checkMemberId, MEMBER_ID_MAX };

export interface KeyTreeOptions {
  /** The group (16 bytes, keytree-crypto.ts channelGroupId / storageGroupId). */
  group: Uint8Array;
  /** The admin identity that signs every message. */
  signer: Identity;
  logger?: Logger;
  /** Source of fresh keys (default: node:crypto randomFillSync). */
  random?: (buf: Buffer) => void;
}

/** What a join batch produced. */
export interface JoinResult {
  epoch: number;
  /** The signed join notice for every member (no key material). */
  notice: Buffer;
  /** Leaf of each joiner, in the order given. */
  leaves: number[];
}

/** What a removal batch produced. */
export interface RemoveResult {
  epoch: number;
  /** The signed rekey message for every member (and the removed: they learn nothing from it). */
  message: Buffer;
  /** Number of sealed keys in it. */
  entries: number;
}

const randomFill = (b: Buffer): void => {
  randomFillSync(b);
};

/** One group's key tree on the admin service. */
export class KeyTree {
  private readonly group: Buffer;
  private readonly signer: Identity;
  private readonly log: Logger;
  private readonly random: (buf: Buffer) => void;
  private s: TreeState;
  /** Per-position op stamp, to visit each node once per batch without a Set. */
  private mark: Uint32Array;
  private serial = 0;
  private readonly dirty = new Set<number>();
  private headerDirty = true;
  private readonly aad = Buffer.alloc(ENTRY_AAD_LEN);
  private readonly nonce = Buffer.alloc(ENTRY_NONCE_LEN);

  private constructor(opts: KeyTreeOptions, state: TreeState) {
    checkGroupId(opts.group);
    this.group = Buffer.from(opts.group);
    this.signer = opts.signer;
    this.log = opts.logger ?? nullLogger;
    this.random = opts.random ?? randomFill;
    this.s = state;
    this.mark = new Uint32Array(state.counts.length);
  }

  /** A new, empty group at epoch 0 (no traffic key until the first join). */
  static create(opts: KeyTreeOptions): KeyTree {
    const t = new KeyTree(opts, {
      epoch: 0,
      height: 0,
      size: 0,
      keys: Buffer.alloc(NODE_KEY_LEN),
      counts: new Uint32Array(1),
      leafMember: [''],
      leafOf: new MemberIndex(),
    });
    t.dirty.add(0);
    return t;
  }

  /**
   * Loads a tree from its stored form: the header record and a lookup of
   * chunk records (undefined for a chunk that was never stored: all empty).
   * Throws `bad_record` if anything is inconsistent.
   */
  static fromRecords(
    opts: KeyTreeOptions,
    header: KeyTreeHeaderRecord,
    chunk: (index: number) => KeyTreeChunkRecord | undefined,
  ): KeyTree {
    const state = loadTreeState(opts.group, header, chunk);
    const t = new KeyTree(opts, state);
    t.headerDirty = false;
    return t;
  }

  /** The current epoch (0 before the first join). */
  get epoch(): number {
    return this.s.epoch;
  }
  /** Number of members. */
  get size(): number {
    return this.s.size;
  }
  /** Tree height: members hold height + 1 keys. */
  get height(): number {
    return this.s.height;
  }
  has(id: string): boolean {
    return this.s.leafOf.has(id);
  }
  leafOf(id: string): number | undefined {
    return this.s.leafOf.get(id);
  }
  /** Current members, by leaf. */
  members(): string[] {
    return this.s.leafMember.filter((m) => m !== '');
  }

  private keyAt(pos: number): Buffer {
    return this.s.keys.subarray(pos * NODE_KEY_LEN, (pos + 1) * NODE_KEY_LEN);
  }

  private touch(pos: number): void {
    this.dirty.add(Math.floor(pos / CHUNK_POSITIONS));
  }

  /** The traffic key of the current epoch (a copy; the caller wipes it when done). */
  trafficKey(): Buffer {
    if (this.s.size === 0) throw new KeyTreeError('empty', 'the group has no members, so no key');
    return trafficKeyOf(this.keyAt(nodePos(this.s.height, 0)), this.group, this.s.epoch);
  }

  private nextEpoch(): number {
    if (this.s.epoch >= MAX_EPOCH)
      throw new KeyTreeError('capacity', 'epoch counter exhausted: recreate the group');
    return this.s.epoch + 1;
  }

  private nextSerial(): number {
    this.serial = (this.serial + 1) >>> 0;
    if (this.serial === 0) {
      this.mark.fill(0);
      this.serial = 1;
    }
    return this.serial;
  }

  /** Extends the arrays to hold height `h` (positions 0 .. 2^(h+1) − 2). */
  private resize(h: number): void {
    const n = 2 ** (h + 1) - 1;
    const s = this.s;
    const oldLen = s.counts.length;
    if (oldLen === n) return;
    const keys = Buffer.alloc(n * NODE_KEY_LEN);
    const counts = new Uint32Array(n);
    const m = Math.min(n, s.counts.length);
    s.keys.copy(keys, 0, 0, m * NODE_KEY_LEN);
    counts.set(s.counts.subarray(0, m));
    s.keys.fill(0);
    s.keys = keys;
    s.counts = counts;
    const mark = new Uint32Array(n);
    mark.set(this.mark.subarray(0, m));
    this.mark = mark;
    const leaves = 2 ** h;
    if (s.leafMember.length > leaves) s.leafMember.length = leaves;
    while (s.leafMember.length < leaves) s.leafMember.push('');
    // Chunks past the end must be deleted from (or appear in) the store.
    const oldChunks = Math.ceil(oldLen / CHUNK_POSITIONS);
    const newChunks = Math.ceil(n / CHUNK_POSITIONS);
    for (let c = Math.min(oldChunks, newChunks) - 1; c < Math.max(oldChunks, newChunks); c++)
      if (c >= 0) this.dirty.add(c);
  }

  /**
   * Admits `ids` as one batch: one new epoch, one join notice. Each joiner
   * takes the leftmost free leaf; the tree grows (doubles) when full. The
   * joiners' welcomes come from {@link welcome}.
   */
  join(ids: string[]): JoinResult {
    if (ids.length === 0) throw new KeyTreeError('bad_member', 'join needs at least one member');
    // Validate before changing anything. Joiners are entered in leafOf with
    // leaf -1 first (so a duplicate inside the batch is caught too) and taken
    // out again if the batch is refused.
    const leafOf = this.s.leafOf;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      let problem: KeyTreeError | null = null;
      try {
        checkMemberId(id);
        if (leafOf.has(id))
          problem = new KeyTreeError('duplicate_member', `member ${id} is already in the group`);
      } catch (err) {
        problem = err as KeyTreeError;
      }
      if (problem) {
        for (let j = 0; j < i; j++) leafOf.delete(ids[j]);
        throw problem;
      }
      leafOf.set(id, -1);
    }
    let epoch: number;
    try {
      epoch = this.nextEpoch();
      if (this.heightFor(ids.length) > MAX_HEIGHT)
        throw new KeyTreeError('capacity', `group would exceed ${2 ** MAX_HEIGHT} members`);
    } catch (err) {
      for (const id of ids) leafOf.delete(id);
      throw err;
    }
    const s = this.s;
    const wasEmpty = s.size === 0;
    const h = this.heightFor(ids.length);

    if (wasEmpty) {
      s.keys.fill(0);
      this.resize(h);
    } else if (h > s.height) {
      // Grow: the old root's chain continues at the new root; the nodes on
      // the left spine get keys every old member derives from the old root.
      const oldH = s.height;
      const oldRoot = Buffer.from(this.keyAt(nodePos(oldH, 0)));
      this.resize(h);
      this.keyAt(nodePos(h, 0)).set(oldRoot);
      for (let l = oldH; l < h; l++) {
        const g = growKey(oldRoot, l);
        this.keyAt(nodePos(l, 0)).set(g);
        g.fill(0);
        if (l > oldH) s.counts[nodePos(l, 0)] = s.size;
        this.touch(nodePos(l, 0));
      }
      s.counts[nodePos(h, 0)] = s.size;
      this.touch(nodePos(h, 0));
      oldRoot.fill(0);
    }
    s.height = h;

    const stamp = this.nextSerial();
    const fresh: number[] = [];
    const forward: number[] = [];
    const leaves: number[] = [];
    for (const id of ids) {
      const leaf = this.freeLeaf();
      leaves.push(leaf);
      s.leafMember[leaf] = id;
      s.leafOf.set(id, leaf);
      for (let l = 0; l <= h; l++) {
        const p = nodePos(l, leaf >>> l);
        if (this.mark[p] !== stamp) {
          this.mark[p] = stamp;
          // The first touch in this batch sees the count from before it.
          (s.counts[p] === 0 ? fresh : forward).push(p);
          this.touch(p);
        }
        s.counts[p]++;
      }
    }
    s.size += ids.length;
    for (const p of forward) {
      const k = this.keyAt(p);
      const f = forwardKey(k);
      k.set(f);
      f.fill(0);
    }
    this.fillFresh(fresh);
    s.epoch = epoch;
    this.headerDirty = true;

    const sorted = leaves.length > 1 ? [...leaves].sort((x, y) => x - y) : leaves;
    const notice = encodeJoinNotice(
      {
        group: this.group,
        epoch,
        height: h,
        leaves: sorted,
        rootCheck: rootCheckOf(this.keyAt(nodePos(h, 0)), this.group, epoch),
      },
      this.signer,
    );
    this.log.debug('keytree join', { epoch, joined: ids.length, size: s.size, height: h });
    return { epoch, notice, leaves };
  }

  /** Height after `joining` more members: grown (doubled) until the free leaves suffice. */
  private heightFor(joining: number): number {
    if (this.s.size === 0) return Math.ceil(Math.log2(joining));
    let h = this.s.height;
    while (2 ** h - this.s.size < joining) h++;
    return h;
  }

  /** Leftmost leaf whose count is 0 (there is one: join grew the tree first). */
  private freeLeaf(): number {
    const s = this.s;
    let index = 0;
    for (let l = s.height; l > 0; l--) {
      const left = nodePos(l - 1, 2 * index);
      index = s.counts[left] < 2 ** (l - 1) ? 2 * index : 2 * index + 1;
    }
    return index;
  }

  private fillFresh(positions: number[]): void {
    if (positions.length === 0) return;
    const tmp = Buffer.alloc(positions.length * NODE_KEY_LEN);
    this.random(tmp);
    for (let i = 0; i < positions.length; i++)
      tmp.copy(this.s.keys, positions[i] * NODE_KEY_LEN, i * NODE_KEY_LEN, (i + 1) * NODE_KEY_LEN);
    tmp.fill(0);
  }

  /**
   * The welcome of member `id`: its path keys at the current epoch, leaf
   * first, sealed to `sealPub` (its X25519 key, base64url) and signed. Sent to
   * a joiner, and to any member that asks to resynchronise.
   */
  welcome(id: string, sealPub: string): Buffer {
    const leaf = this.s.leafOf.get(id);
    if (leaf === undefined)
      throw new KeyTreeError('unknown_member', `member ${id} is not in the group`);
    const h = this.s.height;
    const plain = Buffer.alloc(pathLen(h));
    for (let l = 0; l <= h; l++) this.keyAt(nodePos(l, leaf >>> l)).copy(plain, l * NODE_KEY_LEN);
    const box = seal(sealPub, plain, welcomeContext(this.group, this.s.epoch, leaf, h));
    plain.fill(0);
    return encodeWelcome(
      { group: this.group, epoch: this.s.epoch, height: h, leaf, box },
      this.signer,
    );
  }

  /**
   * Removes `ids` (leave or expel) as one batch: one new epoch, one rekey
   * message. Every key a removed member knew is replaced; the tree shrinks
   * while the right half of the root is empty.
   */
  remove(ids: string[]): RemoveResult {
    if (ids.length === 0) throw new KeyTreeError('bad_member', 'remove needs at least one member');
    const s = this.s;
    const removed: number[] = [];
    for (const id of ids) {
      const leaf = s.leafOf.get(id);
      if (leaf === undefined)
        throw new KeyTreeError('unknown_member', `member ${id} is not in the group`);
      removed.push(leaf);
    }
    removed.sort((a, b) => a - b);
    for (let i = 1; i < removed.length; i++)
      if (removed[i] === removed[i - 1])
        throw new KeyTreeError('duplicate_member', 'a member is named twice');
    const epoch = this.nextEpoch();

    for (const leaf of removed) {
      s.leafOf.delete(s.leafMember[leaf]);
      s.leafMember[leaf] = '';
      for (let l = 0; l <= s.height; l++) {
        const p = nodePos(l, leaf >>> l);
        if (--s.counts[p] === 0) this.keyAt(p).fill(0);
        this.touch(p);
      }
    }
    s.size -= removed.length;
    let h = s.height;
    while (h > 0 && s.counts[nodePos(h - 1, 1)] === 0) {
      this.keyAt(nodePos(h, 0)).fill(0);
      s.counts[nodePos(h, 0)] = 0;
      this.touch(nodePos(h, 0));
      h--;
    }
    if (h !== s.height) {
      this.resize(h);
      s.height = h;
    }
    const empty = s.size === 0;

    // Nodes to replace, per level, in ascending index order (removed is sorted).
    const stamp = this.nextSerial();
    const byLevel: number[][] = [];
    let nReplaced = 0;
    for (const leaf of removed) {
      if (empty || leaf >= 2 ** h) continue;
      for (let l = 1; l <= h; l++) {
        const idx = leaf >>> l;
        const p = nodePos(l, idx);
        // Marked: this node and all above it were seen for an earlier leaf.
        if (this.mark[p] === stamp) break;
        this.mark[p] = stamp;
        if (s.counts[p] === 0) continue; // emptied: nothing to replace, its key is wiped
        (byLevel[l] ??= []).push(idx);
        nReplaced++;
      }
    }
    const positions: number[] = [];
    for (let l = 1; l <= h; l++)
      for (const idx of byLevel[l] ?? []) positions.push(nodePos(l, idx));
    this.fillFresh(positions);

    // Seal each new key under each non-empty child: a child on a removed
    // member's path has just been replaced, every other child was never known
    // to a removed member (it is not on any removed path).
    const header = headerBytes({
      type: TYPE_REKEY,
      flags: empty ? FLAG_EMPTY : 0,
      group: this.group,
      epoch,
      height: h,
    });
    const nonceBase = Buffer.alloc(ENTRY_NONCE_LEN);
    do this.random(nonceBase);
    while (allZero(nonceBase));
    const entries: RekeyEntry[] = [];
    for (let l = 1; l <= h; l++)
      for (const idx of byLevel[l] ?? []) {
        const parent = this.keyAt(nodePos(l, idx));
        for (let c = 2 * idx; c <= 2 * idx + 1; c++) {
          const cp = nodePos(l - 1, c);
          if (s.counts[cp] === 0) continue;
          const box = Buffer.alloc(ENTRY_BOX_LEN);
          const kek = kekOf(this.keyAt(cp));
          sealEntry(
            kek,
            entryNonce(nonceBase, entries.length, this.nonce),
            entryAad(header, l - 1, c, this.aad),
            parent,
            box,
            0,
          );
          kek.fill(0);
          entries.push({ level: l - 1, index: c, box });
        }
      }
    const message = encodeRekey(
      {
        group: this.group,
        epoch,
        height: h,
        empty,
        removed,
        nonceBase,
        rootCheck: empty
          ? Buffer.alloc(CHECK_LEN)
          : rootCheckOf(this.keyAt(nodePos(h, 0)), this.group, epoch),
        entries,
      },
      this.signer,
    );
    s.epoch = epoch;
    this.headerDirty = true;
    const nEntries = entries.length;
    this.log.debug('keytree remove', {
      epoch,
      removed: removed.length,
      replaced: nReplaced,
      entries: nEntries,
      size: s.size,
      height: h,
    });
    return { epoch, message, entries: nEntries };
  }

  /**
   * The stored form's changes since the last call (or since load): the
   * header and each chunk that changed, `null` for a chunk to delete. Write
   * them in one store transaction together with whatever caused them.
   */
  takeChanges(): KeyTreeChanges {
    const chunks: Array<[number, KeyTreeChunkRecord | null]> = [];
    for (const c of [...this.dirty].sort((a, b) => a - b)) chunks.push([c, chunkRecord(this.s, c)]);
    this.dirty.clear();
    const header = this.headerDirty || chunks.length > 0 ? headerRecord(this.group, this.s) : null;
    this.headerDirty = false;
    return { header, chunks };
  }

  /** The whole stored form (header and every non-empty chunk). */
  toRecords(): { header: KeyTreeHeaderRecord; chunks: Array<[number, KeyTreeChunkRecord]> } {
    const chunks: Array<[number, KeyTreeChunkRecord]> = [];
    const n = Math.ceil(this.s.counts.length / CHUNK_POSITIONS);
    for (let c = 0; c < n; c++) {
      const r = chunkRecord(this.s, c);
      if (r) chunks.push([c, r]);
    }
    return { header: headerRecord(this.group, this.s), chunks };
  }

  /** Wipes every key held in memory; the tree is unusable afterwards. */
  destroy(): void {
    this.s.keys.fill(0);
    this.s.size = 0;
    this.s.leafOf.clear();
  }
}
