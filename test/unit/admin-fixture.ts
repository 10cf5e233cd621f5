/**
 * Shared set-up for the admin service tests: a real Koa service on
 * 127.0.0.1 (ephemeral port) over a lowdb file in a fresh temp folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Identity } from '../../admin/identity.js';
import { LowdbStore } from '../../admin/store-lowdb.js';
import { Policy } from '../../admin/policy.js';
import { ManualClock } from '../../admin/clock.js';
import { MemoryLogger } from '../../admin/logger.js';
import { createAdminService, type AdminService } from '../../admin/server.js';
import { AdminClient } from '../../admin/client.js';

export const OPERATOR_TOKEN = 'operator-token-for-tests-0123456789';

export interface Running {
  dir: string;
  dbPath: string;
  identity: Identity;
  clock: ManualClock;
  logger: MemoryLogger;
  store: LowdbStore;
  svc: AdminService;
  url: string;
  /** Client with the admin key pinned and the operator token. */
  client: AdminClient;
  stop(): Promise<void>;
}

export function tempDir(prefix = 'sn-admin-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts a service; pass `dir`/`identity`/`clock` of a stopped one to restart on the same database. */
export async function startService(
  opts: {
    policy?: Policy;
    dir?: string;
    identity?: Identity;
    clock?: ManualClock;
    graceMs?: number;
    varpTtlMs?: number;
    keySchemeName?: 'flat' | 'tree';
  } = {},
): Promise<Running> {
  const dir = opts.dir ?? tempDir();
  const dbPath = join(dir, 'db.json');
  const identity = opts.identity ?? Identity.generate('admin');
  const clock = opts.clock ?? new ManualClock(Date.now());
  const logger = new MemoryLogger();
  const store = await LowdbStore.open(dbPath);
  const svc = createAdminService({
    store,
    identity,
    policy: opts.policy ?? allowAll(clock.now()),
    clock,
    logger,
    graceMs: opts.graceMs ?? 30_000,
    varpTtlMs: opts.varpTtlMs ?? 90_000,
    operatorToken: OPERATOR_TOKEN,
    coalesceMs: 0,
    keySchemeName: opts.keySchemeName,
  });
  await svc.listen(0, '127.0.0.1');
  await svc.ready();
  const url = svc.url();
  const client = new AdminClient(url, {
    adminSign: identity.pub.sign,
    operatorToken: OPERATOR_TOKEN,
  });
  return {
    dir,
    dbPath,
    identity,
    clock,
    logger,
    store,
    svc,
    url,
    client,
    async stop() {
      await svc.close();
      await store.close();
    },
  };
}

/** Admits every identity to every channel of the listed Supernets. */
export function allowAll(now: number, supernets = ['0x4711', '0xcafe']): Policy {
  const doc = {
    version: 1,
    supernets: Object.fromEntries(
      supernets.map((s) => [
        s,
        { rules: [{ name: 'everyone', identities: ['*'], channels: ['*'] }] },
      ]),
    ),
  };
  return Policy.parse(JSON.stringify(doc), null, now);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Raw HTTP helper: returns status and parsed JSON (or text). */
export async function http(
  url: string,
  method: string,
  path: string,
  opts: { body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(url + path, { method, headers: opts.headers, body: opts.body });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, json, text };
}
