/**
 * The administrator's commands beyond the core ones (issue 7; docs/console.md):
 *
 *   supernet policy test --supernet S (--identity FP | --id FILE) --node N --channels C[,C]
 *                        [--vip A] [--file POLICY]
 *   supernet supernet dissolve ID [--reason TEXT] --yes
 *   supernet admission add SUPERNET NODE (--identity FP | --id FILE) --channels C[,C] [--address A] [--comment T]
 *   supernet admission revoke SUPERNET NODE
 *   supernet admission list SUPERNET
 *   supernet storage-role grant|revoke SUPERNET VOLUME NODE
 *   supernet storage-role list SUPERNET
 *
 * `policy test` exits 0 when the login would be admitted and 3 (DENIED)
 * when it would be refused, so scripts can check a policy change before
 * deploying it.
 */
import { readFileSync } from 'node:fs';
import { CliError, EXIT } from '../bin/cli-kit.js';
import { parseArgs } from './argv.js';
import { COMMON, call, cliIo, operatorClient, splitList, table } from './cli.js';
import { Identity } from './identity.js';
import { Policy, PolicyError } from './policy.js';

const show = (json: boolean, value: unknown, human: () => string): void => {
  cliIo.out(json ? JSON.stringify(value, null, 2) + '\n' : human());
};

/** A fingerprint from `--identity FP` or from the identity file `--id FILE`. */
function fingerprintOf(cmd: string, opts: Record<string, unknown>): string {
  if (opts.identity && opts.id)
    throw new CliError(EXIT.USAGE, `${cmd}: give --identity or --id, not both`);
  if (opts.id) {
    try {
      return Identity.load(opts.id as string).id;
    } catch (err) {
      throw new CliError(EXIT.DATA, `${cmd}: --id: ${(err as Error).message}`);
    }
  }
  const fp = String(opts.identity ?? '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(fp))
    throw new CliError(
      EXIT.USAGE,
      `${cmd}: --identity expects a 32-hex-digit fingerprint (or give --id FILE)`,
    );
  return fp;
}

function channelsOf(cmd: string, opts: Record<string, unknown>): string[] {
  const c = splitList(opts.channels);
  if (c.length === 0) throw new CliError(EXIT.USAGE, `${cmd}: --channels C[,C...] is required`);
  return c;
}

export async function policyTest(argv: string[]): Promise<number> {
  const cmd = 'policy test';
  const { opts } = parseArgs(
    cmd,
    argv,
    {
      ...COMMON,
      supernet: 'string',
      identity: 'string',
      id: 'string',
      node: 'string',
      channels: 'multi',
      vip: 'string',
      file: 'string',
    },
    { min: 0, max: 0, names: '' },
  );
  if (!opts.supernet) throw new CliError(EXIT.USAGE, `${cmd}: --supernet ID is required`);
  if (!opts.node) throw new CliError(EXIT.USAGE, `${cmd}: --node NAME is required`);
  const identity = fingerprintOf(cmd, opts);
  let policy: string | undefined;
  if (opts.file) {
    const file = opts.file as string;
    try {
      policy = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(EXIT.USAGE, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
    // Validate here too, so errors name the file and line.
    try {
      Policy.parse(policy, file, Date.now());
    } catch (err) {
      if (err instanceof PolicyError) throw new CliError(EXIT.DATA, err.located(file));
      throw err;
    }
  }
  const answer = await call(
    operatorClient(opts).policyTest({
      supernet: opts.supernet as string,
      identity,
      node: opts.node as string,
      channels: channelsOf(cmd, opts),
      ...(opts.vip ? { requestedVip: opts.vip as string } : {}),
      ...(policy !== undefined ? { policy } : {}),
    }),
  );
  show(Boolean(opts.json), answer, () => {
    const against = opts.file ? `the policy in ${String(opts.file)}` : 'the running policy';
    if (!answer.admit) return `REFUSED (${answer.code}) by ${against}: ${answer.reason}\n`;
    const lines = [
      `ADMITTED by ${against}: ${answer.reason}`,
      `  address  ${answer.vip}`,
      `  joins    ${answer.joins.join(', ') || '-'}`,
    ];
    if (answer.leaves.length) lines.push(`  leaves   ${answer.leaves.join(', ')}`);
    if (answer.relogin) lines.push('  (the node is logged in now: its session would be replaced)');
    return lines.join('\n') + '\n';
  });
  return answer.admit ? EXIT.OK : EXIT.DENIED;
}

export async function supernetDissolve(argv: string[]): Promise<number> {
  const cmd = 'supernet dissolve';
  const { opts, args } = parseArgs(
    cmd,
    argv,
    { ...COMMON, reason: 'string', yes: 'boolean' },
    { min: 1, max: 1, names: 'a Supernet id' },
  );
  if (!opts.yes)
    throw new CliError(
      EXIT.USAGE,
      `${cmd}: this logs out every node of ${args[0]} and destroys its keys; add --yes to confirm`,
    );
  const r = await call(operatorClient(opts).dissolve(args[0], opts.reason as string | undefined));
  show(
    Boolean(opts.json),
    r,
    () =>
      `dissolved ${args[0]}: ${r.nodes.length} node${r.nodes.length === 1 ? '' : 's'} logged out (${r.nodes.join(', ') || 'none'}), ` +
      `${r.channels.length} channel key state${r.channels.length === 1 ? '' : 's'} destroyed (${r.keyRecords} records)\n`,
  );
  return EXIT.OK;
}

export async function admissionAdd(argv: string[]): Promise<number> {
  const cmd = 'admission add';
  const { opts, args } = parseArgs(
    cmd,
    argv,
    {
      ...COMMON,
      identity: 'string',
      id: 'string',
      channels: 'multi',
      address: 'string',
      comment: 'string',
    },
    { min: 2, max: 2, names: 'SUPERNET NODE' },
  );
  const g = await call(
    operatorClient(opts).addGrant(args[0], {
      node: args[1],
      identity: fingerprintOf(cmd, opts),
      channels: channelsOf(cmd, opts),
      ...(opts.address ? { address: opts.address as string } : {}),
      ...(opts.comment ? { comment: opts.comment as string } : {}),
    }),
  );
  show(
    Boolean(opts.json),
    g,
    () =>
      `admitted ${String(g.identity)} as ${args[1]} in ${args[0]} on ${(g.channels as string[]).join(', ')}; it joins at its next login\n`,
  );
  return EXIT.OK;
}

export async function admissionRevoke(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs('admission revoke', argv, COMMON, {
    min: 2,
    max: 2,
    names: 'SUPERNET NODE',
  });
  await call(operatorClient(opts).revokeGrant(args[0], args[1]));
  show(
    Boolean(opts.json),
    { ok: true },
    () =>
      `revoked the admission of ${args[1]} in ${args[0]} (a logged-in node stays until expelled)\n`,
  );
  return EXIT.OK;
}

export async function admissionList(argv: string[]): Promise<number> {
  const { opts, args } = parseArgs('admission list', argv, COMMON, {
    min: 1,
    max: 1,
    names: 'a Supernet id',
  });
  const list = await call(operatorClient(opts).grants(args[0]));
  show(Boolean(opts.json), list, () =>
    table([
      ['NODE', 'IDENTITY', 'CHANNELS', 'ADDRESS', 'SINCE', 'COMMENT'],
      ...list.map((g) => [
        String(g.node),
        String(g.identity),
        (g.channels as string[]).join(','),
        (g.address as string | null) ?? '-',
        new Date(g.createdAt as number).toISOString(),
        (g.comment as string | null) ?? '',
      ]),
    ]),
  );
  return EXIT.OK;
}

export async function storageRole(argv: string[]): Promise<number> {
  const verb = argv[0];
  if (verb === 'list') {
    const { opts, args } = parseArgs('storage-role list', argv.slice(1), COMMON, {
      min: 1,
      max: 1,
      names: 'a Supernet id',
    });
    const vols = await call(operatorClient(opts).storage(args[0]));
    show(Boolean(opts.json), vols, () =>
      table([
        ['VOLUME', 'MEMBERS', 'RE-ENCRYPTION'],
        ...vols.map((v) => {
          const r = v.reencrypt as {
            state: string;
            done: number | null;
            total: number | null;
            by?: string | null;
          };
          const progress = r.total ? ` ${r.done ?? 0}/${r.total}` : '';
          const runner = r.by && r.state !== 'done' ? ` (by ${r.by})` : '';
          return [
            String(v.volume),
            (v.members as string[]).join(',') || '-',
            r.state + progress + runner,
          ];
        }),
      ]),
    );
    return EXIT.OK;
  }
  if (verb !== 'grant' && verb !== 'revoke')
    throw new CliError(
      EXIT.USAGE,
      'usage: supernet storage-role grant|revoke SUPERNET VOLUME NODE | storage-role list SUPERNET',
    );
  const { opts, args } = parseArgs(`storage-role ${verb}`, argv.slice(1), COMMON, {
    min: 3,
    max: 3,
    names: 'SUPERNET VOLUME NODE',
  });
  const c = operatorClient(opts);
  if (verb === 'grant') await call(c.grantStorageRole(args[0], args[1], args[2]));
  else await call(c.revokeStorageRole(args[0], args[1], args[2]));
  show(Boolean(opts.json), { ok: true }, () =>
    verb === 'grant'
      ? `${args[2]} now holds the storage role of ${args[1]} in ${args[0]}\n`
      : `revoked the storage role of ${args[2]} for ${args[1]} in ${args[0]}; the volume needs re-encryption\n`,
  );
  return EXIT.OK;
}
