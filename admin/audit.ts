/**
 * The tamper-evident audit log (paper §4.2: "authentication, admission
 * control, and audit").
 *
 * Every admission decision and membership change is appended as an entry
 * `{seq, time, action, supernet, node, identity, detail}`. Each entry is
 * hash-chained to its predecessor,
 *
 *     hash_n = SHA-256("supernet audit v1\0" ‖ canonical-JSON(entry_n without hash, with prev = hash_{n-1}))
 *
 * (prev of the first entry is 64 zeros), and the chain head `(seq, hash)` is
 * signed with the admin identity after every append. Rewriting, dropping or
 * reordering any entry breaks the chain; truncating the log is detected
 * against a head signature kept elsewhere. {@link verifyAuditChain} checks
 * both; admin/audit-verify.ts explains what was changed and where
 * (`supernet audit verify`).
 */
import { createHash } from 'node:crypto';
import type { Identity } from './identity.js';
import { verify, fromB64, SIG_LEN } from './identity.js';
import type { ReadTx, WriteTx } from './store.js';
import type { Clock } from './clock.js';

export type AuditAction =
  | 'admit'
  | 'deny'
  | 'logout'
  | 'expel'
  | 'supernet-created'
  | 'supernet-dissolved'
  | 'channel-created'
  | 'policy-loaded'
  | 'grant-added'
  | 'grant-revoked'
  | 'storage-role-granted'
  | 'storage-role-revoked'
  | 'storage-reencrypted'
  | 'storage-reencrypt-claimed'
  | 'console-login';

export interface AuditEntry {
  seq: number;
  time: number;
  action: AuditAction;
  supernet: string | null;
  node: string | null;
  /** Identity fingerprint of the node, or null (operator actions). */
  identity: string | null;
  detail: Record<string, unknown>;
  /** Hash of the previous entry (hex). */
  prev: string;
  /** Hash of this entry (hex). */
  hash: string;
  /**
   * The head signature made when this entry was appended (base64url Ed25519
   * over {@link auditHeadMessage}(seq, hash)). Not part of the hash. It lets
   * `audit verify` name the exact entry an attacker rewrote even when every
   * hash after it was recomputed. Absent in entries written before it existed.
   */
  sig?: string;
}

/** The signed head of the chain. */
export interface AuditHead {
  seq: number;
  hash: string;
  /** base64url Ed25519 signature by the admin over {@link auditHeadMessage}. */
  sig: string;
}

export const AUDIT_GENESIS = '0'.repeat(64);
const ENTRY_DOMAIN = 'supernet audit v1\0';
const HEAD_DOMAIN = 'supernet audit head v1\0';
const HEAD_KEY = 'audit-head';
/** Keys are zero-padded so they sort like the numbers. */
const keyOf = (seq: number): string => String(seq).padStart(12, '0');

/** JSON with object keys sorted at every level: the hashed form of an entry. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  const o = v as Record<string, unknown>;
  return (
    '{' +
    Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k]))
      .join(',') +
    '}'
  );
}

/** The hash of an entry (all fields but `hash`). */
export function auditEntryHash(e: Omit<AuditEntry, 'hash'>): string {
  const { seq, time, action, supernet, node, identity, detail, prev } = e;
  return createHash('sha256')
    .update(ENTRY_DOMAIN)
    .update(canonicalJson({ seq, time, action, supernet, node, identity, detail, prev }))
    .digest('hex');
}

/** The bytes the head signature covers. */
export function auditHeadMessage(seq: number, hash: string): Buffer {
  return Buffer.from(`${HEAD_DOMAIN}${seq} ${hash}`, 'utf8');
}

/** What an entry is made from. */
export interface AuditInput {
  action: AuditAction;
  supernet?: string | null;
  node?: string | null;
  identity?: string | null;
  detail?: Record<string, unknown>;
}

/** Appends to and reads the audit log in the store. */
export class AuditLog {
  constructor(
    private readonly admin: Identity,
    private readonly clock: Clock,
  ) {}

  /** Appends one entry inside the caller's write transaction, and re-signs the head. */
  append(tx: WriteTx, input: AuditInput): AuditEntry {
    const head = tx.get<AuditHead>('meta', HEAD_KEY);
    const seq = (head?.seq ?? 0) + 1;
    const partial: Omit<AuditEntry, 'hash'> = {
      seq,
      time: this.clock.now(),
      action: input.action,
      supernet: input.supernet ?? null,
      node: input.node ?? null,
      identity: input.identity ?? null,
      detail: input.detail ?? {},
      prev: head?.hash ?? AUDIT_GENESIS,
    };
    const hash = auditEntryHash(partial);
    const sig = this.admin.sign(auditHeadMessage(seq, hash)).toString('base64url');
    const entry: AuditEntry = { ...partial, hash, sig };
    tx.put('audit', keyOf(seq), entry);
    tx.put('meta', HEAD_KEY, { seq, hash, sig } satisfies AuditHead);
    return entry;
  }

  head(tx: ReadTx): AuditHead | null {
    return tx.get<AuditHead>('meta', HEAD_KEY) ?? null;
  }

  /** Entries with seq > `since`, oldest first, at most `limit`. */
  since(tx: ReadTx, since: number, limit: number): AuditEntry[] {
    const head = this.head(tx);
    const out: AuditEntry[] = [];
    if (!head) return out;
    for (let s = Math.max(since, 0) + 1; s <= head.seq && out.length < limit; s++) {
      const e = tx.get<AuditEntry>('audit', keyOf(s));
      if (e) out.push(e);
    }
    return out;
  }
}

export type AuditVerdict = { ok: true; seq: number } | { ok: false; seq: number; problem: string };

/**
 * Checks a run of consecutive entries: each hash, each link, and (if `head`
 * is given) that the run ends at the signed head. `prevHash` is the hash
 * before the first entry (genesis when the run starts at seq 1).
 */
export function verifyAuditChain(
  entries: AuditEntry[],
  adminSign: string,
  head?: AuditHead | null,
  prevHash = AUDIT_GENESIS,
): AuditVerdict {
  let prev = prevHash;
  let expectSeq = entries.length > 0 ? entries[0].seq : 0;
  for (const e of entries) {
    if (e.seq !== expectSeq) return { ok: false, seq: e.seq, problem: `expected seq ${expectSeq}` };
    if (e.prev !== prev)
      return { ok: false, seq: e.seq, problem: 'prev does not match the previous entry' };
    if (auditEntryHash(e) !== e.hash)
      return { ok: false, seq: e.seq, problem: 'hash does not match the entry' };
    prev = e.hash;
    expectSeq++;
  }
  const last = entries.length > 0 ? entries[entries.length - 1].seq : 0;
  if (head) {
    let sig: Buffer;
    try {
      sig = fromB64(head.sig, SIG_LEN, 'sig');
    } catch {
      return { ok: false, seq: head.seq, problem: 'head signature is malformed' };
    }
    if (!verify(adminSign, auditHeadMessage(head.seq, head.hash), sig)) {
      return { ok: false, seq: head.seq, problem: 'head signature does not verify' };
    }
    if (head.seq !== last || head.hash !== prev) {
      return {
        ok: false,
        seq: last,
        problem: `log ends at ${last}, signed head is at ${head.seq}`,
      };
    }
  }
  return { ok: true, seq: last };
}
