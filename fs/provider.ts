/**
 * The storage provider node (issue 5; paper Figure 6, bigdisk1): Debian's
 * nfs-ganesha with the VFS FSAL exporting one folder over NFSv3/TCP, only to
 * the given (virtual) client addresses, inside the provider node's network
 * namespace. Measured settings (design brief §4):
 *
 *  - ganesha needs rpcbind while it starts (it registers its programs); with
 *    fixed ports (NFS 2049, MOUNT 20048) clients need no portmapper, so
 *    rpcbind is stopped as soon as ganesha answers;
 *  - NLM, RQUOTA and UDP are off; NFSv4 is off too (Protocols = 3), and its
 *    recovery state, should ganesha want any, lives under the state folder
 *    (`RecoveryBackend = fs`, Graceless);
 *  - rpcbind's and ganesha's files under /run stay out of the host: the
 *    serving process runs in a private mount namespace in which the state
 *    folder's `run/` is bind-mounted over /run;
 *  - `Mount_Path_Pseudo`: clients mount the pseudo path (`/export`), never
 *    learn the provider's folder name;
 *  - all clients are squashed to the owner of the exported folder, so nothing
 *    a client sends can create files owned by another local user.
 *
 * {@link ganeshaConfig} is pure; {@link ProviderServer} runs ganesha and
 * supervises it (a ganesha that dies is restarted, with rpcbind again, so a
 * provider survives a crash of its server); {@link launchCommand} builds the
 * command line that enters a network namespace and a private mount
 * namespace around the server.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { type Logger, nullLogger } from '../admin/logger.js';
import { MOUNT_PORT, NFS_PORT } from './nfs/nfs3.js';
import {
  formatSocket,
  isWildcard,
  listenSocketsOf,
  otherAddresses,
  type ListenSocket,
} from './listen-sockets.js';

const execp = promisify(execFile);

/** Default pseudo path clients mount (`nfs://HOST/export`). */
export const DEFAULT_EXPORT_PATH = '/export';
/** Largest READ/WRITE the export offers (fs/store-nfs.ts asks no more). */
export const MAX_IO = 2 << 20;
/** Environment marker: this process already runs in its own mount namespace. */
export const PRIVATE_NS_ENV = 'SUPERNET_PROVIDER_PRIVATE_NS';
/** Binaries (Debian paths; overridable for unusual installs). */
export const GANESHA_BIN = process.env.SUPERNET_GANESHA ?? 'ganesha.nfsd';
export const RPCBIND_BIN = process.env.SUPERNET_RPCBIND ?? 'rpcbind';

export interface ProviderOptions {
  /** The folder to export (must exist). */
  exportDir: string;
  /** Config, logs, recovery state and the private /run live here. */
  stateDir: string;
  /**
   * Addresses (a.b.c.d or a.b.c.d/len) admitted read-write; nobody else. May
   * be empty (nobody is admitted until {@link ProviderServer.setClients}).
   */
  clients: string[];
  /** Address to listen on (default: every address of the namespace). */
  listen?: string;
  nfsPort?: number;
  mountPort?: number;
  /** Pseudo path clients mount (default `/export`). */
  exportPath?: string;
  /** Owner every client is squashed to (default: the exported folder's). */
  anonUid?: number;
  anonGid?: number;
  logger?: Logger;
}

/** Paths below the state folder. */
export function providerPaths(stateDir: string): {
  conf: string;
  log: string;
  run: string;
  recovery: string;
  status: string;
} {
  return {
    conf: join(stateDir, 'ganesha.conf'),
    log: join(stateDir, 'ganesha.log'),
    run: join(stateDir, 'run'),
    recovery: join(stateDir, 'recovery'),
    status: join(stateDir, 'provider.json'),
  };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Checks one client address (`a.b.c.d` or `a.b.c.d/len`); throws naming it. */
export function checkClient(c: string): string {
  const [addr, len, extra] = c.split('/');
  if (extra !== undefined || !addr || !IPV4.test(addr))
    throw new Error(`client ${JSON.stringify(c)} is not an IPv4 address or a.b.c.d/len`);
  if (len !== undefined && (!/^\d{1,2}$/.test(len) || Number(len) > 32))
    throw new Error(`client ${JSON.stringify(c)} has a bad prefix length`);
  if (addr === '0.0.0.0' || (len !== undefined && Number(len) === 0))
    throw new Error(`client ${JSON.stringify(c)} would admit everybody`);
  return c;
}

/** Equal as lists of addresses, both sorted and unique. */
export function sameClients(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

function checkPort(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`${what} must be 1..65535`);
  return p;
}

/** Characters ganesha's config parser would take as syntax. */
const SAFE_PATH = /^\/[A-Za-z0-9._/+@%=,-]*$/;

/** The ganesha configuration for `o` (pure; paths must be absolute). */
export function ganeshaConfig(
  o: Required<Omit<ProviderOptions, 'logger' | 'listen'>> & { listen?: string },
): string {
  const clients = o.clients.map(checkClient);
  for (const [what, p] of [
    ['export folder', o.exportDir],
    ['state folder', o.stateDir],
    ['export path', o.exportPath],
  ] as const)
    if (!SAFE_PATH.test(p))
      throw new Error(
        `${what} ${JSON.stringify(p)} must be an absolute path of [A-Za-z0-9._/+@%=,-]`,
      );
  if (o.exportPath === '/') throw new Error('export path must not be /');
  if (o.listen !== undefined && !IPV4.test(o.listen))
    throw new Error(`listen address ${JSON.stringify(o.listen)} is not IPv4`);
  const paths = providerPaths(o.stateDir);
  return `# Written by supernet storage serve; regenerated on every start and client change.
NFS_CORE_PARAM {
    Protocols = 3;
    NFS_Port = ${checkPort(o.nfsPort, 'NFS port')};
    MNT_Port = ${checkPort(o.mountPort, 'MOUNT port')};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Mount_Path_Pseudo = true;${o.listen ? `\n    Bind_addr = ${o.listen};` : ''}
}
NFSV4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = ${paths.recovery};
}
EXPORT_DEFAULTS {
    SecType = sys;
    Access_Type = None;
}
EXPORT {
    Export_Id = 1;
    Path = ${o.exportDir};
    Pseudo = ${o.exportPath};
    Protocols = 3;
    Transports = TCP;
    SecType = sys;
    Access_Type = None;
    Squash = All_Squash;
    Anonymous_Uid = ${o.anonUid};
    Anonymous_Gid = ${o.anonGid};
    MaxRead = ${MAX_IO};
    MaxWrite = ${MAX_IO};
    PrefRead = ${MAX_IO};
    PrefWrite = ${MAX_IO};
    FSAL { Name = VFS; }${
      clients.length
        ? `
    CLIENT {
        Clients = ${clients.join(', ')};
        Access_Type = RW;
    }`
        : `
    # No clients: nobody is admitted (Access_Type = None above).`
    }
}
LOG {
    Default_Log_Level = EVENT;
}
`;
}

/** What `provider.json` records (for `storage status` and tests). */
export interface ProviderStatus {
  pid: number;
  ganeshaPid: number | null;
  exportDir: string;
  exportPath: string;
  clients: string[];
  listen: string | null;
  /** the sockets ganesha really listens on (`addr:port`), read from /proc */
  listening: string[];
  nfsPort: number;
  mountPort: number;
  starts: number;
  since: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Restart policy: at most this many ganesha starts per window. */
const MAX_STARTS = 5;
const START_WINDOW_MS = 60_000;
const READY_TIMEOUT_MS = 15_000;
const RESTART_DELAY_MS = 300;

/**
 * Runs ganesha (with rpcbind during its start) in this process's network
 * namespace, which must be a private mount namespace (see {@link launchCommand}).
 */
export class ProviderServer {
  private ganesha: ChildProcess | null = null;
  /** what the running ganesha listens on (`addr:port`), for provider.json */
  private listening: string[] = [];
  private warnedWildcard = false;
  /** ganesha answers on both ports (and has installed its SIGHUP handler). */
  private serving = false;
  /** Bumped on every config write; `spawnedConf` is the one the running ganesha read. */
  private confGen = 0;
  private spawnedConf = 0;
  private stopping = false;
  private startTimes: number[] = [];
  private readonly log: Logger;
  private readonly o: Required<Omit<ProviderOptions, 'logger' | 'listen'>> & { listen?: string };
  private exited!: (err: Error | null) => void;
  /** Settles when the server stopped for good (null: asked to stop). */
  readonly done: Promise<Error | null>;

  private constructor(o: ProviderOptions, uid: number, gid: number) {
    this.log = o.logger ?? nullLogger;
    this.o = {
      exportDir: resolve(o.exportDir),
      stateDir: resolve(o.stateDir),
      clients: o.clients,
      listen: o.listen,
      nfsPort: o.nfsPort ?? NFS_PORT,
      mountPort: o.mountPort ?? MOUNT_PORT,
      exportPath: o.exportPath ?? DEFAULT_EXPORT_PATH,
      anonUid: o.anonUid ?? uid,
      anonGid: o.anonGid ?? gid,
    };
    this.done = new Promise((r) => (this.exited = r));
  }

  /** Writes the config, starts ganesha and waits until it serves. */
  static async start(o: ProviderOptions): Promise<ProviderServer> {
    const st = await stat(o.exportDir).catch(() => null);
    if (!st?.isDirectory()) throw new Error(`export folder ${o.exportDir} is not a directory`);
    await assertPrivateMountNs();
    const s = new ProviderServer(o, st.uid, st.gid);
    if (s.o.stateDir === '/run' || s.o.stateDir.startsWith('/run/'))
      throw new Error(
        `state folder ${s.o.stateDir} must not be under /run (a private /run replaces it)`,
      );
    const p = providerPaths(s.o.stateDir);
    await mkdir(p.run, { recursive: true, mode: 0o700 });
    await mkdir(p.recovery, { recursive: true, mode: 0o700 });
    await s.writeConf();
    // rpcbind and ganesha keep sockets, locks and pid files in /run: give them
    // the state folder's, in this private mount namespace only.
    await execp('mount', ['--bind', p.run, '/run']);
    await mkdir('/run/ganesha', { recursive: true });
    await mkdir('/run/rpcbind', { recursive: true });
    await s.startGanesha();
    return s;
  }

  /** The options in effect (ports, squash ids). */
  get options(): Readonly<typeof this.o> {
    return this.o;
  }

  get ganeshaPid(): number | null {
    return this.ganesha?.pid ?? null;
  }

  private async startGanesha(): Promise<void> {
    const now = Date.now();
    this.startTimes = this.startTimes.filter((t) => now - t < START_WINDOW_MS);
    if (this.startTimes.length >= MAX_STARTS)
      throw new Error(
        `ganesha was started ${MAX_STARTS} times within ${START_WINDOW_MS / 1000} s; giving up (see ${providerPaths(this.o.stateDir).log})`,
      );
    this.startTimes.push(now);
    const p = providerPaths(this.o.stateDir);
    // A socket left by an earlier rpcbind would pass the readiness check below.
    await rm('/run/rpcbind.sock', { force: true });
    const rpcbind = spawn(RPCBIND_BIN, ['-f'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let rpcErr = '';
    rpcbind.stderr!.on('data', (d) => (rpcErr += d));
    const rpcbindExit = new Promise<void>((r) => rpcbind.once('exit', () => r()));
    try {
      await this.waitFor(
        () => existsSync('/run/rpcbind.sock'),
        5_000,
        () => `rpcbind did not start: ${rpcErr.trim() || 'no socket /run/rpcbind.sock'}`,
        rpcbind,
      );
      await rm('/run/ganesha.pid', { force: true });
      const logFd = await open(join(this.o.stateDir, 'ganesha.stderr'), 'a', 0o600);
      const g = spawn(
        GANESHA_BIN,
        ['-F', '-L', p.log, '-f', p.conf, '-p', '/run/ganesha.pid', '-N', 'NIV_EVENT'],
        { stdio: ['ignore', logFd.fd, logFd.fd] },
      );
      await logFd.close();
      this.ganesha = g;
      this.serving = false;
      this.spawnedConf = this.confGen;
      // Ready when *this* ganesha holds listening sockets on both ports: a
      // connection test would also pass on a port that another process holds.
      let sockets: ListenSocket[] = [];
      const ports = [this.o.nfsPort, this.o.mountPort];
      await this.waitFor(
        async () => {
          sockets = (await listenSocketsOf(g.pid!)).filter((x) => ports.includes(x.port));
          return ports.every((port) => sockets.some((x) => x.port === port));
        },
        READY_TIMEOUT_MS,
        () => `ganesha did not start listening on ports ${ports.join(' and ')} (see ${p.log})`,
        g,
      );
      this.listening = sockets.map(formatSocket).sort();
      this.warnIfWildcard(sockets);
      g.once('exit', (code, signal) => void this.onGaneshaExit(g, code, signal));
      this.serving = true;
      // The client list changed while ganesha was starting: it may have read the old one.
      if (this.spawnedConf !== this.confGen) this.reload(g);
      this.log.info('ganesha serving', {
        pid: g.pid,
        export: this.o.exportDir,
        path: this.o.exportPath,
        clients: this.o.clients,
        nfsPort: this.o.nfsPort,
        mountPort: this.o.mountPort,
      });
      await this.writeStatus();
    } catch (e) {
      if (this.ganesha && this.ganesha.exitCode === null) this.ganesha.kill('SIGKILL');
      this.ganesha = null;
      throw e;
    } finally {
      // Registered; clients use fixed ports. Nothing of rpcbind stays running.
      if (rpcbind.exitCode === null) rpcbind.kill('SIGTERM');
      await Promise.race([rpcbindExit, sleep(3_000)]);
      if (rpcbind.exitCode === null && rpcbind.signalCode === null) rpcbind.kill('SIGKILL');
    }
  }

  private async waitFor(
    cond: () => boolean | Promise<boolean>,
    ms: number,
    why: () => string,
    child: ChildProcess,
  ): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await cond()) return;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${why()}; it exited with ${child.exitCode ?? child.signalCode}`);
      if (Date.now() > deadline) throw new Error(why());
      await sleep(50);
    }
  }

  private async onGaneshaExit(
    g: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): Promise<void> {
    if (this.ganesha !== g) return;
    this.ganesha = null;
    this.serving = false;
    // A signal to our whole process group reaches ganesha too: give our own
    // SIGTERM handler the chance to mark the stop before restarting anything.
    await sleep(RESTART_DELAY_MS);
    if (this.stopping) return;
    this.log.warn('ganesha exited unexpectedly; restarting', { code, signal });
    while (!this.stopping) {
      try {
        await this.startGanesha();
        return;
      } catch (e) {
        this.log.error('ganesha restart failed', { error: String((e as Error).message) });
        if (String((e as Error).message).includes('giving up')) {
          this.exited(e as Error);
          return;
        }
        await sleep(1_000);
      }
    }
  }

  /**
   * Replaces the export's client list while serving: the config is rewritten
   * and ganesha re-reads its EXPORT blocks on SIGHUP (nfs-ganesha 4 updates an
   * export in place; a removed client's requests are refused from then on,
   * also on connections it already has). Addresses are checked first; a bad
   * one changes nothing. Resolves to whether the list changed.
   */
  async setClients(clients: string[]): Promise<boolean> {
    const next = [...new Set(clients.map(checkClient))].sort();
    // One update at a time: each rewrites the config the previous one wrote.
    const run = this.updates.then(() => this.applyClients(next));
    this.updates = run.catch(() => {});
    return run;
  }

  private updates: Promise<unknown> = Promise.resolve();

  private async applyClients(next: string[]): Promise<boolean> {
    const prev = [...this.o.clients].sort();
    if (sameClients(next, prev)) return false;
    await this.writeConf({ ...this.o, clients: next });
    this.o.clients = next;
    const g = this.ganesha;
    if (g && this.serving) this.reload(g);
    this.log.info('export clients changed', {
      added: next.filter((c) => !prev.includes(c)),
      removed: prev.filter((c) => !next.includes(c)),
      clients: next,
    });
    await this.writeStatus();
    return true;
  }

  private async writeConf(o: typeof this.o = this.o): Promise<void> {
    const conf = ganeshaConfig(o);
    this.confGen++;
    const p = providerPaths(this.o.stateDir).conf;
    // Whole or not at all: ganesha may re-read it (SIGHUP, restart) at any time.
    await writeFile(`${p}.tmp`, conf, { mode: 0o600 });
    await rename(`${p}.tmp`, p);
  }

  /**
   * nfs-ganesha 4.3 ignores Bind_addr when IPv6 is available and listens on
   * every address of its namespace. In a provider node's namespace those are
   * the node's virtual address and loopback only; anywhere else, say which
   * other addresses it accepts on (the export's client list still decides
   * who is admitted).
   */
  private warnIfWildcard(sockets: ListenSocket[]): void {
    if (!sockets.some((x) => isWildcard(x.addr))) return;
    const others = otherAddresses(this.o.listen);
    if (this.o.listen && others.length && !this.warnedWildcard) {
      this.warnedWildcard = true;
      this.log.warn(
        'ganesha listens on every address of this network namespace, not only --listen',
        {
          listen: this.o.listen,
          alsoOn: others,
          note: 'nfs-ganesha ignores Bind_addr here; only the client list restricts access',
        },
      );
    }
  }

  /** Asks a serving ganesha to re-read the config it was started with. */
  private reload(g: ChildProcess): void {
    this.spawnedConf = this.confGen;
    if (g.exitCode === null && g.signalCode === null) g.kill('SIGHUP');
  }

  private async writeStatus(): Promise<void> {
    const st: ProviderStatus = {
      pid: process.pid,
      ganeshaPid: this.ganeshaPid,
      exportDir: this.o.exportDir,
      exportPath: this.o.exportPath,
      clients: this.o.clients,
      listen: this.o.listen ?? null,
      listening: this.listening,
      nfsPort: this.o.nfsPort,
      mountPort: this.o.mountPort,
      starts: this.startTimes.length,
      since: new Date().toISOString(),
    };
    await writeFile(providerPaths(this.o.stateDir).status, JSON.stringify(st, null, 2) + '\n', {
      mode: 0o600,
    });
  }

  /** Stops ganesha (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return this.done.then(() => undefined);
    this.stopping = true;
    const g = this.ganesha;
    if (g && g.exitCode === null && g.signalCode === null) {
      const gone = new Promise<void>((r) => g.once('exit', () => r()));
      g.kill('SIGTERM');
      const t = setTimeout(() => g.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(t);
    }
    this.ganesha = null;
    await rm(providerPaths(this.o.stateDir).status, { force: true });
    this.log.info('ganesha stopped', {});
    this.exited(null);
  }
}

/**
 * Refuses to run where bind-mounting over /run would change the host's: the
 * launcher ({@link launchCommand}) sets {@link PRIVATE_NS_ENV} and execs us
 * through unshare(1), so our parent is still in the mount namespace we left.
 */
async function assertPrivateMountNs(): Promise<void> {
  const mine = await readlink('/proc/self/ns/mnt');
  const parent = await readlink(`/proc/${process.ppid}/ns/mnt`).catch(() => null);
  if (mine === parent || process.env[PRIVATE_NS_ENV] !== '1')
    throw new Error(
      'the provider must run in a private mount namespace (start it with `supernet storage serve`, which makes one)',
    );
}

/**
 * argv that runs `inner` in network namespace `netns` (a name under
 * /run/netns; null: the current one) inside a new, private mount namespace.
 */
export function launchCommand(netns: string | null, inner: string[]): string[] {
  const priv = ['unshare', '--mount', '--propagation', 'private', '--', ...inner];
  return netns ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...priv] : priv;
}

/** Reads `provider.json` of a running provider, or null (not running / stale). */
export function readProviderStatus(stateDir: string): ProviderStatus | null {
  try {
    const st = JSON.parse(readFileSync(providerPaths(stateDir).status, 'utf8')) as ProviderStatus;
    process.kill(st.pid, 0);
    return st;
  } catch {
    return null;
  }
}
