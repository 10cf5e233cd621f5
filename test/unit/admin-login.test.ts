import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import {
  openEnvelope,
  signEnvelope,
  channelKeyContext,
  type NodeConfig,
} from '../../admin/protocol.js';
import { AdminApiError, AdminClient } from '../../admin/client.js';
import { Policy } from '../../admin/policy.js';
import { verifyAuditChain } from '../../admin/audit.js';
import { startService, removeDir, http, OPERATOR_TOKEN, type Running } from './admin-fixture.js';

const EP = { host: '127.0.0.1', port: 4500 };

async function refusal(p: Promise<unknown>): Promise<AdminApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AdminApiError) return err;
    throw err;
  }
  throw new Error('expected the admin service to refuse');
}

describe('admin login', () => {
  let r: Running;
  const alice = Identity.generate('alice');
  const bob = Identity.generate('bob');
  const mallory = Identity.generate('mallory');

  beforeAll(async () => {
    const policy = Policy.parse(
      JSON.stringify({
        version: 1,
        groups: { staff: [alice.id, bob.id] },
        supernets: {
          '0x4711': {
            rules: [
              {
                name: 'staff',
                identities: ['group:staff'],
                nodes: ['a*', 'b*', 'c*'],
                channels: ['0x01', '0x123'],
              },
              {
                name: 'fixed-c1',
                identities: [mallory.id],
                nodes: ['c1'],
                channels: ['0x123'],
                address: { fixed: '10.71.17.50' },
              },
            ],
          },
        },
      }),
      null,
      Date.now(),
    );
    // Pinned to the flat scheme: these cases check its per-member sealed keys (the tree's are in keys-tree.test.ts).
    r = await startService({ policy, keySchemeName: 'flat' });
    await r.client.createSupernet({
      id: '0x4711',
      pool: '10.71.17.0/24',
      channels: ['0x01', '0x123'],
    });
  });
  afterAll(async () => {
    await r.stop();
    removeDir(r.dir);
  });

  it('admits a node: config signed by the admin, token and keys sealed to the node only', async () => {
    const res = await r.client.login(alice, {
      name: 'a1',
      supernet: '0x4711',
      channels: ['0x01', '0x123'],
      endpoint: EP,
    });
    expect(res.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const cfg = openEnvelope<NodeConfig>(res.configEnvelope, r.identity.pub.sign, 'node-config');
    expect(cfg).toEqual(res.config);
    expect(() => openEnvelope(res.configEnvelope, alice.pub.sign, 'node-config')).toThrow();
    expect(cfg.node).toEqual({
      name: 'a1',
      id: alice.id,
      vip: '10.71.17.2',
      prefixLen: 24,
      channels: ['0x01', '0x123'],
    });
    expect(cfg.pool).toBe('10.71.17.0/24');
    expect(cfg.keys.map((k) => [k.channel, k.epoch])).toEqual([
      ['0x01', 1],
      ['0x123', 1],
    ]);
    for (const k of cfg.keys) {
      const ctx = channelKeyContext('0x4711', k.channel, k.epoch, alice.id);
      expect(alice.open(Buffer.from(k.box, 'base64url'), ctx)).toHaveLength(32);
      expect(() => bob.open(Buffer.from(k.box, 'base64url'), ctx)).toThrow();
    }
    // The token works for node routes.
    const again = await r.client.config(res.token);
    expect(again.config.node.name).toBe('a1');
  });

  it('refuses a replayed challenge', async () => {
    const { challenge } = await r.client.challenge();
    const body = {
      challenge,
      identity: bob.pub,
      name: 'b1',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    };
    const request = signEnvelope(bob, 'login-request', body);
    const first = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request }),
    });
    expect(first.status).toBe(200);
    const replay = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request }),
    });
    expect(replay.status).toBe(401);
    expect(replay.json).toMatchObject({ error: { code: 'challenge_invalid' } });
  });

  it('refuses a bad signature and a request signed by another key than it claims', async () => {
    const { challenge } = await r.client.challenge();
    const body = {
      challenge,
      identity: bob.pub,
      name: 'b2',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    };
    const forged = signEnvelope(mallory, 'login-request', body); // claims bob's keys
    const res = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: forged }),
    });
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ error: { code: 'bad_signature' } });
    const good = signEnvelope(bob, 'login-request', body);
    const sig = Buffer.from(good.sig, 'base64url');
    sig[5] ^= 1;
    const flipped = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: { ...good, sig: sig.toString('base64url') } }),
    });
    expect(flipped.status).toBe(401);
    // The challenge was not consumed by the forgeries: the genuine request still succeeds.
    const ok = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: good }),
    });
    expect(ok.status).toBe(200);
  });

  it('denies by policy, names the rule, and audits the denial', async () => {
    const e1 = await refusal(
      r.client.login(mallory, { name: 'a9', supernet: '0x4711', channels: ['0x01'], endpoint: EP }),
    );
    expect(e1.status).toBe(403);
    expect(e1.code).toBe('policy_denied');
    expect(e1.message).toContain('no rule of supernets["0x4711"]');
    const e2 = await refusal(
      r.client.login(alice, {
        name: 'a2',
        supernet: '0x4711',
        channels: ['0x01', '0x123'],
        endpoint: EP,
        requestedVip: '10.71.17.1',
      }),
    );
    expect(e2.message).toContain('reserved');
    const e3 = await refusal(
      r.client.login(mallory, { name: 'c1', supernet: '0x4711', channels: ['0x01'], endpoint: EP }),
    );
    expect(e3.message).toContain(
      'rule "fixed-c1" (supernets["0x4711"].rules[1]) does not allow channel 0x01',
    );
    const { entries, head } = await r.client.audit(0);
    const denies = entries.filter((e) => e.action === 'deny');
    expect(denies.map((d) => d.detail.reason)).toEqual(
      expect.arrayContaining([e1.message, e3.message]),
    );
    expect(denies.find((d) => d.detail.reason === e3.message)).toMatchObject({
      node: 'c1',
      identity: mallory.id,
      supernet: '0x4711',
    });
    expect(verifyAuditChain(entries, r.identity.pub.sign, head)).toEqual({
      ok: true,
      seq: head!.seq,
    });
  });

  it('gives a fixed address from the policy', async () => {
    const res = await r.client.login(mallory, {
      name: 'c1',
      supernet: '0x4711',
      channels: ['0x123'],
      endpoint: EP,
    });
    expect(res.config.node.vip).toBe('10.71.17.50');
  });

  it('answers 409 for a node name held by another identity, and replaces the session on re-login', async () => {
    const first = await r.client.login(alice, {
      name: 'a3',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    });
    const taken = await refusal(
      r.client.login(bob, { name: 'a3', supernet: '0x4711', channels: ['0x01'], endpoint: EP }),
    );
    expect(taken.status).toBe(409);
    expect(taken.code).toBe('name_taken');
    const second = await r.client.login(alice, {
      name: 'a3',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    });
    expect(second.config.node.vip).toBe(first.config.node.vip);
    // Unchanged membership: no rekey on re-login.
    expect(second.config.keys.find((k) => k.channel === '0x01')!.epoch).toBe(
      first.config.keys.find((k) => k.channel === '0x01')!.epoch,
    );
    const old = await refusal(r.client.config(first.token));
    expect(old.status).toBe(401);
    expect(old.code).toBe('session_revoked');
    await r.client.logout(second.token);
    const out = await refusal(r.client.config(second.token));
    expect(out.code).toBe('session_revoked');
    // After logout the same identity+name gets the same address again.
    const third = await r.client.login(alice, {
      name: 'a3',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    });
    expect(third.config.node.vip).toBe(first.config.node.vip);
  });

  it('validates every field and names it', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'A1' }, 'request.name'],
      [{ supernet: '0x0' }, 'request.supernet'],
      [{ channels: [] }, 'request.channels'],
      [{ channels: ['0x01', '0x1'] }, 'request.channels'],
      [{ channels: ['zz'] }, 'request.channels[0]'],
      [{ endpoint: { host: '0.0.0.0', port: 1 } }, 'request.endpoint.host'],
      [{ endpoint: { host: '127.0.0.1', port: 70000 } }, 'request.endpoint.port'],
      [{ endpoint: { host: 'example.com', port: 1 } }, 'request.endpoint.host'],
      [{ requestedVip: 'nope' }, 'request.requestedVip'],
      [{ extra: 1 }, 'request.extra'],
    ];
    for (const [override, field] of cases) {
      const { challenge } = await r.client.challenge();
      const body = {
        challenge,
        identity: bob.pub,
        name: 'b5',
        supernet: '0x4711',
        channels: ['0x01'],
        endpoint: EP,
        ...override,
      };
      const res = await http(r.url, 'POST', '/v1/login', {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request: signEnvelope(bob, 'login-request', body) }),
      });
      expect([
        res.status,
        (res.json as { error: { message: string } }).error.message.startsWith(field + ':'),
      ]).toEqual([400, true]);
    }
    const unknownSn = await refusal(
      r.client.login(bob, { name: 'b5', supernet: '0x9999', channels: ['0x01'], endpoint: EP }),
    );
    expect([unknownSn.status, unknownSn.code]).toEqual([404, 'unknown_supernet']);
    const unknownCh = await refusal(
      r.client.login(bob, { name: 'b5', supernet: '0x4711', channels: ['0x02'], endpoint: EP }),
    );
    expect([unknownCh.status, unknownCh.message]).toEqual([
      404,
      'request.channels[0]: Supernet 0x4711 has no channel 0x02',
    ]);
  });

  it('requires the operator token on operator routes', async () => {
    const none = await http(r.url, 'GET', '/v1/supernets');
    expect(none.status).toBe(401);
    const wrong = await http(r.url, 'GET', '/v1/supernets', {
      headers: { authorization: 'Bearer not-the-token' },
    });
    expect(wrong.status).toBe(403);
    const ok = await http(r.url, 'GET', '/v1/supernets', {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(ok.status).toBe(200);
    const nodeTokenIsNotOperator = new AdminClient(r.url, { operatorToken: 'x'.repeat(43) });
    expect((await refusal(nodeTokenIsNotOperator.listSupernets())).status).toBe(403);
    const dup = await refusal(r.client.createSupernet({ id: '0x00004711', pool: '10.9.0.0/16' }));
    expect([dup.status, dup.code]).toEqual([409, 'supernet_exists']);
    const badPool = await refusal(r.client.createSupernet({ id: '0x4712', pool: '10.9.0.1/16' }));
    expect(badPool.message).toMatch(/^pool: .*host bits/);
  });

  it('answers unknown routes, wrong methods, bad JSON, wrong types and big bodies with coded 4xx', async () => {
    expect((await http(r.url, 'GET', '/v1/nope')).json).toMatchObject({
      error: { code: 'not_found' },
    });
    expect((await http(r.url, 'DELETE', '/v1/info')).status).toBe(405);
    const badJson = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(badJson.json).toMatchObject({ error: { code: 'bad_json' } });
    const text = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(text.status).toBe(415);
    const big = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'x'.repeat(70_000) }),
    });
    expect(big.status).toBe(413);
    const arr = await http(r.url, 'POST', '/v1/login', {
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    expect(arr.json).toMatchObject({
      error: { code: 'bad_request', message: 'body: expected a JSON object' },
    });
  });
});
