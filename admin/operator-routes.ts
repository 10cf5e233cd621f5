/**
 * The administrator's operations beyond the core API (issue 7;
 * docs/admin-api.md §Operator routes, docs/console.md): policy test,
 * operator admissions, dissolving a Supernet, storage roles, and the live
 * views the console shows (VARP table, pending admissions, node traffic).
 * Also the one node route that feeds those views (`POST /v1/stats`).
 *
 * Registered by server.ts onto its router; every operator route goes
 * through the same `operator` authentication as the others.
 */
import type { Context, Middleware } from 'koa';
import type { Router } from '@koa/router';
import type { Store } from './store.js';
import type { Clock } from './clock.js';
import type { GroupKeyScheme } from './keys.js';
import type { EventHub } from './events.js';
import { streamKey } from './events.js';
import type { Membership } from './membership.js';
import { Policy, PolicyError, type PolicyHolder } from './policy.js';
import { ApiError } from './errors.js';
import { readJsonBody } from './body.js';
import { paramNodeName, paramSupernet } from './requests.js';
import { parsePolicyTest, testAdmission } from './policy-test.js';
import { Grants, grantKey, parseGrant, type GrantRecord } from './grants.js';
import { dissolveSupernet, parseDissolve } from './dissolve.js';
import { StorageRoles, parseProgress, parseRole, parseVolumeName } from './storage-roles.js';
import { LiveStats, parseStatsReport } from './live.js';
import type { AuditEntry } from './audit.js';
import { analyseAudit } from './audit-verify.js';
import type { NodeRecord } from './records.js';
import type { VarpEntry } from './varp.js';
import type { SessionRecord } from './sessions.js';

/** How far back the console looks for refused logins to offer as pending admissions. */
export const PENDING_SCAN = 2000;
export const MAX_PENDING = 100;

export interface OperatorRouteDeps {
  operator: Middleware;
  nodeAuth: Middleware;
  json(ctx: Context, status: number, body: unknown): void;
  store: Store;
  clock: Clock;
  membership: Membership;
  scheme: GroupKeyScheme;
  holder: PolicyHolder;
  events: EventHub;
  live: LiveStats;
  /** The admin's own signing key (the console's "verify" button). */
  adminSign: string;
}

export interface OperatorExtras {
  grants: Grants;
  storage: StorageRoles;
}

export function operatorRoutes(r: Router, d: OperatorRouteDeps): OperatorExtras {
  const { operator, json, membership } = d;
  const grants = new Grants({ store: d.store, audit: membership.audit, clock: d.clock });
  const storage = new StorageRoles({ store: d.store, audit: membership.audit, clock: d.clock });

  // ---- policy -----------------------------------------------------------------------
  r.get('/policy/status', operator, (ctx) => {
    const p = d.holder.current;
    json(ctx, 200, {
      source: p.source,
      hash: p.hash,
      loadedAt: p.loadedAt,
      supernets: Object.keys(p.doc.supernets),
      rules: Object.values(p.doc.supernets).reduce((n, s) => n + s.rules.length, 0),
      refused: d.holder.refused,
    });
  });
  r.post('/policy/test', operator, async (ctx) => {
    const body = await readJsonBody(ctx);
    const req = parsePolicyTest(body);
    let policy = d.holder.current;
    if (body.policy !== undefined) {
      if (typeof body.policy !== 'string')
        throw new ApiError(400, 'bad_request', 'policy: expected the text of a policy file');
      try {
        policy = Policy.parse(body.policy, 'candidate', d.clock.now());
      } catch (err) {
        if (err instanceof PolicyError)
          throw new ApiError(400, 'bad_request', `policy: ${err.located(null)}`);
        throw err;
      }
    }
    const now = d.clock.now();
    json(ctx, 200, await d.store.read((tx) => testAdmission(tx, policy, req, now)));
  });

  // ---- audit: the service's own check of its log (the CLI's, with the pinned key, is the one to trust) ----
  r.get('/audit/verify', operator, async (ctx) => {
    const { entries, head } = await d.store.read((tx) => {
      const h = membership.audit.head(tx);
      return { entries: h ? membership.audit.since(tx, 0, h.seq) : [], head: h };
    });
    json(ctx, 200, analyseAudit(entries, head, d.adminSign));
  });

  // ---- operator admissions --------------------------------------------------------------
  r.get('/supernets/:sid/grants', operator, async (ctx) =>
    json(ctx, 200, { grants: await grants.list(paramSupernet(ctx.params.sid)) }),
  );
  r.post('/supernets/:sid/grants', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    json(ctx, 201, await grants.add(sid, parseGrant(await readJsonBody(ctx))));
  });
  r.delete('/supernets/:sid/grants/:name', operator, async (ctx) => {
    await grants.revoke(paramSupernet(ctx.params.sid), paramNodeName(ctx.params.name));
    json(ctx, 200, { ok: true });
  });
  r.get('/supernets/:sid/pending', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    json(ctx, 200, { pending: await pending(d, sid) });
  });

  // ---- dissolve -------------------------------------------------------------------------------
  r.post('/supernets/:sid/dissolve', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    const reason = parseDissolve(await readJsonBody(ctx));
    const res = await dissolveSupernet(
      {
        store: d.store,
        clock: d.clock,
        audit: membership.audit,
        scheme: d.scheme,
        varp: membership.varp,
        sessions: membership.sessions,
      },
      sid,
      reason,
    );
    // `expelled` first: it must reach each stream before its session ends it.
    for (const n of res.nodes) {
      d.events.expelled(n.stream, `Supernet ${sid} dissolved: ${reason}`);
      d.events.endSession(n.session);
      d.live.forget(n.stream);
    }
    json(ctx, 200, {
      ok: true,
      supernet: sid,
      nodes: res.nodes.map((n) => n.name),
      channels: res.channels,
      keyRecords: res.keyRecords,
    });
  });

  // ---- live views ---------------------------------------------------------------------------------
  r.get('/supernets/:sid/varp', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    const now = d.clock.now();
    const entries = await d.store.read((tx) => {
      if (!tx.get('supernets', sid))
        throw new ApiError(404, 'unknown_supernet', `supernet id in the path: no Supernet ${sid}`);
      return tx
        .list<VarpEntry>('varp', sid + '|')
        .map(([k, e]) => ({
          vip: k.slice(sid.length + 1),
          name: e.name,
          endpoint: e.endpoint,
          registeredAt: e.registeredAt,
          expiresAt: e.expiresAt,
          expired: e.expiresAt <= now,
        }))
        .sort((a, b) => ipOrder(a.vip) - ipOrder(b.vip));
    });
    json(ctx, 200, { now, entries });
  });
  r.get('/supernets/:sid/live', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    const now = d.clock.now();
    const nodes = await membership.supernets.listNodes(sid);
    json(ctx, 200, {
      now,
      nodes: nodes.map((n) => {
        const key = streamKey(sid, n.name);
        const l = d.live.get(key);
        return {
          ...n,
          online: d.events.connected(key),
          lastSeen: l?.at ?? null,
          host: l?.host ?? null,
          traffic: l?.counters ?? null,
          txRate: l?.txRate ?? null,
          rxRate: l?.rxRate ?? null,
        };
      }),
    });
  });

  // ---- storage roles --------------------------------------------------------------------------------
  r.get('/supernets/:sid/storage', operator, async (ctx) =>
    json(ctx, 200, { volumes: await storage.list(paramSupernet(ctx.params.sid)) }),
  );
  r.post('/supernets/:sid/storage/roles', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    const { volume, node } = parseRole(await readJsonBody(ctx));
    json(ctx, 201, await storage.grant(sid, volume, node));
  });
  r.delete('/supernets/:sid/storage/roles/:volume/:name', operator, async (ctx) => {
    await storage.revoke(
      paramSupernet(ctx.params.sid),
      parseVolumeName(ctx.params.volume, 'volume name in the path'),
      paramNodeName(ctx.params.name),
    );
    json(ctx, 200, { ok: true });
  });
  r.put('/supernets/:sid/storage/volumes/:volume/progress', operator, async (ctx) => {
    const sid = paramSupernet(ctx.params.sid);
    const volume = parseVolumeName(ctx.params.volume, 'volume name in the path');
    json(ctx, 200, await storage.progress(sid, volume, parseProgress(await readJsonBody(ctx))));
  });

  // ---- node: traffic reports ------------------------------------------------------------------------
  r.post('/stats', d.nodeAuth, async (ctx) => {
    const s = ctx.state.session as SessionRecord & { hash: string };
    const report = parseStatsReport(await readJsonBody(ctx, 4096));
    d.live.report(streamKey(s.supernet, s.name), d.clock.now(), report);
    ctx.status = 204;
  });

  return { grants, storage };
}

function ipOrder(v: string): number {
  return v.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/**
 * Refused logins worth offering as pending admissions: the latest
 * `policy_denied` of each node name and identity in the last
 * {@link PENDING_SCAN} audit entries, unless that identity was admitted as
 * that node since, is admitted now, or already holds an admission.
 */
async function pending(
  d: OperatorRouteDeps,
  sid: string,
): Promise<
  Array<{
    node: string;
    identity: string;
    channels: string[];
    reason: string;
    time: number;
    attempts: number;
  }>
> {
  return d.store.read((tx) => {
    if (!tx.get('supernets', sid))
      throw new ApiError(404, 'unknown_supernet', `supernet id in the path: no Supernet ${sid}`);
    const head = d.membership.audit.head(tx);
    if (!head) return [];
    const from = Math.max(0, head.seq - PENDING_SCAN);
    const entries: AuditEntry[] = d.membership.audit.since(tx, from, PENDING_SCAN);
    const out = new Map<
      string,
      {
        node: string;
        identity: string;
        channels: string[];
        reason: string;
        time: number;
        attempts: number;
      }
    >();
    for (const e of entries) {
      if (e.supernet !== sid || !e.node || !e.identity) continue;
      const k = `${e.node}|${e.identity}`;
      if (e.action === 'admit' || e.action === 'grant-added') out.delete(k);
      else if (e.action === 'deny' && e.detail.code === 'policy_denied') {
        const old = out.get(k);
        out.set(k, {
          node: e.node,
          identity: e.identity,
          channels: Array.isArray(e.detail.channels) ? (e.detail.channels as string[]) : [],
          reason: String(e.detail.reason ?? ''),
          time: e.time,
          attempts: (old?.attempts ?? 0) + 1,
        });
      }
    }
    return [...out.values()]
      .filter((p) => {
        const n = tx.get<NodeRecord>('nodes', `${sid}|${p.node}`);
        if (n && n.id === p.identity) return false;
        const g = tx.get<GrantRecord>('grants', grantKey(sid, p.node));
        return !(g && g.identity === p.identity);
      })
      .sort((a, b) => b.time - a.time)
      .slice(0, MAX_PENDING);
  });
}
