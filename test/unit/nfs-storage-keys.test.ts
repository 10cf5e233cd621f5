/**
 * Storage key groups (issue 5): the admin hands each holder of a volume's
 * storage role the volume keys, sealed to it in a signed `storage-keys`
 * message; expelling a member rotates to a new epoch and names a remaining
 * member to re-encrypt; `done` from that member retires the old keys.
 * Real admin service on 127.0.0.1 and the agent's real fetch/verify/open
 * path (net/storage-agent.ts).
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { readCollection } from '../../admin/store-lowdb.js';
import { StorageAgent, type StorageNode } from '../../net/storage-agent.js';
import { MemoryLogger } from '../../admin/logger.js';
import { Keyring } from '../../fs/keys.js';
import { startService, removeDir, http, tempDir, type Running } from './admin-fixture.js';

let svc: Running;
let agent: StorageAgent;
let stateDir: string;
const nodes = new Map<string, StorageNode>();
const EP = { host: '192.0.2.10', port: 7411 };

beforeAll(async () => {
  svc = await startService();
  stateDir = tempDir('sn-storage-agent-');
  agent = new StorageAgent({
    adminUrl: svc.url,
    adminSign: svc.identity.pub.sign,
    stateDir,
    logger: new MemoryLogger(),
    controlSocket: '/nonexistent',
  });
  await svc.client.createSupernet({
    id: '0x4711',
    pool: '10.71.17.0/24',
    channels: ['0x01', '0x123'],
  });
  for (const [i, n] of ['a1', 'c1', 'bigdisk1'].entries()) {
    const identity = Identity.generate(n);
    const r = await svc.client.login(identity, {
      name: n,
      supernet: '0x4711',
      channels: n === 'bigdisk1' ? ['0x123'] : ['0x01', '0x123'],
      endpoint: { ...EP, port: 7411 + i },
    });
    const cfg = r.config as unknown as { node: { id: string } };
    nodes.set(n, { supernet: '0x4711', name: n, token: r.token, identity, nodeId: cfg.node.id });
  }
  await svc.client.grantStorageRole('0x4711', 'vol1', 'a1');
  await svc.client.grantStorageRole('0x4711', 'vol1', 'c1');
});

afterAll(async () => {
  agent?.stop();
  await svc?.stop();
  if (svc) removeDir(svc.dir);
  if (stateDir) removeDir(stateDir);
});

const ring = async (n: string) => agent.keyring(nodes.get(n)!, 'vol1');

describe('storage key groups', () => {
  it('role holders get the same epoch-1 key; the provider and outsiders get none', async () => {
    const a = await ring('a1');
    const c = await ring('c1');
    expect(a.current).toBe(1);
    expect(a.keys.map((k) => k.epoch)).toEqual([1]);
    expect(c.keys).toEqual(a.keys);
    expect(a.volume).toMatch(/^[0-9a-f]{32}$/);
    // The answer is a valid fs key file.
    const k = Keyring.fromJSON(a);
    expect(k.current).toBe(1);
    await expect(ring('bigdisk1')).rejects.toMatchObject({ status: 403 });
    // c1's box is sealed to c1: a1's identity cannot open it.
    const raw = await http(svc.url, 'GET', '/v1/storage/keys?volume=vol1', {
      headers: { Authorization: `Node ${nodes.get('c1')!.token}` },
    });
    expect(raw.status).toBe(200);
    const stolen = { ...nodes.get('a1')!, token: nodes.get('c1')!.token };
    await expect(agent.keyring(stolen, 'vol1')).rejects.toThrow();
  });

  it('refuses an answer not signed by the pinned admin key', async () => {
    const wrong = new StorageAgent({
      adminUrl: svc.url,
      adminSign: Identity.generate('other').pub.sign,
      stateDir,
      logger: new MemoryLogger(),
      controlSocket: '/nonexistent',
    });
    await expect(wrong.keyring(nodes.get('a1')!, 'vol1')).rejects.toThrow(/invalid signed/);
  });

  it('expel rotates to epoch 2 for the remaining member only and names it to re-encrypt', async () => {
    const before = await ring('a1');
    await http(svc.url, 'POST', '/v1/supernets/0x4711/nodes/c1/expel', {
      headers: {
        Authorization: `Bearer operator-token-for-tests-0123456789`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ reason: 'left the project' }),
    });
    const a = await ring('a1');
    expect(a.current).toBe(2);
    expect(a.keys.map((k) => k.epoch)).toEqual([1, 2]);
    expect(a.keys[0]).toEqual(before.keys[0]);
    expect(a.keys[1]!.key).not.toEqual(a.keys[0]!.key);
    expect(a.reencrypt).toEqual({ state: 'needed', by: 'a1', epoch: 2 });
    await expect(ring('c1')).rejects.toMatchObject({ status: 401 });
    const [vol] = await svc.client.storage('0x4711');
    expect(vol).toMatchObject({ members: ['a1'], keyEpochs: [1, 2] });
  });

  it('progress only from the named member and for the right epoch; done retires the old keys', async () => {
    const put = (n: string, body: unknown) =>
      http(svc.url, 'PUT', '/v1/storage/progress/vol1', {
        headers: {
          Authorization: `Node ${nodes.get(n)!.token}`,
          'Content-Type': 'application/json',
        },
        body: JSON.stringify(body),
      });
    expect((await put('bigdisk1', { state: 'running', done: 1, total: 9, epoch: 2 })).status).toBe(
      403,
    );
    const stale = await put('a1', { state: 'running', done: 1, total: 9, epoch: 7 });
    expect(stale.status).toBe(409);
    expect((await put('a1', { state: 'running', done: 4, total: 9, epoch: 2 })).status).toBe(200);
    expect((await svc.client.storage('0x4711'))[0]).toMatchObject({
      reencrypt: { state: 'running', done: 4, total: 9, by: 'a1', epoch: 2 },
    });
    // Still both keys while objects under epoch 1 may remain.
    expect((await ring('a1')).keys.map((k) => k.epoch)).toEqual([1, 2]);
    expect((await put('a1', { state: 'done', done: 9, total: 9, epoch: 2 })).status).toBe(200);
    const a = await ring('a1');
    expect(a.keys.map((k) => k.epoch)).toEqual([2]);
    expect(a.reencrypt).toEqual({ state: 'done', by: null, epoch: null });
    // The epoch-1 key is gone from the admin's database too.
    const rows = await readCollection(svc.dbPath, 'storage');
    const state = rows.find(([k]) => k === 'skey|0x4711|vol1')![1] as {
      epochs: Array<{ epoch: number }>;
    };
    expect(state.epochs.map((e) => e.epoch)).toEqual([2]);
  });

  it('rejects bad progress and volume names with a 400 naming the field', async () => {
    const h = { Authorization: `Node ${nodes.get('a1')!.token}` };
    const bad = await http(svc.url, 'PUT', '/v1/storage/progress/vol1', {
      headers: { ...h, 'Content-Type': 'application/json' },
      body: JSON.stringify({ state: 'done', epoch: 0 }),
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/epoch/);
    const name = await http(svc.url, 'GET', '/v1/storage/keys?volume=Bad%20Name', { headers: h });
    expect(name.status).toBe(400);
    expect(name.text).toMatch(/volume/);
  });
});

describe('re-encryption hand-over', () => {
  const call = (n: string, method: string, path: string, body?: unknown) =>
    http(svc.url, method, path, {
      headers: {
        Authorization: `Node ${nodes.get(n)!.token}`,
        ...(body ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const vol2 = async () => (await svc.client.storage('0x4711')).find((v) => v.volume === 'vol2')!;

  it('the named member holds the job on a lease; another member takes it over only once it lapsed', async () => {
    const identity = Identity.generate('d1');
    const r = await svc.client.login(identity, {
      name: 'd1',
      supernet: '0x4711',
      channels: ['0x123'],
      endpoint: { ...EP, port: 7420 },
    });
    const cfg = r.config as unknown as { node: { id: string } };
    nodes.set('d1', {
      supernet: '0x4711',
      name: 'd1',
      token: r.token,
      identity,
      nodeId: cfg.node.id,
    });
    for (const n of ['a1', 'd1', 'bigdisk1'])
      await svc.client.grantStorageRole('0x4711', 'vol2', n);
    await svc.client.revokeStorageRole('0x4711', 'vol2', 'bigdisk1');
    expect((await vol2()).reencrypt).toMatchObject({ state: 'needed', by: 'a1', epoch: 2 });

    // a1's lease runs: d1 is told who holds it; a non-member may not ask at all.
    const early = await call('d1', 'POST', '/v1/storage/claim/vol2');
    expect(early.status).toBe(409);
    expect(early.text).toMatch(/a1 is re-encrypting vol2/);
    expect((await call('bigdisk1', 'POST', '/v1/storage/claim/vol2')).status).toBe(403);

    // a1's progress renews the lease: 50 s later it still holds it.
    svc.clock.advance(50_000);
    const run = { state: 'running', done: 1, total: 10, epoch: 2 };
    expect((await call('a1', 'PUT', '/v1/storage/progress/vol2', run)).status).toBe(200);
    svc.clock.advance(50_000);
    expect((await call('d1', 'POST', '/v1/storage/claim/vol2')).status).toBe(409);

    // a1 goes quiet past its lease: d1 takes over, audited; a1's next report is refused.
    svc.clock.advance(11_000);
    const took = await call('d1', 'POST', '/v1/storage/claim/vol2');
    expect(took.status).toBe(200);
    expect((await vol2()).reencrypt).toMatchObject({ state: 'running', by: 'd1', epoch: 2 });
    const { entries } = await svc.client.audit();
    expect(entries.at(-1)).toMatchObject({
      action: 'storage-reencrypt-claimed',
      node: 'd1',
      detail: { volume: 'vol2', from: 'a1', epoch: 2 },
    });
    expect((await call('a1', 'PUT', '/v1/storage/progress/vol2', run)).status).toBe(403);
    // Claiming again while holding it only renews.
    expect((await call('d1', 'POST', '/v1/storage/claim/vol2')).status).toBe(200);
    const done = { state: 'done', done: 10, total: 10, epoch: 2 };
    expect((await call('d1', 'PUT', '/v1/storage/progress/vol2', done)).status).toBe(200);
    const finished = await call('d1', 'POST', '/v1/storage/claim/vol2');
    expect(finished.status).toBe(409);
    expect(finished.text).toMatch(/needs no re-encryption/);
  });
});
