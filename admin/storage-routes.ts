/**
 * The node side of storage key groups (issue 5, docs/nfs.md §Storage keys):
 *
 *   GET /v1/storage/keys[?volume=NAME]      (node token) → {messages: SignedEnvelope[]}
 *       one signed `storage-keys` message per volume the node holds the
 *       storage role of, its epoch keys sealed to the node's X25519 key
 *   PUT /v1/storage/progress/:volume        (node token) {state, done, total, epoch}
 *       re-encryption progress, accepted only from the member chosen to run it
 *       (a `running` report renews its lease)
 *   POST /v1/storage/claim/:volume          (node token) → the volume record
 *       take over an unfinished re-encryption whose runner's lease lapsed;
 *       409 conflict while another member holds it
 *
 * The operator routes (roles, volumes, progress) are in admin/operator-routes.ts.
 */
import type { Context, Middleware } from 'koa';
import type { Router } from '@koa/router';
import { readJsonBody } from './body.js';
import type { SessionRecord } from './sessions.js';
import { parseProgress, parseVolumeName, type StorageRoles } from './storage-roles.js';

export interface StorageRouteDeps {
  nodeAuth: Middleware;
  json: (ctx: Context, status: number, body: unknown) => void;
  storage: StorageRoles;
}

export function storageNodeRoutes(r: Router, d: StorageRouteDeps): void {
  r.get('/storage/keys', d.nodeAuth, async (ctx) => {
    const s = ctx.state.session as SessionRecord;
    const q = ctx.query.volume;
    const volume = q === undefined ? undefined : parseVolumeName(q, 'volume');
    d.json(ctx, 200, { messages: await d.storage.keysFor(s.supernet, s.name, volume) });
  });
  r.put('/storage/progress/:volume', d.nodeAuth, async (ctx) => {
    const s = ctx.state.session as SessionRecord;
    const volume = parseVolumeName(ctx.params.volume, 'volume name in the path');
    const p = parseProgress(await readJsonBody(ctx));
    d.json(ctx, 200, await d.storage.progress(s.supernet, volume, p, s.name));
  });
  r.post('/storage/claim/:volume', d.nodeAuth, async (ctx) => {
    const s = ctx.state.session as SessionRecord;
    const volume = parseVolumeName(ctx.params.volume, 'volume name in the path');
    d.json(ctx, 200, await d.storage.claim(s.supernet, volume, s.name));
  });
}
