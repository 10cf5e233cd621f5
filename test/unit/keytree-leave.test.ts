/**
 * Acceptance 2 of the group key issue: a rekey message after a leave (or a
 * batch of expels) contains no sealed key that the leavers' key set opens —
 * tried by brute force, every entry against every key they ever held and
 * everything one public step away from those. Also the size bounds: a single
 * leave from 2^k members seals exactly 2k − 1 keys; a join broadcasts none.
 */
import { describe, it, expect, beforeAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { KeyTree } from '../../admin/keytree.js';
import { MemberKeyState } from '../../admin/keytree-member.js';
import {
  ENTRY_NONCE_LEN,
  NODE_KEY_LEN,
  channelGroupId,
  forwardKey,
  growKey,
  kekOf,
  openEntry,
} from '../../admin/keytree-crypto.js';
import {
  ENTRY_AAD_LEN,
  TYPE_REKEY,
  decodeMessage,
  entryAad,
  entryNonce,
  joinLen,
  type RekeyMessage,
} from '../../admin/keytree-wire.js';

const admin = Identity.generate('admin');
const group = channelGroupId(Buffer.from('00000000000000004711', 'hex'), 0x1);

interface Member {
  id: Identity;
  state: MemberKeyState;
  /** Every path key it ever held, hex. */
  held: Set<string>;
}

/** A group with its members' states, fed every broadcast. */
class Bed {
  readonly tree = KeyTree.create({ group, signer: admin });
  readonly members = new Map<string, Member>();

  join(n: number): Member[] {
    const ids = Array.from({ length: n }, (_, i) => Identity.generate(`m${i}`));
    const { notice } = this.tree.join(ids.map((i) => i.id));
    // A join notice is header, joined leaves, root check and signature: no key bytes.
    expect(notice.length).toBe(joinLen(n));
    this.broadcast(notice);
    const out: Member[] = [];
    for (const id of ids) {
      const state = MemberKeyState.fromWelcome(
        { group, identity: id, adminSign: admin.pub.sign },
        this.tree.welcome(id.id, id.pub.seal),
      );
      const m = { id, state, held: new Set<string>() };
      this.members.set(id.id, m);
      this.record(m);
      out.push(m);
    }
    return out;
  }

  remove(victims: Member[]): { msg: RekeyMessage; entries: number } {
    const r = this.tree.remove(victims.map((v) => v.id.id));
    for (const v of victims) {
      this.members.delete(v.id.id);
      expect(v.state.apply(r.message).kind).toBe('removed');
      expect(v.state.trafficKey()).toBeNull();
    }
    this.broadcast(r.message);
    const msg = decodeMessage(r.message, admin.pub.sign);
    if (msg.type !== TYPE_REKEY) throw new Error('not a rekey message');
    return { msg, entries: r.entries };
  }

  broadcast(bytes: Buffer): void {
    for (const m of this.members.values()) {
      expect(m.state.apply(bytes).kind).toBe('applied');
      this.record(m);
    }
  }

  record(m: Member): void {
    const keys = Buffer.from(
      (JSON.parse(m.state.serialize()) as { keys: string }).keys,
      'base64url',
    );
    for (let o = 0; o < keys.length; o += NODE_KEY_LEN)
      m.held.add(keys.subarray(o, o + NODE_KEY_LEN).toString('hex'));
  }

  pick(n: number, seed: number): Member[] {
    const all = [...this.members.values()];
    const out = new Set<Member>();
    for (let i = 0; out.size < n; i++) out.add(all[(seed * 7919 + i * 104729) % all.length]);
    return [...out];
  }
}

/** Every key in `held`, and everything one forward or grow step from it. */
function keySet(held: Iterable<string>, maxHeight: number): Buffer[] {
  const out: Buffer[] = [];
  for (const h of held) {
    const k = Buffer.from(h, 'hex');
    out.push(k, forwardKey(k));
    for (let l = 0; l <= maxHeight; l++) out.push(growKey(k, l));
  }
  return out;
}

/** Indices of the entries of `msg` that some key in `keys` opens. */
function opened(msg: RekeyMessage, keys: Buffer[]): number[] {
  const hits: number[] = [];
  const keks = keys.map(kekOf);
  msg.entries.forEach((e, i) => {
    const nonce = entryNonce(msg.nonceBase, i, Buffer.alloc(ENTRY_NONCE_LEN));
    const aad = entryAad(msg.headerBytes, e.level, e.index, Buffer.alloc(ENTRY_AAD_LEN));
    if (keks.some((kek) => openEntry(kek, nonce, aad, e.box) !== null)) hits.push(i);
  });
  return hits;
}

describe('rekey after leave', () => {
  let bed: Bed;
  beforeAll(() => {
    // A group with history: growth, holes from earlier leaves, refills.
    bed = new Bed();
    for (let i = 0; i < 6; i++) bed.join(5 + i);
    bed.remove(bed.pick(4, 1));
    bed.join(3);
    bed.remove(bed.pick(2, 2));
    bed.join(1);
  });

  it('holds no sealed key that the leaver opens with anything it ever held', () => {
    for (let round = 0; round < 6; round++) {
      const [leaver] = bed.pick(1, round + 10);
      const stayer = bed.pick(2, round + 20).find((m) => m !== leaver)!;
      const { msg } = bed.remove([leaver]);
      expect(msg.entries.length).toBeGreaterThan(0);
      expect(opened(msg, keySet(leaver.held, bed.tree.height + 1))).toEqual([]);
      // The same test finds the entries meant for a remaining member.
      expect(opened(msg, keySet(stayer.held, bed.tree.height + 1)).length).toBeGreaterThan(0);
      bed.join(1);
    }
  });

  it('holds no sealed key that any of a batch of expelled members opens', () => {
    const gone = bed.pick(5, 99);
    const pooled = new Set<string>();
    for (const g of gone) for (const k of g.held) pooled.add(k);
    const { msg } = bed.remove(gone);
    expect(msg.removed.length).toBe(5);
    expect(opened(msg, keySet(pooled, bed.tree.height + 1))).toEqual([]);
    // Every remaining member is on the new key.
    const tk = bed.tree.trafficKey().toString('hex');
    for (const m of bed.members.values()) expect(m.state.trafficKey()!.toString('hex')).toBe(tk);
  });

  it('seals exactly 2·log2(n) − 1 keys for one leave from a full tree of n = 2^k', () => {
    for (let k = 1; k <= 8; k++) {
      const b = new Bed();
      b.join(2 ** k);
      expect(b.tree.height).toBe(k);
      // Any leaf but the last keeps the tree's shape (the last one, at n = 2,
      // shrinks it to one member and seals nothing).
      const all = [...b.members.values()];
      const victim = all[(k * 37) % (all.length - 1)];
      const { entries, msg } = b.remove([victim]);
      expect(entries).toBe(2 * k - 1);
      expect(msg.entries.length).toBe(2 * k - 1);
    }
  });

  it('batches several removals into one message smaller than separate ones', () => {
    const b = new Bed();
    b.join(64);
    const victims = b.pick(4, 3);
    const { msg } = b.remove(victims);
    expect(msg.entries.length).toBeLessThan(4 * (2 * 6 - 1));
    expect(b.tree.size).toBe(60);
  });

  it('shrinks the tree when the right half empties, and members follow', () => {
    const b = new Bed();
    const ms = b.join(9); // height 4, leaf 8 alone on the right
    expect(b.tree.height).toBe(4);
    const { msg } = b.remove([ms[8]]);
    expect(msg.height).toBe(3);
    expect(msg.entries.length).toBe(0); // the new root was never known to the leaver
    for (const m of b.members.values()) expect(m.state.height).toBe(3);
    b.remove(ms.slice(1, 8));
    expect(b.tree.height).toBe(0);
    const [last] = [...b.members.values()];
    expect(last.state.trafficKey()!.equals(b.tree.trafficKey())).toBe(true);
    const { msg: end } = b.remove([last]);
    expect(end.flags & 1).toBe(1);
    expect(b.tree.size).toBe(0);
    expect(() => b.tree.trafficKey()).toThrow(/no members/);
  });
});
