/**
 * The tree scheme's state against its store (admin/keys-tree.ts; docs/keys.md
 * §6): chunks are sealed at rest to the admin identity, and the in-memory tree
 * follows the store when a transaction is undone (it never runs ahead of it).
 */
import { describe, it, expect } from '@jest/globals';
import { Identity, fingerprint } from '../../admin/identity.js';
import { TreeKeyScheme } from '../../admin/keys-tree.js';
import type { KeyMember } from '../../admin/keys.js';
import { ManualClock } from '../../admin/clock.js';
import { MemoryLogger } from '../../admin/logger.js';
import { MemoryStore } from '../../admin/store.js';

const SN = '0x4711';
const CH = '0x01';

function member(name: string): KeyMember {
  const id = Identity.generate(name);
  return { name, id: fingerprint(id.pub), seal: id.pub.seal };
}

async function setUp(admin: Identity) {
  const store = new MemoryStore();
  const logger = new MemoryLogger();
  const scheme = new TreeKeyScheme(admin, new ManualClock(), 1000, logger);
  await store.write((tx) => scheme.onCreate(tx, SN, CH));
  const ms = ['a1', 'b1', 'c1'].map(member);
  for (const m of ms) await store.write((tx) => scheme.onJoin(tx, SN, CH, m));
  return { store, scheme, logger, ms };
}

describe('key-tree scheme and its store', () => {
  it('an undone transaction leaves no trace in the in-memory tree', async () => {
    const admin = Identity.generate('admin');
    const { store, scheme, logger, ms } = await setUp(admin);
    expect(await store.read((tx) => scheme.describe(tx, SN, CH)?.epoch)).toBe(3);

    // The removal runs, then the transaction fails: the store undoes it.
    await expect(
      store.write((tx) => {
        scheme.onLeave(tx, SN, CH, 'c1');
        throw new Error('injected store failure');
      }),
    ).rejects.toThrow('injected store failure');
    // The scheme follows the store: c1 is still a member, epoch 3.
    expect(await store.read((tx) => scheme.members(tx, SN, CH).sort())).toEqual(['a1', 'b1', 'c1']);
    expect(await store.read((tx) => scheme.describe(tx, SN, CH)?.epoch)).toBe(3);
    expect(logger.records.some((e) => e.msg.includes('cache differs from the store'))).toBe(true);

    // The next change starts from the stored epoch (4, not 5), and a service
    // restarted on the same store agrees with the running one.
    const d = member('d1');
    expect(await store.write((tx) => scheme.onJoin(tx, SN, CH, d))).toBe(4);
    const again = new TreeKeyScheme(admin, new ManualClock(), 1000);
    const welcome = (s: TreeKeyScheme) =>
      store.read((tx) => s.materialFor(tx, SN, CH, ms[0]!, true));
    const [w1, w2] = [await welcome(scheme), await welcome(again)];
    expect(w1?.epoch).toBe(4);
    expect(w2?.epoch).toBe(4);
    expect(w2?.messages).toEqual(w1?.messages);
  });

  it('stores the chunks sealed to the admin identity; another identity cannot load them', async () => {
    const admin = Identity.generate('admin');
    const { store, scheme } = await setUp(admin);
    const chunks = await store.read((tx) =>
      tx.list<Record<string, unknown>>('keys', `keytree|${SN}|${CH}|`),
    );
    expect(chunks.length).toBeGreaterThan(0);
    for (const [, rec] of chunks) {
      expect(rec.keys).toBeUndefined(); // no plain keys at rest
      expect(typeof rec.box).toBe('string');
    }
    // The same admin after a restart opens them and serves the same state.
    const again = new TreeKeyScheme(admin, new ManualClock(), 1000);
    expect(await store.read((tx) => again.members(tx, SN, CH).sort())).toEqual(
      await store.read((tx) => scheme.members(tx, SN, CH).sort()),
    );
    // A database copied away from the admin identity yields nothing.
    const thief = new TreeKeyScheme(Identity.generate('thief'), new ManualClock(), 1000);
    await expect(store.read((tx) => thief.members(tx, SN, CH))).rejects.toThrow();
  });
});
