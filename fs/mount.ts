/**
 * Opening a volume from its files, and serving it on a mount point: the FUSE
 * session, a control socket (rekey, commit, drop-caches, status) and the
 * clean shutdown when the mount goes away (`supernet fs unmount`, umount(8)).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { storeFor } from './store-nfs.js';
import { FileAnchor } from './anchor.js';
import { readKeyFile, type Keyring } from './keys.js';
import { decodeVolumeHeader } from './format.js';
import { Volume, type VolumeOptions } from './volume.js';
import { VolumeError } from './errors.js';
import type { LeaseOptions } from './lease.js';
import { loadFuseLL } from './fuse-ll.js';
import { loadFuse, type FuseHandle } from './fuse.js';
import { fuseOps } from './fuse-ops.js';
import { fuseDispatch } from './fuse-ll-ops.js';
import { type Logger, nullLogger } from '../admin/logger.js';

const run = promisify(execFile);
/** Kernel cache lifetime of names and attributes, seconds. */
const ENTRY_TIMEOUT_S = 10;

/** Where a volume's trusted client-side state lives by default. */
export function defaultStateRoot(): string {
  if (process.env.SUPERNET_FS_STATE) return process.env.SUPERNET_FS_STATE;
  return process.getuid?.() === 0
    ? '/var/lib/supernet/fs'
    : join(homedir(), '.local/state/supernet/fs');
}

/**
 * glibc malloc settings of a mount daemon (docs/storage.md, "Speed"): keep
 * freed large buffers in the heap for reuse (no mmap below 4 MiB, no trimming
 * below 256 MiB free) instead of handing them back to the kernel and paying
 * a page fault per 4 KiB the next time, which on a virtual machine costs more
 * than encrypting the data. Settings the caller already gives win.
 */
const MALLOC_TUNABLES: Record<string, string> = {
  'glibc.malloc.mmap_threshold': String(4 << 20),
  'glibc.malloc.trim_threshold': String(256 << 20),
};

/** The environment to start a mount daemon with: `base` plus {@link MALLOC_TUNABLES} and a larger libuv thread pool. */
export function daemonEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const given = (base.GLIBC_TUNABLES ?? '').split(':').filter((t) => t.includes('='));
  const names = new Set(given.map((t) => t.slice(0, t.indexOf('='))));
  const add = Object.entries(MALLOC_TUNABLES)
    .filter(([k]) => !names.has(k))
    .map(([k, v]) => `${k}=${v}`);
  // More threads for the store's file I/O (libuv's default is 4): reads
  // ahead and write-behind puts keep several objects in flight.
  return {
    ...base,
    GLIBC_TUNABLES: [...given, ...add].join(':'),
    UV_THREADPOOL_SIZE: base.UV_THREADPOOL_SIZE ?? '8',
  };
}

export interface StatePaths {
  dir: string;
  anchor: string;
  control: string;
  pidfile: string;
  /** The writer lease this host holds or held last: token and pid (fs/lease.ts). */
  lease: string;
}

export function statePaths(dir: string): StatePaths {
  return {
    dir,
    anchor: join(dir, 'anchor.json'),
    control: join(dir, 'control.sock'),
    pidfile: join(dir, 'mount.json'),
    lease: join(dir, 'lease.json'),
  };
}

/**
 * Lease options that let a process on this host take over at once from a
 * crashed one of the same volume: the token each taker records here, with
 * its pid, is "dead" when that pid no longer runs.
 */
function localLeaseHints(state: StatePaths): LeaseOptions {
  return {
    holderDead: async (token) => {
      try {
        const j = JSON.parse(await readFile(state.lease, 'utf8')) as {
          token?: string;
          pid?: number;
        };
        return (
          j.token === token.toString('hex') && typeof j.pid === 'number' && !(await pidAlive(j.pid))
        );
      } catch {
        return false;
      }
    },
    onTaken: async (token) => {
      await mkdir(state.dir, { recursive: true, mode: 0o700 });
      await writeFile(
        state.lease,
        JSON.stringify({ token: token.toString('hex'), pid: process.pid }) + '\n',
        {
          mode: 0o600,
        },
      );
    },
  };
}

/** True if `pid` runs (a zombie, killed but not reaped, does not). */
async function pidAlive(pid: number): Promise<boolean> {
  try {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    const s = st.charAt(st.lastIndexOf(')') + 2);
    return s !== 'Z' && s !== 'X' && s !== '';
  } catch {
    return false;
  }
}

export interface OpenArgs {
  backing: string;
  keyFile: string;
  /** Per-volume state folder; default `<state root>/<volume id>`. */
  stateDir?: string;
  readOnly?: boolean;
  logger?: Logger;
  volume?: VolumeOptions;
}

/** Reads the volume id from the store's header (clear errors for "not a volume"). */
export async function volumeIdOf(backing: string): Promise<string> {
  const store = await storeFor(backing);
  try {
    return decodeVolumeHeader(await store.get('volume')).volumeId.toString('hex');
  } finally {
    store.close?.();
  }
}

export async function resolveState(backing: string, stateDir?: string): Promise<StatePaths> {
  return statePaths(stateDir ?? join(defaultStateRoot(), await volumeIdOf(backing)));
}

/** Opens the volume in `backing` with the key file and the trusted state. */
export async function openVolume(
  a: OpenArgs,
): Promise<{ volume: Volume; keyring: Keyring; state: StatePaths }> {
  const store = await storeFor(a.backing, { logger: a.logger ?? a.volume?.logger });
  const keyring = await readKeyFile(a.keyFile);
  const state = await resolveState(a.backing, a.stateDir);
  const anchor = new FileAnchor(state.anchor, keyring.volumeId.toString('hex'));
  const volume = await Volume.open(store, keyring, anchor, {
    ...a.volume,
    readOnly: a.readOnly,
    logger: a.logger ?? a.volume?.logger,
    lease: a.volume?.lease === false ? false : { ...localLeaseHints(state), ...a.volume?.lease },
  });
  return { volume, keyring, state };
}

/** The pid of a live mount daemon of this volume, or null. */
export async function runningMount(
  state: StatePaths,
): Promise<{ pid: number; mountpoint: string } | null> {
  let j: { pid?: number; mountpoint?: string };
  try {
    j = JSON.parse(await readFile(state.pidfile, 'utf8'));
  } catch {
    return null;
  }
  if (typeof j.pid !== 'number' || typeof j.mountpoint !== 'string') return null;
  // kill(pid, 0) succeeds on a zombie (killed, not yet reaped): read the state.
  if (!(await pidAlive(j.pid))) return null;
  return { pid: j.pid, mountpoint: j.mountpoint };
}

/** True if `mnt` is a mount point now (per /proc/self/mountinfo). */
export async function isMounted(mnt: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const want = resolve(mnt);
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    if (f[4] && f[4].replace(/\\040/g, ' ') === want) return true;
  }
  return false;
}

export interface MountArgs extends OpenArgs {
  mountpoint: string;
  allowOther?: boolean;
  debug?: boolean;
}

/** A served volume. */
export interface Mounted {
  volume: Volume;
  state: StatePaths;
  /** Resolves when the mount is gone and the volume committed and closed. */
  done: Promise<void>;
  /** Unmounts (refuses with EBUSY while files are open), commits, closes. */
  unmount(): Promise<void>;
}

/** A served FUSE session of one mount. */
interface FuseSession {
  /** Frees the session (after the kernel let go of the mount, or to detach it). */
  close(): void;
}

/**
 * Which FUSE binding serves the volume: the low-level one on the event loop
 * (fs/fuse-ll.ts, the default) or fuse-native's high-level one
 * (`SUPERNET_FUSE_API=high`, kept while the low-level one is new).
 */
function fuseApi(): 'low' | 'high' {
  return process.env.SUPERNET_FUSE_API === 'high' ? 'high' : 'low';
}

/** Mounts `volume` on `mountpoint`; `gone` runs when the kernel ends the session. */
async function serveFuse(
  volume: Volume,
  mountpoint: string,
  a: MountArgs,
  log: Logger,
  gone: () => void,
): Promise<FuseSession> {
  const allowOther = a.allowOther ?? process.getuid?.() === 0;
  if (fuseApi() === 'high') {
    const Fuse = loadFuse();
    let fuse: FuseHandle | null = null;
    const handle = new Fuse(
      mountpoint,
      fuseOps(volume, () => fuse, log),
      {
        force: true,
        autoUnmount: true,
        bigWrites: true,
        maxWrite: 131072,
        defaultPermissions: true,
        allowOther,
        fsname: 'supernet',
        timeout: false,
        entryTimeout: ENTRY_TIMEOUT_S,
        attrTimeout: ENTRY_TIMEOUT_S,
        debug: !!a.debug,
      },
    );
    fuse = handle;
    await new Promise<void>((res, rej) => handle.mount((err) => (err ? rej(err) : res())));
    return { close: () => {} };
  }
  const ll = loadFuseLL();
  // A mount left behind by a daemon that died answers ENOTCONN: detach it
  // first (only then: a live mount of anything else is not ours to remove).
  const stale = await stat(mountpoint).then(
    () => false,
    (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN' || e.code === 'ENXIO',
  );
  if (stale) await run('fusermount', ['-uz', mountpoint]).catch(() => {});
  const options = [
    'fsname=supernet',
    'default_permissions',
    // Writes of up to 128 KiB per request instead of 4 KiB (design brief §4).
    'big_writes',
    'max_write=131072',
    // fusermount detaches the mount when this process dies, even by kill -9.
    'auto_unmount',
    ...(allowOther ? ['allow_other'] : []),
    ...(a.debug ? ['debug'] : []),
  ].join(',');
  let initDone!: () => void;
  const initialised = new Promise<void>((r) => (initDone = r));
  const { dispatch, st, input } = fuseDispatch(volume, ll, log, {
    onInit: () => initDone(),
    onGone: gone,
  });
  // Only this daemon changes the volume and the kernel keeps its caches
  // coherent with what goes through the mount, so names and attributes
  // may be cached longer than libfuse's 1 s (file data is not: a read
  // after open always comes here and is verified).
  const handle = ll.mount(
    mountpoint,
    options,
    dispatch,
    st,
    input,
    ENTRY_TIMEOUT_S,
    ENTRY_TIMEOUT_S,
  );
  await initialised;
  return { close: () => ll.close(handle) };
}

/** Mounts the volume and serves it until it is unmounted. */
export async function mountVolume(a: MountArgs): Promise<Mounted> {
  const log = a.logger ?? nullLogger;
  const mountpoint = resolve(a.mountpoint);
  // Refuse before opening: a read-write open of a volume in use is what the
  // writer lease exists to stop (it would sweep the live mount's objects).
  const known = await resolveState(a.backing, a.stateDir);
  const other = await runningMount(known);
  if (other && other.pid !== process.pid) {
    throw new VolumeError(
      'busy',
      `volume is already mounted by pid ${other.pid} at ${other.mountpoint}`,
    );
  }
  const { volume, keyring, state } = await openVolume({ ...a, stateDir: known.dir });
  let onGone = (): void => {};
  let session: FuseSession;
  try {
    session = await serveFuse(volume, mountpoint, a, log, () => onGone());
  } catch (e) {
    await volume.close().catch(() => {});
    throw new VolumeError('busy', `cannot mount on ${mountpoint}: ${(e as Error).message}`);
  }
  await mkdir(state.dir, { recursive: true, mode: 0o700 });
  await writeFile(state.pidfile, JSON.stringify({ pid: process.pid, mountpoint }) + '\n', {
    mode: 0o600,
  });
  const server = await controlServer(state, volume, keyring, log, a.keyFile, {
    backing: a.backing,
    mountpoint: a.mountpoint,
  });
  log.info('mounted', {
    mountpoint,
    volume: keyring.volumeId.toString('hex'),
    version: volume.superblock.version.toString(),
  });

  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  let closing: Promise<void> | null = null;
  const shutdown = (): Promise<void> => (closing ??= close());
  const close = async (): Promise<void> => {
    clearInterval(watch);
    server.close();
    await rm(state.control, { force: true });
    try {
      await volume.close();
      log.info('unmounted', { mountpoint, version: volume.superblock.version.toString() });
    } catch (e) {
      log.error('final commit failed', { error: String(e) });
    }
    await rm(state.pidfile, { force: true });
    session.close();
    finish();
  };
  // The binding says when the kernel ends the session; a lazy unmount
  // (umount -l) leaves it running while the mount table no longer lists it.
  onGone = () => void shutdown();
  const watch = setInterval(() => {
    isMounted(mountpoint).then(
      (m) => {
        if (!m) void shutdown();
      },
      () => {},
    );
  }, 300);
  return {
    volume,
    state,
    done,
    unmount: async () => {
      await run('fusermount', ['-u', mountpoint]);
      await shutdown();
    },
  };
}

/** Newline-delimited JSON requests on a Unix socket in the state folder. */
async function controlServer(
  state: StatePaths,
  volume: Volume,
  keyring: Keyring,
  log: Logger,
  keyFile: string,
  where: { backing: string; mountpoint: string },
): Promise<Server> {
  await rm(state.control, { force: true });
  const server = createServer((sock: Socket) => {
    let buf = '';
    const send = (o: unknown): boolean => sock.write(JSON.stringify(o) + '\n');
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: { op?: unknown };
      try {
        req = JSON.parse(buf.slice(0, nl));
      } catch {
        send({ ok: false, error: 'request is not JSON' });
        sock.end();
        return;
      }
      buf = '';
      (async () => {
        switch (req.op) {
          case 'status':
            return {
              pid: process.pid,
              backing: where.backing,
              mountpoint: where.mountpoint,
              version: volume.superblock.version.toString(),
              epoch: volume.superblock.epoch,
              counters: volume.counters,
              store: volume.store.stats?.() ?? null,
            };
          case 'commit':
            await volume.commit();
            return { version: volume.superblock.version.toString() };
          case 'drop-caches':
            await volume.dropCaches();
            return {};
          case 'rekey': {
            // The CLI has added the new epoch to the key file; take its keys.
            const fresh = await readKeyFile(keyFile);
            for (const [e, k] of fresh.keys) keyring.keys.set(e, k);
            let last = 0;
            await volume.rekey((done, total) => {
              const now = Date.now();
              if (now - last > 100 || done === total) {
                last = now;
                send({ progress: { done, total } });
              }
            });
            return { epoch: volume.superblock.epoch };
          }
          default:
            throw new Error(`unknown op ${JSON.stringify(req.op)}`);
        }
      })().then(
        (r) => {
          send({ ok: true, ...r });
          sock.end();
        },
        (e) => {
          log.warn('control request failed', { op: String(req.op), error: String(e) });
          send({ ok: false, error: String((e as Error).message ?? e) });
          sock.end();
        },
      );
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(state.control, () => res());
  });
  return server;
}

/** Sends one control request to a mount daemon; `onProgress` sees progress lines. */
export async function control(
  state: StatePaths,
  req: Record<string, unknown>,
  onProgress?: (done: number, total: number) => void,
): Promise<Record<string, unknown>> {
  const { connect } = await import('node:net');
  return new Promise((res, rej) => {
    const sock = connect(state.control);
    let buf = '';
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = JSON.parse(line) as {
          ok?: boolean;
          error?: string;
          progress?: { done: number; total: number };
        };
        if (m.progress) onProgress?.(m.progress.done, m.progress.total);
        else if (m.ok) res(m as Record<string, unknown>);
        else rej(new Error(m.error ?? 'control request failed'));
      }
    });
    sock.on('error', rej);
    // A daemon that dies mid-request closes the socket without an answer:
    // fail instead of never settling (a settled promise ignores this).
    sock.on('close', () =>
      rej(new Error('the mount daemon closed the control socket before answering')),
    );
  });
}
