/**
 * The stored form of a {@link KeyTree} (docs/keys.md §Storage): JSON records
 * for the admin's key–value store, compact and incremental.
 *
 * - one header record: `{kind, v, group, epoch, height, size}`;
 * - one record per chunk of {@link CHUNK_POSITIONS} in-order positions
 *   (= 128 leaves and the 128 inner nodes between them): the chunk's keys as
 *   one base64url string (32 bytes per position, zero for an empty node) and
 *   its leaves' member ids (`""` for a free leaf). A chunk with no member and
 *   no key is not stored at all.
 *
 * A join or a removal touches the chunks on a few paths, so
 * {@link KeyTree.takeChanges} yields a handful of ~15 KB records instead of
 * the whole tree (≈ 7.8 MB at 2^16 members). Replaced keys are overwritten
 * in the rewritten chunk, so they leave the store with the next write.
 *
 * Loading checks everything: kind, version, group, lengths, member ids
 * (valid, unique), and that exactly the nodes above members hold keys.
 */
import { KeyTreeError, MAX_EPOCH, MAX_HEIGHT, NODE_KEY_LEN, allZero } from './keytree-crypto.js';

export const KEYTREE_RECORD_KIND = 'supernet-keytree';
export const KEYTREE_RECORD_VERSION = 1;
/** In-order positions per stored chunk (a power of two, so chunks align with subtrees). */
export const CHUNK_POSITIONS = 256;
/** Member ids are opaque strings (the admin uses identity fingerprints). */
export const MEMBER_ID_MAX = 128;

/** In-order position of node (level, index): index·2^(level+1) + 2^level − 1. */
export function nodePos(level: number, index: number): number {
  // Positions stay below 2^(MAX_HEIGHT + 1), so 32-bit shifts are exact.
  return (index << (level + 1)) + (1 << level) - 1;
}

/** Checks a member id: 1 to {@link MEMBER_ID_MAX} characters, no NUL. */
export function checkMemberId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MEMBER_ID_MAX || id.includes('\0'))
    throw new KeyTreeError('bad_member', `member id must be 1 to ${MEMBER_ID_MAX} characters`);
  return id;
}

/** Header record of a stored tree. */
export interface KeyTreeHeaderRecord {
  kind: typeof KEYTREE_RECORD_KIND;
  v: typeof KEYTREE_RECORD_VERSION;
  /** Group id, hex. */
  group: string;
  epoch: number;
  height: number;
  size: number;
}

/** One chunk: positions `index·256 …`, i.e. leaves `index·128 …`. */
export interface KeyTreeChunkRecord {
  /** base64url of 32 bytes per position present in the chunk. */
  keys: string;
  /** Member id per leaf of the chunk, `""` for a free leaf. */
  members: string[];
}

/** What changed since the last {@link KeyTree.takeChanges}: `null` chunk = delete it. */
export interface KeyTreeChanges {
  /** The new header, or null if nothing changed. */
  header: KeyTreeHeaderRecord | null;
  chunks: Array<[number, KeyTreeChunkRecord | null]>;
}

/**
 * Member id → leaf, sharded over {@link MEMBER_SHARDS} Maps. One Map of 2^20
 * churning entries stalls for a whole-table rehash (hundreds of ms) every so
 * often; shards keep each rehash, and so the worst join or leave, small.
 */
export const MEMBER_SHARDS = 256;
export class MemberIndex {
  private readonly shards: Array<Map<string, number>> = Array.from(
    { length: MEMBER_SHARDS },
    () => new Map<string, number>(),
  );
  private count = 0;

  private shard(id: string): Map<string, number> {
    // FNV-1a over the last 8 UTF-16 code units (ids are fingerprints: their
    // tail is as random as the rest; a crafted set of ids can only make the
    // index as slow as one Map).
    let h = 0x811c9dc5 | 0;
    for (let i = Math.max(0, id.length - 8); i < id.length; i++)
      h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
    return this.shards[(h >>> 0) % MEMBER_SHARDS];
  }
  get size(): number {
    return this.count;
  }
  has(id: string): boolean {
    return this.shard(id).has(id);
  }
  get(id: string): number | undefined {
    return this.shard(id).get(id);
  }
  set(id: string, leaf: number): void {
    const m = this.shard(id);
    if (!m.has(id)) this.count++;
    m.set(id, leaf);
  }
  delete(id: string): void {
    if (this.shard(id).delete(id)) this.count--;
  }
  clear(): void {
    for (const m of this.shards) m.clear();
    this.count = 0;
  }
}

/** The in-memory arrays of a tree (owned by KeyTree). */
export interface TreeState {
  epoch: number;
  height: number;
  size: number;
  /** 32 bytes per in-order position. */
  keys: Buffer;
  /** Members below each position. */
  counts: Uint32Array;
  /** Member id per leaf, '' when free. */
  leafMember: string[];
  leafOf: MemberIndex;
}

/** Positions present in chunk `c` of a tree with `n` positions. */
function chunkSpan(n: number, c: number): number {
  return Math.max(0, Math.min(CHUNK_POSITIONS, n - c * CHUNK_POSITIONS));
}

export function headerRecord(group: Uint8Array, s: TreeState): KeyTreeHeaderRecord {
  return {
    kind: KEYTREE_RECORD_KIND,
    v: KEYTREE_RECORD_VERSION,
    group: Buffer.from(group).toString('hex'),
    epoch: s.epoch,
    height: s.height,
    size: s.size,
  };
}

/** The record of chunk `c`, or null when it holds nothing (or lies past the tree). */
export function chunkRecord(s: TreeState, c: number): KeyTreeChunkRecord | null {
  const span = chunkSpan(s.counts.length, c);
  if (span === 0) return null;
  const first = c * CHUNK_POSITIONS;
  const keys = s.keys.subarray(first * NODE_KEY_LEN, (first + span) * NODE_KEY_LEN);
  const members = s.leafMember.slice(first / 2, first / 2 + Math.ceil(span / 2));
  if (allZero(keys) && members.every((m) => m === '')) return null;
  return { keys: keys.toString('base64url'), members };
}

const bad = (what: string): KeyTreeError =>
  new KeyTreeError('bad_record', `stored key tree: ${what}`);

const isCount = (x: unknown, max: number): x is number =>
  typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;

/** Rebuilds and checks a tree's arrays from its records. */
export function loadTreeState(
  group: Uint8Array,
  header: KeyTreeHeaderRecord,
  chunk: (index: number) => KeyTreeChunkRecord | undefined,
): TreeState {
  if (typeof header !== 'object' || header === null) throw bad('header is not an object');
  if (header.kind !== KEYTREE_RECORD_KIND || header.v !== KEYTREE_RECORD_VERSION)
    throw bad(`not a ${KEYTREE_RECORD_KIND} v${KEYTREE_RECORD_VERSION} record`);
  if (header.group !== Buffer.from(group).toString('hex')) throw bad('belongs to another group');
  if (!isCount(header.epoch, MAX_EPOCH)) throw bad('epoch');
  if (!isCount(header.height, MAX_HEIGHT)) throw bad('height');
  const h = header.height;
  if (!isCount(header.size, 2 ** h)) throw bad('size');
  if (header.size === 0 && h !== 0) throw bad('an empty tree has height 0');
  if (header.epoch === 0 && header.size !== 0) throw bad('members before the first epoch');
  const n = 2 ** (h + 1) - 1;
  const keys = Buffer.alloc(n * NODE_KEY_LEN);
  const counts = new Uint32Array(n);
  const leafMember: string[] = new Array<string>(2 ** h).fill('');
  const leafOf = new MemberIndex();
  const nChunks = Math.ceil(n / CHUNK_POSITIONS);
  for (let c = 0; c < nChunks; c++) {
    const r = chunk(c);
    if (r === undefined || r === null) continue;
    const span = chunkSpan(n, c);
    if (typeof r.keys !== 'string' || !/^[A-Za-z0-9_-]*$/.test(r.keys))
      throw bad(`chunk ${c} keys`);
    const kb = Buffer.from(r.keys, 'base64url');
    if (kb.length !== span * NODE_KEY_LEN) throw bad(`chunk ${c} keys length`);
    kb.copy(keys, c * CHUNK_POSITIONS * NODE_KEY_LEN);
    kb.fill(0);
    if (!Array.isArray(r.members) || r.members.length !== Math.ceil(span / 2))
      throw bad(`chunk ${c} members`);
    for (let i = 0; i < r.members.length; i++) {
      const id = r.members[i];
      if (id === '') continue;
      try {
        checkMemberId(id);
      } catch {
        throw bad(`chunk ${c} member ${i}`);
      }
      const leaf = (c * CHUNK_POSITIONS) / 2 + i;
      if (leafOf.has(id)) throw bad(`member ${id} appears twice`);
      leafOf.set(id, leaf);
      leafMember[leaf] = id;
      for (let l = 0; l <= h; l++) counts[nodePos(l, leaf >>> l)]++;
    }
  }
  if (leafOf.size !== header.size) throw bad(`size ${header.size} but ${leafOf.size} members`);
  for (let p = 0; p < n; p++) {
    const zero = allZero(keys.subarray(p * NODE_KEY_LEN, (p + 1) * NODE_KEY_LEN));
    if (zero !== (counts[p] === 0)) {
      keys.fill(0);
      throw bad(`position ${p} ${zero ? 'lacks a key' : 'holds a key but no member'}`);
    }
  }
  return { epoch: header.epoch, height: h, size: header.size, keys, counts, leafMember, leafOf };
}
