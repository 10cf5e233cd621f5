/**
 * `supernet admin start`: runs the admin service in the foreground.
 *
 * On first start it creates, in the state folder (mode 0700): the admin
 * identity (`admin.identity`, 0600), the operator token (`operator.token`,
 * 0600) and, unless `--policy` names one, a policy that admits nobody. Each
 * start writes `admin.json` (URL and public keys, for agents to pin). Logs
 * are JSON lines on stderr. SIGHUP reloads the policy (so does a change of
 * the file); SIGTERM/SIGINT stop it cleanly (event streams ended, database
 * flushed, lock released).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, EXIT } from '../bin/cli-kit.js';
import { Identity } from './identity.js';
import { PROTOCOL_VERSION } from './protocol.js';
import { LowdbStore } from './store-lowdb.js';
import { PolicyError, PolicyHolder, POLICY_VERSION } from './policy.js';
import { jsonLogger, type LogLevel } from './logger.js';
import { createAdminService, DEFAULT_GRACE_MS, DEFAULT_VARP_TTL_MS } from './server.js';
import { DEFAULT_REKEY_BATCH_MS } from './keytree-flush.js';
import { DEFAULT_REENCRYPT_LEASE_MS } from './storage-roles.js';
import { hostPort, intOption, parseArgs } from './argv.js';
import {
  ADMIN_INFO_FILE,
  DB_FILE,
  DEFAULT_LISTEN,
  DEFAULT_STATE_DIR,
  IDENTITY_FILE,
  OPERATOR_TOKEN_FILE,
  POLICY_FILE,
  writeAtomic,
  type AdminInfoFile,
} from './cli.js';

/** `supernet admin start`: resolves with the exit code once stopped by SIGTERM/SIGINT. */
export async function adminStart(argv: string[]): Promise<number> {
  const cmd = 'admin start';
  const { opts } = parseArgs(
    cmd,
    argv,
    {
      state: 'string',
      listen: 'string',
      url: 'string',
      policy: 'string',
      'grace-ms': 'string',
      'key-scheme': 'string',
      'rekey-batch-ms': 'string',
      'varp-ttl-ms': 'string',
      'storage-lease-ms': 'string',
      'log-level': 'string',
      'metrics-token-file': 'string',
      'console-secure-cookies': 'boolean',
    },
    { min: 0, max: 0, names: '' },
  );
  const state = resolve((opts.state as string | undefined) ?? DEFAULT_STATE_DIR);
  const listen = hostPort(cmd, 'listen', (opts.listen as string | undefined) ?? DEFAULT_LISTEN);
  const graceMs = intOption(cmd, 'grace-ms', opts['grace-ms'], DEFAULT_GRACE_MS);
  const varpTtlMs = intOption(cmd, 'varp-ttl-ms', opts['varp-ttl-ms'], DEFAULT_VARP_TTL_MS, 1000);
  // How long a re-encrypting member may go quiet before another may take over.
  const storageLeaseMs = intOption(
    cmd,
    'storage-lease-ms',
    opts['storage-lease-ms'],
    DEFAULT_REENCRYPT_LEASE_MS,
    1000,
  );
  // Channel-key scheme (docs/keys.md §8); SUPERNET_KEY_SCHEME sets the default for a deployment.
  const keyScheme =
    (opts['key-scheme'] as string | undefined) ?? process.env.SUPERNET_KEY_SCHEME ?? 'tree';
  if (keyScheme !== 'flat' && keyScheme !== 'tree') {
    throw new CliError(EXIT.USAGE, `${cmd}: --key-scheme expects tree or flat, got ${keyScheme}`);
  }
  // Leaves/expels inside this window go out as one rekey message (docs/keys.md §Batching).
  const rekeyBatchMs = intOption(
    cmd,
    'rekey-batch-ms',
    opts['rekey-batch-ms'],
    DEFAULT_REKEY_BATCH_MS,
    0,
  );
  const level = ((opts['log-level'] as string | undefined) ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    throw new CliError(EXIT.USAGE, `${cmd}: --log-level expects debug, info, warn or error`);
  }
  const logger = jsonLogger(level);

  // The state folder holds private keys and the database: owner only.
  try {
    mkdirSync(state, { recursive: true, mode: 0o700 });
    chmodSync(state, 0o700);
  } catch (err) {
    throw new CliError(
      EXIT.NOPERM,
      `cannot create the state folder ${state}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  const idPath = join(state, IDENTITY_FILE);
  let identity: Identity;
  if (existsSync(idPath)) {
    try {
      identity = Identity.load(idPath);
    } catch (err) {
      throw new CliError(EXIT.DATA, (err as Error).message);
    }
  } else {
    identity = Identity.generate('supernet-admin');
    identity.save(idPath);
    logger.info('created the admin identity', { path: idPath, id: identity.id });
  }
  const tokenPath = join(state, OPERATOR_TOKEN_FILE);
  if (!existsSync(tokenPath)) {
    writeAtomic(tokenPath, randomBytes(32).toString('base64url') + '\n', 0o600);
    logger.info('created the operator token', { path: tokenPath });
  }
  const operatorToken = readFileSync(tokenPath, 'utf8').trim();
  if (operatorToken.length < 16)
    throw new CliError(EXIT.DATA, `${tokenPath}: token shorter than 16 characters`);

  // A read-only token for Prometheus (admin/metrics.ts), so the scraper need not hold the operator's.
  const metricsTokens: string[] = [];
  if (opts['metrics-token-file']) {
    const f = opts['metrics-token-file'] as string;
    let t: string;
    try {
      t = readFileSync(f, 'utf8').trim();
    } catch (err) {
      throw new CliError(
        EXIT.NOPERM,
        `--metrics-token-file ${f}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
    if (t.length < 16) throw new CliError(EXIT.DATA, `${f}: token shorter than 16 characters`);
    metricsTokens.push(t);
  }

  const explicitPolicy = opts.policy !== undefined;
  const policyPath = resolve((opts.policy as string | undefined) ?? join(state, POLICY_FILE));
  if (!existsSync(policyPath)) {
    if (explicitPolicy)
      throw new CliError(EXIT.USAGE, `${cmd}: --policy ${policyPath} does not exist`);
    writeAtomic(
      policyPath,
      JSON.stringify({ version: POLICY_VERSION, groups: {}, supernets: {} }, null, 2) + '\n',
      0o644,
    );
    logger.warn(
      'no policy yet: wrote one that admits nobody; edit it to admit nodes (docs/policy.md)',
      { path: policyPath },
    );
  }
  let holder: PolicyHolder;
  try {
    holder = PolicyHolder.fromFile(policyPath, logger);
  } catch (err) {
    if (err instanceof PolicyError) throw new CliError(EXIT.DATA, err.located(policyPath));
    throw new CliError(
      EXIT.UNAVAILABLE,
      `cannot read the policy ${policyPath}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }

  let store: LowdbStore;
  try {
    store = await LowdbStore.open(join(state, DB_FILE));
  } catch (err) {
    holder.close();
    throw new CliError(EXIT.UNAVAILABLE, (err as Error).message);
  }
  const svc = createAdminService({
    store,
    identity,
    policy: holder,
    logger,
    graceMs,
    varpTtlMs,
    storageLeaseMs,
    operatorToken,
    metricsTokens,
    consoleSecureCookies: Boolean(opts['console-secure-cookies']),
    keySchemeName: keyScheme,
    rekeyBatchMs,
  });
  try {
    await svc.listen(listen.port, listen.host);
  } catch (err) {
    await svc.close();
    await store.close();
    holder.close();
    throw new CliError(
      EXIT.UNAVAILABLE,
      `cannot listen on ${listen.host}:${listen.port}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  await svc.ready(); // the policy-loaded audit entry is durable: the database exists
  holder.watch();
  const url = (opts.url as string | undefined) ?? svc.url();
  const info: AdminInfoFile = {
    kind: 'supernet-admin',
    v: PROTOCOL_VERSION,
    url,
    id: identity.id,
    sign: identity.pub.sign,
    seal: identity.pub.seal,
  };
  writeAtomic(join(state, ADMIN_INFO_FILE), JSON.stringify(info, null, 2) + '\n', 0o644);
  return new Promise<number>((done) => {
    let stopping = false;
    const onHup = (): void => {
      logger.info('SIGHUP: reloading the policy', { path: policyPath });
      holder.reload();
    };
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info('shutting down', { signal });
      process.off('SIGHUP', onHup);
      holder.close();
      svc
        .close()
        .then(() => store.close())
        .then(
          () => {
            logger.info('stopped');
            done(EXIT.OK);
          },
          (err: unknown) => {
            logger.error('shutdown failed', { error: String(err) });
            done(EXIT.SOFTWARE);
          },
        );
    };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Only now: whoever waits for this line may signal at once (a signal
    // before the handlers would kill the process uncleanly).
    logger.info('admin service ready', { url, id: identity.id, state, policy: policyPath });
  });
}
