/**
 * The admin service: Koa app, routes, authentication (docs/admin-api.md).
 *
 * Node routes authenticate with `Authorization: Node <session token>`,
 * operator routes with `Authorization: Bearer <operator token>` (compared in
 * constant time). Everything a node receives that carries keys or
 * membership is signed by the admin identity and sealed to the node, so the
 * HTTP transport is not trusted for those; the tokens themselves are bearer
 * secrets, so run the service on loopback or behind TLS (docs/admin-api.md
 * §Transport).
 */
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Context, Next } from 'koa';
import { Router } from '@koa/router';
import type { Identity } from './identity.js';
import { ctEqual } from './identity.js';
import { API_PREFIX, PROTOCOL_VERSION, type AdminInfo } from './protocol.js';
import type { Store } from './store.js';
import { StoreError } from './store.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Logger } from './logger.js';
import { Policy, PolicyHolder } from './policy.js';
import { ApiError, errorHandler } from './errors.js';
import { readJsonBody } from './body.js';
import { EventHub, streamKey } from './events.js';
import { Membership, type Effects } from './membership.js';
import { FlatKeyScheme } from './keys-flat.js';
import { TreeKeyScheme } from './keys-tree.js';
import { DEFAULT_REKEY_BATCH_MS, RekeyFlusher } from './keytree-flush.js';
import { storageNodeRoutes } from './storage-routes.js';
import { operatorRoutes } from './operator-routes.js';
import { LiveStats } from './live.js';
import { adminMetrics } from './metrics.js';
import { WebConsole } from './console.js';
import type { GroupKeyScheme } from './keys.js';
import {
  paramNodeName,
  paramSupernet,
  parseChannelCreate,
  parseExpel,
  parseSupernetCreate,
  parseVarpRegister,
  queryInt,
  queryVip,
} from './requests.js';

export const DEFAULT_GRACE_MS = 60_000;
export const DEFAULT_VARP_TTL_MS = 300_000;
export const MAX_AUDIT_PAGE = 1000;

export interface AdminServiceOptions {
  store: Store;
  identity: Identity;
  /** The running policy (a holder reloads from its file), or a fixed one. */
  policy: PolicyHolder | Policy;
  clock?: Clock;
  logger: Logger;
  graceMs?: number;
  varpTtlMs?: number;
  /** Lease of the member re-encrypting a volume (default 60 s; admin/storage-roles.ts). */
  storageLeaseMs?: number;
  /** Bearer secret for operator routes. */
  operatorToken: string;
  /** SSE keep-alive interval (default 15 s) and push coalescing (default 50 ms). */
  keepAliveMs?: number;
  coalesceMs?: number;
  challengeTtlMs?: number;
  /** The channel-key scheme (default: {@link TreeKeyScheme}, see `keySchemeName`). */
  keyScheme?: GroupKeyScheme;
  /** Mark the console's session cookie `Secure` (served over TLS, e.g. behind a proxy). */
  consoleSecureCookies?: boolean;
  /** Folder of the console's static files (default: admin/console/). */
  consoleDir?: string;
  /** Bearer tokens besides the operator token that may read `GET /metrics` (admin/metrics.ts). */
  metricsTokens?: string[];
  /**
   * Which built-in scheme to use when `keyScheme` is not given (default `tree`,
   * docs/keys.md §8; `flat` stays selectable as the benchmark peer and fallback).
   */
  keySchemeName?: 'flat' | 'tree';
  /**
   * Batching window of the tree scheme's leaves and expels (ms, default
   * {@link DEFAULT_REKEY_BATCH_MS}; 0 = one rekey per removal): removals inside
   * it go out as one signed rekey message (docs/keys.md §Batching).
   */
  rekeyBatchMs?: number;
}

export interface AdminService {
  app: Koa;
  membership: Membership;
  events: EventHub;
  /** Starts listening; resolves with the bound server (port 0 = ephemeral). */
  listen(port: number, host?: string): Promise<Server>;
  /** Base URL of the listening server, e.g. `http://127.0.0.1:7400`. */
  url(): string;
  /** Settles once start-up writes (the policy audit entry) are durable. */
  ready(): Promise<void>;
  /** Ends event streams, stops listening and waits for the store. Does not close the store. */
  close(): Promise<void>;
}

/** sha256 so the compare below is over equal-length values whatever the caller sent. */
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function createAdminService(opts: AdminServiceOptions): AdminService {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger;
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const varpTtlMs = opts.varpTtlMs ?? DEFAULT_VARP_TTL_MS;
  if (!opts.operatorToken || opts.operatorToken.length < 16) {
    throw new Error('operatorToken: must be at least 16 characters');
  }
  const holder =
    opts.policy instanceof Policy ? PolicyHolder.fixed(opts.policy, logger) : opts.policy;
  const rekeyBatchMs = opts.rekeyBatchMs ?? DEFAULT_REKEY_BATCH_MS;
  if (!Number.isInteger(rekeyBatchMs) || rekeyBatchMs < 0)
    throw new Error('rekeyBatchMs: must be a non-negative integer of milliseconds');
  // Removals of the tree scheme wait up to rekeyBatchMs for their batch (keytree-flush.ts).
  let flusher: RekeyFlusher | null = null;
  const scheme =
    opts.keyScheme ??
    (opts.keySchemeName === 'flat'
      ? new FlatKeyScheme(opts.identity, clock, graceMs)
      : new TreeKeyScheme(opts.identity, clock, graceMs, logger, {
          batchMs: rekeyBatchMs,
          onPending: (sid, ch) => flusher?.schedule(sid, ch),
        }));
  const membership = new Membership({
    store: opts.store,
    identity: opts.identity,
    scheme,
    clock,
    logger,
    policy: () => holder.current,
    graceMs,
    varpTtlMs,
    challengeTtlMs: opts.challengeTtlMs,
  });
  const events = new EventHub(logger, {
    keepAliveMs: opts.keepAliveMs,
    coalesceMs: opts.coalesceMs,
  });
  const operatorDigest = digest(`${'Bearer'} ${opts.operatorToken}`);
  const info: AdminInfo = {
    service: 'supernet-admin',
    version: PROTOCOL_VERSION,
    id: opts.identity.id,
    sign: opts.identity.pub.sign,
    seal: opts.identity.pub.seal,
  };

  let pending: Promise<void> = Promise.resolve();
  const notePolicy = (p: Policy): void => {
    pending = pending
      .then(() => membership.supernets.notePolicy(p))
      .catch((err) => logger.error('cannot audit the policy change', { error: String(err) }));
  };
  notePolicy(holder.current);
  holder.subscribe(notePolicy);

  const publish = (e: Effects | null): void => {
    if (!e) return;
    // `expelled` first: it must reach the streams before their session ends them.
    if (e.expelled) events.expelled(e.expelled.key, e.expelled.reason);
    for (const s of e.endSessions) events.endSession(s);
    for (const key of e.config) events.config(key, e.serial);
  };

  if (scheme instanceof TreeKeyScheme && scheme.batchMs > 0) {
    flusher = new RekeyFlusher(scheme.batchMs, {
      store: opts.store,
      scheme: () => scheme,
      bumpSerial: (tx, sid) => {
        const sn = tx.get<{ serial: number }>('supernets', sid);
        if (!sn) return null;
        tx.put('supernets', sid, { ...sn, serial: sn.serial + 1 });
        return sn.serial + 1;
      },
      publish: (r) =>
        publish({
          supernet: r.supernet,
          serial: r.serial,
          config: r.members.map((n) => streamKey(r.supernet, n)),
          endSessions: [],
        }),
      logger,
    });
  }

  const operator = async (ctx: Context, next: Next): Promise<void> => {
    const h = ctx.get('authorization');
    // The web console's session cookie stands in for the bearer token (admin/console.ts).
    if (!h && webConsole.authorize(ctx)) return next();
    if (!h.startsWith('Bearer ')) {
      throw new ApiError(401, 'unauthorized', 'Authorization: expected "Bearer <operator token>"');
    }
    if (!ctEqual(digest(h), operatorDigest))
      throw new ApiError(403, 'forbidden', 'Authorization: wrong operator token');
    await next();
  };
  const nodeAuth = async (ctx: Context, next: Next): Promise<void> => {
    ctx.state.session = await membership.authenticate(ctx.get('authorization') || undefined);
    await next();
  };
  const json = (ctx: Context, status: number, body: unknown): void => {
    ctx.status = status;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = body;
  };

  const r = new Router({ prefix: API_PREFIX });
  r.get('/info', (ctx) => json(ctx, 200, info));
  r.post('/challenge', async (ctx) => json(ctx, 200, await membership.challenge()));
  r.post('/login', async (ctx) => {
    const { response, effects } = await membership.login(await readJsonBody(ctx));
    publish(effects);
    json(ctx, 200, response);
  });
  r.post('/logout', nodeAuth, async (ctx) => {
    const e = await membership.logout(ctx.state.session);
    publish(e);
    // The leave has taken effect (its batch is out) when the call returns.
    await flusher?.settled(e.supernet);
    json(ctx, 200, { ok: true });
  });
  r.get('/config', nodeAuth, async (ctx) =>
    json(ctx, 200, await membership.config(ctx.state.session, ctx.query.resync === '1')),
  );
  r.post('/varp/register', nodeAuth, async (ctx) => {
    const endpoint = parseVarpRegister(await readJsonBody(ctx));
    const { record, effects } = await membership.registerVarp(ctx.state.session, endpoint);
    publish(effects);
    json(ctx, 200, record);
  });
  r.get('/varp/resolve', nodeAuth, async (ctx) =>
    json(ctx, 200, await membership.resolve(ctx.state.session, queryVip(ctx.query.vip))),
  );
  r.get('/events', nodeAuth, async (ctx) => {
    if (closing) throw new ApiError(503, 'shutting_down', 'the admin service is shutting down');
    if (ctx.method === 'HEAD') {
      ctx.status = 200;
      ctx.type = 'text/event-stream';
      return;
    }
    const s = ctx.state.session;
    const serial = await membership.serialOf(s);
    ctx.respond = false;
    events.attach(streamKey(s.supernet, s.name), s.hash, ctx.req, ctx.res, serial);
  });

  r.post('/supernets', operator, async (ctx) => {
    json(
      ctx,
      201,
      await membership.supernets.createSupernet(parseSupernetCreate(await readJsonBody(ctx))),
    );
  });
  r.get('/supernets', operator, async (ctx) =>
    json(ctx, 200, { supernets: await membership.supernets.listSupernets() }),
  );
  r.get('/supernets/:sid', operator, async (ctx) =>
    json(ctx, 200, await membership.supernets.describeSupernet(paramSupernet(ctx.params.sid))),
  );
  r.post('/supernets/:sid/channels', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    json(
      ctx,
      201,
      await membership.supernets.createChannel(sid, parseChannelCreate(await readJsonBody(ctx))),
    );
  });
  r.get('/supernets/:sid/nodes', operator, async (ctx) =>
    json(ctx, 200, { nodes: await membership.supernets.listNodes(paramSupernet(ctx.params.sid)) }),
  );
  r.post('/supernets/:sid/nodes/:name/expel', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    const name = paramNodeName(ctx.params.name);
    const reason = parseExpel(await readJsonBody(ctx));
    publish(await membership.expel(sid, name, reason));
    // Expel has taken effect when the operator's command returns: wait for its rekey batch.
    await flusher?.settled(sid);
    // Storage key groups: an expelled member's volumes rotate and re-encrypt (issue 5).
    await extras.storage.expelNode(sid, name);
    json(ctx, 200, { ok: true });
  });
  r.get('/audit', operator, async (ctx) => {
    const since = queryInt(ctx.query.since, 'since', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = queryInt(ctx.query.limit, 'limit', MAX_AUDIT_PAGE, 1, MAX_AUDIT_PAGE);
    json(ctx, 200, await membership.supernets.auditSince(since, limit));
  });
  r.get('/policy', operator, (ctx) => {
    const p = holder.current;
    json(ctx, 200, { source: p.source, hash: p.hash, loadedAt: p.loadedAt, policy: p.doc });
  });

  // The administrator's web console (admin/console.ts, admin/console/).
  const webConsole = new WebConsole({
    operatorToken: opts.operatorToken,
    clock,
    logger,
    store: opts.store,
    audit: membership.audit,
    secureCookies: opts.consoleSecureCookies,
    dir: opts.consoleDir,
  });

  // Policy test, admissions, dissolve, storage roles, live views (admin/operator-routes.ts).
  const live = new LiveStats();
  const extras = operatorRoutes(r, {
    operator,
    nodeAuth,
    json,
    store: opts.store,
    clock,
    membership,
    scheme,
    holder,
    events,
    live,
    adminSign: opts.identity.pub.sign,
  });
  // Storage key groups and their node routes (admin/storage-keys.ts, admin/storage-routes.ts).
  extras.storage.attachKeys(opts.identity, publish, { leaseMs: opts.storageLeaseMs });
  storageNodeRoutes(r, { nodeAuth, json, storage: extras.storage });

  const metrics = adminMetrics({
    store: opts.store,
    scheme,
    events,
    holder,
    audit: membership.audit,
    tokens: [opts.operatorToken, ...(opts.metricsTokens ?? [])],
  });

  const app = new Koa({ proxy: false });
  app.silent = true;
  app.use(metrics.middleware);
  app.use(errorHandler(logger));
  app.use(async (_ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof StoreError)
        throw new ApiError(503, 'store_unavailable', 'the admin database is unavailable');
      throw err;
    }
  });
  app.use(webConsole.middleware());
  app.use(r.routes());
  app.use(r.allowedMethods({ throw: true }));

  let server: Server | null = null;
  let closing = false;
  return {
    app,
    membership,
    events,
    async listen(port: number, host = '127.0.0.1'): Promise<Server> {
      if (server) throw new Error('already listening');
      closing = false;
      server = await new Promise<Server>((resolve, reject) => {
        const s = app.listen(port, host);
        s.once('listening', () => resolve(s));
        s.once('error', reject);
      });
      // Long-lived event streams must not be cut by the idle timeouts.
      server.requestTimeout = 30_000;
      server.headersTimeout = 20_000;
      server.keepAliveTimeout = 5_000;
      const a = server.address() as AddressInfo;
      logger.info('admin service listening', { host: a.address, port: a.port });
      return server;
    },
    ready: () => pending,
    url(): string {
      if (!server) throw new Error('not listening');
      const a = server.address() as AddressInfo;
      const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      return `http://${host}:${a.port}`;
    },
    async close(): Promise<void> {
      closing = true;
      await flusher?.close();
      events.close();
      await pending;
      if (server) {
        const s = server;
        server = null;
        await new Promise<void>((resolve) => {
          // Stop accepting; let requests in flight finish (up to 5 s), closing
          // keep-alive connections as soon as they go idle.
          const sweep = setInterval(() => s.closeIdleConnections(), 20);
          const hard = setTimeout(() => s.closeAllConnections(), 5_000);
          s.close(() => {
            clearInterval(sweep);
            clearTimeout(hard);
            resolve();
          });
          s.closeIdleConnections();
        });
      }
    },
  };
}
