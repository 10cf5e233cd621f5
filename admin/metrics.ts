/**
 * Prometheus metrics of the admin service (issue 7; docs/console.md
 * §Metrics), with prom-client: HTTP requests by route and status, login
 * decisions, and — read from the store at scrape time — Supernets, nodes,
 * channel epochs and members, the audit head, open event streams, the
 * policy in force and whether its last reload was refused.
 *
 * `GET /metrics` on the service's own port. It needs `Authorization:
 * Bearer <token>` with the operator token or a separate read-only metrics
 * token (`admin start --metrics-token-file`), since it names Supernets and
 * nodes; Prometheus sends it with `authorization: {credentials_file: ...}`.
 * The middleware is mounted first, outside the central error handler, so
 * it counts the status the caller finally got.
 */
import { createHash } from 'node:crypto';
import type { Context, Next } from 'koa';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ctEqual } from './identity.js';
import type { Store } from './store.js';
import type { GroupKeyScheme } from './keys.js';
import type { EventHub } from './events.js';
import type { PolicyHolder } from './policy.js';
import type { AuditLog } from './audit.js';
import type { NodeRecord, SupernetRecord } from './records.js';
import { ApiError } from './errors.js';

export const METRICS_PATH = '/metrics';

export interface AdminMetricsDeps {
  store: Store;
  scheme: GroupKeyScheme;
  events: EventHub;
  holder: PolicyHolder;
  audit: AuditLog;
  /** Bearer tokens accepted for the scrape. */
  tokens: string[];
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Builds the registry; `middleware` counts requests and serves `GET /metrics`. */
export function adminMetrics(d: AdminMetricsDeps): {
  registry: Registry;
  middleware: (ctx: Context, next: Next) => Promise<void>;
} {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'supernet_admin_http_requests_total',
    help: 'HTTP requests by method, route (the route pattern) and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'supernet_admin_http_request_duration_seconds',
    help: 'Time to answer HTTP requests (event streams: until the stream was taken over)',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const logins = new Counter({
    name: 'supernet_admin_logins_total',
    help: 'Login decisions: admitted, or refused with the API error code',
    labelNames: ['result'],
    registers: [registry],
  });
  new Gauge({
    name: 'supernet_admin_event_streams',
    help: 'Open node event streams (SSE)',
    registers: [registry],
    collect(this: Gauge) {
      this.set(d.events.size);
    },
  });
  new Gauge({
    name: 'supernet_admin_policy_reload_refused',
    help: '1 while the policy file on disk was refused at its last reload (the previous policy is in force)',
    registers: [registry],
    collect(this: Gauge) {
      this.set(d.holder.refused ? 1 : 0);
    },
  });
  new Gauge({
    name: 'supernet_admin_policy_loaded_timestamp_seconds',
    help: 'When the policy in force was loaded',
    registers: [registry],
    collect(this: Gauge) {
      this.set(d.holder.current.loadedAt / 1000);
    },
  });
  // Store-derived gauges share one read per scrape.
  let pending: Promise<StoreView> | null = null;
  const view = (): Promise<StoreView> => {
    pending ??= readView(d).finally(() => {
      setImmediate(() => (pending = null));
    });
    return pending;
  };
  const storeGauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (v: StoreView, set: (labels: Record<string, string>, n: number) => void) => void,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect(this: Gauge<string>) {
        const v = await view();
        this.reset();
        fill(v, (labels, n) => this.set(labels, n));
      },
    });
  };
  storeGauge('supernet_admin_supernets', 'Supernets', [], (v, set) => set({}, v.supernets.length));
  storeGauge('supernet_admin_nodes', 'Admitted nodes per Supernet', ['supernet'], (v, set) => {
    for (const s of v.supernets) set({ supernet: s.id }, s.nodes);
  });
  storeGauge(
    'supernet_admin_channel_epoch',
    'Current key epoch per channel',
    ['supernet', 'channel'],
    (v, set) => {
      for (const s of v.supernets)
        for (const c of s.channels) set({ supernet: s.id, channel: c.id }, c.epoch);
    },
  );
  storeGauge(
    'supernet_admin_channel_members',
    'Members per channel',
    ['supernet', 'channel'],
    (v, set) => {
      for (const s of v.supernets)
        for (const c of s.channels) set({ supernet: s.id, channel: c.id }, c.members);
    },
  );
  storeGauge(
    'supernet_admin_audit_entries',
    'Sequence number of the signed audit head',
    [],
    (v, set) => set({}, v.auditSeq),
  );

  const accepted = d.tokens.filter((t) => t.length > 0).map((t) => digest(`Bearer ${t}`));
  const middleware = async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.path === METRICS_PATH) {
      // Mounted outside the central error handler (so it sees final statuses): answer errors here.
      const refuse = (e: ApiError): void => {
        ctx.status = e.status;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = e.toBody();
      };
      if (ctx.method !== 'GET')
        return refuse(new ApiError(405, 'method_not_allowed', 'method not allowed'));
      const h = ctx.get('authorization');
      if (!h.startsWith('Bearer '))
        return refuse(
          new ApiError(
            401,
            'unauthorized',
            'Authorization: expected "Bearer <operator or metrics token>"',
          ),
        );
      const got = digest(h);
      // Compare against every token (no early exit): the time does not tell which matched.
      let ok = false;
      for (const a of accepted) ok = ctEqual(got, a) || ok;
      if (!ok) return refuse(new ApiError(403, 'forbidden', 'Authorization: wrong token'));
      ctx.set('Cache-Control', 'no-store');
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
      return;
    }
    const end = duration.startTimer();
    try {
      await next();
    } finally {
      const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      const status = String(ctx.status);
      requests.inc({ method: ctx.method, route, status });
      end({ method: ctx.method, route });
      if (route.endsWith('/login') && ctx.method === 'POST') {
        if (ctx.status === 200) logins.inc({ result: 'admitted' });
        else {
          const code = (ctx.body as { error?: { code?: string } } | undefined)?.error?.code;
          logins.inc({ result: typeof code === 'string' ? code : `http_${status}` });
        }
      }
    }
  };
  return { registry, middleware };
}

interface StoreView {
  supernets: Array<{
    id: string;
    nodes: number;
    channels: Array<{ id: string; epoch: number; members: number }>;
  }>;
  auditSeq: number;
}

async function readView(d: AdminMetricsDeps): Promise<StoreView> {
  return d.store.read((tx) => {
    const supernets = tx.list<SupernetRecord>('supernets').map(([, s]) => ({
      id: s.id,
      nodes: tx.list<NodeRecord>('nodes', s.id + '|').length,
      channels: s.channels.map((c) => {
        const k = d.scheme.describe(tx, s.id, c.id);
        return { id: c.id, epoch: k?.epoch ?? 0, members: k?.members ?? 0 };
      }),
    }));
    return { supernets, auditSeq: d.audit.head(tx)?.seq ?? 0 };
  });
}
