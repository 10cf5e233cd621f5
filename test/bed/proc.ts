/**
 * Running programs for the test bed: one-shot commands with a timeout
 * (`runArgv`) and tracked long-running processes (`TrackedProcess`).
 *
 * Every child is started in its own process group (`detached`), so it can be
 * stopped together with whatever it forks by signalling the group — by the
 * PID we started, never by name (ground rules). Linux keeps a PID allocated
 * while it is still some live process's group id, so signalling `-pgid` can
 * only reach that group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';

/** Options of a one-shot command. */
export interface RunOptions {
  /** kill the command's process group after this long (default 60 s) */
  timeoutMs?: number;
  /** written to the command's stdin, which is then closed */
  input?: string;
  /** merged over the runner's environment */
  env?: Record<string, string>;
  /** return non-zero exits and timeouts instead of throwing */
  allowFail?: boolean;
  cwd?: string;
}

/** What a one-shot command did. `code` is 128+signal when killed by a signal. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** true when the timeout killed it (code is then 124, as timeout(1) has it) */
  timedOut?: boolean;
}

/** A command that failed (non-zero exit or timeout) without `allowFail`. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const what = result.timedOut ? 'timed out' : `exited with code ${result.code}`;
    const detail = (result.stderr.trim() || result.stdout.trim()).slice(-2000);
    super(`command ${what}: ${quoteArgv(argv)}${detail ? `\n${detail}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Shell-style quoting of an argv, for messages and logs only. */
export function quoteArgv(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function codeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (SIGNALS[signal] ?? 64) : 0);
}

/** Sends `signal` to process group `pgid`; false when the group is gone. */
export function killGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

/** Sends `signal` to one process; false when it is gone. */
export function killPid(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

/**
 * The fields of a /proc/PID/stat line, indexed by proc(5)'s field numbers
 * (`fields[2]` is the command name, `fields[22]` the start time).
 */
export function procStatFields(stat: string): string[] {
  // The command name (field 2) is in parentheses and may contain anything,
  // ')' and spaces too: the other fields resume after the last ')'.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const pid = stat.slice(0, stat.indexOf(' ('));
  return [
    '',
    pid,
    comm,
    ...stat
      .slice(close + 2)
      .trimEnd()
      .split(' '),
  ];
}

/**
 * The kernel's start time of `pid` (field 22 of /proc/PID/stat, in clock
 * ticks since boot), or null when there is no such process. Together with the
 * PID it names one process for good: a reused PID has a later start time.
 */
export function procStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return procStatFields(stat)[22] ?? null;
}

/** How long to wait after 'exit' for pipes held open by a surviving grandchild. */
const CLOSE_GRACE_MS = 300;

/** Runs `argv` to completion and collects its output. */
export function runArgv(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      settled = true;
      reject(new Error(`cannot run ${quoteArgv(argv)}: ${err.message}`));
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A grandchild that forked away (setsid -f, daemons) may hold our pipes open.
      child.stdout.destroy();
      child.stderr.destroy();
      const result: RunResult = timedOut
        ? { code: 124, stdout, stderr: `${stderr}[timed out after ${timeoutMs} ms]`, timedOut }
        : { code: codeOf(code, signal), stdout, stderr };
      if ((result.code !== 0 || timedOut) && !opts.allowFail)
        reject(new CommandError(argv, result));
      else resolve(result);
    };
    child.on('close', finish);
    child.on('exit', (code, signal) => {
      setTimeout(() => finish(code, signal), CLOSE_GRACE_MS);
    });
    // A command that exits without reading its input must not crash us (EPIPE).
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** A long-running process the test bed started and will stop. */
export interface BedProcess {
  readonly pid: number;
  /** the argv as started (including any `ip netns exec` wrapper) */
  readonly argv: readonly string[];
  /** where stdout and stderr (interleaved) are written */
  readonly logFile: string;
  /**
   * Resolves with the first match of `re` in the output so far (stdout and
   * stderr), waiting up to `timeoutMs` (default 10 s) for it to appear.
   * Rejects when the process exits first or the time runs out, quoting the
   * tail of the output.
   */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<string>;
  /** all output so far (the newest 1 MiB when there was more) */
  output(): string;
  /** exit code; null when killed by a signal (see `exitSignal`) or not started */
  readonly exited: Promise<number | null>;
  readonly exitSignal: NodeJS.Signals | null;
  readonly running: boolean;
  /**
   * Signals the process group (default SIGTERM), waits up to `timeoutMs`
   * (default 5 s) for the process to exit, then SIGKILLs the group.
   * Idempotent; resolves when the process has exited.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

const OUTPUT_KEEP = 1 << 20;

/** The test bed's {@link BedProcess}. */
export class TrackedProcess implements BedProcess {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  exitSignal: NodeJS.Signals | null = null;
  running = true;
  private out = '';
  private readonly waiters = new Set<() => void>();
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private spawnError: Error | null = null;

  constructor(
    readonly argv: readonly string[],
    readonly logFile: string,
    opts: { env?: Record<string, string>; cwd?: string } = {},
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
    this.log.on('error', () => {});
    this.child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
    });
    this.pid = this.child.pid ?? -1;
    const onData = (d: string): void => {
      this.log.write(d);
      this.out += d;
      if (this.out.length > OUTPUT_KEEP) this.out = this.out.slice(-OUTPUT_KEEP);
      this.wake();
    };
    this.child.stdout!.setEncoding('utf8').on('data', onData);
    this.child.stderr!.setEncoding('utf8').on('data', onData);
    this.exited = new Promise((resolve) => {
      let code: number | null = null;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        this.running = false;
        this.child.stdout?.destroy();
        this.child.stderr?.destroy();
        this.log.end();
        this.wake();
        resolve(code);
      };
      this.child.on('error', (err) => {
        this.spawnError = err;
        finish();
      });
      this.child.on('exit', (c, s) => {
        code = c;
        this.exitSignal = s;
        setTimeout(finish, CLOSE_GRACE_MS);
      });
      this.child.on('close', finish);
    });
  }

  output(): string {
    return this.out;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  waitForOutput(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const pattern = new RegExp(re.source, re.flags.replace(/[gy]/g, ''));
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = pattern.exec(this.out);
        if (m) return done(() => resolve(m[0]));
        if (!this.running) {
          const why = this.spawnError
            ? `could not start (${this.spawnError.message})`
            : `exited (code ${this.child.exitCode}, signal ${this.exitSignal})`;
          done(() =>
            reject(
              new Error(`${this.describe()} ${why} before its output matched ${re}${this.tail()}`),
            ),
          );
        }
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new Error(
                `timed out after ${timeoutMs} ms waiting for ${re} in the output of ${this.describe()}${this.tail()}`,
              ),
            ),
          ),
        timeoutMs,
      );
      const done = (settle: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  private describe(): string {
    return `process ${this.pid} (${quoteArgv(this.argv).slice(0, 200)})`;
  }

  private tail(): string {
    const t = this.out.slice(-1500).trimEnd();
    return t ? `; last output:\n${t}` : '; no output';
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5_000): Promise<void> {
    if (this.pid <= 0) return;
    if (this.running) killGroup(this.pid, signal);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    const outcome = await Promise.race([this.exited.then(() => 'exited' as const), timer]);
    // Whatever the leader did, nothing of its group may outlive stop().
    killGroup(this.pid, 'SIGKILL');
    if (outcome === 'timeout') await this.exited;
  }
}
