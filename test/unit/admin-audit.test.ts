import { describe, it, expect } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { MemoryStore } from '../../admin/store.js';
import { ManualClock } from '../../admin/clock.js';
import {
  AuditLog,
  verifyAuditChain,
  auditEntryHash,
  canonicalJson,
  AUDIT_GENESIS,
  type AuditEntry,
} from '../../admin/audit.js';

async function filled(n: number) {
  const admin = Identity.generate();
  const store = new MemoryStore();
  const log = new AuditLog(admin, new ManualClock(1000));
  for (let i = 0; i < n; i++) {
    await store.write((tx) =>
      log.append(tx, {
        action: i % 2 ? 'admit' : 'deny',
        supernet: '0x4711',
        node: `n${i}`,
        identity: 'f'.repeat(32),
        detail: { i, z: 1, a: [1, { y: 2, b: 3 }] },
      }),
    );
  }
  const { entries, head } = await store.read((tx) => ({
    entries: log.since(tx, 0, 1000),
    head: log.head(tx),
  }));
  return { admin, store, log, entries, head };
}

describe('audit log', () => {
  it('chains entries by hash and signs the head', async () => {
    const { admin, entries, head } = await filled(5);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(entries[0].prev).toBe(AUDIT_GENESIS);
    for (let i = 1; i < entries.length; i++) expect(entries[i].prev).toBe(entries[i - 1].hash);
    expect(head).toMatchObject({ seq: 5, hash: entries[4].hash });
    expect(verifyAuditChain(entries, admin.pub.sign, head)).toEqual({ ok: true, seq: 5 });
    // A page in the middle verifies from the hash before it.
    expect(verifyAuditChain(entries.slice(2), admin.pub.sign, head, entries[1].hash)).toEqual({
      ok: true,
      seq: 5,
    });
  });

  it('detects edits, removals, reordering, truncation and a foreign head signature', async () => {
    const { admin, entries, head } = await filled(4);
    const edited: AuditEntry[] = entries.map((e) => ({ ...e }));
    edited[1] = { ...edited[1], detail: { ...edited[1].detail, i: 99 } };
    expect(verifyAuditChain(edited, admin.pub.sign, head)).toMatchObject({
      ok: false,
      seq: 2,
      problem: 'hash does not match the entry',
    });
    // Re-hashing the edited entry breaks the next link instead.
    edited[1] = { ...edited[1], hash: auditEntryHash(edited[1]) };
    expect(verifyAuditChain(edited, admin.pub.sign, head)).toMatchObject({ ok: false, seq: 3 });
    expect(
      verifyAuditChain([entries[0], entries[2], entries[3]], admin.pub.sign, head),
    ).toMatchObject({ ok: false, seq: 3 });
    expect(verifyAuditChain([entries[1], entries[0]], admin.pub.sign)).toMatchObject({ ok: false });
    expect(verifyAuditChain(entries.slice(0, 3), admin.pub.sign, head)).toMatchObject({
      ok: false,
      problem: 'log ends at 3, signed head is at 4',
    });
    expect(verifyAuditChain(entries, Identity.generate().pub.sign, head)).toMatchObject({
      ok: false,
      problem: 'head signature does not verify',
    });
  });

  it('hashes a canonical form independent of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"e":2,"f":1}]},"b":1}',
    );
  });

  it('pages with since/limit', async () => {
    const { store, log } = await filled(7);
    const page = await store.read((tx) => log.since(tx, 3, 2));
    expect(page.map((e) => e.seq)).toEqual([4, 5]);
  });
});
