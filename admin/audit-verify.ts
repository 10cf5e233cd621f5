/**
 * `supernet audit verify`: checks the audit log (admin/audit.ts) and, when
 * it was tampered with, says WHAT was done and WHERE (paper §4.2 "audit";
 * issue 7: "detects any edited, removed or reordered entry and says where").
 *
 * What the log gives us to work with:
 *
 * - every entry's `hash` covers all of its fields, including its `seq` and
 *   the `prev` hash of its predecessor;
 * - every entry carries `sig`, the admin's Ed25519 signature over
 *   `(seq, hash)` made when it was appended, and the head `(seq, hash, sig)`
 *   is signed the same way.
 *
 * So for each stored entry we can tell whether its content still matches
 * its hash (else: edited), whether the hash is the one the admin signed
 * (else: replaced by a forgery, even when every later hash was recomputed),
 * and — because `prev` and the original `seq` are bound into the hash —
 * where it originally stood. An entry whose `seq` field was changed to hide
 * a deletion or a swap is recognised by recomputing its hash with nearby
 * sequence numbers. Comparing the original positions with the stored order
 * then shows deletions (gaps), truncation (the signed head is further on),
 * swaps and other reorderings. An optional witness — a head verified
 * earlier and kept elsewhere — catches a rollback to an older signed head.
 *
 * Everything here is pure: the caller supplies the entries in stored order.
 */
import type { AuditEntry, AuditHead } from './audit.js';
import { AUDIT_GENESIS, auditEntryHash, auditHeadMessage } from './audit.js';
import { verify, SIG_LEN } from './identity.js';

/** How far from its stored `seq` an entry's original position is searched for. */
export const MAX_RENUMBER_SHIFT = 64;

export type AuditFindingKind =
  /** Fields changed after the entry was written: its content no longer matches its hash. */
  | 'edited'
  /** The entry is self-consistent but its hash is not one the admin signed: a forged replacement. */
  | 'forged'
  /** Entries gone from the middle of the log. */
  | 'missing'
  /** Entries gone from the end (the signed head is further on). */
  | 'truncated'
  /** Two entries stored in each other's place. */
  | 'swapped'
  /** Some other permutation of entries. */
  | 'reordered'
  /** The entry's `seq` field was changed (without a matching reorder to explain it). */
  | 'renumbered'
  /** Two stored entries claim the same original position. */
  | 'duplicate'
  /** `prev` does not name the entry before it. */
  | 'broken-link'
  /** Entries stored after the signed head: not appended by the service. */
  | 'unsigned'
  /** The signed head does not verify, or does not match the entry it names. */
  | 'head'
  /** The log no longer contains a head verified earlier (rollback). */
  | 'witness'
  /** Not an audit entry at all (missing or mistyped fields). */
  | 'malformed';

export interface AuditFinding {
  kind: AuditFindingKind;
  /** The first sequence number concerned (original position where known). */
  seq: number;
  /** The last one (equal to `seq` for a single entry). */
  last: number;
  message: string;
}

export interface AuditReport {
  ok: boolean;
  /** Entries examined. */
  entries: number;
  /** Highest sequence number of the signed head (null: the log has no head). */
  headSeq: number | null;
  findings: AuditFinding[];
}

/** A head verified earlier, kept where the admin host cannot rewrite it. */
export interface AuditWitness {
  seq: number;
  hash: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

function sigValid(adminSign: string, seq: number, hash: string, sig: unknown): boolean {
  if (typeof sig !== 'string') return false;
  let raw: Buffer;
  try {
    raw = Buffer.from(sig, 'base64url');
  } catch {
    return false;
  }
  if (raw.length !== SIG_LEN || raw.toString('base64url') !== sig) return false;
  try {
    return verify(adminSign, auditHeadMessage(seq, hash), raw);
  } catch {
    return false;
  }
}

function wellFormed(e: unknown): e is AuditEntry {
  if (typeof e !== 'object' || e === null) return false;
  const o = e as Record<string, unknown>;
  return (
    Number.isSafeInteger(o.seq) &&
    (o.seq as number) >= 1 &&
    Number.isFinite(o.time) &&
    typeof o.action === 'string' &&
    typeof o.hash === 'string' &&
    HEX64.test(o.hash) &&
    typeof o.prev === 'string' &&
    HEX64.test(o.prev) &&
    typeof o.detail === 'object' &&
    o.detail !== null
  );
}

/** One stored entry as the analysis sees it. */
interface Slot {
  /** Index in stored order. */
  at: number;
  entry: AuditEntry;
  /** Content matches its hash (with the original seq). */
  intact: boolean;
  /** The admin signed (origSeq, hash). null: the entry carries no signature. */
  signed: boolean | null;
  /** Where it originally stood, if that can be known. */
  origSeq: number | null;
  /** Stored seq differs from origSeq. */
  renumbered: boolean;
}

const range = (a: number, b: number): string => (a === b ? `entry ${a}` : `entries ${a}–${b}`);

/** Groups sorted numbers into runs [first, last]. */
function runs(nums: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const n of nums) {
    const r = out[out.length - 1];
    if (r && n === r[1] + 1) r[1] = n;
    else out.push([n, n]);
  }
  return out;
}

/**
 * Examines `entries` (in the order they are stored: by key) against the
 * admin's signing key, the signed `head`, and optionally a `witness`.
 * `firstSeq` is the sequence number the list should start at (1 = the whole log).
 */
export function analyseAudit(
  entries: readonly unknown[],
  head: AuditHead | null,
  adminSign: string,
  opts: { witness?: AuditWitness | null; firstSeq?: number } = {},
): AuditReport {
  const findings: AuditFinding[] = [];
  const add = (kind: AuditFindingKind, seq: number, last: number, message: string): void => {
    findings.push({ kind, seq, last, message });
  };
  const firstSeq = opts.firstSeq ?? 1;

  // ---- 1. each entry on its own ---------------------------------------------------
  const slots: Slot[] = [];
  entries.forEach((raw, at) => {
    if (!wellFormed(raw)) {
      const seq = (raw as { seq?: unknown } | null)?.seq;
      const s = Number.isSafeInteger(seq) ? (seq as number) : 0;
      add(
        'malformed',
        s,
        s,
        `stored entry #${at + 1}: not an audit entry (fields missing or mistyped)`,
      );
      return;
    }
    const e = raw;
    const intact = auditEntryHash(e) === e.hash;
    const hasSig = e.sig !== undefined;
    const signedHere = hasSig ? sigValid(adminSign, e.seq, e.hash, e.sig) : null;
    if (intact || signedHere) {
      slots.push({ at, entry: e, intact, signed: signedHere, origSeq: e.seq, renumbered: false });
      return;
    }
    // Was only its seq changed? The hash (and the signature) bind the
    // original seq: look nearby.
    for (let d = 1; d <= MAX_RENUMBER_SHIFT; d++) {
      for (const cand of [e.seq - d, e.seq + d]) {
        if (cand < 1) continue;
        if (auditEntryHash({ ...e, seq: cand }) === e.hash) {
          const signed = hasSig ? sigValid(adminSign, cand, e.hash, e.sig) : null;
          slots.push({ at, entry: e, intact: true, signed, origSeq: cand, renumbered: true });
          return;
        }
        if (hasSig && sigValid(adminSign, cand, e.hash, e.sig)) {
          slots.push({
            at,
            entry: e,
            intact: false,
            signed: true,
            origSeq: cand,
            renumbered: true,
          });
          return;
        }
      }
    }
    slots.push({
      at,
      entry: e,
      intact: false,
      signed: hasSig ? false : null,
      origSeq: null,
      renumbered: false,
    });
  });
  // An entry we could not place stands where it is stored, if nobody else claims that place.
  const claimed = new Set(slots.filter((s) => s.origSeq !== null).map((s) => s.origSeq!));
  for (const s of slots) {
    if (s.origSeq === null && !claimed.has(s.entry.seq)) {
      s.origSeq = s.entry.seq;
      claimed.add(s.entry.seq);
    }
  }

  /** Entries whose finding is already explained by a reorder. */
  const explained = new Set<Slot>();

  // ---- 2. order: duplicates, gaps, permutations -----------------------------------
  const placed = slots.filter((s) => s.origSeq !== null);
  const byOrig = new Map<number, Slot>();
  for (const s of placed) {
    const o = s.origSeq!;
    const other = byOrig.get(o);
    if (other) {
      add(
        'duplicate',
        o,
        o,
        `entry ${o} is stored twice (stored entries #${other.at + 1} and #${s.at + 1})`,
      );
      continue;
    }
    byOrig.set(o, s);
  }
  const order = placed.filter((s) => byOrig.get(s.origSeq!) === s);
  const sorted = [...order].sort((a, b) => a.origSeq! - b.origSeq!);
  // Each stored position i should hold sorted[i]; the misplaced ones form
  // cycles of a permutation: a 2-cycle is a swap, anything longer a reordering.
  const posInSorted = new Map<Slot, number>(sorted.map((s, i) => [s, i]));
  const visited = new Set<number>();
  for (let i = 0; i < order.length; i++) {
    if (order[i] === sorted[i] || visited.has(i)) continue;
    const cycle: number[] = [];
    for (let k = i; !visited.has(k); k = posInSorted.get(order[k])!) {
      visited.add(k);
      cycle.push(k);
    }
    cycle.sort((x, y) => x - y);
    const members = cycle.map((k) => order[k]);
    for (const s of members) explained.add(s);
    const origs = members.map((s) => s.origSeq!).sort((x, y) => x - y);
    const lo = origs[0];
    const hi = origs[origs.length - 1];
    const hidden = members.some((s) => s.renumbered)
      ? '; their seq fields were rewritten to hide it'
      : '';
    if (cycle.length === 2) {
      add(
        'swapped',
        lo,
        hi,
        `entries ${lo} and ${hi} are swapped: each is stored in the other's place${hidden}`,
      );
    } else {
      add(
        'reordered',
        lo,
        hi,
        `${range(lo, hi)} are out of order: stored as ${members.map((s) => s.origSeq).join(', ')}${hidden}`,
      );
    }
  }
  const headOk = head ? sigValid(adminSign, head.seq, head.hash, head.sig) : false;
  const lastPlaced = sorted.length ? sorted[sorted.length - 1].origSeq! : firstSeq - 1;
  const end = head && headOk ? Math.max(head.seq, lastPlaced) : lastPlaced;
  const unplaced = slots.filter((s) => s.origSeq === null);
  const gaps: number[] = [];
  for (let s = firstSeq; s <= end; s++) if (!byOrig.has(s)) gaps.push(s);
  for (const [a, b] of runs(gaps)) {
    const atEnd = b === end && b > lastPlaced;
    if (atEnd) {
      add(
        'truncated',
        a,
        b,
        `${range(a, b)} ${a === b ? 'is' : 'are'} missing at the end: the log was truncated (the signed head is at ${head!.seq})`,
      );
    } else {
      const next = byOrig.get(b + 1);
      const why = next ? ` (entry ${b + 1} links to a hash no stored entry has)` : '';
      add('missing', a, b, `${range(a, b)} ${a === b ? 'is' : 'are'} missing: deleted${why}`);
    }
  }

  // ---- 3. each entry's content, signature and link ---------------------------------
  /** Original positions already reported as edited or forged (a broken link there is no news). */
  const flagged = new Set<number>();
  for (const s of slots) {
    const e = s.entry;
    if (s.origSeq === null) {
      add(
        'edited',
        e.seq,
        e.seq,
        `entry stored as ${e.seq} was edited: its content matches neither its hash nor any nearby position` +
          (unplaced.length && gaps.length
            ? ' (it may be one of the missing entries, altered)'
            : ''),
      );
      continue;
    }
    const o = s.origSeq;
    if (!s.intact || s.signed === false) flagged.add(o);
    if (!s.intact) {
      add(
        'edited',
        o,
        o,
        `entry ${o} was edited: its content no longer matches its hash (${e.action})`,
      );
    } else if (s.signed === false) {
      add(
        'forged',
        o,
        o,
        `entry ${o} was replaced: it is self-consistent, but the admin never signed its hash (${e.action})`,
      );
    }
    if (s.renumbered && !explained.has(s)) {
      add('renumbered', o, o, `entry ${o} is stored as ${e.seq}: its seq field was changed`);
    }
  }
  for (const s of sorted) {
    if (!s.intact) continue; // its prev field may be the edited one; already reported
    const o = s.origSeq!;
    const before = o === 1 ? null : byOrig.get(o - 1);
    const want = o === 1 ? AUDIT_GENESIS : before && before.intact ? before.entry.hash : null;
    if (want === null || s.entry.prev === want || flagged.has(o) || flagged.has(o - 1)) continue;
    add(
      'broken-link',
      o,
      o,
      o === 1
        ? `entry 1 does not start the chain (prev is not the genesis value)`
        : `entry ${o} does not link to entry ${o - 1} (its prev is not that entry's hash): one of them was replaced`,
    );
  }

  // ---- 4. the signed head -----------------------------------------------------------
  if (!head) {
    if (slots.length > 0) add('head', 0, 0, 'the log has entries but no signed head');
  } else if (!headOk) {
    add(
      'head',
      head.seq,
      head.seq,
      `the signed head (seq ${head.seq}) does not verify with the admin key`,
    );
  } else {
    const at = byOrig.get(head.seq);
    if (at && at.entry.hash !== head.hash) {
      add(
        'head',
        head.seq,
        head.seq,
        `entry ${head.seq} is not the one the signed head names: the log from there on was rewritten`,
      );
    }
    const after = sorted.filter((s) => s.origSeq! > head.seq).map((s) => s.origSeq!);
    for (const [a, b] of runs(after)) {
      add(
        'unsigned',
        a,
        b,
        `${range(a, b)} come${a === b ? 's' : ''} after the signed head (${head.seq}): not appended by the service`,
      );
    }
  }

  // ---- 5. the witness (a head verified before, kept elsewhere) -------------------------
  const w = opts.witness;
  if (w) {
    if (head && headOk && head.seq < w.seq) {
      add(
        'witness',
        w.seq,
        w.seq,
        `the signed head (seq ${head.seq}) is older than the head verified before (seq ${w.seq}): the log was rolled back`,
      );
    } else {
      const at = byOrig.get(w.seq);
      if (at && at.entry.hash !== w.hash)
        add(
          'witness',
          w.seq,
          w.seq,
          `entry ${w.seq} differs from the one verified before: the log was rewritten`,
        );
    }
  }

  findings.sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
  return {
    ok: findings.length === 0,
    entries: entries.length,
    headSeq: head?.seq ?? null,
    findings,
  };
}
