/**
 * Login challenges and node sessions, both kept in the store (a restart
 * loses neither).
 *
 * - A challenge is 32 random bytes, single use, valid for
 *   {@link CHALLENGE_TTL_MS}; the login consumes it in the same transaction
 *   that admits or denies, so a replayed login request is refused.
 *   Outstanding challenges are capped ({@link MAX_CHALLENGES}) since anyone
 *   may ask for one.
 * - A session token is 32 random bytes given to the node sealed to its
 *   X25519 key; the store keeps only SHA-256(token), so a copy of the
 *   database does not let anyone act as a node. A revoked token is
 *   remembered (with why) for {@link REVOKED_KEEP_MS}, so the agent learns
 *   `session_revoked` or `expelled` rather than a bare 401.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ReadTx, WriteTx } from './store.js';
import type { ChallengeResponse } from './protocol.js';
import { ApiError } from './errors.js';

export const CHALLENGE_LEN = 32;
export const CHALLENGE_TTL_MS = 60_000;
export const MAX_CHALLENGES = 10_000;
export const SESSION_TOKEN_BYTES = 32;
export const REVOKED_KEEP_MS = 30 * 24 * 3600_000;
/** Prune expired challenges only once this many are outstanding (keeps the common path O(1)). */
const PRUNE_AT = 256;

export interface ChallengeRecord {
  expiresAt: number;
}

export interface SessionRecord {
  supernet: string;
  name: string;
  identity: string;
  createdAt: number;
}

export type RevokeCode = 'session_revoked' | 'expelled';
export interface RevokedRecord {
  code: RevokeCode;
  reason: string;
  at: number;
}

/** SHA-256 of a token, hex: the store key of a session. */
export function tokenHash(token: Buffer): string {
  return createHash('sha256').update(token).digest('hex');
}

export class Sessions {
  constructor(private readonly challengeTtlMs = CHALLENGE_TTL_MS) {}

  createChallenge(tx: WriteTx, now: number): ChallengeResponse {
    if (tx.count('challenges') >= PRUNE_AT) {
      for (const [k, c] of tx.list<ChallengeRecord>('challenges'))
        if (c.expiresAt <= now) tx.delete('challenges', k);
    }
    if (tx.count('challenges') >= MAX_CHALLENGES) {
      throw new ApiError(
        429,
        'too_many_challenges',
        'too many outstanding login challenges; retry shortly',
      );
    }
    const challenge = randomBytes(CHALLENGE_LEN).toString('base64url');
    const expiresAt = now + this.challengeTtlMs;
    tx.put('challenges', challenge, { expiresAt } satisfies ChallengeRecord);
    return { challenge, expiresAt };
  }

  /** Consumes `challenge`; false if it is unknown, used or expired. */
  consumeChallenge(tx: WriteTx, challenge: string, now: number): boolean {
    const c = tx.get<ChallengeRecord>('challenges', challenge);
    if (!c) return false;
    tx.delete('challenges', challenge);
    return c.expiresAt > now;
  }

  /** Creates a session; returns the raw token (only its hash is stored). */
  issue(tx: WriteTx, s: SessionRecord): { token: Buffer; hash: string } {
    const token = randomBytes(SESSION_TOKEN_BYTES);
    const hash = tokenHash(token);
    tx.put('sessions', hash, s);
    return { token, hash };
  }

  revoke(tx: WriteTx, hash: string, code: RevokeCode, reason: string, now: number): void {
    if (!tx.get('sessions', hash)) return;
    tx.delete('sessions', hash);
    tx.put('revoked', hash, { code, reason, at: now } satisfies RevokedRecord);
    if (tx.count('revoked') >= PRUNE_AT) {
      for (const [k, r] of tx.list<RevokedRecord>('revoked'))
        if (r.at + REVOKED_KEEP_MS <= now) tx.delete('revoked', k);
    }
  }

  /**
   * Resolves an `Authorization` header value (`Node <base64url token>`) to
   * its session, or throws a 401 saying why (missing, unknown, revoked, expelled).
   */
  authenticate(tx: ReadTx, header: string | undefined): SessionRecord & { hash: string } {
    const m = /^Node ([A-Za-z0-9_-]{43})$/.exec(header ?? '');
    if (!m)
      throw new ApiError(401, 'unauthorized', 'Authorization: expected "Node <session token>"');
    const hash = tokenHash(Buffer.from(m[1], 'base64url'));
    const s = tx.get<SessionRecord>('sessions', hash);
    if (s) return { ...s, hash };
    const r = tx.get<RevokedRecord>('revoked', hash);
    if (r) throw new ApiError(401, r.code, r.reason);
    throw new ApiError(401, 'unauthorized', 'unknown session token');
  }
}
