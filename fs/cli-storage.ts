/**
 * `supernet storage ...`: the provider side of outsourced storage (issue 5).
 *
 *   supernet storage serve --export DIR --clients ADDR|NODE|channel:ID[,...]
 *       [--node NAME [--supernet ID] [--agent SOCKET] | --netns NS]
 *       [--state DIR] [--listen ADDR] [--nfs-port N] [--mount-port N] [--export-path /export]
 *   supernet storage status [--state DIR | --node NAME] [--json]
 *   supernet storage reencrypt BACKING --key KEY [--node NAME] [--supernet ID --volume NAME]
 *
 * `serve` runs nfs-ganesha inside the provider node's network namespace
 * (found through the host agent) in a private mount namespace of its own,
 * exporting DIR as `nfs://<node's virtual address>/export` to the listed
 * clients only; it runs in the foreground until SIGTERM/SIGINT, then stops
 * ganesha cleanly. See docs/nfs.md.
 *
 * Also here: {@link runInNode}, which re-runs a `supernet fs` command inside
 * a node's network namespace (`fs mount --node a1 nfs://bigdisk1/export …`),
 * so the filesystem's NFS traffic crosses the node's channels.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import {
  CliError,
  EXIT,
  output,
  parseOptions as parse,
  pickNode,
  type CliOptions,
  type Command,
} from '../bin/cli-kit.js';
import { ControlError, DEFAULT_CONTROL_SOCKET, controlCall } from '../net/control.js';
import { API_PREFIX, OPERATOR_AUTH_SCHEME } from '../admin/protocol.js';
import {
  DEFAULT_EXPORT_PATH,
  launchCommand,
  PRIVATE_NS_ENV,
  ProviderServer,
  providerPaths,
  readProviderStatus,
} from './provider.js';
import { isNfsUrl, parseNfsUrl, formatNfsUrl } from './nfs/url.js';
import { jsonLogger } from '../admin/logger.js';
import {
  FOLLOW_INTERVAL_MS,
  followClients,
  isDynamic,
  parseClientSpec,
  resolveClients,
  type NodeContext,
} from './provider-clients.js';
import { parseChannelId } from '../admin/ids.js';

/** Default root of providers' state folders (one per node). */
export const DEFAULT_STORAGE_STATE = '/var/lib/supernet/storage';
const CLI_PATH = (): string => fileURLToPath(new URL('../bin/supernet.js', import.meta.url));

interface StatusNode {
  name: string;
  supernet: string;
  vip: string;
  ns: string;
  channels?: Array<string | number>;
  peers?: Array<{ name: string; vip: string; channels?: number[] }>;
}

/** Finds node `name` through the host agent's control socket. */
export async function nodeContext(
  agent: string | undefined,
  name: string,
  supernet?: string,
): Promise<NodeContext> {
  const sock = agent ?? process.env.SUPERNET_AGENT ?? DEFAULT_CONTROL_SOCKET;
  let st: { nodes: StatusNode[] };
  try {
    st = (await controlCall(sock, 'GET', '/status')) as { nodes: StatusNode[] };
  } catch (e) {
    if (e instanceof ControlError)
      throw new CliError(
        e.code === 'no_agent' ? EXIT.UNAVAILABLE : EXIT.SOFTWARE,
        `host agent at ${sock}: ${e.message}`,
      );
    throw new CliError(EXIT.UNAVAILABLE, `host agent at ${sock}: ${(e as Error).message}`);
  }
  const n = pickNode(st.nodes, name, supernet);
  return {
    name: n.name,
    supernet: n.supernet,
    ns: n.ns,
    vip: n.vip,
    channels: (n.channels ?? []).map((c) => parseChannelId(c)),
    peers: new Map(
      (n.peers ?? []).map((p) => [p.name, { vip: p.vip, channels: p.channels ?? [] }]),
    ),
  };
}

/** Runs argv with inherited stdio, forwarding SIGTERM/SIGINT; resolves to its exit code. */
function runForwarding(
  argv: string[],
  env: NodeJS.ProcessEnv,
  watchStdin: boolean,
  onSpawn?: (child: ChildProcess) => () => void,
): Promise<number> {
  return new Promise((res) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [watchStdin ? 'pipe' : 'inherit', 'inherit', 'inherit'],
      env,
    });
    const unwatch = onSpawn?.(child);
    const fwd = (sig: NodeJS.Signals) => (): void => {
      if (child.exitCode === null) child.kill(sig);
    };
    const term = fwd('SIGTERM');
    const int = fwd('SIGINT');
    process.on('SIGTERM', term);
    process.on('SIGINT', int);
    child.once('error', (e) => {
      process.stderr.write(`supernet: cannot run ${argv[0]}: ${e.message}\n`);
      res(EXIT.UNAVAILABLE);
    });
    child.once('exit', (code, signal) => {
      unwatch?.();
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
      res(code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? EXIT.OK : EXIT.SOFTWARE));
    });
  });
}

const SERVE_USAGE =
  'supernet storage serve --export DIR --clients ADDR|NODE|channel:ID[,...] [--node NAME [--supernet ID] [--agent SOCKET] | --netns NS] [--state DIR] [--listen ADDR] [--nfs-port N] [--mount-port N] [--export-path PATH]';

const SERVE_OPTS: CliOptions = {
  export: { type: 'string' },
  clients: { type: 'string' },
  node: { type: 'string' },
  supernet: { type: 'string' },
  agent: { type: 'string' },
  netns: { type: 'string' },
  state: { type: 'string' },
  listen: { type: 'string' },
  'nfs-port': { type: 'string' },
  'mount-port': { type: 'string' },
  'export-path': { type: 'string' },
};

const portOpt = (v: string | boolean | undefined, what: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new CliError(EXIT.USAGE, `--${what} must be 1..65535`);
  return n;
};

async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, SERVE_OPTS, SERVE_USAGE);
  if (positionals.length)
    throw new CliError(EXIT.USAGE, `unexpected ${positionals[0]}\nusage: ${SERVE_USAGE}`);
  const exportDir = values.export as string | undefined;
  const clients = values.clients as string | undefined;
  if (!exportDir || !clients)
    throw new CliError(EXIT.USAGE, `--export and --clients are required\nusage: ${SERVE_USAGE}`);
  if (values.node && values.netns)
    throw new CliError(EXIT.USAGE, '--node and --netns exclude each other');
  const exportPath = (values['export-path'] as string | undefined) ?? DEFAULT_EXPORT_PATH;
  const nfsPort = portOpt(values['nfs-port'], 'nfs-port');
  const mountPort = portOpt(values['mount-port'], 'mount-port');

  if (process.env[PRIVATE_NS_ENV] === '1') {
    // Inside: the network namespace is the provider's, /run may be replaced.
    const state = resolve(values.state as string);
    return serveHere({
      exportDir: resolve(exportDir),
      state,
      clients: clients === NO_CLIENTS ? [] : clients.split(','),
      listen: values.listen as string | undefined,
      nfsPort,
      mountPort,
      exportPath,
    });
  }

  let node: NodeContext | null = null;
  let netns = (values.netns as string | undefined) ?? null;
  if (values.node) {
    node = await nodeContext(
      values.agent as string | undefined,
      values.node as string,
      values.supernet as string | undefined,
    );
    netns = node.ns;
  }
  if (netns !== null && !/^[A-Za-z0-9_.-]+$/.test(netns))
    throw new CliError(EXIT.USAGE, `bad namespace name ${JSON.stringify(netns)}`);
  const spec = parseClientSpec(clients, node !== null);
  const initial = resolveClients(spec, node, true);
  const listen = (values.listen as string | undefined) ?? node?.vip;
  const state = resolve(
    (values.state as string | undefined) ??
      resolve(DEFAULT_STORAGE_STATE, node?.name ?? netns ?? 'default'),
  );
  const inner = [
    process.execPath,
    CLI_PATH(),
    'storage',
    'serve',
    '--export',
    resolve(exportDir),
    '--clients',
    initial.length ? initial.join(',') : NO_CLIENTS,
    '--state',
    state,
    '--export-path',
    exportPath,
  ];
  if (listen) inner.push('--listen', listen);
  if (nfsPort) inner.push('--nfs-port', String(nfsPort));
  if (mountPort) inner.push('--mount-port', String(mountPort));
  // Names and channels follow the node's peers; the inner process (in its
  // own mount namespace, where the agent's socket under /run is hidden) is
  // told each new list on its stdin, one JSON line per change.
  const follow =
    node && isDynamic(spec)
      ? (child: ChildProcess) => {
          // A write racing the inner process's exit must not take us down (EPIPE).
          child.stdin?.on('error', () => {});
          process.stderr.write(
            `supernet storage serve: the export follows ${clients} (the agent's view of ${node.name}'s peers, re-read every ${FOLLOW_INTERVAL_MS / 1000} s)\n`,
          );
          return followClients(
            spec,
            initial,
            () =>
              nodeContext(
                values.agent as string | undefined,
                values.node as string,
                values.supernet as string | undefined,
              ),
            (list) => child.stdin?.write(JSON.stringify({ clients: list }) + '\n'),
            (msg) => process.stderr.write(`supernet storage serve: ${msg}\n`),
          );
        }
      : undefined;
  return runForwarding(
    launchCommand(netns, inner),
    { ...process.env, [PRIVATE_NS_ENV]: '1' },
    true,
    follow,
  );
}

/** `--clients` of the inner process when nobody is admitted yet. */
const NO_CLIENTS = 'none';

/** Applies `{"clients": [...]}` lines from the outer process. */
function clientUpdates(
  server: ProviderServer,
  log: ReturnType<typeof jsonLogger>,
): (d: Buffer) => void {
  let pending = '';
  return (d) => {
    pending += d.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let list: unknown;
      try {
        list = (JSON.parse(line) as { clients?: unknown }).clients;
      } catch {
        list = undefined;
      }
      if (!Array.isArray(list) || !list.every((c) => typeof c === 'string')) {
        log.warn('ignored a malformed client update', { line: line.slice(0, 200) });
        continue;
      }
      server
        .setClients(list)
        .catch((e: Error) =>
          log.error('client update failed; the previous list stays', { error: e.message }),
        );
    }
  };
}

async function serveHere(o: {
  exportDir: string;
  state: string;
  clients: string[];
  listen?: string;
  nfsPort?: number;
  mountPort?: number;
  exportPath: string;
}): Promise<number> {
  const logger = jsonLogger();
  let server: ProviderServer;
  try {
    server = await ProviderServer.start({
      exportDir: o.exportDir,
      stateDir: o.state,
      clients: o.clients,
      listen: o.listen,
      nfsPort: o.nfsPort,
      mountPort: o.mountPort,
      exportPath: o.exportPath,
      logger,
    });
  } catch (e) {
    throw new CliError(EXIT.UNAVAILABLE, (e as Error).message);
  }
  const opts = server.options;
  const url = formatNfsUrl({
    host: opts.listen ?? 'ADDRESS',
    export: opts.exportPath,
    port: opts.nfsPort,
    mountPort: opts.mountPort,
  });
  process.stdout.write(
    `serving ${url} from ${opts.exportDir} to ${opts.clients.join(',')} (ganesha pid ${server.ganeshaPid}, state ${o.state})\n`,
  );
  const stop = (): void => void server.stop();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Started by an outer `storage serve`: its end (even by SIGKILL) ends us.
  if (!process.stdin.isTTY) {
    process.stdin.on('data', clientUpdates(server, logger));
    process.stdin.on('end', stop).on('close', stop).on('error', stop);
    process.stdin.resume();
  }
  const err = await server.done;
  process.stdin.destroy();
  if (err) {
    process.stderr.write(`supernet storage serve: ${err.message}\n`);
    return EXIT.UNAVAILABLE;
  }
  process.stdout.write('stopped\n');
  return EXIT.OK;
}

const STATUS_USAGE = 'supernet storage status [--state DIR | --node NAME] [--json]';

async function status(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { state: { type: 'string' }, node: { type: 'string' }, json: { type: 'boolean' } },
    STATUS_USAGE,
  );
  const state = resolve(
    (values.state as string | undefined) ??
      resolve(DEFAULT_STORAGE_STATE, (values.node as string | undefined) ?? 'default'),
  );
  const st = readProviderStatus(state);
  if (!st) throw new CliError(EXIT.UNAVAILABLE, `no provider running with state ${state}`);
  output(Boolean(values.json), st, () =>
    [
      `provider pid ${st.pid}, ganesha pid ${st.ganeshaPid ?? '-'} (started ${st.starts}× since ${st.since})`,
      `export ${st.exportDir} as ${st.exportPath} on ${st.listen ?? '*'}:${st.nfsPort} (MOUNT ${st.mountPort})`,
      // Older provider.json files (before the field) have no `listening`.
      `listening on ${st.listening?.join(', ') || '(unknown)'}`,
      `clients ${st.clients.join(', ') || '(nobody)'}`,
      `log ${providerPaths(state).log}`,
      '',
    ].join('\n'),
  );
  return EXIT.OK;
}

const REENCRYPT_USAGE =
  'supernet storage reencrypt BACKING --key KEY_FILE [--state DIR] [--node NAME [--agent SOCKET]] [--supernet ID --volume NAME [--admin URL] [--token-file FILE]]';

/** Reports re-encryption progress to the admin API (`PUT …/storage/volumes/V/progress`). */
class ProgressReporter {
  private last = 0;
  private warned = false;
  private pending: Promise<void> = Promise.resolve();
  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly sid: string,
    private readonly volume: string,
  ) {}

  /** Queues a report; `force` skips the rate limit (first and last). */
  report(
    state: 'running' | 'done' | 'failed',
    done: number | null,
    total: number | null,
    force = false,
  ): void {
    const now = Date.now();
    if (!force && now - this.last < 500) return;
    this.last = now;
    const path = `/supernets/${encodeURIComponent(this.sid)}/storage/volumes/${encodeURIComponent(this.volume)}/progress`;
    this.pending = this.pending.then(async () => {
      try {
        const res = await fetch(this.url.replace(/\/+$/, '') + API_PREFIX + path, {
          method: 'PUT',
          headers: {
            Authorization: `${OPERATOR_AUTH_SCHEME} ${this.token}`,
            'Content-Type': 'application/json',
          },
          body: JSON.stringify({ state, done, total }),
          signal: AbortSignal.timeout(10_000),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      } catch (e) {
        // The re-encryption must not depend on the admin service being there.
        if (!this.warned)
          process.stderr.write(
            `supernet storage reencrypt: cannot report progress: ${(e as Error).message}\n`,
          );
        this.warned = true;
      }
    });
  }

  flush(): Promise<void> {
    return this.pending;
  }
}

/** The operator token as the admin CLI finds it: --token-file, SUPERNET_TOKEN, SUPERNET_TOKEN_FILE. */
function operatorToken(file: string | undefined): string {
  if (!file && process.env.SUPERNET_TOKEN) return process.env.SUPERNET_TOKEN.trim();
  const f = file ?? process.env.SUPERNET_TOKEN_FILE;
  if (!f)
    throw new CliError(
      EXIT.USAGE,
      'reporting progress needs an operator token (--token-file or SUPERNET_TOKEN)',
    );
  try {
    return readFileSync(f, 'utf8').trim();
  } catch (e) {
    throw new CliError(
      EXIT.NOPERM,
      `cannot read the token file ${f}: ${(e as NodeJS.ErrnoException).code}`,
    );
  }
}

/**
 * `storage reencrypt`: `supernet fs rekey` (inside `--node`, resumable, on a
 * mounted or unmounted volume) with its progress reported to the admin API,
 * where `storage-role list` and the console show it (issue 5: revocation
 * "shown with progress (CLI and admin API)"). Run from the member's host
 * namespace, which reaches the admin service; the rekey itself runs inside
 * the node.
 */
async function reencrypt(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      key: { type: 'string' },
      state: { type: 'string' },
      node: { type: 'string' },
      agent: { type: 'string' },
      supernet: { type: 'string' },
      volume: { type: 'string' },
      admin: { type: 'string' },
      'token-file': { type: 'string' },
    },
    REENCRYPT_USAGE,
  );
  if (positionals.length !== 1 || !values.key)
    throw new CliError(EXIT.USAGE, `usage: ${REENCRYPT_USAGE}`);
  let reporter: ProgressReporter | null = null;
  if (values.volume) {
    const admin = (values.admin as string | undefined) ?? process.env.SUPERNET_ADMIN;
    if (!values.supernet || !admin)
      throw new CliError(EXIT.USAGE, '--volume needs --supernet and --admin (or SUPERNET_ADMIN)');
    reporter = new ProgressReporter(
      admin,
      operatorToken(values['token-file'] as string | undefined),
      values.supernet as string,
      values.volume as string,
    );
  }
  const child = [
    process.execPath,
    CLI_PATH(),
    'fs',
    'rekey',
    positionals[0]!,
    '--key',
    values.key as string,
  ];
  for (const k of ['state', 'node', 'agent', 'supernet'] as const)
    if (values[k]) child.push(`--${k}`, values[k] as string);
  reporter?.report('running', 0, null, true);
  let done: number | null = null;
  let total: number | null = null;
  const code = await new Promise<number>((res) => {
    const c = spawn(child[0]!, child.slice(1), { stdio: ['ignore', 'inherit', 'pipe'] });
    let buf = '';
    c.stderr!.on('data', (d: Buffer) => {
      process.stderr.write(d);
      buf += d.toString('utf8');
      // fs rekey's progress lines: "rekey to epoch N [###---]  42% done/total objects"
      for (const m of buf.matchAll(/(\d+)\/(\d+) objects/g)) {
        done = Number(m[1]);
        total = Number(m[2]);
      }
      buf = buf.slice(Math.max(0, buf.lastIndexOf('\n') + 1));
      if (total !== null) reporter?.report('running', done, total);
    });
    const fwd = (sig: NodeJS.Signals) => (): void => void c.kill(sig);
    process.once('SIGTERM', fwd('SIGTERM'));
    process.once('SIGINT', fwd('SIGINT'));
    c.once('error', () => res(EXIT.UNAVAILABLE));
    c.once('exit', (code) => res(code ?? EXIT.SOFTWARE));
  });
  reporter?.report(code === 0 ? 'done' : 'failed', code === 0 ? total : done, total, true);
  await reporter?.flush();
  return code;
}

/**
 * Re-runs `supernet CMD ARGV` inside node `--node`'s network namespace (only
 * the network: mounts it makes stay visible on the host and to the node's
 * processes). An `nfs://NAME/...` argument naming a peer node is rewritten to
 * the peer's virtual address. Returns null when ARGV has no `--node`.
 */
export async function runInNode(cmd: string, argv: string[]): Promise<number | null> {
  const take = (opt: string): string | undefined => {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a === `--${opt}`) {
        const v = argv[i + 1];
        if (v === undefined) throw new CliError(EXIT.USAGE, `--${opt} needs a value`);
        argv.splice(i, 2);
        return v;
      }
      if (a.startsWith(`--${opt}=`)) {
        argv.splice(i, 1);
        return a.slice(opt.length + 3);
      }
    }
    return undefined;
  };
  argv = [...argv];
  const name = take('node');
  const volume = take('volume');
  if (name === undefined) {
    if (volume !== undefined)
      throw new CliError(EXIT.USAGE, '--volume needs --node (the member whose keys to use)');
    return null;
  }
  const agent = take('agent');
  const supernet = take('supernet');
  const node = await nodeContext(agent, name, supernet);
  if (volume !== undefined) argv.push(...(await volumeKeyArgs(cmd, argv, node, volume, agent)));
  const rest = argv.map((a) => {
    if (!isNfsUrl(a)) return a;
    const t = parseNfsUrl(a);
    const vip = node.peers.get(t.host)?.vip;
    return vip ? formatNfsUrl({ ...t, host: vip }) : a;
  });
  return runForwarding(
    [
      'nsenter',
      `--net=/run/netns/${node.ns}`,
      '--',
      process.execPath,
      CLI_PATH(),
      ...cmd.split(' '),
      ...rest,
    ],
    process.env,
    false,
  );
}

/** Where volume keys from the admin service are handed to the fs commands (tmpfs on a real host). */
export function volumeKeysDir(): string {
  return process.env.SUPERNET_FS_KEYS ?? '/run/supernet/fs-keys';
}

/**
 * `--volume NAME`: the volume's keyring comes from the admin service's
 * storage key group, through the host agent (net/storage-agent.ts), instead
 * of a key file the operator hands around. It is written to a 0600 file in
 * {@link volumeKeysDir} (one per Supernet, node and volume, so a live mount
 * and a later rekey share it) and passed as `--key FILE --admin-keys`.
 */
async function volumeKeyArgs(
  cmd: string,
  argv: string[],
  node: NodeContext,
  volume: string,
  agent: string | undefined,
): Promise<string[]> {
  if (argv.includes('--key') || argv.some((a) => a.startsWith('--key=')))
    throw new CliError(EXIT.USAGE, '--volume and --key exclude each other');
  const backing = argv.find((a) => isNfsUrl(a)) ?? argv.find((a) => !a.startsWith('--'));
  const sock = agent ?? process.env.SUPERNET_AGENT ?? DEFAULT_CONTROL_SOCKET;
  const si = argv.findIndex((a) => a === '--state' || a.startsWith('--state='));
  const stateDir =
    si < 0 ? undefined : argv[si] === '--state' ? argv[si + 1] : argv[si]!.slice('--state='.length);
  // The agent remembers where the volume lives and which state folder its mount uses (re-encryption).
  const q = backing
    ? `?backing=${encodeURIComponent(backing)}${stateDir ? `&state=${encodeURIComponent(resolve(stateDir))}` : ''}`
    : '';
  let ring: { keys: unknown[]; current: number; reencrypt: { state: string } };
  try {
    ring = (await controlCall(
      sock,
      'GET',
      `/storage-keys/${encodeURIComponent(node.supernet)}/${encodeURIComponent(node.name)}/${encodeURIComponent(volume)}${q}`,
    )) as typeof ring;
  } catch (e) {
    const code = e instanceof ControlError ? e.code : '';
    throw new CliError(
      code === 'no_storage_role' || code === 'forbidden'
        ? EXIT.NOPERM
        : code === 'no_agent' || code === 'admin_unreachable'
          ? EXIT.UNAVAILABLE
          : EXIT.DATA,
      `keys of volume ${volume} for ${node.name}: ${(e as Error).message}`,
    );
  }
  if (cmd === 'fs rekey' && ring.keys.length < 2)
    throw new CliError(
      EXIT.USAGE,
      `volume ${volume} has no re-encryption pending (only epoch ${ring.current}); the admin starts one by revoking a storage role`,
    );
  const dir = volumeKeysDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = resolve(dir, `${node.supernet}-${node.name}-${volume}.json`);
  const tmp = `${file}.tmp-${process.pid}`;
  // Only the key-file fields go to disk (not the admin's current/reencrypt view).
  const keyFile = Object.fromEntries(
    Object.entries(ring).filter(([k]) => k !== 'current' && k !== 'reencrypt'),
  );
  writeFileSync(tmp, JSON.stringify(keyFile) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
  return ['--key', file, '--admin-keys'];
}

/** The `storage` commands, keyed by full command path (bin/supernet.ts dispatches). */
export const storageCommands: Record<string, Command> = {
  'storage serve': {
    summary:
      'run nfs-ganesha in a provider node, exporting one folder to given clients or a channel',
    usage: SERVE_USAGE,
    run: (a) => guarded('storage serve', () => serve(a)),
  },
  'storage reencrypt': {
    summary: 're-encrypt a volume to a new key epoch (after a revocation), reporting progress',
    usage: REENCRYPT_USAGE,
    run: (a) => guarded('storage reencrypt', () => reencrypt(a)),
  },
  'storage status': {
    summary: 'show a running storage provider',
    usage: STATUS_USAGE,
    run: (a) => guarded('storage status', () => status(a)),
  },
};

async function guarded(name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`supernet ${name}: ${e.message}\n`);
      return e.code;
    }
    process.stderr.write(`supernet ${name}: ${(e as Error).message ?? String(e)}\n`);
    return EXIT.SOFTWARE;
  }
}
