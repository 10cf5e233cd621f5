/**
 * The namespace test bed (design brief §7): a small internet on one machine.
 *
 * Topology of a bed with prefix P (e.g. `sn4k2q-`) and hosts h1..hn:
 *
 *     namespace P sw ("switch")               namespace P h1       ...
 *     ┌──────────────────────────────┐        ┌──────────────┐
 *     │ bridge Pbr ── veth Ph1 ──────┼────────┼── eth0       │  198.18.0.1/24
 *     │           ── veth Ph2 ───────┼──┐     │   lo         │
 *     └──────────────────────────────┘  └──── namespace P h2, eth0 198.18.0.2/24
 *
 * Nothing is created in the root namespace: the switch has no link to it, so a
 * host cannot reach the machine (tests traffic stays inside the bed). Host
 * namespaces hold only `lo` and `eth0`; the admin service and host agents run
 * in them; agents create node namespaces named with the same prefix, which
 * teardown removes too.
 *
 * Cleanup: `teardown()` (call it from Jest's afterAll) stops every spawned
 * process group (SIGTERM, then SIGKILL), then any other process living in one
 * of the run's namespaces, unmounts what is mounted under `dir`, deletes every
 * namespace and root link carrying the prefix and removes `dir`. If the
 * runner dies without it, three nets catch the run, each enough alone:
 *   1. a process 'exit'/SIGINT/SIGTERM/SIGHUP handler does it synchronously
 *      (plain Node only: Jest hands tests a copy of `process` whose handlers
 *      never fire);
 *   2. the run's guardian process (guardian.ts) sees the owner's pipe close
 *      — on any death, SIGKILL included — and does it;
 *   3. the next bed, or the Jest globalSetup in sweep.ts, sweeps runs whose
 *      recorded owner is dead.
 *
 * `dir` is kept after teardown when KEEP_BED=1 (or `keepDir: true`) so logs
 * of a failed run can be read; namespaces and processes are always removed.
 */
import { tmpdir } from 'node:os';
import { mkdirSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { hostAddress, inSubnet, parseHostCidr, parseSubnet, type Subnet } from './addr.js';
import { fileLogger, type Logger } from './log.js';
import {
  addNamespace,
  deleteNamespace,
  mountsUnder,
  namespacePids,
  namespacesWithPrefix,
  nsArgv,
  unmountSync,
  type MountMode,
} from './netns.js';
import {
  killGroup,
  killPid,
  quoteArgv,
  runArgv,
  TrackedProcess,
  type BedProcess,
  type RunOptions,
  type RunResult,
} from './proc.js';
import {
  claimPrefix,
  destroyRunSync,
  recordProcess,
  registerLive,
  releasePrefix,
  startGuardian,
  sweepLeftovers,
  unregisterLive,
  type Guardian,
  type LiveRun,
} from './registry.js';

export type { BedProcess, RunOptions, RunResult } from './proc.js';
export { CommandError } from './proc.js';
export type { MountMode } from './netns.js';
export type { Logger } from './log.js';
export * from './tools.js';

/** A simulated physical host: one network namespace with `lo` and `eth0`. */
export interface BedHost {
  /** the name the test gave it, e.g. 'h1' */
  readonly name: string;
  /** its namespace, prefix + name */
  readonly ns: string;
  /** its current underlay address (changes with setAddress) */
  readonly addr: string;
  readonly prefixLen: number;
  readonly dev: 'eth0';
}

/** Options of {@link TestBed.create}. */
export interface BedOptions {
  /** host names, 1–8 of [a-z0-9] starting with a letter; 'sw' is the switch's */
  hosts: string[];
  /** underlay subnet; default 198.18.0.0/24 (RFC 2544 benchmark range) */
  subnet?: string;
  /** underlay MTU of every veth and the bridge; default 1500 */
  mtu?: number;
  /** give the underlay IPv6 link-local addresses (default false: quiet captures) */
  ipv6?: boolean;
  /** keep `dir` after teardown (default: env KEEP_BED=1) */
  keepDir?: boolean;
  /** default: JSON lines in `<dir>/bed.log` */
  logger?: Logger;
  /**
   * Start a guardian process that cleans up if this process dies without
   * teardown (default true). Only the sweeper's own test turns it off.
   */
  guardian?: boolean;
}

/** Options of {@link TestBed.run}. */
export interface BedRunOptions extends RunOptions {
  mounts?: MountMode;
}

/** Options of {@link TestBed.spawn}. */
export interface BedSpawnOptions {
  env?: Record<string, string>;
  /** log file for stdout+stderr; relative paths are under `dir`; default `dir/logs/N-NS-CMD.log` */
  logFile?: string;
  cwd?: string;
  mounts?: MountMode;
}

const HOST_NAME_RE = /^[a-z][a-z0-9]{0,7}$/;
const SWITCH = 'sw';
const BRIDGE = 'br';
/** Underlay device name inside every host namespace. */
export const HOST_DEV = 'eth0';
export const DEFAULT_SUBNET = '198.18.0.0/24';
export const DEFAULT_MTU = 1500;

interface MutableHost {
  name: string;
  ns: string;
  addr: string;
  prefixLen: number;
  dev: 'eth0';
}

/** One run's simulated internet. Create with {@link TestBed.create}. */
export class TestBed implements LiveRun {
  /** namespace of the switch (holds the bridge) */
  readonly switchNs: string;
  readonly subnet: Subnet;
  private readonly hostMap = new Map<string, MutableHost>();
  private readonly procs: TrackedProcess[] = [];
  private teardownPromise: Promise<void> | null = null;
  private logSeq = 0;
  private guardian: Guardian | null = null;

  private constructor(
    /** per-run prefix of every namespace and device name, e.g. 'sn4k2q-' */
    readonly prefix: string,
    /** per-run directory for state, logs and mounts */
    readonly dir: string,
    readonly mtu: number,
    subnet: Subnet,
    private readonly keepDir: boolean,
    readonly logger: Logger,
  ) {
    this.switchNs = `${prefix}${SWITCH}`;
    this.subnet = subnet;
  }

  /**
   * Builds the switch and the hosts; host i gets the i-th address of the
   * subnet (h1 → 198.18.0.1 by default). Must run as root. On failure
   * everything made so far is removed before the error is rethrown.
   */
  static async create(opts: BedOptions): Promise<TestBed> {
    const hosts = opts.hosts;
    if (!Array.isArray(hosts) || hosts.length === 0)
      throw new Error('TestBed.create: hosts must name at least one host');
    for (const h of hosts) {
      if (typeof h !== 'string' || !HOST_NAME_RE.test(h) || h === SWITCH) {
        throw new Error(
          `TestBed.create: bad host name ${JSON.stringify(h)} (1-8 of [a-z0-9], starting with a letter, not '${SWITCH}')`,
        );
      }
    }
    if (new Set(hosts).size !== hosts.length)
      throw new Error(`TestBed.create: duplicate host names in ${hosts.join(',')}`);
    const subnet = parseSubnet(opts.subnet ?? DEFAULT_SUBNET);
    if (hosts.length > subnet.size)
      throw new Error(`TestBed.create: ${hosts.length} hosts do not fit in ${opts.subnet}`);
    const mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
      throw new Error(`TestBed.create: mtu must be 576..65535, got ${mtu}`);
    if (process.getuid?.() !== 0)
      throw new Error('TestBed.create: must run as root (network namespaces, veth, TUN)');

    sweepLeftovers();
    const keepDir = opts.keepDir ?? process.env.KEEP_BED === '1';
    const { prefix, dir } = claimPrefix(tmpdir(), keepDir);
    mkdirSync(join(dir, 'logs'));
    const logger = opts.logger ?? fileLogger(join(dir, 'bed.log'));
    const bed = new TestBed(prefix, dir, mtu, subnet, keepDir, logger);
    registerLive(bed);
    if (opts.guardian !== false) bed.guardian = startGuardian(prefix, dir, keepDir);
    hosts.forEach((name, i) => {
      bed.hostMap.set(name, {
        name,
        ns: `${prefix}${name}`,
        addr: hostAddress(subnet, i),
        prefixLen: subnet.prefixLen,
        dev: HOST_DEV,
      });
    });
    try {
      await bed.build(opts.ipv6 === true);
    } catch (e) {
      await bed.teardown().catch(() => {});
      throw e;
    }
    logger.info('bed up', {
      prefix,
      dir,
      hosts: [...bed.hostMap.values()].map((h) => `${h.name}=${h.addr}`),
    });
    return bed;
  }

  private async build(ipv6: boolean): Promise<void> {
    const sw = this.switchNs;
    const br = `${this.prefix}${BRIDGE}`;
    await addNamespace(sw);
    for (const h of this.hostMap.values()) await addNamespace(h.ns);
    const quiet = (dev: string): string[] => (ipv6 ? [] : [`link set ${dev} addrgenmode none`]);
    // STP off: ports forward as soon as they have carrier.
    const swCmds = [
      `link add ${br} mtu ${this.mtu} type bridge stp_state 0 forward_delay 0`,
      ...quiet(br),
    ];
    for (const h of this.hostMap.values()) {
      const port = `${this.prefix}${h.name}`;
      swCmds.push(
        `link add ${port} mtu ${this.mtu} type veth peer name ${HOST_DEV} netns ${h.ns} mtu ${this.mtu}`,
        ...quiet(port),
        `link set ${port} master ${br} up`,
      );
    }
    swCmds.push(`link set lo up`, `link set ${br} up`);
    await this.ipBatch(sw, swCmds);
    await Promise.all(
      [...this.hostMap.values()].map((h) =>
        this.ipBatch(h.ns, [
          'link set lo up',
          ...quiet(HOST_DEV),
          `addr add ${h.addr}/${h.prefixLen} dev ${HOST_DEV}`,
          `link set ${HOST_DEV} up`,
        ]),
      ),
    );
  }

  /** Runs iproute2 commands in one `ip -n NS -batch -` (one process for many commands). */
  private async ipBatch(ns: string, cmds: string[]): Promise<void> {
    this.logger.debug('ip batch', { ns, cmds });
    await runArgv(['ip', '-n', ns, '-batch', '-'], {
      input: cmds.join('\n') + '\n',
      timeoutMs: 20_000,
    });
  }

  /** The hosts, in creation order. */
  get hosts(): BedHost[] {
    return [...this.hostMap.values()];
  }

  /** Host `name`; throws naming the known hosts when there is none. */
  host(name: string): BedHost {
    const h = this.hostMap.get(name);
    if (!h)
      throw new Error(
        `no host ${JSON.stringify(name)} in this test bed (hosts: ${[...this.hostMap.keys()].join(', ')})`,
      );
    return h;
  }

  /**
   * Maps `ns` to a namespace of this run: null is the root namespace, a bed
   * host's name is that host's namespace, and any other name must carry the
   * run's prefix (so a test can never run things in someone else's namespace).
   */
  resolveNs(ns: string | null): string | null {
    if (ns === null) return null;
    const h = this.hostMap.get(ns);
    if (h) return h.ns;
    if (ns.startsWith(this.prefix) && ns.length > this.prefix.length) return ns;
    throw new Error(
      `namespace ${JSON.stringify(ns)} is not part of this test bed (prefix ${this.prefix})`,
    );
  }

  private checkLive(what: string): void {
    if (this.teardownPromise) throw new Error(`test bed ${this.prefix}: ${what} after teardown`);
  }

  /**
   * Runs `cmd args` to completion in namespace `ns` (null: root namespace),
   * via `ip netns exec` (or nsenter with `mounts: 'shared'`). Throws a
   * {@link CommandError} on a non-zero exit or timeout (default 60 s) unless
   * `allowFail`.
   */
  async run(
    ns: string | null,
    cmd: string,
    args: string[],
    opts: BedRunOptions = {},
  ): Promise<RunResult> {
    this.checkLive('run');
    const argv = nsArgv(this.resolveNs(ns), cmd, args, opts.mounts);
    this.logger.debug('run', { argv: quoteArgv(argv) });
    const r = await runArgv(argv, opts);
    if (r.code !== 0)
      this.logger.debug('run failed', {
        argv: quoteArgv(argv),
        code: r.code,
        stderr: r.stderr.slice(-500),
      });
    return r;
  }

  /**
   * Starts `cmd args` in namespace `ns` as a tracked process in its own
   * process group; stdout and stderr go to a log file under `dir`.
   * Teardown stops it if the test did not.
   */
  spawn(ns: string | null, cmd: string, args: string[], opts: BedSpawnOptions = {}): BedProcess {
    this.checkLive('spawn');
    const resolved = this.resolveNs(ns);
    const argv = nsArgv(resolved, cmd, args, opts.mounts);
    const seq = ++this.logSeq;
    const where = resolved === null ? 'root' : resolved.slice(this.prefix.length);
    const label = `${seq}-${where}-${basename(cmd)}`.replace(/[^\w.-]/g, '_');
    const logFile = opts.logFile
      ? isAbsolute(opts.logFile)
        ? opts.logFile
        : join(this.dir, opts.logFile)
      : join(this.dir, 'logs', `${label}.log`);
    const p = new TrackedProcess(argv, logFile, { env: opts.env, cwd: opts.cwd });
    this.procs.push(p);
    if (p.pid > 0) recordProcess(this.prefix, p.pid);
    this.logger.info('spawned', { pid: p.pid, argv: quoteArgv(argv), logFile });
    return p;
  }

  /**
   * Renumbers host `name`: removes its underlay address and adds `addr`
   * (`a.b.c.d`, or `a.b.c.d/len`; default length: the bed subnet's).
   */
  async setAddress(name: string, addr: string): Promise<void> {
    this.checkLive('setAddress');
    const h = this.hostMap.get(name);
    if (!h) throw new Error(`setAddress: no host ${JSON.stringify(name)} in this test bed`);
    const next = parseHostCidr(addr, this.subnet.prefixLen);
    for (const other of this.hostMap.values()) {
      if (other !== h && other.addr === next.addr)
        throw new Error(`setAddress: ${next.addr} is already host ${other.name}'s address`);
    }
    if (next.prefixLen === this.subnet.prefixLen && !inSubnet(this.subnet, next.addr)) {
      this.logger.warn(
        'renumbering outside the bed subnet: other hosts reach it only with routes of their own',
        { host: name, addr },
      );
    }
    await this.ipBatch(h.ns, [
      `addr del ${h.addr}/${h.prefixLen} dev ${HOST_DEV}`,
      `addr add ${next.addr}/${next.prefixLen} dev ${HOST_DEV}`,
    ]);
    this.logger.info('renumbered', { host: name, from: h.addr, to: next.addr });
    h.addr = next.addr;
    h.prefixLen = next.prefixLen;
  }

  /** All namespaces carrying this run's prefix (hosts, switch, and agents' nodes). */
  async namespaces(): Promise<string[]> {
    return namespacesWithPrefix(this.prefix);
  }

  /** Processes spawned through this bed that are still running. */
  running(): BedProcess[] {
    return this.procs.filter((p) => p.running);
  }

  /**
   * Removes everything of this run (see the module comment). Processes get
   * `graceMs` (default 5 s) between SIGTERM and SIGKILL. Idempotent: later
   * calls return the first call's promise. Rejects, listing them, when
   * namespaces or links could not be removed.
   */
  teardown(opts: { graceMs?: number } = {}): Promise<void> {
    this.teardownPromise ??= this.doTeardown(opts.graceMs ?? 5_000);
    return this.teardownPromise;
  }

  private async doTeardown(graceMs: number): Promise<void> {
    this.logger.info('teardown', { prefix: this.prefix });
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', graceMs)));
    await this.stopNamespaceProcesses(Math.min(graceMs, 3_000));
    for (const mp of mountsUnder(this.dir)) {
      if (!unmountSync(mp)) this.logger.warn('cannot unmount', { mountPoint: mp });
    }
    for (const ns of namespacesWithPrefix(this.prefix)) {
      await deleteNamespace(ns).catch((e: Error) =>
        this.logger.warn('cannot delete namespace', { ns, err: e.message }),
      );
    }
    // The synchronous pass catches what the orderly one missed (and root links, dir).
    const left = destroyRunSync(this.prefix, this.dir, this.keepDir);
    unregisterLive(this);
    if (left.length)
      throw new Error(`test bed ${this.prefix}: teardown left behind ${left.join(', ')}`);
    releasePrefix(this.prefix);
    this.guardian?.release();
    if (this.keepDir)
      process.stderr.write(`test bed ${this.prefix}: kept ${this.dir} (KEEP_BED)\n`);
  }

  /** SIGTERM everything living in the run's namespaces, then SIGKILL what is left after `graceMs`. */
  private async stopNamespaceProcesses(graceMs: number): Promise<void> {
    const pids = (): number[] =>
      namespacesWithPrefix(this.prefix).flatMap((ns) => namespacePids(ns));
    const first = pids();
    if (first.length === 0) return;
    this.logger.info('stopping processes left in the namespaces', { pids: first });
    for (const pid of first) killPid(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (pids().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids()) killPid(pid, 'SIGKILL');
    const killDeadline = Date.now() + 2_000;
    while (pids().length && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** For the exit/signal safety net: synchronous, SIGKILL, no waiting. */
  emergencyTeardown(): void {
    for (const p of this.procs) if (p.running && p.pid > 0) killGroup(p.pid, 'SIGKILL');
    const left = destroyRunSync(this.prefix, this.dir, this.keepDir);
    if (left.length === 0) {
      releasePrefix(this.prefix);
      this.guardian?.release();
    }
  }
}
