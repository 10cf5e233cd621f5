/**
 * `AdminClient`: the HTTP client of the admin API (docs/admin-api.md), used
 * by the host agent and by the CLI. Node 20's global fetch, no dependencies.
 *
 * Everything the service signs is checked against the admin's PINNED
 * Ed25519 key (from `admin.json`, never from `/v1/info` at run time), and
 * the session token is unsealed with the node's own identity, so a
 * man-in-the-middle on the HTTP path can refuse service but not forge
 * membership, keys or VARP answers.
 *
 * Failures come in three kinds: {@link AdminApiError} (the service answered
 * with an error: `status`, `code`, `message`), {@link AdminNetworkError}
 * (it could not be reached or the connection broke) and
 * {@link AdminProtocolError} (it answered something that does not verify).
 */
import { Identity } from './identity.js';
import { parseSupernetId } from './ids.js';
import {
  API_PREFIX,
  openEnvelope,
  signEnvelope,
  tokenContext,
  NODE_AUTH_SCHEME,
  OPERATOR_AUTH_SCHEME,
  type AdminInfo,
  type ChallengeResponse,
  type Endpoint,
  type LoginResponse,
  type NodeConfig,
  type NodeEvent,
  type SignedEnvelope,
  type VarpRecord,
} from './protocol.js';
import { SseParser } from './sse.js';
import type { AuditEntry, AuditHead } from './audit.js';
import type { PolicyTestResult } from './policy-test.js';

/** The answer of {@link AdminClient.policyTest} (admin/policy-test.ts). */
export type PolicyTestAnswer = PolicyTestResult;

/** The service answered with an error body. */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }
}

/** The service could not be reached, or the connection failed or timed out. */
export class AdminNetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AdminNetworkError';
  }
}

/** The answer was malformed or its signature did not verify with the pinned key. */
export class AdminProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdminProtocolError';
  }
}

export interface AdminClientOptions {
  /** The admin's Ed25519 key (base64url) pinned at enrolment; required for node operations. */
  adminSign?: string;
  /** Operator bearer token; required for operator operations. */
  operatorToken?: string;
  /** Per-request timeout (default 15 s). */
  timeoutMs?: number;
}

/** What a node asks for at login. */
export interface LoginFields {
  name: string;
  supernet: string;
  channels: string[];
  endpoint: Endpoint;
  requestedVip?: string;
}

/** Events delivered by {@link AdminClient.events}: the service's, plus `reconnect` after each re-established stream. */
export type ClientEvent = NodeEvent | { event: 'reconnect'; data: { attempt: number } };

export interface EventsOptions {
  signal: AbortSignal;
  /** First reconnect delay (default 500 ms), doubling up to `maxBackoffMs` (default 30 s), with jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Reconnect if nothing (not even a keep-alive) arrives for this long (default 45 s). */
  idleTimeoutMs?: number;
}

export interface SupernetCreate {
  id: string;
  pool: string;
  channels?: string[];
  name?: string;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class AdminClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(
    baseUrl: string,
    private readonly opts: AdminClientOptions = {},
  ) {
    let u: URL;
    try {
      u = new URL(baseUrl);
    } catch {
      throw new TypeError(`admin URL: not a URL: ${JSON.stringify(baseUrl)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new TypeError(`admin URL: expected http:// or https://, got ${u.protocol}`);
    }
    this.baseUrl = u.origin + u.pathname.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  // ---- plumbing ---------------------------------------------------------------

  private async request<T>(
    method: string,
    path: string,
    opts: { auth?: string; body?: unknown; signal?: AbortSignal } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (opts.auth) headers.Authorization = opts.auth;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const url = this.baseUrl + API_PREFIX + path;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal ?? AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw this.networkError(err);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.networkError(err);
    }
    if (!res.ok) throw errorFrom(res.status, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new AdminProtocolError(`${method} ${path}: answer is not JSON`);
    }
  }

  private networkError(err: unknown): AdminNetworkError {
    const e = err as {
      name?: string;
      cause?: { code?: string; message?: string };
      message?: string;
    };
    const why =
      e?.name === 'TimeoutError' || e?.name === 'AbortError'
        ? 'timed out'
        : (e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err));
    return new AdminNetworkError(`cannot reach the admin service at ${this.baseUrl}: ${why}`, {
      cause: err,
    });
  }

  private pinned(): string {
    if (!this.opts.adminSign) {
      throw new TypeError('AdminClient: the admin signing key is not pinned (adminSign option)');
    }
    return this.opts.adminSign;
  }

  private operatorAuth(): string {
    if (!this.opts.operatorToken)
      throw new TypeError('AdminClient: no operator token (operatorToken option)');
    return `${OPERATOR_AUTH_SCHEME} ${this.opts.operatorToken}`;
  }

  private verifyConfig(env: unknown): NodeConfig {
    try {
      return openEnvelope<NodeConfig>(env, this.pinned(), 'node-config');
    } catch (err) {
      if (err instanceof TypeError) throw err;
      throw new AdminProtocolError(
        'node-config: signature does not verify with the pinned admin key',
      );
    }
  }

  private verifyVarp(env: unknown): VarpRecord {
    try {
      return openEnvelope<VarpRecord>(env, this.pinned(), 'varp-record');
    } catch (err) {
      if (err instanceof TypeError) throw err;
      throw new AdminProtocolError(
        'varp-record: signature does not verify with the pinned admin key',
      );
    }
  }

  // ---- node operations ------------------------------------------------------------

  info(): Promise<AdminInfo> {
    return this.request<AdminInfo>('GET', '/info');
  }

  challenge(): Promise<ChallengeResponse> {
    return this.request<ChallengeResponse>('POST', '/challenge');
  }

  /**
   * Logs a node in: challenge → signed login request → verify the signed
   * config with the pinned key → unseal the session token.
   */
  async login(
    identity: Identity,
    fields: LoginFields,
  ): Promise<{ token: string; config: NodeConfig; configEnvelope: SignedEnvelope }> {
    const sid = parseSupernetId(fields.supernet);
    const { challenge } = await this.challenge();
    const body: Record<string, unknown> = {
      challenge,
      identity: identity.pub,
      name: fields.name,
      supernet: sid,
      channels: fields.channels,
      endpoint: fields.endpoint,
    };
    if (fields.requestedVip !== undefined) body.requestedVip = fields.requestedVip;
    const request = signEnvelope(identity, 'login-request', body);
    const res = await this.request<LoginResponse>('POST', '/login', { body: { request } });
    const config = this.verifyConfig(res.config);
    if (
      config.supernet !== sid ||
      config.node?.id !== identity.id ||
      config.node?.name !== fields.name
    ) {
      throw new AdminProtocolError('node-config: issued for another node');
    }
    let token: Buffer;
    try {
      token = identity.open(
        Buffer.from(String(res.tokenBox), 'base64url'),
        tokenContext(sid, identity.id),
      );
    } catch {
      throw new AdminProtocolError('tokenBox: does not open with this identity');
    }
    return { token: token.toString('base64url'), config, configEnvelope: res.config };
  }

  private nodeAuth(token: string): string {
    return `${NODE_AUTH_SCHEME} ${token}`;
  }

  /** The node's signed config; `resync` asks for its key-tree welcomes too (docs/keys.md §8). */
  async config(
    token: string,
    resync = false,
  ): Promise<{ config: NodeConfig; envelope: SignedEnvelope }> {
    const envelope = await this.request<SignedEnvelope>(
      'GET',
      resync ? '/config?resync=1' : '/config',
      {
        auth: this.nodeAuth(token),
      },
    );
    return { config: this.verifyConfig(envelope), envelope };
  }

  async register(token: string, endpoint: Endpoint): Promise<VarpRecord> {
    const env = await this.request<SignedEnvelope>('POST', '/varp/register', {
      auth: this.nodeAuth(token),
      body: { endpoint },
    });
    return this.verifyVarp(env);
  }

  async resolve(token: string, vip: string): Promise<VarpRecord> {
    const env = await this.request<SignedEnvelope>(
      'GET',
      `/varp/resolve?vip=${encodeURIComponent(vip)}`,
      {
        auth: this.nodeAuth(token),
      },
    );
    const rec = this.verifyVarp(env);
    if (rec.vip !== vip) throw new AdminProtocolError('varp-record: answers for another address');
    return rec;
  }

  /** Reports a node's traffic counters (`POST /v1/stats`, telemetry for the console). */
  async reportStats(
    token: string,
    stats: { host: string; counters: Record<string, number> },
  ): Promise<void> {
    const res = await fetch(this.baseUrl + API_PREFIX + '/stats', {
      method: 'POST',
      headers: { Authorization: this.nodeAuth(token), 'Content-Type': 'application/json' },
      body: JSON.stringify(stats),
      signal: AbortSignal.timeout(this.timeoutMs),
    }).catch((err: unknown) => {
      throw this.networkError(err);
    });
    if (!res.ok) throw errorFrom(res.status, await res.text().catch(() => ''));
    await res.arrayBuffer().catch(() => undefined);
  }

  async logout(token: string): Promise<void> {
    await this.request('POST', '/logout', { auth: this.nodeAuth(token) });
  }

  /**
   * Follows the node's event stream until `signal` aborts. Reconnects with
   * exponential backoff after any network failure or server error, and emits
   * `reconnect` after each re-established stream (the agent then re-fetches
   * its config: pushes may have been missed). Ends after an `expelled` event.
   * Rejects with {@link AdminApiError} on a 4xx (e.g. 401 `session_revoked`,
   * `expelled`), which retrying cannot fix.
   */
  async events(
    token: string,
    onEvent: (e: ClientEvent) => void,
    opts: EventsOptions,
  ): Promise<void> {
    const min = opts.minBackoffMs ?? 500;
    const max = opts.maxBackoffMs ?? 30_000;
    const idleMs = opts.idleTimeoutMs ?? 45_000;
    let attempt = 0;
    let connectedBefore = false;
    while (!opts.signal.aborted) {
      const ac = new AbortController();
      const abort = (): void => ac.abort();
      opts.signal.addEventListener('abort', abort, { once: true });
      let idle: NodeJS.Timeout | null = null;
      const touch = (): void => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => ac.abort(), idleMs);
      };
      let ended = false;
      try {
        touch();
        const res = await fetch(this.baseUrl + API_PREFIX + '/events', {
          headers: { Accept: 'text/event-stream', Authorization: this.nodeAuth(token) },
          signal: ac.signal,
        });
        if (!res.ok) {
          const err = errorFrom(res.status, await res.text().catch(() => ''));
          if (res.status >= 400 && res.status < 500 && res.status !== 429) throw err;
          throw new AdminNetworkError(`event stream refused: ${err.message}`);
        }
        if (!res.body) throw new AdminNetworkError('event stream has no body');
        if (connectedBefore) onEvent({ event: 'reconnect', data: { attempt } });
        connectedBefore = true;
        attempt = 0;
        const parser = new SseParser();
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          touch();
          for (const m of parser.push(decoder.decode(chunk, { stream: true }))) {
            let data: unknown;
            try {
              data = JSON.parse(m.data);
            } catch {
              continue; // not ours to interpret
            }
            if (m.event === 'config')
              onEvent({ event: 'config', data: data as { serial: number } });
            else if (m.event === 'expelled') {
              onEvent({ event: 'expelled', data: data as { reason: string } });
              ended = true;
            }
          }
          if (ended) break;
        }
      } catch (err) {
        if (err instanceof AdminApiError) throw err;
        // Aborted by the caller, idle timeout, refused connection: retry below.
      } finally {
        if (idle) clearTimeout(idle);
        opts.signal.removeEventListener('abort', abort);
        ac.abort();
      }
      if (ended) return;
      if (opts.signal.aborted) return;
      const base = Math.min(max, min * 2 ** attempt);
      attempt++;
      await sleep(base / 2 + Math.random() * (base / 2), opts.signal);
    }
  }

  // ---- operator operations ------------------------------------------------------

  createSupernet(s: SupernetCreate): Promise<Record<string, unknown>> {
    return this.request('POST', '/supernets', { auth: this.operatorAuth(), body: s });
  }

  async listSupernets(): Promise<Array<Record<string, unknown>>> {
    return (
      await this.request<{ supernets: Array<Record<string, unknown>> }>('GET', '/supernets', {
        auth: this.operatorAuth(),
      })
    ).supernets;
  }

  supernet(sid: string): Promise<Record<string, unknown>> {
    return this.request('GET', `/supernets/${encodeURIComponent(sid)}`, {
      auth: this.operatorAuth(),
    });
  }

  createChannel(sid: string, id: string): Promise<Record<string, unknown>> {
    return this.request('POST', `/supernets/${encodeURIComponent(sid)}/channels`, {
      auth: this.operatorAuth(),
      body: { id },
    });
  }

  async nodes(sid: string): Promise<Array<Record<string, unknown>>> {
    return (
      await this.request<{ nodes: Array<Record<string, unknown>> }>(
        'GET',
        `/supernets/${encodeURIComponent(sid)}/nodes`,
        {
          auth: this.operatorAuth(),
        },
      )
    ).nodes;
  }

  async expel(sid: string, name: string, reason?: string): Promise<void> {
    await this.request(
      'POST',
      `/supernets/${encodeURIComponent(sid)}/nodes/${encodeURIComponent(name)}/expel`,
      {
        auth: this.operatorAuth(),
        body: reason === undefined ? {} : { reason },
      },
    );
  }

  audit(since = 0, limit?: number): Promise<{ entries: AuditEntry[]; head: AuditHead | null }> {
    const q = `?since=${since}` + (limit === undefined ? '' : `&limit=${limit}`);
    return this.request('GET', `/audit${q}`, { auth: this.operatorAuth() });
  }

  policy(): Promise<Record<string, unknown>> {
    return this.request('GET', '/policy', { auth: this.operatorAuth() });
  }

  // ---- administrator's operations (admin/operator-routes.ts) ------------------------

  /** Would this login be admitted? Against the running policy, or `policy` (file text). Changes nothing. */
  policyTest(req: {
    supernet: string;
    identity: string;
    node: string;
    channels: string[];
    requestedVip?: string;
    policy?: string;
  }): Promise<PolicyTestAnswer> {
    return this.request('POST', '/policy/test', { auth: this.operatorAuth(), body: req });
  }

  policyStatus(): Promise<Record<string, unknown>> {
    return this.request('GET', '/policy/status', { auth: this.operatorAuth() });
  }

  private sn(sid: string, rest = ''): string {
    return `/supernets/${encodeURIComponent(sid)}${rest}`;
  }

  async grants(sid: string): Promise<Array<Record<string, unknown>>> {
    return (
      await this.request<{ grants: Array<Record<string, unknown>> }>(
        'GET',
        this.sn(sid, '/grants'),
        {
          auth: this.operatorAuth(),
        },
      )
    ).grants;
  }

  addGrant(
    sid: string,
    g: { node: string; identity: string; channels: string[]; address?: string; comment?: string },
  ): Promise<Record<string, unknown>> {
    return this.request('POST', this.sn(sid, '/grants'), { auth: this.operatorAuth(), body: g });
  }

  async revokeGrant(sid: string, node: string): Promise<void> {
    await this.request('DELETE', this.sn(sid, `/grants/${encodeURIComponent(node)}`), {
      auth: this.operatorAuth(),
    });
  }

  dissolve(
    sid: string,
    reason?: string,
  ): Promise<{ ok: true; nodes: string[]; channels: string[]; keyRecords: number }> {
    return this.request('POST', this.sn(sid, '/dissolve'), {
      auth: this.operatorAuth(),
      body: reason === undefined ? {} : { reason },
    });
  }

  async storage(sid: string): Promise<Array<Record<string, unknown>>> {
    return (
      await this.request<{ volumes: Array<Record<string, unknown>> }>(
        'GET',
        this.sn(sid, '/storage'),
        {
          auth: this.operatorAuth(),
        },
      )
    ).volumes;
  }

  grantStorageRole(sid: string, volume: string, node: string): Promise<Record<string, unknown>> {
    return this.request('POST', this.sn(sid, '/storage/roles'), {
      auth: this.operatorAuth(),
      body: { volume, node },
    });
  }

  async revokeStorageRole(sid: string, volume: string, node: string): Promise<void> {
    await this.request(
      'DELETE',
      this.sn(sid, `/storage/roles/${encodeURIComponent(volume)}/${encodeURIComponent(node)}`),
      { auth: this.operatorAuth() },
    );
  }
}

function errorFrom(status: number, text: string): AdminApiError {
  try {
    const j = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (j.error && typeof j.error.code === 'string' && typeof j.error.message === 'string') {
      return new AdminApiError(status, j.error.code, j.error.message);
    }
  } catch {
    // not our error body
  }
  return new AdminApiError(
    status,
    `http_${status}`,
    `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`,
  );
}
