/**
 * The member side (admin/keytree-member.ts): message order, gap and stale
 * detection, resynchronisation, the previous epochs kept for the grace
 * period, speculation over missed joins, refusal of foreign or forged input,
 * and its stored form.
 */
import { describe, it, expect, beforeEach } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { KeyTree } from '../../admin/keytree.js';
import { MemberKeyState, MAX_SPECULATE } from '../../admin/keytree-member.js';
import { KeyTreeError, channelGroupId, storageGroupId } from '../../admin/keytree-crypto.js';
import { decodeMessage } from '../../admin/keytree-wire.js';
import { MemoryLogger } from '../../admin/logger.js';

const admin = Identity.generate('admin');
const group = channelGroupId(Buffer.from('0000000000000000beef', 'hex'), 7);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof KeyTreeError) return err.code;
    throw err;
  }
  return 'no error';
}

describe('member key state', () => {
  let tree: KeyTree;
  let alice: Identity;
  let a: MemberKeyState;
  const opts = (id: Identity, extra = {}) => ({
    group,
    identity: id,
    adminSign: admin.pub.sign,
    ...extra,
  });
  const joinOne = (): { id: Identity; notice: Buffer } => {
    const id = Identity.generate('x');
    return { id, notice: tree.join([id.id]).notice };
  };

  beforeEach(() => {
    tree = KeyTree.create({ group, signer: admin });
    alice = Identity.generate('alice');
    tree.join([alice.id]);
    a = MemberKeyState.fromWelcome(opts(alice), tree.welcome(alice.id, alice.pub.seal));
  });

  it('follows joins and leaves in order and ignores duplicates and late copies', () => {
    const n1 = joinOne();
    expect(a.apply(n1.notice)).toEqual({ kind: 'applied', epoch: 2 });
    expect(a.apply(n1.notice)).toEqual({ kind: 'old', epoch: 2 });
    const r = tree.remove([n1.id.id]);
    expect(a.apply(r.message)).toEqual({ kind: 'applied', epoch: 3 });
    expect(a.trafficKey()!.equals(tree.trafficKey())).toBe(true);
    expect(a.apply(n1.notice)).toEqual({ kind: 'old', epoch: 2 });
  });

  it('detects a gap, keeps its state, and resynchronises from a welcome', () => {
    const log = new MemoryLogger();
    a = MemberKeyState.fromWelcome(
      opts(alice, { logger: log }),
      tree.welcome(alice.id, alice.pub.seal),
    );
    joinOne(); // missed
    const n3 = joinOne();
    expect(a.apply(n3.notice)).toEqual({ kind: 'resync', reason: 'gap', epoch: 3 });
    expect(a.needsResync).toBe(true);
    expect(a.epoch).toBe(1);
    expect(log.records.some((r) => r.level === 'warn' && r.fields?.reason === 'gap')).toBe(true);
    expect(a.apply(tree.welcome(alice.id, alice.pub.seal))).toEqual({ kind: 'applied', epoch: 3 });
    expect(a.needsResync).toBe(false);
    expect(a.trafficKey()!.equals(tree.trafficKey())).toBe(true);
  });

  it('notices a newer epoch on the wire and guesses the key of missed joins', () => {
    const before = a.epoch;
    for (let i = 0; i < 3; i++) joinOne(); // all missed (the tree grows twice meanwhile)
    expect(a.noteEpoch(before)).toBe(false);
    expect(a.noteEpoch(tree.epoch)).toBe(true);
    expect(a.needsResync).toBe(true);
    expect(a.speculativeKey(tree.epoch)!.equals(tree.trafficKey())).toBe(true);
    // After a missed leave the guess is wrong (and the packet's AEAD says so).
    const gone = Identity.generate('gone');
    tree.join([gone.id]);
    tree.remove([gone.id]);
    expect(a.speculativeKey(tree.epoch)!.equals(tree.trafficKey())).toBe(false);
    expect(a.speculativeKey(a.epoch + MAX_SPECULATE + 1)).toBeNull();
  });

  it('reports a stale state when its keys do not fit, without changing it', () => {
    const b = Identity.generate('bob');
    tree.join([b.id]);
    const bs = MemberKeyState.fromWelcome(opts(b), tree.welcome(b.id, b.pub.seal));
    const saved = JSON.parse(bs.serialize()) as { keys: string };
    // Damage bob's root key in a copy restored from his own stored form.
    const keys = Buffer.from(saved.keys, 'base64url');
    keys[keys.length - 1] ^= 1;
    const damaged = MemberKeyState.restore(
      opts(b),
      JSON.stringify({ ...saved, keys: keys.toString('base64url') }),
    );
    const { notice } = joinOne();
    expect(damaged.apply(notice)).toEqual({ kind: 'resync', reason: 'stale', epoch: 3 });
    expect(damaged.epoch).toBe(2);
    expect(bs.apply(notice).kind).toBe('applied');
    // A damaged leaf key is caught by the rekey entry that does not open.
    const leafKeys = Buffer.from(saved.keys, 'base64url');
    leafKeys[0] ^= 1;
    const damagedLeaf = MemberKeyState.restore(
      opts(b),
      JSON.stringify({ ...saved, keys: leafKeys.toString('base64url') }),
    );
    expect(damagedLeaf.apply(notice).kind).toBe('applied'); // joins do not touch the leaf key
    const r = tree.remove([alice.id]);
    expect(damagedLeaf.apply(r.message)).toEqual({ kind: 'resync', reason: 'stale', epoch: 4 });
    expect(bs.apply(r.message).kind).toBe('applied');
  });

  it('keeps previous epochs for the grace period and forgets them on request', () => {
    const s = MemberKeyState.fromWelcome(
      opts(alice, { keepPrevious: 1 }),
      tree.welcome(alice.id, alice.pub.seal),
    );
    const e1 = s.trafficKey()!;
    s.apply(joinOne().notice);
    expect(s.heldEpochs()).toEqual([2, 1]);
    expect(s.trafficKey(1)!.equals(e1)).toBe(true);
    s.apply(joinOne().notice);
    expect(s.heldEpochs()).toEqual([3, 2]);
    expect(s.trafficKey(1)).toBeNull();
    s.forgetBefore(3);
    expect(s.heldEpochs()).toEqual([3]);
  });

  it('is told of its own removal and wipes its keys; only a later welcome revives it', () => {
    const r = tree.remove([alice.id]);
    const oldWelcome = (() => {
      tree.join([alice.id]);
      return tree.welcome(alice.id, alice.pub.seal);
    })();
    expect(a.apply(r.message)).toEqual({ kind: 'removed', epoch: 2 });
    expect(a.status).toBe('removed');
    expect(a.trafficKey(1)).toBeNull();
    expect(a.speculativeKey(3)).toBeNull();
    expect(code(() => a.serialize())).toBe('empty');
    // Re-admitted at epoch 3: the welcome of that admission brings it back.
    expect(a.apply(oldWelcome)).toEqual({ kind: 'applied', epoch: 3 });
    expect(a.trafficKey()!.equals(tree.trafficKey())).toBe(true);
  });

  it('refuses forged, foreign and misaddressed messages', () => {
    const impostor = Identity.generate('impostor');
    const fake = KeyTree.create({ group, signer: impostor });
    fake.join([alice.id, 'x']);
    expect(code(() => a.apply(fake.join(['y']).notice))).toBe('bad_signature');
    // Verified with another key: not accepted as decoded either.
    const decodedByOther = decodeMessage(fake.join(['z']).notice, impostor.pub.sign);
    expect(code(() => a.apply(decodedByOther))).toBe('bad_signature');
    const otherGroup = KeyTree.create({
      group: storageGroupId(Buffer.from('0000000000000000beef', 'hex'), 7),
      signer: admin,
    });
    otherGroup.join([alice.id]);
    expect(code(() => a.apply(otherGroup.join(['q']).notice))).toBe('wrong_group');
    // A welcome sealed to someone else does not open.
    const bob = Identity.generate('bob');
    tree.join([bob.id]);
    expect(code(() => a.apply(tree.welcome(bob.id, bob.pub.seal)))).toBe('sealed_box');
    expect(code(() => a.apply(Buffer.alloc(3)))).toBe('malformed');
  });

  it('round-trips through its stored form', () => {
    a.apply(joinOne().notice);
    const text = a.serialize();
    const b = MemberKeyState.restore(opts(alice), text);
    expect(b.epoch).toBe(a.epoch);
    expect(b.heldEpochs()).toEqual(a.heldEpochs());
    const n = joinOne().notice;
    a.apply(n);
    expect(b.apply(n).kind).toBe('applied');
    expect(b.trafficKey()!.equals(a.trafficKey()!)).toBe(true);
    expect(code(() => MemberKeyState.restore(opts(alice), '{'))).toBe('bad_record');
    const other = { ...JSON.parse(text), group: '00'.repeat(16) };
    expect(code(() => MemberKeyState.restore(opts(alice), JSON.stringify(other)))).toBe(
      'bad_record',
    );
  });
});
