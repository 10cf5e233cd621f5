/**
 * Ownership records of test-bed runs, the exit/signal safety net, and the
 * leftover sweeper.
 *
 * Each run claims a random prefix by creating `/run/supernet-testbed/<id>.json`
 * exclusively (id = prefix without its trailing '-'), recording the owning
 * process's PID and kernel start time, and appends every process it spawns to
 * `<id>.procs`. /run is a tmpfs, like /run/netns, so records and namespaces
 * vanish together at reboot.
 *
 * The sweeper only ever touches runs that have a record AND whose owner is
 * dead (PID gone, or reused: different start time). A namespace without a
 * record is not ours and is never touched.
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killGroup, killPid, procStartTime } from './proc.js';
import {
  deleteNamespaceSync,
  deleteRootLinkSync,
  mountsUnder,
  namespacePids,
  namespacesWithPrefix,
  rootLinksWithPrefix,
  unmountSync,
} from './netns.js';
import { nullLogger, type Logger } from './log.js';

/** Where run records live. */
export const MARKER_DIR = '/run/supernet-testbed';
/** Every prefix: 'sn' + 4 of [a-z0-9] + '-' (7 chars, leaves 8 for names within IFNAMSIZ 15). */
export const PREFIX_RE = /^sn[a-z0-9]{4}-$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** A record younger than this may still be being written; the sweeper leaves it alone. */
const FRESH_MS = 60_000;

/** Contents of `<id>.json`. */
export interface RunRecord {
  prefix: string;
  pid: number;
  /** kernel start time of `pid` (see procStartTime) */
  start: string;
  dir: string;
  keepDir: boolean;
  created: string;
}

/** The run directory for a prefix id: `<tmp>/supernet-bed-<id>`. */
export function dirName(id: string): string {
  return `supernet-bed-${id}`;
}

function recordPath(id: string): string {
  return join(MARKER_DIR, `${id}.json`);
}
function procsPath(id: string): string {
  return join(MARKER_DIR, `${id}.procs`);
}

/**
 * Claims a fresh prefix: one no namespace or root link uses yet, whose record
 * file this process created exclusively, and whose run directory under
 * `tmpRoot` it created. Returns the prefix and the directory.
 */
export function claimPrefix(tmpRoot: string, keepDir: boolean): { prefix: string; dir: string } {
  mkdirSync(MARKER_DIR, { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 50; attempt++) {
    let id = 'sn';
    for (let i = 0; i < 4; i++) id += ALPHABET[randomInt(ALPHABET.length)];
    const prefix = `${id}-`;
    if (namespacesWithPrefix(prefix).length || rootLinksWithPrefix(prefix).length) continue;
    const dir = join(tmpRoot, dirName(id));
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    const record: RunRecord = {
      prefix,
      pid: process.pid,
      start: procStartTime(process.pid) ?? '',
      dir,
      keepDir,
      created: new Date().toISOString(),
    };
    try {
      writeFileSync(recordPath(id), JSON.stringify(record) + '\n', { flag: 'wx' });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    return { prefix, dir };
  }
  throw new Error(`could not claim a free test-bed prefix in ${MARKER_DIR} after 50 attempts`);
}

/** Records a spawned process (group leader) of run `prefix` for the sweeper. */
export function recordProcess(prefix: string, pid: number): void {
  const start = procStartTime(pid);
  if (start === null) return;
  appendFileSync(procsPath(prefix.slice(0, -1)), `${pid} ${start}\n`);
}

/** Removes the records of run `prefix` (after its teardown). */
export function releasePrefix(prefix: string): void {
  const id = prefix.slice(0, -1);
  rmSync(recordPath(id), { force: true });
  rmSync(procsPath(id), { force: true });
}

/** True when the process `pid` started at `start` still runs. */
function alive(pid: number, start: string): boolean {
  return procStartTime(pid) === start;
}

/**
 * Synchronous, best-effort removal of everything of run `prefix`: recorded
 * process groups and every process inside its namespaces (SIGKILL), mounts
 * under `dir`, its namespaces and root links, and `dir` unless `keepDir`.
 * Used by the safety net and the sweeper. Returns what was left behind.
 */
export function destroyRunSync(prefix: string, dir: string | null, keepDir: boolean): string[] {
  if (!PREFIX_RE.test(prefix))
    throw new Error(`refusing to destroy a run with prefix ${JSON.stringify(prefix)}`);
  const id = prefix.slice(0, -1);
  let procs = '';
  try {
    procs = readFileSync(procsPath(id), 'utf8');
  } catch {
    // No process was recorded.
  }
  for (const line of procs.split('\n')) {
    const [pidText, start] = line.split(' ');
    const pid = Number(pidText);
    // Only the very process we started (PID and start time) leads the group we kill.
    if (pid > 0 && start && alive(pid, start)) killGroup(pid, 'SIGKILL');
  }
  for (const ns of namespacesWithPrefix(prefix)) {
    for (const pid of namespacePids(ns)) killPid(pid, 'SIGKILL');
  }
  if (dir) for (const mp of mountsUnder(dir)) unmountSync(mp);
  for (const ns of namespacesWithPrefix(prefix)) deleteNamespaceSync(ns);
  for (const link of rootLinksWithPrefix(prefix)) deleteRootLinkSync(link);
  // Per-node /etc files (`ip netns exec` binds /etc/netns/NS/*): agents make
  // them for their nodes' namespaces, which carry the run's prefix.
  removeEtcNetnsSync(prefix);
  if (dir && !keepDir) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A busy mount point; reported through the leftovers below.
    }
  }
  return [...namespacesWithPrefix(prefix), ...rootLinksWithPrefix(prefix)];
}

/** iproute2's per-namespace /etc directory. */
const ETC_NETNS = '/etc/netns';

/** Removes /etc/netns/<prefix>* (node namespaces of the run) and what is in them. */
function removeEtcNetnsSync(prefix: string): void {
  let names: string[];
  try {
    names = readdirSync(ETC_NETNS);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    try {
      rmSync(`${ETC_NETNS}/${n}`, { recursive: true, force: true });
    } catch {
      // Busy or gone; a later sweep retries.
    }
  }
}

/**
 * Deletes the leftovers of earlier test-bed runs whose owning process is
 * dead. Safe to call any time, also while other runs are live (their owners
 * are alive, so they are skipped). Returns the prefixes it swept.
 */
export function sweepLeftovers(logger: Logger = nullLogger): string[] {
  let entries: string[];
  try {
    entries = readdirSync(MARKER_DIR);
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const name of entries) {
    const m = /^(sn[a-z0-9]{4})\.json$/.exec(name);
    if (!m) continue;
    const id = m[1];
    const path = recordPath(id);
    let record: RunRecord | null = null;
    try {
      record = JSON.parse(readFileSync(path, 'utf8')) as RunRecord;
    } catch {
      try {
        if (Date.now() - statSync(path).mtimeMs < FRESH_MS) continue;
      } catch {
        continue;
      }
    }
    if (record && (typeof record.pid !== 'number' || typeof record.start !== 'string'))
      record = null;
    if (record && alive(record.pid, record.start)) continue;
    // A directory outside the naming scheme is not trusted for removal.
    const dir =
      record && typeof record.dir === 'string' && basename(record.dir) === dirName(id)
        ? record.dir
        : null;
    const left = destroyRunSync(`${id}-`, dir, record?.keepDir === true);
    if (left.length) {
      logger.warn('sweeper could not remove everything of a dead run', { prefix: `${id}-`, left });
      continue;
    }
    releasePrefix(`${id}-`);
    swept.push(`${id}-`);
    logger.info('swept leftovers of a dead test-bed run', {
      prefix: `${id}-`,
      owner: record?.pid,
      dir,
    });
  }
  return swept;
}

/** Something the safety net tears down synchronously when the process dies. */
export interface LiveRun {
  emergencyTeardown(): void;
}

const live = new Set<LiveRun>();
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;

function onExit(): void {
  for (const run of [...live]) {
    try {
      run.emergencyTeardown();
    } catch {
      // Keep going: the other runs still need cleaning.
    }
  }
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  onExit();
  uninstall();
  // Die of the same signal, as if we had never caught it.
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const s of FATAL_SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const s of FATAL_SIGNALS) process.off(s, onSignal);
}

/** Registers a live run with the exit/signal safety net. */
export function registerLive(run: LiveRun): void {
  live.add(run);
  install();
}

/** Unregisters a run after its orderly teardown; the net goes when the last run does. */
export function unregisterLive(run: LiveRun): void {
  live.delete(run);
  if (live.size === 0) uninstall();
}

/** What an owner writes to its guardian after an orderly teardown. */
export const GUARDIAN_RELEASED = 'released\n';

/** The owner's end of a guardian (see guardian.ts). */
export interface Guardian {
  /** Tells the guardian the run was torn down in order; it exits. */
  release(): void;
}

/**
 * Starts the guardian of run `prefix`: a detached process that cleans up the
 * run as soon as this process dies without releasing it. Neither the child
 * nor its pipe keeps this process's event loop alive, and the pipe is
 * close-on-exec, so no other child of ours holds it open.
 */
export function startGuardian(prefix: string, dir: string, keepDir: boolean): Guardian {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'guardian.js');
  const child = spawn(process.execPath, [script, prefix, dir, keepDir ? '1' : '0'], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.on('error', () => {});
  child.unref();
  const stdin = child.stdin!;
  stdin.on('error', () => {});
  (stdin as unknown as { unref?: () => void }).unref?.();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      stdin.end(GUARDIAN_RELEASED);
    },
  };
}
