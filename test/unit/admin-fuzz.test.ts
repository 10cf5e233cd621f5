import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import fc from 'fast-check';
import { Identity } from '../../admin/identity.js';
import { signEnvelope } from '../../admin/protocol.js';
import { startService, removeDir, http, OPERATOR_TOKEN, type Running } from './admin-fixture.js';

/** Every route with the authorization it needs. */
const ROUTES: Array<[string, string, 'none' | 'node' | 'operator']> = [
  ['GET', '/v1/info', 'none'],
  ['POST', '/v1/challenge', 'none'],
  ['POST', '/v1/login', 'none'],
  ['POST', '/v1/logout', 'node'],
  ['GET', '/v1/config', 'node'],
  ['POST', '/v1/varp/register', 'node'],
  ['GET', '/v1/varp/resolve', 'node'],
  ['POST', '/v1/supernets', 'operator'],
  ['GET', '/v1/supernets', 'operator'],
  ['GET', '/v1/supernets/0x4711', 'operator'],
  ['POST', '/v1/supernets/0x4711/channels', 'operator'],
  ['GET', '/v1/supernets/0x4711/nodes', 'operator'],
  ['POST', '/v1/supernets/0x4711/nodes/a1/expel', 'operator'],
  ['GET', '/v1/audit', 'operator'],
  ['GET', '/v1/policy', 'operator'],
];

describe('admin API under random input', () => {
  let r: Running;
  let nodeToken: string;
  const node = Identity.generate();

  beforeAll(async () => {
    r = await startService();
    await r.client.createSupernet({ id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01'] });
    nodeToken = (
      await r.client.login(node, {
        name: 'keeper',
        supernet: '0x4711',
        channels: ['0x01'],
        endpoint: { host: '127.0.0.1', port: 9 },
      })
    ).token;
  });
  afterAll(async () => {
    await r.stop();
    removeDir(r.dir);
  });

  const auth = (kind: 'none' | 'node' | 'operator'): Record<string, string> =>
    kind === 'node'
      ? { authorization: `Node ${nodeToken}` }
      : kind === 'operator'
        ? { authorization: `Bearer ${OPERATOR_TOKEN}` }
        : {};

  const expectCoded = (res: { status: number; json: unknown }, what: string): void => {
    if (res.status >= 500) throw new Error(`${what} → ${res.status} ${JSON.stringify(res.json)}`);
    if (res.status >= 400) {
      const e = (res.json as { error?: { code?: unknown; message?: unknown } }).error;
      if (typeof e?.code !== 'string' || typeof e?.message !== 'string')
        throw new Error(`${what} → uncoded ${res.status}`);
    }
  };

  it('random JSON bodies and query strings at every route never give a 5xx', async () => {
    // Logout would end the session the other routes use: keep it for last.
    const routes = [
      ...ROUTES.filter((x) => x[1] !== '/v1/logout'),
      ROUTES.find((x) => x[1] === '/v1/logout')!,
    ];
    for (const [method, path, kind] of routes) {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.jsonValue().map((v) => JSON.stringify(v)),
            fc.string(),
            fc.constant(''),
          ),
          fc.dictionary(
            fc.constantFrom('vip', 'since', 'limit', 'x'),
            fc.oneof(fc.string(), fc.nat().map(String)),
            { maxKeys: 3 },
          ),
          async (body, query) => {
            const q = new URLSearchParams(query).toString();
            const res = await http(r.url, method, path + (q ? `?${q}` : ''), {
              headers: {
                ...auth(kind),
                ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
              },
              body: method === 'POST' ? body : undefined,
            });
            expectCoded(res, `${method} ${path} ${body.slice(0, 80)}`);
          },
        ),
        { numRuns: path === '/v1/logout' ? 5 : 40 },
      );
    }
  });

  it('random path parameters and authorization headers never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 30 }),
        fc.string({ maxLength: 30 }),
        fc.oneof(
          fc.string(),
          fc.constant('Node '),
          fc.constant('Bearer '),
          fc.string().map((s) => `Node ${s}`),
        ),
        async (sid, name, authz) => {
          const p = `/v1/supernets/${encodeURIComponent(sid)}/nodes/${encodeURIComponent(name)}/expel`;
          const headers: Record<string, string> = {
            authorization: `Bearer ${OPERATOR_TOKEN}`,
            'content-type': 'application/json',
          };
          expectCoded(await http(r.url, 'POST', p, { headers, body: '{}' }), p);
          expectCoded(
            await http(r.url, 'GET', `/v1/supernets/${encodeURIComponent(sid)}`, { headers }),
            sid,
          );
          let h: Record<string, string> = {};
          try {
            new Headers({ authorization: authz });
            h = { authorization: authz };
          } catch {
            // not a legal header value: fetch would refuse to send it
          }
          expectCoded(await http(r.url, 'GET', '/v1/config', { headers: h }), authz);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('validly signed login requests with random fields are refused with 4xx, never 5xx', async () => {
    const anyField = fc.oneof(fc.jsonValue(), fc.constant(undefined));
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          name: anyField,
          supernet: anyField,
          channels: anyField,
          endpoint: anyField,
          requestedVip: anyField,
          identity: anyField,
        }),
        fc.boolean(),
        async (fields, realIdentity) => {
          const { challenge } = await r.client.challenge();
          const body: Record<string, unknown> = { challenge, ...fields };
          if (realIdentity) body.identity = node.pub;
          for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
          const request = signEnvelope(node, 'login-request', body);
          const res = await http(r.url, 'POST', '/v1/login', {
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ request }),
          });
          expectCoded(res, JSON.stringify(body).slice(0, 200));
          expect(res.status).not.toBe(200);
        },
      ),
      { numRuns: 150 },
    );
    expect(r.logger.records.filter((x) => x.level === 'error')).toEqual([]);
  });
});
