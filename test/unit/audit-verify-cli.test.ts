/**
 * `supernet audit verify` against a real admin service (Koa + lowdb on
 * loopback) and against its database file: passes an untouched log; after
 * the database is tampered with while the service is stopped, pinpoints the
 * edited entry, the deleted entry and the two swapped entries; a witness
 * catches a rollback to an older, correctly signed database.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminCommands, cliIo } from '../../admin/cli.js';
import { CliError, EXIT } from '../../bin/cli-kit.js';
import { LowdbStore } from '../../admin/store-lowdb.js';
import type { AuditEntry } from '../../admin/audit.js';
import { startService, removeDir, OPERATOR_TOKEN, type Running } from './admin-fixture.js';

let svc: Running;
let tokenFile: string;

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const saved = cliIo.out;
  cliIo.out = (s) => (out += s);
  try {
    return { code: await adminCommands['audit verify'].run(argv), out };
  } catch (err) {
    if (err instanceof CliError) return { code: err.code, out: out + err.message };
    throw err;
  } finally {
    cliIo.out = saved;
  }
}

const online = (extra: string[] = []): string[] => [
  '--admin',
  svc.url,
  '--token-file',
  tokenFile,
  '--admin-key',
  svc.identity.pub.sign,
  ...extra,
];

beforeAll(async () => {
  svc = await startService();
  tokenFile = join(svc.dir, 'operator.token');
  writeFileSync(tokenFile, OPERATOR_TOKEN + '\n', { mode: 0o600 });
  await svc.client.createSupernet({ id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01'] });
  for (let i = 2; i <= 9; i++) await svc.client.createChannel('0x4711', `0x0${i}`);
});

afterAll(async () => {
  await svc?.stop().catch(() => undefined);
  if (svc) removeDir(svc.dir);
});

describe('supernet audit verify', () => {
  it('passes the untouched log, online and from the database file, and records a witness', async () => {
    const a = await run(online(['--witness', join(svc.dir, 'witness.json')]));
    expect(a.code).toBe(EXIT.OK);
    expect(a.out).toMatch(/10 entries verified: the chain is intact up to the signed head at 10/);
    const b = await run(['--db', svc.dbPath, '--admin-key', svc.identity.pub.sign, '--json']);
    expect(b.code).toBe(EXIT.OK);
    expect(JSON.parse(b.out)).toMatchObject({ ok: true, entries: 10, headSeq: 10, findings: [] });
  });

  it('pinpoints an edited, a deleted and two swapped entries', async () => {
    // Keep a copy of the good database for the rollback test below.
    await svc.stop();
    copyFileSync(svc.dbPath, join(svc.dir, 'good.json'));
    copyFileSync(svc.dbPath + '.journal', join(svc.dir, 'good.json.journal'));
    // Tamper with the database through its own store, as someone with the file would.
    const store = await LowdbStore.open(svc.dbPath);
    await store.write((tx) => {
      const key = (n: number) => String(n).padStart(12, '0');
      const e4 = tx.get<AuditEntry>('audit', key(4))!;
      tx.put('audit', key(4), { ...e4, detail: { ...e4.detail, channel: '0x99' } });
      tx.delete('audit', key(6));
      const e8 = tx.get<AuditEntry>('audit', key(8))!;
      const e9 = tx.get<AuditEntry>('audit', key(9))!;
      tx.put('audit', key(8), e9);
      tx.put('audit', key(9), e8);
    });
    await store.close();
    svc = await startService({ dir: svc.dir, identity: svc.identity, clock: svc.clock });

    const r = await run(online());
    expect(r.code).toBe(EXIT.DATA);
    expect(r.out).toMatch(/AUDIT LOG TAMPERED — 3 findings/);
    expect(r.out).toMatch(/edited +entry 4 was edited: its content no longer matches its hash/);
    expect(r.out).toMatch(/missing +entry 6 is missing: deleted \(entry 7 links/);
    expect(r.out).toMatch(/swapped +entries 8 and 9 are swapped/);

    const j = await run(['--db', svc.dbPath, '--admin-key', svc.identity.pub.sign, '--json']);
    expect(j.code).toBe(EXIT.DATA);
    expect(
      (JSON.parse(j.out) as { findings: Array<{ kind: string; seq: number }> }).findings.map(
        (f) => `${f.kind}@${f.seq}`,
      ),
    ).toEqual(['edited@4', 'missing@6', 'swapped@8']);
  });

  it('with a witness, catches a rollback to an older, correctly signed database', async () => {
    // The good copy verifies on its own...
    const good = join(svc.dir, 'good.json');
    const ok = await run(['--db', good, '--admin-key', svc.identity.pub.sign]);
    expect(ok.code).toBe(EXIT.OK);
    // ...the service then appends, the witness records the newer head...
    await svc.stop();
    copyFileSync(good, svc.dbPath);
    copyFileSync(good + '.journal', svc.dbPath + '.journal');
    svc = await startService({ dir: svc.dir, identity: svc.identity, clock: svc.clock });
    await svc.client.createChannel('0x4711', '0x10');
    const w = join(svc.dir, 'witness2.json');
    expect((await run(online(['--witness', w]))).code).toBe(EXIT.OK);
    // ...and a database rolled back to the good copy is refused against it.
    const r = await run(['--db', good, '--admin-key', svc.identity.pub.sign, '--witness', w]);
    expect(r.code).toBe(EXIT.DATA);
    expect(r.out).toMatch(
      /witness +the signed head \(seq 10\) is older than the head verified before \(seq 11\): the log was rolled back/,
    );
  });

  it('needs the pinned key and says how to give it', async () => {
    const r = await run(['--db', svc.dbPath, '--state', join(svc.dir, 'nowhere')]);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.out).toMatch(/needs the admin signing key/);
  });
});
