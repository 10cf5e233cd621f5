/**
 * The admin service's Prometheus endpoint (admin/metrics.ts) over a real
 * service: authentication, request and login counters with the status the
 * caller got, store-derived gauges.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { startService, removeDir, OPERATOR_TOKEN, http, type Running } from './admin-fixture.js';

let svc: Running;

beforeAll(async () => {
  svc = await startService();
  await svc.client.createSupernet({
    id: '0x4711',
    pool: '10.71.17.0/24',
    channels: ['0x01', '0x123'],
  });
  await svc.client.login(Identity.generate('a1'), {
    name: 'a1',
    supernet: '0x4711',
    channels: ['0x01'],
    endpoint: { host: '192.0.2.1', port: 7411 },
  });
  await expect(
    svc.client.login(Identity.generate('a2'), {
      name: 'a2',
      supernet: '0x4711',
      channels: ['0x77'],
      endpoint: { host: '192.0.2.1', port: 7411 },
    }),
  ).rejects.toMatchObject({ code: 'unknown_channel' });
});

afterAll(async () => {
  await svc?.stop();
  if (svc) removeDir(svc.dir);
});

describe('admin metrics', () => {
  it('needs a token', async () => {
    expect((await http(svc.url, 'GET', '/metrics')).status).toBe(401);
    const wrong = await http(svc.url, 'GET', '/metrics', {
      headers: { authorization: 'Bearer not-the-token-at-all' },
    });
    expect(wrong.status).toBe(403);
    expect(wrong.json).toEqual({
      error: { code: 'forbidden', message: 'Authorization: wrong token' },
    });
  });

  it('exposes requests, logins and store gauges in the Prometheus text format', async () => {
    const r = await http(svc.url, 'GET', '/metrics', {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(r.status).toBe(200);
    const t = r.text;
    expect(t).toMatch(/^# TYPE supernet_admin_http_requests_total counter$/m);
    expect(t).toMatch(
      /^supernet_admin_http_requests_total\{method="POST",route="\/v1\/login",status="200"\} 1$/m,
    );
    expect(t).toMatch(
      /^supernet_admin_http_requests_total\{method="POST",route="\/v1\/login",status="404"\} 1$/m,
    );
    expect(t).toMatch(/^supernet_admin_logins_total\{result="admitted"\} 1$/m);
    expect(t).toMatch(/^supernet_admin_logins_total\{result="unknown_channel"\} 1$/m);
    expect(t).toMatch(/^supernet_admin_supernets 1$/m);
    expect(t).toMatch(/^supernet_admin_nodes\{supernet="0x4711"\} 1$/m);
    expect(t).toMatch(/^supernet_admin_channel_epoch\{supernet="0x4711",channel="0x01"\} 1$/m);
    expect(t).toMatch(/^supernet_admin_channel_members\{supernet="0x4711",channel="0x123"\} 0$/m);
    expect(t).toMatch(/^supernet_admin_audit_entries \d+$/m);
    expect(t).toMatch(/^supernet_admin_policy_reload_refused 0$/m);
    expect(t).toMatch(/^process_cpu_user_seconds_total /m);
    // Unmatched routes are one label value, not one per path (bounded cardinality).
    await http(svc.url, 'GET', '/nope/1');
    await http(svc.url, 'GET', '/nope/2');
    const again = (
      await http(svc.url, 'GET', '/metrics', {
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
      })
    ).text;
    expect(again).toMatch(
      /^supernet_admin_http_requests_total\{method="GET",route="unmatched",status="404"\} 2$/m,
    );
  });
});
