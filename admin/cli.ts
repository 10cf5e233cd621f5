/**
 * The admin commands of the `supernet` CLI (bin/supernet.ts dispatches
 * here): `admin start` runs the service; the others talk to a running one
 * as the operator.
 *
 * Operator commands find the service and the operator token from, in order:
 * `--admin URL` / `--token-file FILE`; `SUPERNET_ADMIN` / `SUPERNET_TOKEN`
 * (the token itself) or `SUPERNET_TOKEN_FILE`; `--state DIR` or the default state folder
 * (`admin.json` and `operator.token` written by `admin start`).
 */
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, EXIT, type Command } from '../bin/cli-kit.js';
import { Policy, PolicyError } from './policy.js';
import { AdminApiError, AdminClient, AdminNetworkError, AdminProtocolError } from './client.js';
import { verifyAuditChain, type AuditEntry } from './audit.js';
import { intOption, parseArgs } from './argv.js';

export const DEFAULT_STATE_DIR = '/var/lib/supernet/admin';
export const DEFAULT_LISTEN = '127.0.0.1:7400';
export const ADMIN_INFO_FILE = 'admin.json';
export const OPERATOR_TOKEN_FILE = 'operator.token';
export const IDENTITY_FILE = 'admin.identity';
export const DB_FILE = 'db.json';
export const POLICY_FILE = 'policy.json';

/** What `admin start` writes for agents and operators to pin (`admin.json`). */
export interface AdminInfoFile {
  kind: 'supernet-admin';
  v: number;
  url: string;
  id: string;
  sign: string;
  seal: string;
}

/** Where command output goes (tests capture it). */
export const cliIo = {
  out: (s: string): void => {
    process.stdout.write(s);
  },
};

/** Writes `text` to `path` atomically (temp file + rename) with `mode`. */
export function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Reads `admin.json` (the URL and the admin keys to pin). */
export function readAdminInfo(path: string): AdminInfoFile {
  let j: Partial<AdminInfoFile>;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as Partial<AdminInfoFile>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code ? EXIT.UNAVAILABLE : EXIT.DATA, `${path}: ${code ?? 'not valid JSON'}`);
  }
  if (j.kind !== 'supernet-admin' || typeof j.url !== 'string' || typeof j.sign !== 'string') {
    throw new CliError(EXIT.DATA, `${path}: not an admin.json written by \`supernet admin start\``);
  }
  return j as AdminInfoFile;
}

const START_USAGE =
  'supernet admin start [--state DIR] [--listen HOST:PORT] [--url URL] [--policy FILE] [--grace-ms MS] [--key-scheme tree|flat] [--rekey-batch-ms MS] [--varp-ttl-ms MS] [--storage-lease-ms MS] [--metrics-token-file FILE] [--console-secure-cookies] [--log-level debug|info|warn|error]';

// ---- operator commands ----------------------------------------------------------

export const COMMON = {
  admin: 'string',
  'token-file': 'string',
  state: 'string',
  json: 'boolean',
} as const;
export const COMMON_USAGE = '[--admin URL] [--token-file FILE] [--state DIR] [--json]';

/** Builds an operator client from options, environment and the state folder. */
export function operatorClient(opts: Record<string, unknown>): AdminClient {
  const state = resolve((opts.state as string | undefined) ?? DEFAULT_STATE_DIR);
  let url = (opts.admin as string | undefined) ?? process.env.SUPERNET_ADMIN;
  let sign: string | undefined;
  if (!url) {
    const info = readAdminInfo(join(state, ADMIN_INFO_FILE));
    url = info.url;
    sign = info.sign;
  }
  let token: string | undefined;
  const tokenFile =
    (opts['token-file'] as string | undefined) ??
    (process.env.SUPERNET_TOKEN ? undefined : process.env.SUPERNET_TOKEN_FILE);
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new CliError(
        EXIT.NOPERM,
        `cannot read the token file ${tokenFile}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
  } else if (process.env.SUPERNET_TOKEN) token = process.env.SUPERNET_TOKEN.trim();
  else {
    try {
      token = readFileSync(join(state, OPERATOR_TOKEN_FILE), 'utf8').trim();
    } catch {
      throw new CliError(
        EXIT.USAGE,
        `no operator token: give --token-file FILE, set SUPERNET_TOKEN, or --state DIR of the admin service`,
      );
    }
  }
  try {
    return new AdminClient(url, { operatorToken: token, adminSign: sign });
  } catch (err) {
    throw new CliError(EXIT.USAGE, (err as Error).message);
  }
}

/** Maps client failures to named exit codes. */
export async function call<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof AdminApiError) {
      const code =
        err.status === 401 || err.status === 403
          ? EXIT.DENIED
          : err.status >= 500
            ? EXIT.UNAVAILABLE
            : EXIT.DATA;
      throw new CliError(code, `${err.code}: ${err.message}`);
    }
    if (err instanceof AdminNetworkError) throw new CliError(EXIT.UNAVAILABLE, err.message);
    if (err instanceof AdminProtocolError) throw new CliError(EXIT.DATA, err.message);
    throw err;
  }
}

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  '))
      .join('\n') + '\n'
  );
}

const show = (json: boolean, value: unknown, human: () => string): void => {
  cliIo.out(json ? JSON.stringify(value, null, 2) + '\n' : human());
};

export function splitList(v: unknown): string[] {
  return ((v as string[] | undefined) ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

async function supernetCreate(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs(
    'supernet create',
    argv,
    { ...COMMON, pool: 'string', channel: 'multi', channels: 'multi', name: 'string' },
    { min: 1, max: 1, names: 'a Supernet id (e.g. 0x4711)' },
  );
  if (!opts.pool)
    throw new CliError(EXIT.USAGE, 'supernet create: --pool CIDR is required (e.g. 10.71.17.0/24)');
  const channels = [...splitList(opts.channel), ...splitList(opts.channels)];
  const body = {
    id: args[0],
    pool: opts.pool as string,
    channels,
    ...(opts.name ? { name: opts.name as string } : {}),
  };
  const sn = (await call(operatorClient(opts).createSupernet(body))) as {
    id: string;
    pool: string;
  };
  show(
    Boolean(opts.json),
    sn,
    () =>
      `created Supernet ${sn.id} with pool ${sn.pool} and channels ${channels.join(', ') || '(none)'}\n`,
  );
  return EXIT.OK;
}

async function supernetList(argv: string[]): Promise<number> {
  const { opts } = parseArgs('supernet list', argv, COMMON, { min: 0, max: 0, names: '' });
  const list = (await call(operatorClient(opts).listSupernets())) as Array<{
    id: string;
    name: string | null;
    pool: string;
    channels: Array<{ id: string }>;
    serial: number;
  }>;
  show(Boolean(opts.json), list, () =>
    table([
      ['SUPERNET', 'POOL', 'CHANNELS', 'SERIAL', 'NAME'],
      ...list.map((s) => [
        s.id,
        s.pool,
        s.channels.map((c) => c.id).join(','),
        String(s.serial),
        s.name ?? '',
      ]),
    ]),
  );
  return EXIT.OK;
}

async function supernetShow(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs('supernet show', argv, COMMON, {
    min: 1,
    max: 1,
    names: 'a Supernet id',
  });
  const sn = (await call(operatorClient(opts).supernet(args[0]))) as {
    id: string;
    pool: string;
    reservedVip: string;
    serial: number;
    channels: Array<{
      id: string;
      epoch: number;
      memberNames: string[];
      previous: Array<{ epoch: number; acceptUntil: number }>;
    }>;
  };
  show(
    Boolean(opts.json),
    sn,
    () =>
      `Supernet ${sn.id}  pool ${sn.pool}  (services address ${sn.reservedVip})  serial ${sn.serial}\n` +
      table([
        ['CHANNEL', 'EPOCH', 'MEMBERS', 'IN GRACE'],
        ...sn.channels.map((c) => [
          c.id,
          String(c.epoch),
          c.memberNames.join(',') || '-',
          c.previous.map((p) => p.epoch).join(',') || '-',
        ]),
      ]),
  );
  return EXIT.OK;
}

async function channelCreate(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs('channel create', argv, COMMON, {
    min: 2,
    max: 2,
    names: 'SUPERNET CHANNEL',
  });
  const sn = await call(operatorClient(opts).createChannel(args[0], args[1]));
  show(Boolean(opts.json), sn, () => `created channel ${args[1]} in Supernet ${args[0]}\n`);
  return EXIT.OK;
}

async function expel(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs(
    'expel',
    argv,
    { ...COMMON, reason: 'string' },
    { min: 2, max: 2, names: 'SUPERNET NODE' },
  );
  await call(operatorClient(opts).expel(args[0], args[1], opts.reason as string | undefined));
  show(
    Boolean(opts.json),
    { ok: true, supernet: args[0], node: args[1] },
    () => `expelled ${args[1]} from ${args[0]}; its channels were rekeyed\n`,
  );
  return EXIT.OK;
}

async function nodes(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs('nodes', argv, COMMON, {
    min: 1,
    max: 1,
    names: 'a Supernet id',
  });
  const list = (await call(operatorClient(opts).nodes(args[0]))) as Array<{
    name: string;
    id: string;
    vip: string;
    channels: string[];
    endpoint: { host: string; port: number } | null;
    rule: string;
  }>;
  show(Boolean(opts.json), list, () =>
    table([
      ['NODE', 'VIP', 'CHANNELS', 'ENDPOINT', 'IDENTITY', 'RULE'],
      ...list.map((n) => [
        n.name,
        n.vip,
        n.channels.join(','),
        n.endpoint
          ? n.endpoint.host.includes(':')
            ? `[${n.endpoint.host}]:${n.endpoint.port}`
            : `${n.endpoint.host}:${n.endpoint.port}`
          : 'expired',
        n.id,
        n.rule,
      ]),
    ]),
  );
  return EXIT.OK;
}

async function audit(argv: string[]): Promise<number> {
  const { opts } = parseArgs(
    'audit',
    argv,
    { ...COMMON, since: 'string', limit: 'string', verify: 'boolean' },
    { min: 0, max: 0, names: '' },
  );
  const since = intOption('audit', 'since', opts.since, 0);
  const limit = intOption('audit', 'limit', opts.limit, Number.MAX_SAFE_INTEGER, 1);
  const client = operatorClient(opts);
  const entries: AuditEntry[] = [];
  let head = null;
  // Page through (the service answers at most 1000 per request).
  for (let from = opts.verify ? 0 : since; entries.length < (opts.verify ? Infinity : limit);) {
    const page = await call(
      client.audit(from, Math.min(1000, opts.verify ? 1000 : limit - entries.length)),
    );
    head = page.head;
    entries.push(...page.entries);
    if (page.entries.length === 0 || !head || page.entries[page.entries.length - 1].seq >= head.seq)
      break;
    from = page.entries[page.entries.length - 1].seq;
  }
  let verdict = null;
  if (opts.verify) {
    const info = readAdminInfoOptional(opts);
    if (!info)
      throw new CliError(
        EXIT.USAGE,
        'audit --verify: needs the admin key: --state DIR with admin.json',
      );
    verdict = verifyAuditChain(entries, info.sign, head);
  }
  const shown = entries.filter((e) => e.seq > since).slice(0, limit);
  show(
    Boolean(opts.json),
    verdict ? { entries: shown, head, verdict } : { entries: shown, head },
    () => {
      const lines = shown.map((e) =>
        [
          String(e.seq).padStart(6),
          new Date(e.time).toISOString(),
          e.action.padEnd(16),
          e.supernet ?? '-',
          e.node ?? '-',
          JSON.stringify(e.detail),
        ].join('  '),
      );
      const tail = verdict
        ? [
            verdict.ok
              ? `chain verified up to the signed head at ${verdict.seq}`
              : `CHAIN BROKEN at ${verdict.seq}: ${verdict.problem}`,
          ]
        : [];
      return [...lines, ...tail].join('\n') + '\n';
    },
  );
  return verdict && !verdict.ok ? EXIT.DATA : EXIT.OK;
}

function readAdminInfoOptional(opts: Record<string, unknown>): AdminInfoFile | null {
  const p = join(resolve((opts.state as string | undefined) ?? DEFAULT_STATE_DIR), ADMIN_INFO_FILE);
  return existsSync(p) ? readAdminInfo(p) : null;
}

async function policyShow(argv: string[]): Promise<number> {
  const { opts } = parseArgs('policy show', argv, COMMON, { min: 0, max: 0, names: '' });
  const p = await call(operatorClient(opts).policy());
  show(Boolean(opts.json), p, () => JSON.stringify(p, null, 2) + '\n');
  return EXIT.OK;
}

async function policyCheck(argv: string[]): Promise<number> {
  const { args } = parseArgs('policy check', argv, {}, { min: 1, max: 1, names: 'a policy FILE' });
  let text: string;
  try {
    text = readFileSync(args[0], 'utf8');
  } catch (err) {
    throw new CliError(
      EXIT.USAGE,
      `cannot read ${args[0]}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  try {
    const p = Policy.parse(text, args[0], Date.now());
    cliIo.out(
      `${args[0]}: valid (sha256 ${p.hash}; ${Object.keys(p.doc.supernets).length} Supernets)\n`,
    );
    return EXIT.OK;
  } catch (err) {
    if (err instanceof PolicyError) throw new CliError(EXIT.DATA, err.located(args[0]));
    throw err;
  }
}

/** The admin commands, keyed by their full command path. */
export const adminCommands: Record<string, Command> = {
  'admin start': {
    summary: 'run the admin service (admission, policy, audit, keys, VARP)',
    usage: START_USAGE,
    run: (argv) => import('./cli-start.js').then((m) => m.adminStart(argv)),
  },
  'supernet create': {
    summary: 'create a Supernet with its address pool and channels',
    usage: `supernet supernet create ID --pool CIDR [--channels 0x01,0x123] [--name TEXT] ${COMMON_USAGE}`,
    run: supernetCreate,
  },
  'supernet list': {
    summary: 'list the Supernets',
    usage: `supernet supernet list ${COMMON_USAGE}`,
    run: supernetList,
  },
  'supernet show': {
    summary: 'show a Supernet: channels, epochs, members',
    usage: `supernet supernet show ID ${COMMON_USAGE}`,
    run: supernetShow,
  },
  'channel create': {
    summary: 'add a channel to a Supernet',
    usage: `supernet channel create SUPERNET CHANNEL ${COMMON_USAGE}`,
    run: channelCreate,
  },
  expel: {
    summary: 'remove a node now: rekey its channels, revoke its session',
    usage: `supernet expel SUPERNET NODE [--reason TEXT] ${COMMON_USAGE}`,
    run: expel,
  },
  nodes: {
    summary: 'list the admitted nodes of a Supernet',
    usage: `supernet nodes SUPERNET ${COMMON_USAGE}`,
    run: nodes,
  },
  audit: {
    summary: 'show the audit log (--verify checks the hash chain and the signed head)',
    usage: `supernet audit [--since SEQ] [--limit N] [--verify] ${COMMON_USAGE}`,
    run: audit,
  },
  'audit verify': {
    summary:
      'verify the audit log (hash chain, per-entry and head signatures) and name every edited, removed or reordered entry',
    usage:
      'supernet audit verify [--db FILE] [--witness FILE] [--admin-key KEY | --admin-info FILE] ' +
      COMMON_USAGE,
    run: (argv) => import('./cli-audit.js').then((m) => m.auditVerify(argv)),
  },
  'policy test': {
    summary:
      'would identity X be admitted to Supernet S as node N on channels C? (changes nothing)',
    usage:
      'supernet policy test --supernet ID (--identity FP | --id FILE) --node NAME --channels C[,C...] [--vip A] [--file POLICY] ' +
      COMMON_USAGE,
    run: (argv) => import('./cli-ops.js').then((m) => m.policyTest(argv)),
  },
  'supernet dissolve': {
    summary: 'dissolve a Supernet: log out every node, destroy its keys (audited)',
    usage: `supernet supernet dissolve ID --yes [--reason TEXT] ${COMMON_USAGE}`,
    run: (argv) => import('./cli-ops.js').then((m) => m.supernetDissolve(argv)),
  },
  'admission add': {
    summary: 'admit an identity as a node of a Supernet (used when no policy rule matches)',
    usage:
      'supernet admission add SUPERNET NODE (--identity FP | --id FILE) --channels C[,C...] [--address A] [--comment TEXT] ' +
      COMMON_USAGE,
    run: (argv) => import('./cli-ops.js').then((m) => m.admissionAdd(argv)),
  },
  'admission revoke': {
    summary: 'revoke an operator admission (a logged-in node stays until expelled)',
    usage: `supernet admission revoke SUPERNET NODE ${COMMON_USAGE}`,
    run: (argv) => import('./cli-ops.js').then((m) => m.admissionRevoke(argv)),
  },
  'admission list': {
    summary: 'list the operator admissions of a Supernet',
    usage: `supernet admission list SUPERNET ${COMMON_USAGE}`,
    run: (argv) => import('./cli-ops.js').then((m) => m.admissionList(argv)),
  },
  'storage-role grant': {
    summary: 'give a node the storage role of a volume',
    usage: `supernet storage-role grant SUPERNET VOLUME NODE ${COMMON_USAGE}`,
    run: (argv) => import('./cli-ops.js').then((m) => m.storageRole(['grant', ...argv])),
  },
  'storage-role revoke': {
    summary: 'take the storage role of a volume from a node (the volume then needs re-encryption)',
    usage: `supernet storage-role revoke SUPERNET VOLUME NODE ${COMMON_USAGE}`,
    run: (argv) => import('./cli-ops.js').then((m) => m.storageRole(['revoke', ...argv])),
  },
  'storage-role list': {
    summary: 'list storage volumes, their role holders and re-encryption progress',
    usage: `supernet storage-role list SUPERNET ${COMMON_USAGE}`,
    run: (argv) => import('./cli-ops.js').then((m) => m.storageRole(['list', ...argv])),
  },
  'policy show': {
    summary: 'show the running admission policy',
    usage: `supernet policy show ${COMMON_USAGE}`,
    run: policyShow,
  },
  'policy check': {
    summary: 'validate a policy file without loading it',
    usage: 'supernet policy check FILE',
    run: policyCheck,
  },
};
