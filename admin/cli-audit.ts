/**
 * `supernet audit verify`: checks the tamper-evident audit log with the
 * admin's PINNED signing key and says what was changed and where
 * (admin/audit-verify.ts; docs/console.md §Audit).
 *
 * Sources: the running service (`GET /v1/audit`, all pages), or a database
 * file read without opening it (`--db STATE/db.json`, also a backup copy).
 * The key: `--admin-key`, `--admin-info FILE`, or `admin.json` in `--state`.
 *
 * `--witness FILE` keeps the last verified head somewhere the admin host
 * cannot rewrite (another machine, write-once media): each run checks the
 * log still contains it, then records the new head. That catches the one
 * thing the chain alone cannot: a rollback of the whole database to an
 * older, correctly signed state.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, EXIT } from '../bin/cli-kit.js';
import { parseArgs } from './argv.js';
import {
  ADMIN_INFO_FILE,
  COMMON,
  DEFAULT_STATE_DIR,
  call,
  cliIo,
  operatorClient,
  readAdminInfo,
  writeAtomic,
} from './cli.js';
import type { AuditEntry, AuditHead } from './audit.js';
import { analyseAudit, type AuditReport, type AuditWitness } from './audit-verify.js';
import { readCollection } from './store-lowdb.js';
import { StoreError } from './store.js';
import { fromB64, KEY_LEN } from './identity.js';

export const AUDIT_VERIFY_USAGE =
  'supernet audit verify [--db FILE] [--witness FILE] [--admin-key KEY | --admin-info FILE] [--admin URL] [--token-file FILE] [--state DIR] [--json]';

const WITNESS_KIND = 'supernet-audit-witness';

/** The admin's signing key, from the options or the state folder. */
function adminKey(opts: Record<string, unknown>): string {
  let key = opts['admin-key'] as string | undefined;
  if (!key) {
    const file =
      (opts['admin-info'] as string | undefined) ??
      join(resolve((opts.state as string | undefined) ?? DEFAULT_STATE_DIR), ADMIN_INFO_FILE);
    if (!opts['admin-info'] && !existsSync(file)) {
      throw new CliError(
        EXIT.USAGE,
        'audit verify: needs the admin signing key: --admin-key KEY, --admin-info FILE, or --state DIR holding admin.json',
      );
    }
    key = readAdminInfo(file).sign;
  }
  try {
    fromB64(key, KEY_LEN, '--admin-key');
  } catch (err) {
    throw new CliError(EXIT.USAGE, `audit verify: ${(err as Error).message}`);
  }
  return key;
}

interface WitnessFile {
  kind: typeof WITNESS_KIND;
  v: 1;
  admin: string;
  seq: number;
  hash: string;
  verifiedAt: number;
}

function readWitness(path: string, admin: string): AuditWitness | null {
  if (!existsSync(path)) return null;
  let w: Partial<WitnessFile>;
  try {
    w = JSON.parse(readFileSync(path, 'utf8')) as Partial<WitnessFile>;
  } catch {
    throw new CliError(EXIT.DATA, `${path}: not a witness file written by \`audit verify\``);
  }
  if (
    w.kind !== WITNESS_KIND ||
    w.v !== 1 ||
    !Number.isSafeInteger(w.seq) ||
    typeof w.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(w.hash)
  ) {
    throw new CliError(EXIT.DATA, `${path}: not a witness file written by \`audit verify\``);
  }
  if (w.admin !== admin)
    throw new CliError(EXIT.DATA, `${path}: witness of another admin service (key ${w.admin})`);
  return { seq: w.seq as number, hash: w.hash };
}

/** Every entry and the head: from the service (all pages), or from the database files. */
async function load(
  opts: Record<string, unknown>,
): Promise<{ entries: unknown[]; head: AuditHead | null; source: string }> {
  const db = opts.db as string | undefined;
  if (db) {
    try {
      const audit = await readCollection(db, 'audit');
      const meta = await readCollection(db, 'meta');
      const head = (meta.find(([k]) => k === 'audit-head')?.[1] as AuditHead | undefined) ?? null;
      return { entries: audit.map(([, v]) => v), head, source: db };
    } catch (err) {
      if (err instanceof StoreError) throw new CliError(EXIT.DATA, err.message);
      throw err;
    }
  }
  const client = operatorClient(opts);
  const entries: AuditEntry[] = [];
  let head: AuditHead | null;
  for (let from = 0; ;) {
    const page = await call(client.audit(from, 1000));
    head = page.head;
    entries.push(...page.entries);
    if (page.entries.length === 0) break;
    // Pages follow storage keys, not the (possibly tampered) seq fields.
    const last = Math.max(...page.entries.map((e) => (Number.isSafeInteger(e.seq) ? e.seq : 0)));
    if (!head || last >= head.seq || last <= from) break;
    from = last;
  }
  return { entries, head, source: client.baseUrl };
}

function human(r: AuditReport, source: string, admin: string): string {
  if (r.ok) {
    return r.headSeq === null
      ? `${source}: the audit log is empty\n`
      : `${source}: ${r.entries} entries verified: the chain is intact up to the signed head at ${r.headSeq} (admin key ${admin})\n`;
  }
  const lines = [
    `${source}: AUDIT LOG TAMPERED — ${r.findings.length} finding${r.findings.length === 1 ? '' : 's'}:`,
    ...r.findings.map((f) => `  ${f.kind.padEnd(11)} ${f.message}`),
  ];
  return lines.join('\n') + '\n';
}

/** `supernet audit verify`: exit 0 intact, 65 (DATA) tampered. */
export async function auditVerify(argv: string[]): Promise<number> {
  const { opts } = parseArgs(
    'audit verify',
    argv,
    {
      ...COMMON,
      db: 'string',
      witness: 'string',
      'admin-key': 'string',
      'admin-info': 'string',
    },
    { min: 0, max: 0, names: '' },
  );
  const admin = adminKey(opts);
  const witnessPath = opts.witness as string | undefined;
  const witness = witnessPath ? readWitness(witnessPath, admin) : null;
  const { entries, head, source } = await load(opts);
  const report = analyseAudit(entries, head, admin, { witness });
  if (report.ok && witnessPath && head) {
    const w: WitnessFile = {
      kind: WITNESS_KIND,
      v: 1,
      admin,
      seq: head.seq,
      hash: head.hash,
      verifiedAt: Date.now(),
    };
    writeAtomic(witnessPath, JSON.stringify(w, null, 2) + '\n', 0o600);
  }
  cliIo.out(
    opts.json
      ? JSON.stringify({ source, ...report }, null, 2) + '\n'
      : human(report, source, admin),
  );
  return report.ok ? EXIT.OK : EXIT.DATA;
}
