/**
 * The administrator's web console (issue 7; docs/console.md): static pages
 * (admin/console/: HTML, CSS and one small vanilla script) served by the
 * admin service, and the console's login sessions.
 *
 * Nothing is shown without authentication. The operator logs in with the
 * operator token; the service answers with an HttpOnly, SameSite=Strict
 * session cookie (random 32 bytes; only its SHA-256 is kept, in memory, so
 * a restart logs consoles out) and a CSRF token the page keeps in memory
 * and sends as `X-Supernet-CSRF` with every request that changes
 * something. The console then uses the ordinary operator API (`/v1/...`):
 * server.ts's operator check accepts such a session in place of the
 * bearer token. Sessions end after {@link IDLE_MS} without use or
 * {@link MAX_AGE_MS} in all; failed logins are limited per address
 * ({@link MAX_FAILURES} per {@link FAILURE_WINDOW_MS}); each login is audited.
 *
 * Pages are served with a strict Content-Security-Policy (scripts and
 * styles from the service only, no inline code, no framing).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Next } from 'koa';
import { ctEqual } from './identity.js';
import { ApiError } from './errors.js';
import { readJsonBody } from './body.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { Store } from './store.js';
import type { AuditLog } from './audit.js';

export const CONSOLE_PREFIX = '/console';
export const CONSOLE_API = `${CONSOLE_PREFIX}/api`;
export const SESSION_COOKIE = 'sn_console';
export const CSRF_HEADER = 'x-supernet-csrf';
export const IDLE_MS = 30 * 60_000;
export const MAX_AGE_MS = 12 * 3600_000;
export const MAX_SESSIONS = 64;
export const MAX_FAILURES = 5;
export const FAILURE_WINDOW_MS = 60_000;

/** Where the static files are: admin/console/ next to this module's source (dist/admin → ../../admin). */
export function defaultConsoleDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [join(here, 'console'), join(here, '..', '..', 'admin', 'console')];
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? candidates[1]!;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface ConsoleSession {
  csrf: string;
  createdAt: number;
  lastUsed: number;
  remote: string;
}

export interface ConsoleOptions {
  operatorToken: string;
  clock: Clock;
  logger: Logger;
  store: Store;
  audit: AuditLog;
  /** Mark the cookie `Secure` (when the service is reached over TLS, e.g. behind a proxy). */
  secureCookies?: boolean;
  /** Folder of the static files (default {@link defaultConsoleDir}). */
  dir?: string;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class WebConsole {
  private readonly sessions = new Map<string, ConsoleSession>(); // sha256(cookie) → session
  private readonly failures = new Map<string, number[]>(); // remote → failure times
  private readonly files = new Map<string, { type: string; body: Buffer }>();
  private readonly tokenDigest: Buffer;

  constructor(private readonly o: ConsoleOptions) {
    this.tokenDigest = digest(o.operatorToken);
    const dir = o.dir ?? defaultConsoleDir();
    if (!existsSync(join(dir, 'index.html'))) {
      o.logger.warn('web console files not found; the console is disabled', { dir });
      return;
    }
    for (const f of readdirSync(dir)) {
      const type = TYPES[extname(f)];
      if (type) this.files.set(f, { type, body: readFileSync(join(dir, f)) });
    }
  }

  get enabled(): boolean {
    return this.files.size > 0;
  }

  private cookieOf(ctx: Context): string | null {
    const raw = ctx.get('cookie');
    for (const part of raw.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === SESSION_COOKIE) {
        const val = v.join('=');
        return /^[A-Za-z0-9_-]{43}$/.test(val) ? val : null;
      }
    }
    return null;
  }

  private session(ctx: Context): { key: string; s: ConsoleSession } | null {
    const c = this.cookieOf(ctx);
    if (!c) return null;
    const key = sha(c);
    const s = this.sessions.get(key);
    if (!s) return null;
    const now = this.o.clock.now();
    if (now - s.lastUsed > IDLE_MS || now - s.createdAt > MAX_AGE_MS) {
      this.sessions.delete(key);
      return null;
    }
    return { key, s };
  }

  /**
   * For the operator routes: true if the request carries a live console
   * session (and, unless it only reads, the matching CSRF header).
   */
  authorize(ctx: Context): boolean {
    const hit = this.session(ctx);
    if (!hit) return false;
    const safe = ctx.method === 'GET' || ctx.method === 'HEAD';
    if (!safe) {
      const got = ctx.get(CSRF_HEADER);
      if (!got || !ctEqual(digest(got), digest(hit.s.csrf)))
        throw new ApiError(
          403,
          'forbidden',
          `${CSRF_HEADER}: missing or wrong (reload the console)`,
        );
    }
    hit.s.lastUsed = this.o.clock.now();
    return true;
  }

  private cookie(value: string, maxAgeS: number): string {
    return [
      `${SESSION_COOKIE}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      `Max-Age=${maxAgeS}`,
      ...(this.o.secureCookies ? ['Secure'] : []),
    ].join('; ');
  }

  private throttled(remote: string, now: number): boolean {
    const recent = (this.failures.get(remote) ?? []).filter((t) => now - t < FAILURE_WINDOW_MS);
    if (recent.length) this.failures.set(remote, recent);
    else this.failures.delete(remote);
    return recent.length >= MAX_FAILURES;
  }

  private async login(ctx: Context): Promise<void> {
    const now = this.o.clock.now();
    const remote = ctx.request.ip || 'unknown';
    if (this.throttled(remote, now))
      throw new ApiError(
        429,
        'too_many_attempts',
        'too many failed logins from this address; wait a minute',
      );
    const body = await readJsonBody(ctx);
    for (const k of Object.keys(body))
      if (k !== 'token') throw new ApiError(400, 'bad_request', `${k}: unknown field`);
    const token = typeof body.token === 'string' ? body.token.trim() : '';
    if (!token || !ctEqual(digest(token), this.tokenDigest)) {
      this.failures.set(remote, [...(this.failures.get(remote) ?? []), now]);
      this.o.logger.warn('console login refused', { remote });
      throw new ApiError(403, 'forbidden', 'token: not the operator token');
    }
    this.failures.delete(remote);
    // Oldest sessions give way beyond the cap (a console left open everywhere must not grow memory).
    while (this.sessions.size >= MAX_SESSIONS) {
      const oldest = [...this.sessions.entries()].sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0]!;
      this.sessions.delete(oldest[0]);
    }
    const value = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const key = sha(value);
    this.sessions.set(key, { csrf, createdAt: now, lastUsed: now, remote });
    await this.o.store.write((tx) =>
      this.o.audit.append(tx, {
        action: 'console-login',
        detail: { remote, session: key.slice(0, 12) },
      }),
    );
    this.o.logger.info('console login', { remote, session: key.slice(0, 12) });
    ctx.set('Set-Cookie', this.cookie(value, Math.floor(MAX_AGE_MS / 1000)));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { csrf, expiresAt: now + MAX_AGE_MS, idleMs: IDLE_MS };
  }

  /** Serves `/`, `/console/...` (pages) and `/console/api/{login,session,logout}`. */
  middleware() {
    return async (ctx: Context, next: Next): Promise<void> => {
      const p = ctx.path;
      if (p === '/' && (ctx.method === 'GET' || ctx.method === 'HEAD') && this.enabled) {
        ctx.redirect(`${CONSOLE_PREFIX}/`);
        return;
      }
      if (p !== CONSOLE_PREFIX && !p.startsWith(`${CONSOLE_PREFIX}/`)) return next();
      ctx.set('Content-Security-Policy', CSP);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Referrer-Policy', 'no-referrer');
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('Cache-Control', 'no-store');
      if (p === `${CONSOLE_API}/login` && ctx.method === 'POST') return this.login(ctx);
      if (p === `${CONSOLE_API}/session` && ctx.method === 'GET') {
        const hit = this.session(ctx);
        if (!hit) throw new ApiError(401, 'unauthorized', 'not logged in');
        hit.s.lastUsed = this.o.clock.now();
        ctx.body = { csrf: hit.s.csrf, expiresAt: hit.s.createdAt + MAX_AGE_MS, idleMs: IDLE_MS };
        return;
      }
      if (p === `${CONSOLE_API}/logout` && ctx.method === 'POST') {
        const hit = this.session(ctx);
        if (hit) {
          this.authorize(ctx); // CSRF: a foreign page must not log the operator out
          this.sessions.delete(hit.key);
        }
        ctx.set('Set-Cookie', this.cookie('', 0));
        ctx.body = { ok: true };
        return;
      }
      if (p.startsWith(`${CONSOLE_API}/`))
        throw new ApiError(404, 'not_found', `no route ${ctx.method} ${p}`);
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD')
        throw new ApiError(405, 'method_not_allowed', 'method not allowed');
      if (p === CONSOLE_PREFIX) {
        ctx.redirect(`${CONSOLE_PREFIX}/`);
        return;
      }
      const name = p === `${CONSOLE_PREFIX}/` ? 'index.html' : p.slice(CONSOLE_PREFIX.length + 1);
      const f = /^[a-z0-9-]+\.[a-z]+$/.test(name) ? this.files.get(name) : undefined;
      if (!f) throw new ApiError(404, 'not_found', `no console file ${name}`);
      ctx.type = f.type;
      ctx.body = f.body;
    };
  }
}
