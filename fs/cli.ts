/**
 * `supernet fs ...`: init, mount, unmount, check, rekey. Exit codes come from
 * bin/cli-kit.ts: wrong key → NOPERM, not a volume / damaged / rolled back →
 * DATA, already mounted → UNAVAILABLE, bad arguments → USAGE.
 */
import { spawn, execFile } from 'node:child_process';
import { mkdir, open, readFile, readdir, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CliError, EXIT, type Command, type ExitCode } from '../bin/cli-kit.js';
import { backingArg, storeFor } from './store-nfs.js';
import { runInNode } from './cli-storage.js';
import { FileAnchor } from './anchor.js';
import { Keyring, readKeyFile, writeKeyFile } from './keys.js';
import { newId } from './format.js';
import { Volume } from './volume.js';
import { VolumeError, type VolumeErrorKind } from './errors.js';
import {
  control,
  daemonEnv,
  defaultStateRoot,
  isMounted,
  openVolume,
  resolveState,
  runningMount,
  statePaths,
} from './mount.js';
import { jsonLogger } from '../admin/logger.js';

const execp = promisify(execFile);

interface Parsed {
  pos: string[];
  opts: Map<string, string | true>;
}

function parse(argv: string[], valued: string[], flags: string[], usage: string): Parsed {
  const pos: string[] = [];
  const opts = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (valued.includes(k)) {
        const val = v ?? argv[++i];
        if (val === undefined)
          throw new CliError(EXIT.USAGE, `--${k} needs a value\nusage: ${usage}`);
        opts.set(k, val);
      } else if (flags.includes(k) && v === undefined) opts.set(k, true);
      else throw new CliError(EXIT.USAGE, `unknown option ${a}\nusage: ${usage}`);
    } else pos.push(a);
  }
  return { pos, opts };
}

const str = (p: Parsed, k: string): string | undefined => {
  const v = p.opts.get(k);
  return typeof v === 'string' ? v : undefined;
};

function need(p: Parsed, n: number, usage: string): void {
  if (p.pos.length !== n)
    throw new CliError(EXIT.USAGE, `expected ${n} argument(s)\nusage: ${usage}`);
}

const KIND_EXIT: Record<VolumeErrorKind, ExitCode> = {
  'not-a-volume': EXIT.DATA,
  'wrong-key': EXIT.NOPERM,
  damaged: EXIT.DATA,
  rollback: EXIT.DATA,
  busy: EXIT.UNAVAILABLE,
  unsupported: EXIT.DATA,
  exists: EXIT.USAGE,
};

/** Runs a command body, turning known errors into one stderr line and an exit code. */
async function guarded(name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`supernet ${name}: ${e.message}\n`);
      return e.code;
    }
    if (e instanceof VolumeError) {
      process.stderr.write(`supernet ${name}: ${e.message}\n`);
      return KIND_EXIT[e.kind];
    }
    process.stderr.write(`supernet ${name}: ${(e as Error).message ?? String(e)}\n`);
    return EXIT.SOFTWARE;
  }
}

/** A one-line progress bar on stderr. */
export function progressBar(label: string): (done: number, total: number) => void {
  const tty = process.stderr.isTTY;
  let lastPct = -1;
  return (done, total) => {
    const pct = total === 0 ? 100 : Math.floor((100 * done) / total);
    if (pct === lastPct && done !== total) return;
    lastPct = pct;
    const w = 30;
    const fill = Math.round((w * pct) / 100);
    const line = `${label} [${'#'.repeat(fill)}${'-'.repeat(w - fill)}] ${String(pct).padStart(3)}% ${done}/${total} objects`;
    process.stderr.write(tty ? `\r${line}${done === total ? '\n' : ''}` : `${line}\n`);
  };
}

const INIT_USAGE =
  'supernet fs init BACKING --key KEY_FILE | --node NODE --volume NAME [--state DIR] [--uid N] [--gid N]';
const MOUNT_USAGE =
  'supernet fs mount BACKING MOUNTPOINT --key KEY_FILE | --node NODE --volume NAME [--state DIR] [--foreground] [--allow-other] [--debug]';
const UNMOUNT_USAGE = 'supernet fs unmount MOUNTPOINT';
const STATUS_USAGE = 'supernet fs status MOUNTPOINT [--json]';
const CHECK_USAGE = 'supernet fs check BACKING_DIR --key KEY_FILE [--state DIR] [--json]';
const REKEY_USAGE =
  'supernet fs rekey BACKING --key KEY_FILE | --node NODE --volume NAME [--state DIR]';

function keyOf(p: Parsed, usage: string): string {
  const k = str(p, 'key');
  if (!k) throw new CliError(EXIT.USAGE, `--key KEY_FILE is required\nusage: ${usage}`);
  return resolve(k);
}

async function init(argv: string[]): Promise<number> {
  const p = parse(argv, ['key', 'state', 'uid', 'gid'], ['admin-keys'], INIT_USAGE);
  need(p, 1, INIT_USAGE);
  const backing = backingArg(p.pos[0]!);
  const keyFile = keyOf(p, INIT_USAGE);
  const store = await storeFor(backing);
  if (!(await store.isEmpty())) throw new CliError(EXIT.USAGE, `${backing} is not empty`);
  // --admin-keys (set by `--volume NAME`, fs/cli-storage.ts): the admin's storage key group issued the keyring.
  const issued = p.opts.has('admin-keys') ? await readKeyFile(keyFile) : null;
  if (issued) {
    /* the key file is the admin's; nothing to write */
  } else if (
    await stat(keyFile).then(
      () => true,
      () => false,
    )
  )
    throw new CliError(EXIT.USAGE, `key file ${keyFile} exists; refusing to overwrite a key`);
  const keyring = issued ?? Keyring.generate(newId());
  const vid = keyring.volumeId.toString('hex');
  if (!issued) {
    // The key first: a volume whose key was never written would be lost.
    const fh = await open(keyFile, 'wx', 0o600);
    await fh.close();
    await writeKeyFile(keyFile, keyring);
  }
  await store.init();
  const state = statePaths(str(p, 'state') ?? resolve(defaultStateRoot(), vid));
  const anchor = new FileAnchor(state.anchor, vid);
  const uid = Number(str(p, 'uid') ?? process.getuid?.() ?? 0);
  const gid = Number(str(p, 'gid') ?? process.getgid?.() ?? 0);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid < 0 || gid < 0)
    throw new CliError(EXIT.USAGE, '--uid/--gid must be non-negative integers');
  const v = await Volume.create(store, keyring, anchor, { uid, gid });
  await v.close();
  process.stdout.write(`volume ${vid}\nkey file ${keyFile}\nstate ${state.dir}\n`);
  return EXIT.OK;
}

const daemonPath = (): string => fileURLToPath(new URL('./daemon.js', import.meta.url));

async function mount(argv: string[]): Promise<number> {
  const p = parse(
    argv,
    ['key', 'state'],
    ['foreground', 'allow-other', 'debug', 'admin-keys'],
    MOUNT_USAGE,
  );
  need(p, 2, MOUNT_USAGE);
  const backing = backingArg(p.pos[0]!);
  const mountpoint = resolve(p.pos[1]!);
  const keyFile = keyOf(p, MOUNT_USAGE);
  const state = await resolveState(backing, str(p, 'state'));
  const args = {
    backing,
    mountpoint,
    keyFile,
    stateDir: state.dir,
    allowOther: p.opts.has('allow-other') ? true : undefined,
    debug: p.opts.has('debug'),
  };
  await mkdir(state.dir, { recursive: true, mode: 0o700 });
  const logFd = p.opts.has('foreground')
    ? 'inherit'
    : await open(resolve(state.dir, 'mount.log'), 'a', 0o600);
  const child = spawn(process.execPath, [daemonPath(), JSON.stringify(args)], {
    env: daemonEnv(),
    detached: !p.opts.has('foreground'),
    stdio: ['ignore', 'ignore', typeof logFd === 'string' ? logFd : logFd.fd, 'ipc'],
  });
  const msg = await new Promise<{ ready?: boolean; error?: string; kind?: VolumeErrorKind | null }>(
    (res) => {
      child.once('message', (m) => res(m as { ready?: boolean }));
      child.once('exit', (code) => res({ error: `mount daemon exited with code ${code}` }));
    },
  );
  if (typeof logFd !== 'string') await logFd.close();
  if (msg.error) {
    if (msg.kind) throw new VolumeError(msg.kind, msg.error);
    throw new CliError(EXIT.UNAVAILABLE, msg.error);
  }
  if (p.opts.has('foreground')) {
    const code = await new Promise<number>((res) => child.once('exit', (c) => res(c ?? 0)));
    return code === 0 ? EXIT.OK : EXIT.SOFTWARE;
  }
  child.unref();
  if (child.connected) child.disconnect();
  process.stdout.write(
    `mounted ${mountpoint} (daemon pid ${child.pid}, log ${resolve(state.dir, 'mount.log')})\n`,
  );
  return EXIT.OK;
}

async function unmount(argv: string[]): Promise<number> {
  const p = parse(argv, [], [], UNMOUNT_USAGE);
  need(p, 1, UNMOUNT_USAGE);
  const mnt = resolve(p.pos[0]!);
  if (!(await isMounted(mnt))) throw new CliError(EXIT.USAGE, `${mnt} is not mounted`);
  try {
    await execp('fusermount', ['-u', mnt]);
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr ?? e).trim();
    throw new CliError(EXIT.UNAVAILABLE, `cannot unmount ${mnt}: ${msg}`);
  }
  // The daemon commits and exits once the mount is gone; wait for that.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const pids = (await daemonsFor(mnt)).map((d) => d.pid);
    if (pids.length === 0) break;
    if (Date.now() > deadline)
      throw new CliError(EXIT.UNAVAILABLE, `daemon ${pids.join(',')} did not finish`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(`unmounted ${mnt}\n`);
  return EXIT.OK;
}

/**
 * What the mount daemon serving MOUNTPOINT says of itself: the volume's
 * version and key epoch, its counters (commits, objects written and deleted,
 * integrity errors) and its store's (for NFS: gets, puts, rewrites,
 * stale-handle retries, RPC calls, retransmits, reconnects, JUKEBOX
 * retries). Found by the daemon's command line, so it works for a mount made
 * inside a node too.
 */
async function status(argv: string[]): Promise<number> {
  const p = parse(argv, [], ['json'], STATUS_USAGE);
  need(p, 1, STATUS_USAGE);
  const mnt = resolve(p.pos[0]!);
  const [d] = await daemonsFor(mnt);
  if (!d) throw new CliError(EXIT.USAGE, `${mnt}: no Supernet fs mount daemon serves it`);
  const dir = d.args.stateDir ?? resolve(defaultStateRoot(), await volumeOfKey(d.args.keyFile));
  const r = await controlWhileAlive(statePaths(dir), d.pid, { op: 'status' });
  delete r.ok;
  if (p.opts.has('json')) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return EXIT.OK;
  }
  const line = (o: unknown): string =>
    Object.entries((o ?? {}) as Record<string, number>)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  process.stdout.write(
    `${mnt}: ${String(r.backing)} (daemon pid ${String(r.pid)})\n` +
      `  version ${String(r.version)}, key epoch ${String(r.epoch)}\n` +
      `  volume: ${line(r.counters)}\n` +
      (r.store ? `  store: ${line(r.store)}\n` : ''),
  );
  return EXIT.OK;
}

/** The volume id (hex) of a key file, or "" if it cannot be read. */
async function volumeOfKey(keyFile: string | undefined): Promise<string> {
  if (!keyFile) return '';
  try {
    return (await readKeyFile(keyFile)).volumeId.toString('hex');
  } catch {
    return '';
  }
}

interface DaemonArgs {
  mountpoint?: string;
  stateDir?: string;
  keyFile?: string;
}

/** Live daemons serving `mnt` (found by their command line), with the arguments they were started with. */
async function daemonsFor(mnt: string): Promise<Array<{ pid: number; args: DaemonArgs }>> {
  const out: Array<{ pid: number; args: DaemonArgs }> = [];
  for (const d of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const args = (await readFile(`/proc/${d}/cmdline`, 'utf8')).split('\0');
      if (args[1] !== daemonPath() || !args[2]) continue;
      const j = JSON.parse(args[2]) as DaemonArgs;
      if (j.mountpoint === mnt) out.push({ pid: Number(d), args: j });
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

async function check(argv: string[]): Promise<number> {
  const p = parse(argv, ['key', 'state'], ['json', 'admin-keys'], CHECK_USAGE);
  need(p, 1, CHECK_USAGE);
  const backing = backingArg(p.pos[0]!);
  const keyFile = keyOf(p, CHECK_USAGE);
  const state = await resolveState(backing, str(p, 'state'));
  const live = await runningMount(state);
  if (live) await control(state, { op: 'commit' });
  const { volume } = await openVolume({
    backing,
    keyFile,
    stateDir: state.dir,
    readOnly: true,
    logger: jsonLogger(),
  });
  const rep = await volume.check();
  const bad = rep.damaged.length > 0 || rep.lost > 0;
  if (p.opts.has('json'))
    process.stdout.write(JSON.stringify({ ok: !bad, ...rep }, null, 2) + '\n');
  else {
    process.stdout.write(
      `volume ${volume.volumeId.toString('hex')} version ${volume.superblock.version} epoch ${volume.superblock.epoch}\n` +
        `${rep.objects} objects verified: ${rep.dirs} directories, ${rep.files} files (${rep.bytes} bytes), ${rep.symlinks} symlinks\n`,
    );
    for (const d of rep.damaged) process.stdout.write(`DAMAGED ${d.path}: ${d.reason}\n`);
    if (rep.lost)
      process.stdout.write(`DAMAGED ${rep.lost} inodes are not reachable from the root\n`);
    if (rep.orphans)
      process.stdout.write(
        `${rep.orphans} unreferenced objects (garbage; the next mount removes them)\n`,
      );
    process.stdout.write(bad ? 'volume is DAMAGED\n' : 'volume is consistent\n');
  }
  return bad ? EXIT.DATA : EXIT.OK;
}

async function rekey(argv: string[]): Promise<number> {
  const p = parse(argv, ['key', 'state'], ['admin-keys'], REKEY_USAGE);
  need(p, 1, REKEY_USAGE);
  const backing = backingArg(p.pos[0]!);
  const keyFile = keyOf(p, REKEY_USAGE);
  const state = await resolveState(backing, str(p, 'state'));
  const keyring = await readKeyFile(keyFile);
  // Admin-issued keys (--volume): the new epoch comes from the storage key group, never from here.
  if (keyring.keys.size === 1 && p.opts.has('admin-keys'))
    throw new CliError(EXIT.USAGE, 'no re-encryption pending: the keyring has one epoch');
  if (keyring.keys.size === 1) {
    // Both keys are kept until every object is re-encrypted, so an interrupted
    // rekey resumes with the same new key.
    keyring.addEpoch();
    await writeKeyFile(keyFile, keyring);
  } else process.stderr.write(`resuming the rekey to epoch ${keyring.current}\n`);
  const bar = progressBar(`rekey to epoch ${keyring.current}`);
  const live = await runningMount(state);
  if (live) {
    const r = await controlWhileAlive(state, live.pid, { op: 'rekey' }, bar);
    // Only a daemon that answered with the new epoch has re-encrypted everything.
    if (r.epoch !== keyring.current)
      throw new CliError(
        EXIT.SOFTWARE,
        `the mount daemon answered epoch ${String(r.epoch)}, not ${keyring.current}; run again to resume`,
      );
  } else {
    const { volume, keyring: k } = await openVolume({
      backing,
      keyFile,
      stateDir: state.dir,
      logger: jsonLogger(),
    });
    await volume.rekey(bar);
    await volume.close();
    keyring.keys.clear();
    for (const [e, key] of k.keys) keyring.keys.set(e, key);
  }
  keyring.dropBefore(keyring.current);
  await writeKeyFile(keyFile, keyring);
  process.stdout.write(
    `rekeyed to epoch ${keyring.current}; earlier keys open nothing in the store\n`,
  );
  return EXIT.OK;
}

/** Whether `pid` runs (a zombie, killed but not yet reaped, does not). */
function processAlive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * A control request to the mount daemon that fails when the daemon dies
 * before answering (fs/mount.ts control() alone then never settles, and the
 * command used to exit 0 with the rekey unfinished).
 */
async function controlWhileAlive(
  state: Awaited<ReturnType<typeof resolveState>>,
  pid: number,
  req: Record<string, unknown>,
  onProgress?: (done: number, total: number) => void,
): Promise<Record<string, unknown>> {
  let timer: NodeJS.Timeout | undefined;
  const died = new Promise<never>((_, rej) => {
    timer = setInterval(() => {
      if (!processAlive(pid))
        rej(
          new CliError(
            EXIT.UNAVAILABLE,
            `the mount daemon (pid ${pid}) ended before answering; mount again and rerun to resume`,
          ),
        );
    }, 250);
  });
  try {
    return await Promise.race([control(state, req, onProgress), died]);
  } finally {
    clearInterval(timer);
  }
}

/** The `fs` commands, keyed by full command path (bin/supernet.ts dispatches). */
export const fsCommands: Record<string, Command> = {
  'fs init': {
    summary: 'create an encrypted volume in an empty directory',
    usage: INIT_USAGE,
    run: (a) => guarded('fs init', async () => (await runInNode('fs init', a)) ?? init(a)),
  },
  'fs mount': {
    summary: 'mount an encrypted volume (FUSE)',
    usage: MOUNT_USAGE,
    run: (a) => guarded('fs mount', async () => (await runInNode('fs mount', a)) ?? mount(a)),
  },
  'fs unmount': {
    summary: 'unmount a volume after committing it',
    usage: UNMOUNT_USAGE,
    run: (a) => guarded('fs unmount', () => unmount(a)),
  },
  'fs status': {
    summary: "show a mount's volume version, key epoch and counters (its NFS client's too)",
    usage: STATUS_USAGE,
    run: (a) => guarded('fs status', () => status(a)),
  },
  'fs check': {
    summary: 'verify every object of a volume; report damage',
    usage: CHECK_USAGE,
    run: (a) => guarded('fs check', async () => (await runInNode('fs check', a)) ?? check(a)),
  },
  'fs rekey': {
    summary: 're-encrypt a volume under a new key epoch (resumable)',
    usage: REKEY_USAGE,
    run: (a) => guarded('fs rekey', async () => (await runInNode('fs rekey', a)) ?? rekey(a)),
  },
};
