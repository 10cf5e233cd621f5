import { describe, it, expect, afterAll } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Identity } from '../../admin/identity.js';
import { AdminClient } from '../../admin/client.js';
import { adminCommands, cliIo, readAdminInfo } from '../../admin/cli.js';
import { CliError, EXIT } from '../../bin/cli-kit.js';
import { parseArgs } from '../../admin/argv.js';
import { tempDir, removeDir } from './admin-fixture.js';

const CLI = pathToFileURL(
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'admin', 'cli.js'),
).href;

function startChild(args: string[]): {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
} {
  // What bin/supernet.ts does: run the command, turn a CliError into its exit code.
  const script =
    `const m = await import(${JSON.stringify(CLI)});` +
    `try { process.exitCode = await m.adminCommands['admin start'].run(${JSON.stringify(args)}); }` +
    `catch (e) { process.stderr.write(String(e.message) + '\\n'); process.exitCode = e.code ?? 70; }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, stderr: () => err, exit };
}

async function run(cmd: string, argv: string[]): Promise<{ code: number; out: string }> {
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

async function waitFor(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('admin CLI', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  it('admin start creates its state, serves, reloads the policy on SIGHUP and stops on SIGTERM', async () => {
    const state = join(tempDir(), 'state');
    dirs.push(dirname(state));
    const node = Identity.generate('n1');
    const policyPath = join(dirname(state), 'policy.json');
    writeFileSync(policyPath, JSON.stringify({ version: 1, supernets: {} }));
    const s = startChild([
      '--state',
      state,
      '--listen',
      '127.0.0.1:0',
      '--policy',
      policyPath,
      '--grace-ms',
      '5000',
    ]);
    try {
      await waitFor(
        () => existsSync(join(state, 'admin.json')) || s.child.exitCode !== null,
        'admin.json',
      );
      expect(s.child.exitCode).toBeNull();
      expect(statSync(state).mode & 0o777).toBe(0o700);
      for (const f of ['admin.identity', 'operator.token', 'db.json'])
        expect(statSync(join(state, f)).mode & 0o777).toBe(0o600);
      const info = readAdminInfo(join(state, 'admin.json'));
      expect(info.id).toBe(Identity.load(join(state, 'admin.identity')).id);
      for (const line of s.stderr().trim().split('\n'))
        expect(() => JSON.parse(line)).not.toThrow();

      const common = ['--state', state];
      expect(
        await run('supernet create', [
          '0x4711',
          '--pool',
          '10.71.17.0/24',
          '--channels',
          '0x01,0x123',
          ...common,
        ]),
      ).toMatchObject({ code: EXIT.OK });
      expect(
        (await run('supernet create', ['0x4711', '--pool', '10.71.17.0/24', ...common])).code,
      ).toBe(EXIT.DATA);
      expect((await run('channel create', ['0x4711', '0x02', ...common])).code).toBe(EXIT.OK);
      const client = new AdminClient(info.url, { adminSign: info.sign });
      await expect(
        client.login(node, {
          name: 'n1',
          supernet: '0x4711',
          channels: ['0x01'],
          endpoint: { host: '127.0.0.1', port: 7 },
        }),
      ).rejects.toMatchObject({ code: 'policy_denied' });

      // New policy + SIGHUP (the file watch may get there first; either way it is in force).
      writeFileSync(
        policyPath,
        JSON.stringify({
          version: 1,
          supernets: {
            '0x4711': { rules: [{ name: 'n', identities: [node.id], channels: ['0x01'] }] },
          },
        }),
      );
      s.child.kill('SIGHUP');
      await waitFor(() => s.stderr().includes('"msg":"policy loaded"'), 'policy reload');
      const res = await client.login(node, {
        name: 'n1',
        supernet: '0x4711',
        channels: ['0x01'],
        endpoint: { host: '127.0.0.1', port: 7 },
      });
      expect(res.config.graceMs).toBe(5000);
      const listed = await run('nodes', ['0x4711', '--json', ...common]);
      expect(JSON.parse(listed.out)).toEqual([
        expect.objectContaining({ name: 'n1', vip: '10.71.17.2', channels: ['0x01'] }),
      ]);
      const human = await run('nodes', ['0x4711', ...common]);
      expect(human.out).toMatch(/^NODE +VIP +CHANNELS/);
      expect(human.out).toContain('127.0.0.1:7');
      const shown = await run('supernet show', ['0x4711', ...common]);
      expect(shown.out).toContain('services address 10.71.17.1');
      expect((await run('expel', ['0x4711', 'n1', '--reason', 'test', ...common])).code).toBe(
        EXIT.OK,
      );
      expect((await run('expel', ['0x4711', 'n1', ...common])).code).toBe(EXIT.DATA);
      const log = await run('audit', ['--verify', ...common]);
      expect(log.code).toBe(EXIT.OK);
      expect(log.out).toMatch(/chain verified up to the signed head at \d+/);
      expect(log.out).toContain('expel');
      const page = JSON.parse(
        (await run('audit', ['--since', '2', '--limit', '2', '--json', ...common])).out,
      ) as { entries: Array<{ seq: number }> };
      expect(page.entries.map((e) => e.seq)).toEqual([3, 4]);
      const wrongToken = join(dirname(state), 'wrong.token');
      writeFileSync(wrongToken, 'not-the-operator-token\n');
      expect(
        (await run('nodes', ['0x4711', '--admin', info.url, '--token-file', wrongToken])).code,
      ).toBe(EXIT.DENIED);
      expect(
        (
          await run('nodes', [
            '0x4711',
            '--admin',
            'http://127.0.0.1:1',
            '--token-file',
            wrongToken,
          ])
        ).code,
      ).toBe(EXIT.UNAVAILABLE);
      // A second service on the same state refuses to start (database in use).
      const second = startChild([
        '--state',
        state,
        '--listen',
        '127.0.0.1:0',
        '--policy',
        policyPath,
      ]);
      expect(await second.exit).toBe(EXIT.UNAVAILABLE);
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exit).toBe(0);
    expect(s.stderr()).toContain('"msg":"stopped"');
    expect(existsSync(join(state, 'db.json.lock'))).toBe(false);
    // Restart on the same state keeps the identity and the operator token.
    const before = readFileSync(join(state, 'operator.token'), 'utf8');
    const again = startChild(['--state', state, '--listen', '127.0.0.1:0', '--policy', policyPath]);
    await waitFor(() => again.stderr().includes('admin service ready'), 'restart');
    again.child.kill('SIGINT');
    expect(await again.exit).toBe(0);
    expect(readFileSync(join(state, 'operator.token'), 'utf8')).toBe(before);
  });

  it('reports usage errors with exit code 64 and checks policy files', async () => {
    expect((await run('admin start', ['--listen', 'nowhere'])).code).toBe(EXIT.USAGE);
    expect((await run('supernet create', ['0x4711'])).code).toBe(EXIT.USAGE);
    expect((await run('nodes', [])).code).toBe(EXIT.USAGE);
    expect(() => parseArgs('x', ['--bogus'], {}, { min: 0, max: 0, names: '' })).toThrow(
      'x: unknown option --bogus',
    );
    expect(
      parseArgs(
        'x',
        ['--a=1', '--m', '2', '--m=3', 'p', '--', '--q'],
        { a: 'string', m: 'multi' },
        { min: 0, max: 3, names: '' },
      ),
    ).toEqual({
      opts: { a: '1', m: ['2', '3'] },
      args: ['p', '--q'],
    });
    const dir = tempDir();
    dirs.push(dir);
    const bad = join(dir, 'p.json');
    writeFileSync(
      bad,
      JSON.stringify({
        version: 1,
        supernets: { '0x4711': { rules: [{ name: 'r', identities: ['*'] }] } },
      }),
    );
    const res = await run('policy check', [bad]);
    expect(res.code).toBe(EXIT.DATA);
    expect(res.out).toContain('supernets["0x4711"].rules[0].channels');
  });
});
