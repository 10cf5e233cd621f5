/**
 * The host agent's {@link AdminLink} over HTTP (admin/protocol.ts). Every
 * config is verified against the PINNED admin signing key before the agent
 * sees it; the token is unsealed with the node's identity.
 */
import { fromB64, type Identity } from '../admin/identity.js';
import type { Logger } from '../admin/logger.js';
import {
  NODE_AUTH_SCHEME,
  openEnvelope,
  signEnvelope,
  tokenContext,
  type ChallengeResponse,
  type Endpoint,
  type LoginResponse,
  type NodeConfig,
} from '../admin/protocol.js';
import { AdminRefusal, type AdminLink, type LinkEvent, type LoginFields } from './admin-link.js';

const TIMEOUT_MS = 15_000;

async function call(
  base: string,
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `${NODE_AUTH_SCHEME} ${token}`;
  const res = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let v: unknown;
  try {
    v = text ? JSON.parse(text) : null;
  } catch {
    v = null;
  }
  if (!res.ok) {
    const e = (v as { error?: { code?: string; message?: string } } | null)?.error;
    throw new AdminRefusal(
      res.status,
      e?.code ?? `http_${res.status}`,
      e?.message ?? `admin service answered ${res.status}`,
    );
  }
  return v;
}

/** An {@link AdminLink} to the admin service at `base` whose signing key is `adminSign`. */
export function httpAdminLink(base: string, adminSign: string, logger: Logger): AdminLink {
  base = base.replace(/\/+$/, '');
  const verifyConfig = (env: unknown): NodeConfig =>
    openEnvelope<NodeConfig>(env, adminSign, 'node-config');
  return {
    async login(identity: Identity, f: LoginFields) {
      const ch = (await call(base, 'POST', '/v1/challenge', null, {})) as ChallengeResponse;
      const request = signEnvelope(identity, 'login-request', {
        challenge: ch.challenge,
        identity: identity.pub,
        name: f.name,
        supernet: f.supernet,
        channels: f.channels,
        endpoint: f.endpoint,
      });
      const res = (await call(base, 'POST', '/v1/login', null, { request })) as LoginResponse;
      const config = verifyConfig(res.config);
      const token = identity
        .open(
          fromB64(res.tokenBox, null, 'tokenBox'),
          tokenContext(config.supernet, config.node.id),
        )
        .toString('utf8');
      return { token, config };
    },
    async config(token) {
      return verifyConfig(await call(base, 'GET', '/v1/config', token));
    },
    async register(token, endpoint: Endpoint) {
      await call(base, 'POST', '/v1/varp/register', token, { endpoint });
    },
    async logout(token) {
      await call(base, 'POST', '/v1/logout', token, {});
    },
    events(token, onEvent: (e: LinkEvent) => void, signal: AbortSignal) {
      void sse(base, token, onEvent, signal, logger);
    },
  };
}

/** Follows GET /v1/events, reconnecting with backoff; emits `resync` after every (re)connect. */
async function sse(
  base: string,
  token: string,
  onEvent: (e: LinkEvent) => void,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  let backoff = 250;
  while (!signal.aborted) {
    try {
      const res = await fetch(`${base}/v1/events`, {
        headers: { authorization: `${NODE_AUTH_SCHEME} ${token}`, accept: 'text/event-stream' },
        signal,
      });
      if (res.status === 401 || res.status === 403) {
        const v = (await res.json().catch(() => null)) as {
          error?: { code?: string; message?: string };
        } | null;
        const code = v?.error?.code ?? 'session_revoked';
        onEvent({
          kind: 'expelled',
          reason: `${code}: ${v?.error?.message ?? 'session no longer valid'}`,
        });
        return;
      }
      if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
      backoff = 250;
      onEvent({ kind: 'resync' });
      const decoder = new TextDecoder();
      let buf = '';
      // Events are separated by a blank line; `event:` and `data:` lines (SSE).
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          let d: Record<string, unknown> = {};
          try {
            d = data ? (JSON.parse(data) as Record<string, unknown>) : {};
          } catch {
            continue;
          }
          if (event === 'config') onEvent({ kind: 'config', serial: Number(d.serial) || 0 });
          else if (event === 'expelled')
            onEvent({ kind: 'expelled', reason: String(d.reason ?? 'expelled') });
        }
      }
      throw new Error('events stream ended');
    } catch (err) {
      if (signal.aborted) return;
      logger.debug('admin event stream lost; reconnecting', { err: String(err), inMs: backoff });
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}
