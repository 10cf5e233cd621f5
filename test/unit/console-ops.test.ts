/**
 * The administrator's operations over a real service (admin/operator-routes.ts):
 * dissolving a Supernet (nodes logged out, keys gone from the store, audit),
 * storage roles, the VARP table, pending admissions and node traffic reports.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { AdminApiError } from '../../admin/client.js';
import { LowdbStore, readCollection } from '../../admin/store-lowdb.js';
import { Policy } from '../../admin/policy.js';
import { startService, removeDir, OPERATOR_TOKEN, http, type Running } from './admin-fixture.js';

const EP = { host: '192.0.2.10', port: 7411 };
let svc: Running;
const ids = new Map<string, Identity>();
const tokens = new Map<string, string>();

const op = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };

beforeAll(async () => {
  for (const n of ['a1', 'c1', 'x9']) ids.set(n, Identity.generate(n));
  const policy = Policy.parse(
    JSON.stringify({
      version: 1,
      supernets: {
        '0x4711': {
          rules: [
            {
              name: 'a-and-c',
              identities: [ids.get('a1')!.id, ids.get('c1')!.id],
              nodes: ['a1', 'c1'],
              channels: ['*'],
            },
          ],
        },
        '0x99': { rules: [{ name: 'any', identities: ['*'], channels: ['*'] }] },
      },
    }),
    null,
    Date.now(),
  );
  // Flat scheme: the dissolve case counts its key records (two channels, one record each).
  svc = await startService({ policy, keySchemeName: 'flat' });
  await svc.client.createSupernet({
    id: '0x4711',
    pool: '10.71.17.0/24',
    channels: ['0x01', '0x123'],
  });
  await svc.client.createSupernet({ id: '0x99', pool: '10.99.0.0/24', channels: ['0x01'] });
  for (const n of ['a1', 'c1']) {
    const r = await svc.client.login(ids.get(n)!, {
      name: n,
      supernet: '0x4711',
      channels: ['0x01', '0x123'],
      endpoint: { ...EP, port: n === 'a1' ? 7411 : 7412 },
    });
    tokens.set(n, r.token);
  }
  // A node of another Supernet, which must survive the dissolution.
  const other = await svc.client.login(ids.get('x9')!, {
    name: 'x9',
    supernet: '0x99',
    channels: ['0x01'],
    endpoint: EP,
  });
  tokens.set('x9', other.token);
});

afterAll(async () => {
  await svc?.stop();
  if (svc) removeDir(svc.dir);
});

describe('administrator operations', () => {
  it('shows the VARP table and node traffic reported by agents', async () => {
    const varp = await http(svc.url, 'GET', '/v1/supernets/0x4711/varp', { headers: op });
    expect(varp.status).toBe(200);
    expect((varp.json as { entries: Array<{ name: string; endpoint: unknown }> }).entries).toEqual([
      expect.objectContaining({ name: 'a1', endpoint: { host: '192.0.2.10', port: 7411 } }),
      expect.objectContaining({ name: 'c1', endpoint: { host: '192.0.2.10', port: 7412 } }),
    ]);
    const counters = {
      txPackets: 5,
      txBytes: 500,
      rxPackets: 4,
      rxBytes: 400,
      txNoRoute: 0,
      txNoKey: 0,
    };
    const report = (token: string, body: unknown) =>
      http(svc.url, 'POST', '/v1/stats', {
        headers: { authorization: `Node ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await report(tokens.get('a1')!, { host: 'h1', counters })).status).toBe(204);
    const bad = await report(tokens.get('a1')!, { counters: { ...counters, txBytes: -1 } });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/counters\.txBytes: expected an integer/);
    expect((await report('A'.repeat(43), { counters })).status).toBe(401);
    const live = await http(svc.url, 'GET', '/v1/supernets/0x4711/live', { headers: op });
    const a1 = (live.json as { nodes: Array<Record<string, unknown>> }).nodes.find(
      (n) => n.name === 'a1',
    );
    expect(a1).toMatchObject({ host: 'h1', traffic: counters, online: false });
    expect(typeof a1!.lastSeen).toBe('number');
  });

  it('lists refused logins as pending admissions until admitted', async () => {
    const mallory = Identity.generate('m1');
    await expect(
      svc.client.login(mallory, {
        name: 'm1',
        supernet: '0x4711',
        channels: ['0x01'],
        endpoint: EP,
      }),
    ).rejects.toMatchObject({ code: 'policy_denied' });
    const p1 = await http(svc.url, 'GET', '/v1/supernets/0x4711/pending', { headers: op });
    expect((p1.json as { pending: unknown[] }).pending).toEqual([
      expect.objectContaining({
        node: 'm1',
        identity: mallory.id,
        channels: ['0x01'],
        attempts: 1,
      }),
    ]);
    await svc.client.addGrant('0x4711', { node: 'm1', identity: mallory.id, channels: ['0x01'] });
    const p2 = await http(svc.url, 'GET', '/v1/supernets/0x4711/pending', { headers: op });
    expect((p2.json as { pending: unknown[] }).pending).toEqual([]);
  });

  it('grants and revokes storage roles; a revocation marks the volume for re-encryption', async () => {
    await svc.client.grantStorageRole('0x4711', 'home', 'a1');
    await svc.client.grantStorageRole('0x4711', 'home', 'c1');
    await expect(svc.client.grantStorageRole('0x4711', 'home', 'c1')).rejects.toMatchObject({
      status: 409,
      code: 'role_exists',
    });
    await svc.client.revokeStorageRole('0x4711', 'home', 'c1');
    const vols = await svc.client.storage('0x4711');
    expect(vols).toEqual([
      expect.objectContaining({
        volume: 'home',
        members: ['a1'],
        reencrypt: expect.objectContaining({
          state: 'needed',
          cause: 'storage role of c1 revoked',
        }),
      }),
    ]);
    const prog = await http(svc.url, 'PUT', '/v1/supernets/0x4711/storage/volumes/home/progress', {
      headers: op,
      body: JSON.stringify({ state: 'running', done: 3, total: 10 }),
    });
    expect(prog.status).toBe(200);
    expect(prog.json).toMatchObject({ reencrypt: { state: 'running', done: 3, total: 10 } });
    const fin = await http(svc.url, 'PUT', '/v1/supernets/0x4711/storage/volumes/home/progress', {
      headers: op,
      body: JSON.stringify({ state: 'done', done: 10, total: 10 }),
    });
    expect(fin.status).toBe(200);
    const ends = (await svc.client.audit(0)).entries.filter(
      (e) => e.action === 'storage-reencrypted',
    );
    expect(ends).toEqual([
      expect.objectContaining({
        detail: expect.objectContaining({ volume: 'home', state: 'done', done: 10 }),
      }),
    ]);
    await expect(svc.client.grantStorageRole('0x4711', 'Bad Name', 'a1')).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/^volume: /),
    });
  });

  it('dissolves a Supernet: every node logged out, its keys gone from the store, the audit shows it', async () => {
    const keysOf = async (sid: string) =>
      (await readCollection(svc.dbPath, 'keys')).filter(([k]) => k.split('|')[0] === sid);
    expect((await keysOf('0x4711')).length).toBe(2);
    await expect(svc.client.dissolve('0x4711', 'x'.repeat(201))).rejects.toMatchObject({
      status: 400,
    });
    const r = await svc.client.dissolve('0x4711', 'project over');
    expect(r).toMatchObject({
      ok: true,
      nodes: ['a1', 'c1'],
      channels: ['0x01', '0x123'],
      keyRecords: 2,
    });
    for (const n of ['a1', 'c1']) {
      await expect(svc.client.config(tokens.get(n)!)).rejects.toMatchObject({
        status: 401,
        code: 'expelled',
        message: 'Supernet 0x4711 dissolved: project over',
      });
    }
    expect(await keysOf('0x4711')).toEqual([]);
    const all = await readCollection(svc.dbPath, 'storage');
    expect(all.filter(([k]) => k.includes('|0x4711|'))).toEqual([]);
    await expect(svc.client.supernet('0x4711')).rejects.toMatchObject({ code: 'unknown_supernet' });
    // The other Supernet is untouched.
    expect((await svc.client.config(tokens.get('x9')!)).config.node.name).toBe('x9');
    const audit = (await svc.client.audit(0)).entries;
    const tail = audit.slice(-3).map((e) => [e.action, e.node]);
    expect(tail).toEqual([
      ['expel', 'a1'],
      ['expel', 'c1'],
      ['supernet-dissolved', null],
    ]);
    expect(audit.at(-1)!.detail).toEqual({
      reason: 'project over',
      nodes: ['a1', 'c1'],
      channels: ['0x01', '0x123'],
      keyRecords: 2,
    });
    // It may be created anew; nothing carries over.
    await svc.client.createSupernet({ id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01'] });
    expect(((await svc.client.supernet('0x4711')).nodes as unknown[]).length).toBe(0);
    await expect(svc.client.dissolve('0x4712')).rejects.toBeInstanceOf(AdminApiError);
  });

  it('survives a restart after a dissolution (the database is consistent)', async () => {
    await svc.stop();
    const store = await LowdbStore.open(svc.dbPath);
    await store.close();
    svc = await startService({ dir: svc.dir, identity: svc.identity, clock: svc.clock });
    expect((await svc.client.listSupernets()).map((s) => s.id).sort()).toEqual([
      '0x0099',
      '0x4711',
    ]);
  });
});
