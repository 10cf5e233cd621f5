/**
 * The key tree's stored form (admin/keytree-store.ts) and its API errors:
 * changes are incremental (a leave rewrites a few chunks, not the tree), a
 * store kept up to date from takeChanges reloads to the same tree, replaced
 * keys leave the stored chunks, and damaged records are refused.
 */
import { describe, it, expect } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { KeyTree, nodePos } from '../../admin/keytree.js';
import {
  KeyTreeError,
  NODE_KEY_LEN,
  channelGroupId,
  storageGroupId,
} from '../../admin/keytree-crypto.js';
import type { KeyTreeChunkRecord, KeyTreeHeaderRecord } from '../../admin/keytree-store.js';

const admin = Identity.generate('admin');
const group = channelGroupId(Buffer.from('000000000000000000aa', 'hex'), 3);
const opts = { group, signer: admin };

/** A key–value store fed from takeChanges, as the admin's store would be. */
class Records {
  header: KeyTreeHeaderRecord | undefined;
  readonly chunks = new Map<number, KeyTreeChunkRecord>();
  writes = 0;
  take(tree: KeyTree): void {
    const ch = tree.takeChanges();
    if (ch.header) this.header = ch.header;
    for (const [i, c] of ch.chunks) {
      this.writes++;
      if (c) this.chunks.set(i, JSON.parse(JSON.stringify(c)) as KeyTreeChunkRecord);
      else this.chunks.delete(i);
    }
  }
  load(): KeyTree {
    return KeyTree.fromRecords(opts, this.header!, (i) => this.chunks.get(i));
  }
}

const ids = (n: number, from = 0): string[] =>
  Array.from({ length: n }, (_, i) => `node-${from + i}`);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof KeyTreeError) return err.code;
    throw err;
  }
  return 'no error';
}

describe('key tree store form', () => {
  it('writes only the chunks an operation touched', () => {
    const tree = KeyTree.create(opts);
    const rec = new Records();
    tree.join(ids(4096));
    rec.take(tree);
    const total = rec.chunks.size;
    expect(total).toBe(Math.ceil((2 * 4096 - 1) / 256));
    rec.writes = 0;
    tree.remove(['node-1234']);
    rec.take(tree);
    // The leaf's chunk and the chunks holding its ancestors above level 7.
    expect(rec.writes).toBeGreaterThan(0);
    expect(rec.writes).toBeLessThanOrEqual(1 + (tree.height - 7));
    rec.writes = 0;
    tree.join(['late']);
    rec.take(tree);
    expect(rec.writes).toBeLessThanOrEqual(1 + (tree.height - 7));
    expect(JSON.stringify(rec.load().toRecords())).toBe(JSON.stringify(tree.toRecords()));
  });

  it('reloads to the same tree across growth, shrinking and emptying', () => {
    const tree = KeyTree.create(opts);
    const rec = new Records();
    rec.take(tree);
    tree.join(ids(3));
    rec.take(tree);
    tree.join(ids(300, 3)); // grows across several chunks
    rec.take(tree);
    tree.remove(ids(200, 103)); // empties the right half: shrinks
    rec.take(tree);
    expect(tree.height).toBe(7);
    expect(rec.chunks.size).toBe(1);
    const again = rec.load();
    expect(JSON.stringify(again.toRecords())).toBe(JSON.stringify(tree.toRecords()));
    expect(again.trafficKey().equals(tree.trafficKey())).toBe(true);
    // The reloaded tree carries on exactly like the original.
    const m = Identity.generate('m');
    tree.join([m.id]);
    again.join([m.id]);
    expect(again.leafOf(m.id)).toBe(tree.leafOf(m.id));
    tree.remove(ids(103));
    rec.take(tree);
    expect(tree.size).toBe(1);
    tree.remove([m.id]);
    rec.take(tree);
    expect(rec.chunks.size).toBe(0);
    expect(rec.header!.size).toBe(0);
    expect(rec.load().size).toBe(0);
  });

  it('drops replaced keys from the stored chunks', () => {
    const tree = KeyTree.create(opts);
    const rec = new Records();
    tree.join(ids(16));
    rec.take(tree);
    const before = new Set<string>();
    for (const c of rec.chunks.values()) {
      const kb = Buffer.from(c.keys, 'base64url');
      for (let o = 0; o < kb.length; o += NODE_KEY_LEN)
        before.add(kb.subarray(o, o + NODE_KEY_LEN).toString('hex'));
    }
    const rootPos = nodePos(tree.height, 0);
    const chunk0 = Buffer.from(rec.chunks.get(0)!.keys, 'base64url');
    const oldRoot = chunk0
      .subarray(rootPos * NODE_KEY_LEN, (rootPos + 1) * NODE_KEY_LEN)
      .toString('hex');
    tree.remove(['node-5']);
    rec.take(tree);
    const after = Buffer.from(rec.chunks.get(0)!.keys, 'base64url').toString('hex');
    expect(after.includes(oldRoot)).toBe(false);
    expect(before.has(oldRoot)).toBe(true);
  });

  it('refuses damaged records', () => {
    const tree = KeyTree.create(opts);
    const rec = new Records();
    tree.join(ids(10));
    rec.take(tree);
    const h = rec.header!;
    const c0 = rec.chunks.get(0)!;
    const load = (header: unknown, chunk: unknown) =>
      code(() =>
        KeyTree.fromRecords(opts, header as KeyTreeHeaderRecord, () => chunk as KeyTreeChunkRecord),
      );
    expect(load(h, c0)).toBe('no error');
    expect(load({ ...h, v: 2 }, c0)).toBe('bad_record');
    expect(load({ ...h, size: 11 }, c0)).toBe('bad_record');
    expect(load({ ...h, height: 30 }, c0)).toBe('bad_record');
    expect(load(h, undefined)).toBe('bad_record'); // members missing
    expect(load(h, { ...c0, keys: c0.keys.slice(0, -4) })).toBe('bad_record');
    const dup = [...c0.members];
    dup[9] = dup[0];
    expect(load(h, { ...c0, members: dup })).toBe('bad_record');
    // A key where no member is below (leaf 12 is free), or a missing key.
    const kb = Buffer.from(c0.keys, 'base64url');
    kb[24 * NODE_KEY_LEN] = 1;
    expect(load(h, { ...c0, keys: kb.toString('base64url') })).toBe('bad_record');
    const kz = Buffer.from(c0.keys, 'base64url');
    kz.fill(0, 0, NODE_KEY_LEN);
    expect(load(h, { ...c0, keys: kz.toString('base64url') })).toBe('bad_record');
    const otherGroup = storageGroupId(Buffer.from('000000000000000000aa', 'hex'), 3);
    expect(code(() => KeyTree.fromRecords({ group: otherGroup, signer: admin }, h, () => c0))).toBe(
      'bad_record',
    );
  });

  it('names bad calls', () => {
    const tree = KeyTree.create(opts);
    expect(code(() => tree.trafficKey())).toBe('empty');
    expect(code(() => tree.join([]))).toBe('bad_member');
    expect(code(() => tree.join(['']))).toBe('bad_member');
    expect(code(() => tree.join(['a', 'a']))).toBe('duplicate_member');
    tree.join(['a']);
    expect(code(() => tree.join(['a']))).toBe('duplicate_member');
    expect(code(() => tree.remove(['b']))).toBe('unknown_member');
    expect(code(() => tree.remove(['a', 'a']))).toBe('duplicate_member');
    expect(code(() => tree.welcome('b', admin.pub.seal))).toBe('unknown_member');
    expect(code(() => KeyTree.create({ group: Buffer.alloc(16), signer: admin }))).toBe(
      'malformed',
    );
    expect(tree.epoch).toBe(1);
    // The last epoch: no further operation, and nothing changed by trying.
    const rec = new Records();
    rec.take(tree);
    const last = KeyTree.fromRecords(opts, { ...rec.header!, epoch: 0xffff_ffff }, (i) =>
      rec.chunks.get(i),
    );
    expect(code(() => last.join(['b']))).toBe('capacity');
    expect(code(() => last.remove(['a']))).toBe('capacity');
    expect(last.members()).toEqual(['a']);
    expect(last.has('b')).toBe(false);
  });
});
