/**
 * Issue 7, acceptance 1 and 5, on the namespace test bed (Figure 6: admin
 * and a1 on h1, c1 on h2, bigdisk1 on h3): Debian's chromium, driven
 * headless by Playwright from INSIDE h1's network namespace, logs in to the
 * web console, creates a channel, admits a node that was refused, sees it
 * live, expels it, and sees the audit entries; screenshots of each page go
 * to docs/screenshots/. Then the console dissolves Supernet 0x4711: every
 * node loses its namespace and connectivity, the Supernet's keys are gone
 * from the admin's database, the audit log shows it and still verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { TestBed, ping, until } from '../bed/bed.js';
import { figure6, ROOT, type LoggedIn, type SupernetBed } from '../scenario/supernet-bed.js';
import { readCollection } from '../../admin/store-lowdb.js';
import { listNamespaces } from '../bed/netns.js';

const SHOTS = join(ROOT, 'docs', 'screenshots');
let bed: TestBed;
let sn: SupernetBed;
let nodes: Map<string, LoggedIn>;
let browser: Browser | null = null;
let page: Page;

const node = (n: string): LoggedIn => nodes.get(n)!;

async function shot(name: string, fullPage = false): Promise<void> {
  const path = join(SHOTS, `console-${name}.png`);
  await page.screenshot({ path, fullPage });
  expect(statSync(path).size).toBeGreaterThan(10_000);
}

/** Waits until the locator's text matches (the console refreshes every 2 s). */
async function text(l: Locator, re: RegExp, timeoutMs = 20_000): Promise<string> {
  return until(
    async () => {
      const t = (await l.count()) > 0 ? await l.first().innerText() : '';
      return re.test(t) ? t : null;
    },
    { what: `text ${re} in ${l.toString()}`, timeoutMs, intervalMs: 200 },
  );
}

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  ({ sn, nodes } = await figure6(bed));
  mkdirSync(SHOTS, { recursive: true });
  // Chromium runs inside h1's namespace: the admin's underlay address is only reachable there.
  const wrapper = join(bed.dir, 'chromium-in-h1');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec ip netns exec ${bed.host('h1').ns} /usr/bin/chromium "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  browser = await chromium.launch({
    executablePath: wrapper,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // Playwright gives every launch a fresh, temporary --user-data-dir.
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
}, 180_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await bed?.teardown();
}, 60_000);

describe('the web console in a real browser', () => {
  it('refuses to show anything before login, then logs in with the operator token', async () => {
    await page.goto(`${sn.adminUrl}/console/`);
    await page.getByLabel('Operator token').waitFor();
    expect(await page.locator('table').count()).toBe(0);
    await shot('login');
    await page.getByLabel('Operator token').fill('not-the-operator-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await text(page.locator('#login-error'), /not the operator token/);
    const token = readFileSync(join(sn.adminState, 'operator.token'), 'utf8').trim();
    await page.getByLabel('Operator token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await text(page.locator('main'), /0x4711/);
    await text(page.locator('main tr', { hasText: '0x4711' }), /10\.71\.17\.0\/24.*\t3\t/s);
    await shot('overview');
  });

  it('creates a channel, admits a refused node, sees it live and expels it', async () => {
    await page.getByRole('link', { name: '0x4711' }).click();
    for (const n of ['a1', 'c1', 'bigdisk1'])
      await text(page.locator(`tr[data-node="${n}"]`), /online/);

    await page.getByLabel('Channel id').fill('0x02');
    await page.getByRole('button', { name: 'Create channel' }).click();
    await page.locator('tr[data-channel="0x02"]').waitFor();

    // d1 is not in the policy: its login is refused and it shows up as waiting.
    await sn.identity('d1');
    const refused = await sn.login(
      { name: 'd1', host: 'h2', supernet: '0x4711', channels: ['0x02'] },
      { allowFail: true },
    );
    expect(refused.code).toBe(3);
    await page.locator('tr[data-pending="d1"]').waitFor({ timeout: 20_000 });
    await page.locator('tr[data-pending="d1"]').getByRole('button', { name: 'Admit…' }).click();
    expect(await page.getByLabel('Identity fingerprint').inputValue()).toBe(sn.fingerprint('d1'));
    await page.getByRole('button', { name: 'Admit node' }).click();
    await page.locator('tr[data-grant="d1"]').waitFor();
    await until(async () => (await page.locator('tr[data-pending="d1"]').count()) === 0 || null, {
      what: 'd1 no longer waiting',
    });

    const d1 = await sn.login({ name: 'd1', host: 'h2', supernet: '0x4711', channels: ['0x02'] });
    expect(d1.code).toBe(0);
    nodes.set('d1', d1);
    await text(page.locator('tr[data-node="d1"]'), /online/);
    expect(await page.locator('tr[data-node="d1"]').innerText()).toContain('admitted:d1');
    await text(page.locator('tr[data-channel="0x02"]'), /d1/);

    // Live traffic: agents report every 10 s.
    await ping(bed, node('a1').ns, node('c1').vip, { count: 3, intervalS: 0.2 });
    await text(page.locator('tr[data-node="a1"]'), /\b[1-9][\d.]* (B|KiB)/, 25_000);
    await text(
      page.locator('tr[data-node="a1"]'),
      new RegExp(bed.host('h1').addr.replace(/\./g, '\\.')),
    );
    await shot('supernet', true);

    await page.locator('tr[data-node="d1"]').getByRole('button', { name: 'Expel' }).click();
    await page.locator('#confirm').getByRole('button', { name: 'Expel' }).click();
    await until(async () => (await page.locator('tr[data-node="d1"]').count()) === 0 || null, {
      what: 'd1 gone from the node list',
    });
    await until(
      async () => ((await sn.status('h2')).nodes.some((n) => n.name === 'd1') ? null : true),
      { what: "d1 removed by h2's agent", timeoutMs: 15_000 },
    );
  });

  it('shows the audit entries of all that, and verifies the chain', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    const row = (action: string, hasText: string): Locator =>
      page.locator(`tr[data-action="${action}"]`, { hasText });
    await row('channel-created', '0x02').waitFor();
    for (const a of ['deny', 'grant-added', 'admit', 'expel']) await row(a, 'd1').first().waitFor();
    expect(await row('expel', 'd1').first().innerText()).toMatch(/expelled in the console/);
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await text(page.locator('.banner.good'), /Chain intact: \d+ entries up to the signed head/);
    await shot('audit');
  });

  it('answers "would this login be admitted?" on the policy page', async () => {
    await page.getByRole('link', { name: 'Policy' }).click();
    const form = page.locator('form', { hasText: 'Test admission' });
    await form.getByLabel('Supernet').fill('0x4711');
    await form.getByLabel('Identity fingerprint').fill(sn.fingerprint('bigdisk1'));
    await form.getByLabel('Node name').fill('bigdisk1');
    await form.getByLabel('Channels').fill('0x01');
    await form.getByRole('button', { name: 'Test admission' }).click();
    await text(
      page.locator('#policy-test-result'),
      /Would be refused \(policy_denied\).*does not allow channel 0x01/,
    );
    await shot('policy');
  });

  it('dissolves the Supernet: nodes lose connectivity, keys leave the store, the audit shows it', async () => {
    expect((await ping(bed, node('a1').ns, node('c1').vip, { count: 1 })).lossPct).toBe(0);
    const dbPath = join(sn.adminState, 'db.json');
    const keysOf0x4711 = async () =>
      (await readCollection(dbPath, 'keys')).filter(([k]) => k.split('|').includes('0x4711'));
    expect((await keysOf0x4711()).length).toBeGreaterThan(0);

    await page.getByRole('link', { name: 'Supernets' }).click();
    await page.getByRole('link', { name: '0x4711' }).click();
    await page.getByRole('button', { name: 'Dissolve Supernet' }).click();
    await page.locator('#confirm-typed').fill('0x4711');
    await page.locator('#confirm').getByRole('button', { name: 'Dissolve' }).click();
    await text(page.locator('#toast'), /Dissolved 0x4711: 3 nodes logged out/);
    await until(
      async () => ((await page.locator('a', { hasText: '0x4711' }).count()) === 0 ? true : null),
      {
        what: '0x4711 gone from the overview',
      },
    );

    // Every agent tears its nodes down at once (pushed `expelled`).
    for (const h of ['h1', 'h2', 'h3'])
      await until(async () => ((await sn.status(h)).nodes.length === 0 ? true : null), {
        what: `no nodes left on ${h}`,
        timeoutMs: 15_000,
      });
    for (const n of ['a1', 'c1', 'bigdisk1']) {
      expect(listNamespaces()).not.toContain(node(n).ns);
      const r = await bed.run(
        null,
        'ip',
        ['netns', 'exec', node(n).ns, 'ping', '-c', '1', '-W', '1', node('c1').vip],
        {
          allowFail: true,
        },
      );
      expect(r.code).not.toBe(0);
    }
    const st = await sn.status('h1');
    expect(st.keyrings).toEqual([]);
    expect(await keysOf0x4711()).toEqual([]);

    const audit = await sn.audit();
    const last = audit.at(-1)!;
    expect(last).toMatchObject({
      action: 'supernet-dissolved',
      supernet: '0x4711',
      detail: { reason: 'dissolved in the console', nodes: ['a1', 'bigdisk1', 'c1'] },
    });
    const v = await sn.cli(null, [
      'audit',
      'verify',
      '--admin-info',
      join(sn.adminState, 'admin.json'),
    ]);
    expect(v.stdout).toMatch(/entries verified: the chain is intact up to the signed head/);
  });
});
