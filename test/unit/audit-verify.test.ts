/**
 * `analyseAudit` (admin/audit-verify.ts): an untouched log passes; every kind
 * of tampering is reported at the right place — including tampering that
 * recomputes hashes or rewrites seq fields to cover its tracks.
 */
import { describe, it, expect, beforeAll } from '@jest/globals';
import fc from 'fast-check';
import { Identity } from '../../admin/identity.js';
import { MemoryStore } from '../../admin/store.js';
import { ManualClock } from '../../admin/clock.js';
import { AuditLog, auditEntryHash, type AuditEntry, type AuditHead } from '../../admin/audit.js';
import { analyseAudit, type AuditReport } from '../../admin/audit-verify.js';

const N = 12;
let admin: Identity;
let entries: AuditEntry[];
let head: AuditHead;

beforeAll(async () => {
  admin = Identity.generate();
  const store = new MemoryStore();
  const clock = new ManualClock(1_700_000_000_000);
  const log = new AuditLog(admin, clock);
  for (let i = 0; i < N; i++) {
    clock.advance(1000);
    await store.write((tx) =>
      log.append(tx, {
        action: i % 3 === 0 ? 'deny' : 'admit',
        supernet: '0x4711',
        node: `n${i}`,
        identity: i.toString(16).padStart(32, '0'),
        detail: { i, channels: ['0x01'] },
      }),
    );
  }
  ({ entries, head } = await store.read((tx) => ({
    entries: log.since(tx, 0, 1000),
    head: log.head(tx)!,
  })));
});

const copy = (): AuditEntry[] => entries.map((e) => structuredClone(e));
const run = (
  list: unknown[],
  h: AuditHead | null = head,
  witness?: { seq: number; hash: string },
) => analyseAudit(list, h, admin.pub.sign, { witness });
const kinds = (r: AuditReport) => r.findings.map((f) => `${f.kind}@${f.seq}-${f.last}`);

describe('audit verify', () => {
  it('passes an untouched log', () => {
    const r = run(copy());
    expect(r).toEqual({ ok: true, entries: N, headSeq: N, findings: [] });
  });

  it('names an edited entry', () => {
    const l = copy();
    (l[4].detail as Record<string, unknown>).channels = ['0x01', '0x02'];
    const r = run(l);
    expect(kinds(r)).toEqual(['edited@5-5']);
    expect(r.findings[0].message).toMatch(/^entry 5 was edited/);
  });

  it('names an edited entry whose hash was recomputed (and every later one re-chained)', () => {
    const l = copy();
    l[6].node = 'mallory';
    for (let i = 6; i < l.length; i++) {
      if (i > 6) l[i].prev = l[i - 1].hash;
      l[i].hash = auditEntryHash(l[i]);
    }
    const forgedHead = { ...head, hash: l[l.length - 1].hash };
    const r = run(l, forgedHead);
    // The signatures pin every rewritten entry, and the forged head does not verify.
    expect(kinds(r)).toContain('forged@7-7');
    expect(kinds(r)).toContain(`head@${N}-${N}`);
    expect(r.ok).toBe(false);
  });

  it('names a deleted entry', () => {
    const l = copy();
    l.splice(3, 1);
    const r = run(l);
    expect(kinds(r)).toEqual(['missing@4-4']);
    expect(r.findings[0].message).toMatch(/entry 4 is missing: deleted \(entry 5 links/);
  });

  it('names a deleted entry when the later seq fields were shifted down to hide the gap', () => {
    const l = copy();
    l.splice(3, 1);
    for (let i = 3; i < l.length; i++) l[i].seq -= 1;
    const r = run(l);
    expect(kinds(r)).toContain('missing@4-4');
    expect(r.findings.filter((f) => f.kind === 'renumbered').map((f) => f.seq)).toEqual([
      5, 6, 7, 8, 9, 10, 11, 12,
    ]);
  });

  it('names a truncated end against the signed head', () => {
    const r = run(copy().slice(0, N - 2));
    expect(kinds(r)).toEqual([`truncated@${N - 1}-${N}`]);
  });

  it('names two swapped entries (seq fields kept)', () => {
    const l = copy();
    [l[7], l[8]] = [l[8], l[7]];
    const r = run(l);
    expect(kinds(r)).toEqual(['swapped@8-9']);
    expect(r.findings[0].message).toBe(
      "entries 8 and 9 are swapped: each is stored in the other's place",
    );
  });

  it('names two swapped entries whose seq fields were rewritten to look in order', () => {
    const l = copy();
    [l[2], l[9]] = [l[9], l[2]];
    l[2].seq = 3;
    l[9].seq = 10;
    const r = run(l);
    expect(kinds(r)).toEqual(['swapped@3-10']);
    expect(r.findings[0].message).toMatch(/seq fields were rewritten/);
  });

  it('names a longer reordering', () => {
    const l = copy();
    const moved = l.splice(2, 1)[0];
    l.splice(5, 0, moved);
    const r = run(l);
    expect(kinds(r)).toEqual(['reordered@3-6']);
    expect(r.findings[0].message).toBe('entries 3–6 are out of order: stored as 4, 5, 6, 3');
  });

  it('names an entry appended behind the service, and a forged head', () => {
    const l = copy();
    const extra: AuditEntry = { ...structuredClone(l[N - 1]), seq: N + 1, prev: l[N - 1].hash };
    delete extra.sig;
    extra.hash = auditEntryHash(extra);
    expect(kinds(run([...l, extra]))).toEqual([`unsigned@${N + 1}-${N + 1}`]);
    expect(
      kinds(run(l, { ...head, sig: head.sig.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) })),
    ).toEqual([`head@${N}-${N}`]);
    expect(kinds(run(l, null))).toEqual(['head@0-0']);
  });

  it('catches a rollback to an older signed head with a witness', () => {
    const older = copy().slice(0, 8);
    const oldHead: AuditHead = { seq: 8, hash: older[7].hash, sig: older[7].sig! };
    expect(run(older, oldHead).ok).toBe(true); // consistent on its own...
    const r = run(older, oldHead, { seq: head.seq, hash: head.hash });
    expect(kinds(r)).toEqual([`witness@${N}-${N}`]); // ...but not with what was verified before
  });

  it('refuses things that are not entries', () => {
    const l: unknown[] = copy();
    l[5] = { seq: 6, hello: 'world' };
    const r = run(l);
    expect(kinds(r)).toEqual(['malformed@6-6', 'missing@6-6']);
  });

  it('property: any single edit, deletion or swap is found at its position', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({
            op: fc.constant('edit' as const),
            i: fc.nat(N - 1),
            v: fc.string({ minLength: 1 }),
          }),
          fc.record({ op: fc.constant('delete' as const), i: fc.nat(N - 2) }),
          fc.record({ op: fc.constant('swap' as const), i: fc.nat(N - 1), j: fc.nat(N - 1) }),
        ),
        (t) => {
          const l = copy();
          let want: string;
          if (t.op === 'edit') {
            fc.pre(l[t.i].node !== t.v);
            l[t.i].node = t.v;
            want = `edited@${t.i + 1}-${t.i + 1}`;
          } else if (t.op === 'delete') {
            l.splice(t.i, 1);
            want = `missing@${t.i + 1}-${t.i + 1}`;
          } else {
            fc.pre(t.i !== t.j);
            [l[t.i], l[t.j]] = [l[t.j], l[t.i]];
            const [a, b] = [Math.min(t.i, t.j) + 1, Math.max(t.i, t.j) + 1];
            want = `swapped@${a}-${b}`;
          }
          expect(kinds(run(l))).toEqual([want]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
