/**
 * A copy-on-write radix tree of {@link Ref}s: file data (leaf i = chunk i of
 * an inode) and the inode table (leaf i = inode page i) are both one. Depth 0
 * means the root is leaf 0 itself (a small file costs one object); each level
 * multiplies the capacity by {@link FANOUT}. Holes are null refs, so huge
 * sparse files and huge truncates cost nothing. Changes stay in memory until
 * {@link RefTree.commit} writes the dirty nodes bottom-up under fresh ids; the
 * replaced objects are handed to the host as garbage, deleted only after the
 * superblock that no longer needs them is durable.
 */
import { type Binding, type Ref, REF_LEN, readRef, writeRef } from './format.js';

export const FANOUT = 1024;
const COUNT_LEN = 4;

/** What a tree needs from the volume: verified loads, sealed writes, garbage. */
export interface TreeHost {
  loadNode(ref: Ref, b: Binding): Promise<Buffer>;
  /** Seals a node as a new object (its put may still be in flight). */
  writeNode(payload: Buffer, b: Binding): Ref;
  garbage(ref: Ref): void;
}

interface TreeNode {
  refs: Array<Ref | null>;
  dirty: boolean;
  /** The stored object this node was loaded from (null for new nodes). */
  stored: Ref | null;
}

export function encodeNode(refs: Array<Ref | null>): Buffer {
  let n = refs.length;
  while (n > 0 && !refs[n - 1]) n--;
  const b = Buffer.alloc(COUNT_LEN + n * REF_LEN);
  b.writeUInt32BE(n, 0);
  for (let i = 0; i < n; i++) writeRef(b, COUNT_LEN + i * REF_LEN, refs[i] ?? null);
  return b;
}

export function decodeNode(b: Buffer): Array<Ref | null> {
  const n = b.length >= COUNT_LEN ? b.readUInt32BE(0) : -1;
  if (n < 0 || n > FANOUT || b.length !== COUNT_LEN + n * REF_LEN)
    throw new Error('malformed tree node');
  const refs: Array<Ref | null> = new Array(n);
  for (let i = 0; i < n; i++) refs[i] = readRef(b, COUNT_LEN + i * REF_LEN);
  return refs;
}

const cap = (depth: number): number => FANOUT ** depth;

export class RefTree {
  private nodes = new Map<string, TreeNode>();
  private loading = new Map<string, Promise<TreeNode | null>>();
  /** True when something changed since the last commit. */
  changed = false;

  /**
   * @param owner inode number (0 = inode table), part of every node's binding
   * @param depth levels of nodes above the leaves
   * @param root stored ref of the top node (depth ≥ 1) or of leaf 0 (depth 0)
   */
  constructor(
    readonly owner: number,
    private host: TreeHost,
    public depth: number,
    public root: Ref | null,
  ) {}

  private key(level: number, index: number): string {
    return `${level}:${index}`;
  }

  private async node(level: number, index: number, create: boolean): Promise<TreeNode | null> {
    const k = this.key(level, index);
    const cached = this.nodes.get(k);
    if (cached) return cached;
    const pending = this.loading.get(k);
    if (pending) {
      const n = await pending;
      if (n || !create) return n;
      return this.node(level, index, create);
    }
    const p = (async (): Promise<TreeNode | null> => {
      let stored: Ref | null;
      if (level === this.depth) {
        if (index !== 0) return null;
        stored = this.root;
      } else {
        const parent = await this.node(level + 1, Math.floor(index / FANOUT), create);
        stored = parent ? (parent.refs[index % FANOUT] ?? null) : null;
      }
      const again = this.nodes.get(k);
      if (again) return again;
      if (!stored) {
        if (!create) return null;
        const n: TreeNode = { refs: [], dirty: true, stored: null };
        this.nodes.set(k, n);
        return n;
      }
      const refs = decodeNode(
        await this.host.loadNode(stored, { owner: this.owner, level, index }),
      );
      const n: TreeNode = { refs, dirty: false, stored };
      const raced = this.nodes.get(k);
      if (raced) return raced;
      this.nodes.set(k, n);
      return n;
    })();
    this.loading.set(k, p);
    try {
      return await p;
    } finally {
      this.loading.delete(k);
    }
  }

  /** The ref of leaf `i` (null = hole). */
  async get(i: number): Promise<Ref | null> {
    if (this.depth === 0) return i === 0 ? this.root : null;
    if (i >= cap(this.depth)) return null;
    const n = await this.node(1, Math.floor(i / FANOUT), false);
    return n ? (n.refs[i % FANOUT] ?? null) : null;
  }

  private async grow(): Promise<void> {
    const top: TreeNode = { refs: [], dirty: true, stored: null };
    if (this.depth > 0) {
      // The old top keeps its (level, 0) place; commit links it below the new one.
      await this.node(this.depth, 0, false);
    }
    top.refs[0] = this.root;
    this.depth++;
    this.root = null;
    this.nodes.set(this.key(this.depth, 0), top);
  }

  /** Sets leaf `i` to `ref` (null punches a hole). */
  async set(i: number, ref: Ref | null): Promise<void> {
    if (!ref && i >= cap(this.depth)) return;
    while (i >= cap(this.depth)) await this.grow();
    this.changed = true;
    if (this.depth === 0) {
      this.root = ref;
      return;
    }
    const n = await this.node(1, Math.floor(i / FANOUT), ref !== null);
    if (!n) return;
    n.refs[i % FANOUT] = ref;
    n.dirty = true;
  }

  /** Drops every leaf with index ≥ `n`, handing leaves to `dropLeaf` and nodes to the host as garbage. */
  async truncate(n: number, dropLeaf: (r: Ref) => void): Promise<void> {
    if (this.depth === 0) {
      if (n === 0 && this.root) {
        dropLeaf(this.root);
        this.root = null;
        this.changed = true;
      }
      return;
    }
    if (n >= cap(this.depth)) return;
    await this.truncNode(this.depth, 0, n, dropLeaf);
  }

  private async truncNode(
    level: number,
    index: number,
    n: number,
    dropLeaf: (r: Ref) => void,
  ): Promise<void> {
    const node = await this.node(level, index, false);
    if (!node) return;
    const span = cap(level - 1);
    const base = index * cap(level);
    const slots = Math.max(node.refs.length, level > 1 ? FANOUT : 0);
    for (let s = 0; s < slots; s++) {
      const start = base + s * span;
      const child = index * FANOUT + s;
      if (start >= n) {
        if (level === 1) {
          const r = node.refs[s];
          if (r) {
            dropLeaf(r);
            node.refs[s] = null;
            node.dirty = true;
            this.changed = true;
          }
        } else if (node.refs[s] || this.nodes.has(this.key(level - 1, child))) {
          await this.dropSubtree(level - 1, child, dropLeaf);
          node.refs[s] = null;
          node.dirty = true;
          this.changed = true;
        }
      } else if (start + span > n && level > 1) {
        await this.truncNode(level - 1, child, n, dropLeaf);
      }
    }
  }

  private async dropSubtree(
    level: number,
    index: number,
    dropLeaf: (r: Ref) => void,
  ): Promise<void> {
    const node = await this.node(level, index, false);
    if (!node) return;
    for (let s = 0; s < Math.max(node.refs.length, level > 1 ? FANOUT : 0); s++) {
      if (level === 1) {
        const r = node.refs[s];
        if (r) dropLeaf(r);
      } else if (node.refs[s] || this.nodes.has(this.key(level - 1, index * FANOUT + s))) {
        await this.dropSubtree(level - 1, index * FANOUT + s, dropLeaf);
      }
    }
    if (node.stored) this.host.garbage(node.stored);
    this.nodes.delete(this.key(level, index));
  }

  /** Drops everything (the owner is being deleted). */
  async clear(dropLeaf: (r: Ref) => void): Promise<void> {
    await this.truncate(0, dropLeaf);
    if (this.depth > 0) {
      const top = await this.node(this.depth, 0, false);
      if (top?.stored) this.host.garbage(top.stored);
      this.nodes.delete(this.key(this.depth, 0));
    }
    this.depth = 0;
    this.root = null;
    this.changed = true;
  }

  /** Visits every stored leaf ref (and, with `onNode`, every node ref), loading nodes as needed. */
  async walk(
    onLeaf: (r: Ref, i: number) => void | Promise<void>,
    onNode?: (r: Ref, level: number, index: number) => void,
  ): Promise<void> {
    if (this.depth === 0) {
      if (this.root) await onLeaf(this.root, 0);
      return;
    }
    const visit = async (level: number, index: number): Promise<void> => {
      const node = await this.node(level, index, false);
      if (!node) return;
      if (node.stored && onNode) onNode(node.stored, level, index);
      for (let s = 0; s < node.refs.length; s++) {
        const r = node.refs[s];
        if (level === 1) {
          if (r) await onLeaf(r, index * FANOUT + s);
        } else if (r || this.nodes.has(this.key(level - 1, index * FANOUT + s))) {
          await visit(level - 1, index * FANOUT + s);
        }
      }
    };
    await visit(this.depth, 0);
  }

  /** Marks every node dirty so the next commit rewrites it (rekey). */
  async touchAll(): Promise<void> {
    await this.walk(
      () => {},
      () => {},
    );
    for (const n of this.nodes.values()) n.dirty = true;
    if (this.depth > 0) this.changed = true;
  }

  /** True if a stored node (not leaf) of this tree is sealed under an epoch other than `epoch`. */
  async hasNodeOutside(epoch: number): Promise<boolean> {
    let found = false;
    if (this.depth === 0) return false;
    await this.walk(
      () => {},
      (r) => {
        if (r.epoch !== epoch) found = true;
      },
    );
    return found;
  }

  /** Writes dirty nodes bottom-up; afterwards `root`/`depth` describe the stored tree. */
  async commit(): Promise<void> {
    if (this.depth === 0) {
      this.changed = false;
      return;
    }
    for (let level = 1; level <= this.depth; level++) {
      for (const [k, node] of this.nodes) {
        const [l, i] = k.split(':').map(Number) as [number, number];
        if (l !== level || !node.dirty) continue;
        const empty = !node.refs.some((r) => r);
        let ref: Ref | null = null;
        if (!empty)
          ref = this.host.writeNode(encodeNode(node.refs), {
            owner: this.owner,
            level,
            index: i,
          });
        if (node.stored) this.host.garbage(node.stored);
        node.stored = ref;
        node.dirty = false;
        if (level === this.depth) {
          this.root = ref;
        } else {
          const parent = await this.node(level + 1, Math.floor(i / FANOUT), true);
          parent!.refs[i % FANOUT] = ref;
          parent!.dirty = true;
        }
        if (empty) this.nodes.delete(k);
      }
    }
    this.changed = false;
  }

  /** Forgets cached clean nodes (they reload, verified, on demand). */
  dropClean(): void {
    if (this.changed) return;
    for (const [k, n] of this.nodes) if (!n.dirty) this.nodes.delete(k);
  }
}
