/**
 * `POST /v1/policy/test` and `supernet policy test` (admin/policy-test.ts)
 * over a real service: the answers match what a login then does, they name
 * the rule or field, a candidate file can be tested before it is deployed,
 * and testing changes nothing. Operator admissions (admin/grants.ts) are
 * consulted only when no rule of the file matched.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Identity } from '../../admin/identity.js';
import { Policy } from '../../admin/policy.js';
import { AdminApiError } from '../../admin/client.js';
import { adminCommands, cliIo } from '../../admin/cli.js';
import { CliError, EXIT } from '../../bin/cli-kit.js';
import { startService, removeDir, OPERATOR_TOKEN, type Running } from './admin-fixture.js';

const EP = { host: '192.0.2.10', port: 7411 };
let svc: Running;
let alice: Identity;
let bob: Identity;
let tokenFile: string;

function policyText(aliceFp: string): string {
  return JSON.stringify(
    {
      version: 1,
      groups: { alice: [aliceFp] },
      supernets: {
        '0x4711': {
          rules: [
            { name: 'banned', effect: 'deny', identities: ['c4c40000000000000000000000000001'] },
            {
              name: 'alice-a1',
              identities: ['group:alice'],
              nodes: ['a1'],
              channels: ['0x01', '0x123'],
              address: { fixed: '10.71.17.10' },
            },
          ],
        },
      },
    },
    null,
    2,
  );
}

async function cli(cmd: string, argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const saved = cliIo.out;
  cliIo.out = (s) => (out += s);
  try {
    return { code: await adminCommands[cmd].run(argv), out };
  } catch (err) {
    if (err instanceof CliError) return { code: err.code, out: out + err.message };
    throw err;
  } finally {
    cliIo.out = saved;
  }
}
const common = (): string[] => ['--admin', svc.url, '--token-file', tokenFile];

beforeAll(async () => {
  alice = Identity.generate('a1');
  bob = Identity.generate('b1');
  svc = await startService({ policy: Policy.parse(policyText(alice.id), null, Date.now()) });
  tokenFile = join(svc.dir, 'operator.token');
  writeFileSync(tokenFile, OPERATOR_TOKEN);
  await svc.client.createSupernet({
    id: '0x4711',
    pool: '10.71.17.0/24',
    channels: ['0x01', '0x123'],
  });
});

afterAll(async () => {
  await svc?.stop();
  if (svc) removeDir(svc.dir);
});

const ask = (identity: string, node: string, channels: string[], policy?: string) =>
  svc.client.policyTest({ supernet: '0x4711', identity, node, channels, policy });

describe('policy test', () => {
  it('answers like the login would, and changes nothing', async () => {
    const before = await svc.client.audit(0);
    const yes = await ask(alice.id, 'a1', ['0x01']);
    expect(yes).toMatchObject({
      admit: true,
      code: 'ok',
      rule: 'alice-a1',
      vip: '10.71.17.10',
      joins: ['0x01'],
      relogin: false,
    });
    const no = await ask(alice.id, 'a1', ['0x01', '0x02']);
    expect(no).toMatchObject({ admit: false, code: 'unknown_channel' });
    expect(no.reason).toBe('channels[1]: Supernet 0x4711 has no channel 0x02');
    const denied = await ask('c4c40000000000000000000000000001', 'a1', ['0x01']);
    expect(denied).toMatchObject({ admit: false, code: 'policy_denied', rule: 'banned' });
    const nobody = await ask(bob.id, 'b1', ['0x01']);
    expect(nobody).toMatchObject({ admit: false, code: 'policy_denied', rule: null });
    expect(nobody.reason).toMatch(/no rule of supernets\["0x4711"\] admits identity/);
    // Nothing was written: no audit entry, no lease (the real login gets the address).
    expect((await svc.client.audit(0)).head).toEqual(before.head);
    const login = await svc.client.login(alice, {
      name: 'a1',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    });
    expect(login.config.node.vip).toBe('10.71.17.10');
    // Now a1 exists: the same question is a re-login; another identity may not take the name.
    expect(await ask(alice.id, 'a1', ['0x01', '0x123'])).toMatchObject({
      admit: true,
      relogin: true,
      joins: ['0x123'],
      leaves: [],
    });
  });

  it('tests a candidate policy file before it is deployed, with line errors', async () => {
    const candidate = policyText(alice.id)
      .replace('"a1"', '"b1"')
      .replace(alice.id, bob.id)
      .replace('"10.71.17.10"', '"10.71.17.20"');
    expect(await ask(bob.id, 'b1', ['0x01'], candidate)).toMatchObject({
      admit: true,
      rule: 'alice-a1',
    });
    const broken = candidate.replace('"0x123"', '"0x1z3"');
    await expect(ask(bob.id, 'b1', ['0x01'], broken)).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(
        /^policy: line 28, column \d+: supernets\["0x4711"\]\.rules\[1\]\.channels\[1\]: /,
      ),
    });
  });

  it('consults an operator admission only when no rule matched', async () => {
    const g = await svc.client.addGrant('0x4711', {
      node: 'b1',
      identity: bob.id,
      channels: ['0x123'],
      comment: 'approved in the console',
    });
    expect(g).toMatchObject({ node: 'b1', identity: bob.id, channels: ['0x123'] });
    expect(await ask(bob.id, 'b1', ['0x123'])).toMatchObject({ admit: true, rule: 'admitted:b1' });
    expect(await ask(bob.id, 'b1', ['0x01'])).toMatchObject({
      admit: false,
      rule: 'admitted:b1',
      reason: 'the operator admitted b1 to channels 0x123 only, not 0x01',
    });
    // The file's deny rule beats an admission.
    await svc.client.addGrant('0x4711', {
      node: 'c1',
      identity: 'c4c40000000000000000000000000001',
      channels: ['0x123'],
    });
    expect(await ask('c4c40000000000000000000000000001', 'c1', ['0x123'])).toMatchObject({
      admit: false,
      rule: 'banned',
    });
    const res = await svc.client.login(bob, {
      name: 'b1',
      supernet: '0x4711',
      channels: ['0x123'],
      endpoint: EP,
    });
    expect(res.config.node.channels).toEqual(['0x123']);
    const nodes = await svc.client.nodes('0x4711');
    expect(nodes.find((n) => n.name === 'b1')).toMatchObject({ rule: 'admitted:b1' });
    await svc.client.revokeGrant('0x4711', 'b1');
    expect(await ask(bob.id, 'b1', ['0x123'])).toMatchObject({ admit: false, rule: null });
    const actions = (await svc.client.audit(0)).entries.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['grant-added', 'grant-revoked']));
    await expect(
      svc.client.addGrant('0x4711', { node: 'x1', identity: bob.id, channels: ['0x99'] }),
    ).rejects.toBeInstanceOf(AdminApiError);
  });

  it('from the command line: exit 0 admitted, 3 refused, 65 for a broken candidate file', async () => {
    const a = await cli('policy test', [
      ...common(),
      '--supernet',
      '0x4711',
      '--identity',
      alice.id,
      '--node',
      'a1',
      '--channels',
      '0x01',
    ]);
    expect(a.code).toBe(EXIT.OK);
    expect(a.out).toMatch(
      /^ADMITTED by the running policy: admitted by rule "alice-a1"\n {2}address {2}10\.71\.17\.10/,
    );
    const idFile = join(svc.dir, 'bob.id');
    bob.save(idFile);
    const r = await cli('policy test', [
      ...common(),
      '--supernet',
      '0x4711',
      '--id',
      idFile,
      '--node',
      'b1',
      '--channels',
      '0x01',
    ]);
    expect(r.code).toBe(EXIT.DENIED);
    expect(r.out).toMatch(/^REFUSED \(policy_denied\) by the running policy: no rule/);
    const bad = join(svc.dir, 'bad.json');
    writeFileSync(bad, policyText(alice.id).replace('"deny"', '"refuse"'));
    const b = await cli('policy test', [
      ...common(),
      '--file',
      bad,
      '--supernet',
      '0x4711',
      '--identity',
      alice.id,
      '--node',
      'a1',
      '--channels',
      '0x01',
    ]);
    expect(b.code).toBe(EXIT.DATA);
    expect(b.out).toMatch(
      /bad\.json:13:\d+: supernets\["0x4711"\]\.rules\[0\]\.effect: expected "allow" or "deny"/,
    );
  });
});
