/**
 * The host agent's configfs process (docs/dns.md §Agent ↔ configfs): the
 * agent starts `supernet configfs run` before it creates any node, and
 * starts it again whenever it exits (issue 6, acceptance 5). configfs is a
 * process of its own so that a fault in FUSE handling cannot take the
 * packet path down; the agent only supervises it.
 *
 * The child's stdin is a pipe held by the agent (`--parent-pipe`): when the
 * agent goes, however it ends, configfs unmounts and goes too, so the next
 * agent never finds a live configfs in its way. Its stderr (JSON log lines,
 * `configfs: ...`) is the agent's.
 *
 * Whether configfs serves is read from the mount table (a FUSE mount of
 * this instance's source at the mount point), never by stat'ing into it: a
 * hung configfs must not hang the agent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger, LogLevel } from '../admin/logger.js';
import { FS_SUBTYPE, configfsSource } from '../configfs/content.js';
import { readMountInfo } from '../configfs/mountinfo.js';

/** The CLI entry next to this module in the build (dist/net → dist/bin/supernet.js). */
const SUPERNET_JS = fileURLToPath(new URL('../bin/supernet.js', import.meta.url));

/** A restart after a run shorter than this counts as a crash loop and backs off. */
const STABLE_RUN_MS = 10_000;

export interface ConfigfsSupervisorOptions {
  mountpoint: string;
  spoolDir: string;
  logger: Logger;
  /** Log level handed to the configfs process (default info). */
  logLevel?: LogLevel;
  /** The program and its first arguments (default: this Node.js and `supernet configfs run`). */
  command?: string[];
  /** First restart delay, doubled for each quick successive exit (default 100 ms). */
  minBackoffMs?: number;
  /** Longest restart delay (default 10 s). */
  maxBackoffMs?: number;
}

/** What `supernet status` shows of configfs. */
export interface ConfigfsStatus {
  mountpoint: string;
  spool: string;
  /** pid of the running configfs process (null while none runs). */
  pid: number | null;
  /** A live configfs mount of this instance is at the mount point. */
  mounted: boolean;
  /** Times it was started again after exiting. */
  restarts: number;
  /** How the last process ended (null before the first exit). */
  lastExit: { code: number | null; signal: string | null; at: number } | null;
}

/** True if the mount table shows this instance's configfs at `mountpoint`. */
export function configfsMounted(mountpoint: string): boolean {
  const mp = resolve(mountpoint);
  const source = configfsSource(mp);
  return readMountInfo('self').some(
    (e) => e.mountPoint === mp && e.fstype === `fuse.${FS_SUBTYPE}` && e.source === source,
  );
}

/** Starts configfs and keeps it running until {@link ConfigfsSupervisor.stop}. */
export class ConfigfsSupervisor {
  private child: ChildProcess | null = null;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private backoff: number;
  private startedAt = 0;
  private restarts = 0;
  private lastExit: ConfigfsStatus['lastExit'] = null;
  private readonly mountpoint: string;
  private readonly spoolDir: string;

  constructor(private readonly o: ConfigfsSupervisorOptions) {
    this.mountpoint = resolve(o.mountpoint);
    this.spoolDir = resolve(o.spoolDir);
    this.backoff = o.minBackoffMs ?? 100;
  }

  /** Starts the process (returns at once; see {@link ready}). */
  start(): void {
    this.stopping = false;
    this.launch();
  }

  /** Waits until configfs serves, at most `timeoutMs`; false if it did not. */
  async ready(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!configfsMounted(this.mountpoint)) {
      if (this.stopping || Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  status(): ConfigfsStatus {
    return {
      mountpoint: this.mountpoint,
      spool: this.spoolDir,
      pid: this.child?.pid ?? null,
      mounted: configfsMounted(this.mountpoint),
      restarts: this.restarts,
      lastExit: this.lastExit,
    };
  }

  /** Stops the process (SIGTERM: it unmounts; SIGKILL after `graceMs`) and does not restart it. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }

  private launch(): void {
    this.timer = null;
    if (this.stopping) return;
    const [file, ...pre] = this.o.command ?? [process.execPath, SUPERNET_JS, 'configfs', 'run'];
    const args = [
      ...pre,
      '--mount',
      this.mountpoint,
      '--spool',
      this.spoolDir,
      '--parent-pipe',
      '--log-level',
      this.o.logLevel ?? 'info',
    ];
    this.startedAt = Date.now();
    // Its own process group: a signal to the agent's group (a terminal's
    // ^C, a service manager) reaches the agent, which stops configfs in
    // order; were configfs to see it too, it would exit first and be restarted.
    const child = spawn(file!, args, { stdio: ['pipe', 'inherit', 'inherit'], detached: true });
    this.child = child;
    // Nothing is ever written: the pipe only tells the child we are alive.
    child.stdin?.on('error', () => undefined);
    child.on('error', (err) => {
      this.o.logger.error('cannot start configfs', { err: err.message, file });
    });
    child.on('exit', (code, signal) => this.exited(child, code, signal));
    this.o.logger.info('configfs started', { pid: child.pid, mountpoint: this.mountpoint });
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    this.lastExit = { code, signal, at: Date.now() };
    if (this.stopping) return;
    const min = this.o.minBackoffMs ?? 100;
    const max = this.o.maxBackoffMs ?? 10_000;
    if (Date.now() - this.startedAt >= STABLE_RUN_MS) this.backoff = min;
    const delay = this.backoff;
    this.backoff = Math.min(max, this.backoff * 2);
    this.restarts++;
    this.o.logger.warn('configfs exited; restarting it', { code, signal, inMs: delay });
    this.timer = setTimeout(() => this.launch(), delay);
    this.timer.unref();
  }
}
