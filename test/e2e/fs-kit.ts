/**
 * Shared pieces of the fs end-to-end tests: a per-run temp folder, the CLI,
 * mount daemons started (and only ever killed) by PID, and cleanup that
 * unmounts everything a test mounted, also when it fails.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execp = promisify(execFile);
export const DIST = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(DIST, 'bin/supernet.js');
export const DAEMON = join(DIST, 'fs/daemon.js');

export interface Bed {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Runs `supernet ARGS`; never throws on a non-zero exit. */
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Starts a mount daemon (foreground child) and waits until it serves. */
  mount(
    backing: string,
    mnt: string,
    key: string,
    extra?: Record<string, unknown>,
  ): Promise<ChildProcess>;
  /** Creates a volume; returns its paths. */
  init(name: string): Promise<{ backing: string; key: string; mnt: string }>;
  cleanup(): Promise<void>;
}

export async function makeBed(prefix: string): Promise<Bed> {
  const dir = await mkdtemp(join(tmpdir(), `snfs-${prefix}-`));
  const env = { ...process.env, SUPERNET_FS_STATE: join(dir, 'state') };
  // in-process helpers (openVolume, control) find the same state
  process.env.SUPERNET_FS_STATE = env.SUPERNET_FS_STATE;
  const children = new Set<ChildProcess>();
  const mounts = new Set<string>();
  const bed: Bed = {
    dir,
    env,
    async cli(args) {
      try {
        const r = await execp(process.execPath, [CLI, ...args], { env, maxBuffer: 1 << 26 });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const x = e as { code?: number; stdout?: string; stderr?: string };
        return {
          code: typeof x.code === 'number' ? x.code : -1,
          stdout: x.stdout ?? '',
          stderr: x.stderr ?? '',
        };
      }
    },
    async mount(backing, mnt, key, extra = {}) {
      await mkdir(mnt, { recursive: true });
      const child = spawn(
        process.execPath,
        [DAEMON, JSON.stringify({ backing, mountpoint: mnt, keyFile: key, ...extra })],
        {
          env,
          stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        },
      );
      children.add(child);
      mounts.add(mnt);
      let log = '';
      child.stderr!.on('data', (d) => (log += d));
      (child as ChildProcess & { log: () => string }).log = () => log;
      const m = await new Promise<{ ready?: boolean; error?: string }>((res) => {
        child.once('message', (x) => res(x as { ready?: boolean }));
        child.once('exit', (c) => res({ error: `daemon exited ${c}: ${log}` }));
      });
      if (m.error) throw new Error(m.error);
      child.on('exit', () => children.delete(child));
      return child;
    },
    async init(name) {
      const backing = join(dir, name, 'backing');
      const key = join(dir, name, 'key.json');
      const mnt = join(dir, name, 'mnt');
      await mkdir(join(dir, name), { recursive: true });
      const r = await bed.cli(['fs', 'init', backing, '--key', key]);
      if (r.code !== 0) throw new Error(`fs init failed: ${r.stderr}`);
      return { backing, key, mnt };
    },
    async cleanup() {
      for (const m of mounts)
        await execp('fusermount', ['-u', m]).catch(() =>
          execp('fusermount', ['-uz', m]).catch(() => {}),
        );
      for (const c of children) {
        await new Promise<void>((res) => {
          const t = setTimeout(() => {
            if (c.pid) process.kill(c.pid, 'SIGKILL');
            res();
          }, 5000);
          c.once('exit', () => {
            clearTimeout(t);
            res();
          });
          if (c.exitCode !== null || c.signalCode !== null) {
            clearTimeout(t);
            res();
          }
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  return bed;
}

/** Unmounts via the CLI and waits for the daemon to commit and exit. */
export async function unmount(bed: Bed, mnt: string, child?: ChildProcess): Promise<void> {
  const r = await bed.cli(['fs', 'unmount', mnt]);
  if (r.code !== 0) throw new Error(`unmount failed: ${r.stderr}`);
  if (child && child.exitCode === null && child.signalCode === null)
    await new Promise((res) => child.once('exit', res));
}

/** Seeded PRNG (replayable failures). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}
