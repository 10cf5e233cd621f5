import { describe, it, expect } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { channelKeyContext } from '../../admin/protocol.js';
import { MemoryStore } from '../../admin/store.js';
import { ManualClock } from '../../admin/clock.js';
import {
  FlatKeyScheme,
  MAX_PREVIOUS_EPOCHS,
  type FlatChannelState,
} from '../../admin/keys-flat.js';
import type { KeyMember } from '../../admin/keys.js';

const GRACE = 10_000;
const SID = '0x4711';
const CH = '0x01';

function setup() {
  const admin = Identity.generate();
  const clock = new ManualClock(1_000_000);
  const store = new MemoryStore();
  const scheme = new FlatKeyScheme(admin, clock, GRACE);
  const ids = new Map<string, Identity>();
  const member = (name: string): KeyMember => {
    let id = ids.get(name);
    if (!id) ids.set(name, (id = Identity.generate(name)));
    return { name, id: id.id, seal: id.pub.seal };
  };
  const plain = async (name: string) => {
    const m = member(name);
    const keys = await store.read((tx) => scheme.keysFor(tx, SID, CH, m));
    return keys.map((k) => ({
      epoch: k.epoch,
      acceptUntil: k.acceptUntil,
      key: ids
        .get(name)!
        .open(Buffer.from(k.box, 'base64url'), channelKeyContext(SID, CH, k.epoch, m.id))
        .toString('hex'),
    }));
  };
  return { admin, clock, store, scheme, member, plain };
}

describe('flat channel-key scheme', () => {
  it('numbers epochs from 1; each join and leave starts a new one with a fresh key', async () => {
    const { store, scheme, member, plain, clock } = setup();
    await store.write((tx) => scheme.onCreate(tx, SID, CH));
    expect(await store.read((tx) => scheme.describe(tx, SID, CH))).toEqual({
      epoch: 0,
      startedAt: null,
      members: 0,
      previous: [],
    });
    expect(await store.write((tx) => scheme.onJoin(tx, SID, CH, member('a')))).toBe(1);
    const a1 = await plain('a');
    expect(a1.map((k) => k.epoch)).toEqual([1]);
    clock.advance(100);
    expect(await store.write((tx) => scheme.onJoin(tx, SID, CH, member('b')))).toBe(2);
    const a2 = await plain('a');
    const b2 = await plain('b');
    expect(a2).toEqual([
      { epoch: 2, acceptUntil: undefined, key: b2[0].key },
      { epoch: 1, acceptUntil: 1_000_100 + GRACE, key: a1[0].key },
    ]);
    expect(b2.map((k) => k.epoch)).toEqual([2]); // never the epoch before its join
    expect(b2[0].key).not.toBe(a1[0].key);
    clock.advance(100);
    expect(await store.write((tx) => scheme.onLeave(tx, SID, CH, 'b'))).toBe(3);
    expect(await plain('b')).toEqual([]);
    const a3 = await plain('a');
    expect(a3.map((k) => [k.epoch, k.acceptUntil])).toEqual([
      [3, undefined],
      [2, 1_000_200 + GRACE],
      [1, 1_000_100 + GRACE],
    ]);
    expect(new Set(a3.map((k) => k.key)).size).toBe(3);
    // Leaving twice is not a change.
    expect(await store.write((tx) => scheme.onLeave(tx, SID, CH, 'b'))).toBe(3);
    clock.advance(GRACE - 50); // epoch 1's grace is over, epoch 2's is not
    expect((await plain('a')).map((k) => k.epoch)).toEqual([3, 2]);
    clock.advance(50);
    expect((await plain('a')).map((k) => k.epoch)).toEqual([3]);
  });

  it('keeps at most MAX_PREVIOUS_EPOCHS earlier epochs in a burst', async () => {
    const { store, scheme, member, plain } = setup();
    await store.write((tx) => scheme.onCreate(tx, SID, CH));
    for (const n of ['a', 'b', 'c', 'd', 'e'])
      await store.write((tx) => scheme.onJoin(tx, SID, CH, member(n)));
    expect((await plain('a')).map((k) => k.epoch)).toEqual(
      [5, 4, 3].slice(0, 1 + MAX_PREVIOUS_EPOCHS),
    );
    expect((await plain('d')).map((k) => k.epoch)).toEqual([5, 4]);
  });

  it('stores keys only sealed to the admin, and they survive a new scheme instance (restart)', async () => {
    const { admin, store, scheme, member, plain, clock } = setup();
    await store.write((tx) => scheme.onCreate(tx, SID, CH));
    await store.write((tx) => scheme.onJoin(tx, SID, CH, member('a')));
    const before = await plain('a');
    const state = await store.read((tx) => tx.get<FlatChannelState>('keys', `${SID}|${CH}`)!);
    expect(JSON.stringify(state)).not.toContain(before[0].key);
    expect(Buffer.from(before[0].key, 'hex').toString('base64url')).not.toBe(state.current!.box);
    const fresh = new FlatKeyScheme(admin, clock, GRACE);
    const m = member('a');
    const again = await store.read((tx) => fresh.keysFor(tx, SID, CH, m));
    expect(again[0].epoch).toBe(1);
    // A scheme with another admin identity cannot open them.
    const other = new FlatKeyScheme(Identity.generate(), clock, GRACE);
    await expect(store.read((tx) => other.keysFor(tx, SID, CH, m))).rejects.toThrow();
  });
});
