/**
 * The web console's sessions and pages (admin/console.ts) over a real
 * service: no anonymous access, cookie + CSRF for changes, throttled and
 * audited logins, strict headers on the pages.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { startService, removeDir, OPERATOR_TOKEN, http, type Running } from './admin-fixture.js';

let svc: Running;

async function login(
  token = OPERATOR_TOKEN,
): Promise<{ status: number; cookie: string; csrf: string }> {
  const res = await fetch(`${svc.url}/console/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  const body = (await res.json()) as { csrf?: string };
  const set = res.headers.get('set-cookie') ?? '';
  return { status: res.status, cookie: set.split(';')[0]!, csrf: body.csrf ?? '' };
}

beforeAll(async () => {
  svc = await startService();
});

afterAll(async () => {
  await svc?.stop();
  if (svc) removeDir(svc.dir);
});

describe('web console', () => {
  it('serves the pages with a strict policy, and no data without a session', async () => {
    const page = await fetch(`${svc.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(
      /default-src 'none'; script-src 'self'/,
    );
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(await page.text()).toContain(
      '<script type="module" src="/console/console.js"></script>',
    );
    expect((await fetch(`${svc.url}/console/console.js`)).headers.get('content-type')).toMatch(
      /javascript/,
    );
    expect((await http(svc.url, 'GET', '/console/../admin.identity')).status).toBe(404);
    const root = await fetch(`${svc.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/console/');
    expect((await http(svc.url, 'GET', '/v1/supernets')).status).toBe(401);
    expect((await http(svc.url, 'GET', '/console/api/session')).status).toBe(401);
  });

  it('logs in with the operator token; the cookie reads, changes need the CSRF header', async () => {
    const s = await login();
    expect(s.status).toBe(200);
    expect(s.cookie).toMatch(/^sn_console=[A-Za-z0-9_-]{43}$/);
    const list = await http(svc.url, 'GET', '/v1/supernets', { headers: { cookie: s.cookie } });
    expect(list.status).toBe(200);
    const body = JSON.stringify({ id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01'] });
    const noCsrf = await http(svc.url, 'POST', '/v1/supernets', {
      headers: { cookie: s.cookie, 'content-type': 'application/json' },
      body,
    });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.text).toMatch(/x-supernet-csrf: missing or wrong/);
    const ok = await http(svc.url, 'POST', '/v1/supernets', {
      headers: { cookie: s.cookie, 'content-type': 'application/json', 'x-supernet-csrf': s.csrf },
      body,
    });
    expect(ok.status).toBe(201);
    const resumed = await http(svc.url, 'GET', '/console/api/session', {
      headers: { cookie: s.cookie },
    });
    expect(resumed.json).toMatchObject({ csrf: s.csrf });
    // Logging out needs the CSRF header too, and ends the session.
    await http(svc.url, 'POST', '/console/api/logout', {
      headers: { cookie: s.cookie, 'x-supernet-csrf': s.csrf },
    });
    expect(
      (await http(svc.url, 'GET', '/v1/supernets', { headers: { cookie: s.cookie } })).status,
    ).toBe(401);
    const audit = await svc.client.audit(0);
    expect(audit.entries.filter((e) => e.action === 'console-login')).toHaveLength(1);
  });

  it('refuses wrong tokens, then throttles the address', async () => {
    for (let i = 0; i < 5; i++) expect((await login('not-the-operator-token')).status).toBe(403);
    const sixth = await login();
    expect(sixth.status).toBe(429);
  });
});
