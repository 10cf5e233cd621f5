/**
 * A Supernet on the namespace test bed, driven only through the real CLI
 * (bin/supernet) and real processes: an admin service on one simulated host,
 * one host agent per host, identities, policy, logins. Shared by the
 * end-to-end tests, the demo and the benchmarks.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestBed, until, type BedProcess, type RunResult } from '../bed/bed.js';

/** Repository root (this file runs from dist/test/scenario/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const SUPERNET_BIN = join(ROOT, 'bin', 'supernet');
export const ADMIN_PORT = 7400;
export const AGENT_PORT = 7411;

export interface NodeSpec {
  name: string;
  host: string;
  supernet: string;
  channels: string[];
}

export interface LoggedIn {
  name: string;
  supernet: string;
  vip: string;
  ns: string;
  channels: string[];
}

export interface PolicySupernet {
  id: string;
  pool: string;
  channels: string[];
}

/** A running Supernet deployment on a {@link TestBed}. */
export class SupernetBed {
  admin: BedProcess | null = null;
  adminHost = '';
  readonly agents = new Map<string, BedProcess>();
  private readonly ids = new Map<string, { file: string; id: string }>();
  private readonly rules: Array<{ supernet: string; node: string; channels: string[] }> = [];

  constructor(
    readonly bed: TestBed,
    readonly opts: {
      graceMs?: number;
      varpTtlMs?: number;
      keyScheme?: 'tree' | 'flat';
      storageLeaseMs?: number;
    } = {},
  ) {}

  get dir(): string {
    return this.bed.dir;
  }
  get adminUrl(): string {
    return `http://${this.bed.host(this.adminHost).addr}:${ADMIN_PORT}`;
  }
  get adminState(): string {
    return join(this.dir, 'admin');
  }
  get policyFile(): string {
    return join(this.dir, 'policy.json');
  }
  agentSocket(host: string): string {
    return join(this.dir, `agent-${host}.sock`);
  }
  /**
   * Starts `supernet storage serve` for provider node `node` (logged in on
   * `host`) exporting `exportDir` to `clients`, and waits until it serves.
   */
  async serveStorage(
    host: string,
    node: string,
    o: { exportDir: string; clients: string; state: string; logFile?: string },
  ): Promise<{ proc: BedProcess; line: string }> {
    const proc = this.bed.spawn(
      this.bed.host(host).ns,
      SUPERNET_BIN,
      [
        'storage',
        'serve',
        '--node',
        node,
        '--agent',
        this.agentSocket(host),
        '--export',
        o.exportDir,
        '--clients',
        o.clients,
        '--state',
        o.state,
      ],
      o.logFile ? { logFile: o.logFile } : {},
    );
    const line = await proc.waitForOutput(/serving nfs:\/\/.*/, 30_000);
    return { proc, line };
  }
  /** Where the configfs of host `host`'s agent is mounted. */
  configfsMount(host: string): string {
    return join(this.dir, `configfs-${host}`, 'mnt');
  }

  /**
   * Runs `supernet ARGS` as the operator in host `host`'s namespace. `null`
   * is the operator's console: the admin's host once the admin runs (the
   * machine's own namespace must never send to test addresses: its default
   * route leads off the machine), else the root namespace (local-only
   * commands such as `id new`).
   */
  async cli(
    host: string | null,
    args: string[],
    opts: { allowFail?: boolean; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const h = host ?? (this.adminHost || null);
    return this.bed.run(h === null ? null : this.bed.host(h).ns, SUPERNET_BIN, args, {
      env: this.operatorEnv(),
      allowFail: opts.allowFail ?? false,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
  }

  private operatorEnv(): Record<string, string> {
    if (!this.adminHost) return {};
    const tokenFile = join(this.adminState, 'operator.token');
    const env: Record<string, string> = {
      SUPERNET_ADMIN: this.adminUrl,
      SUPERNET_TOKEN_FILE: tokenFile,
    };
    if (existsSync(tokenFile)) env.SUPERNET_TOKEN = readFileSync(tokenFile, 'utf8').trim();
    return env;
  }

  /** Makes an identity for node `name` (kept in the bed dir). */
  async identity(name: string): Promise<string> {
    const have = this.ids.get(name);
    if (have) return have.file;
    const file = join(this.dir, 'ids', `${name}.id`);
    mkdirSync(dirname(file), { recursive: true });
    const r = await this.cli(null, ['id', 'new', '--out', file, '--label', name, '--json']);
    this.ids.set(name, { file, id: (JSON.parse(r.stdout) as { id: string }).id });
    return file;
  }

  fingerprint(name: string): string {
    const i = this.ids.get(name);
    if (!i) throw new Error(`no identity made for ${name}`);
    return i.id;
  }

  /** Lets identity `node` join `supernet` on `channels` (written to the policy file before the admin starts, or hot-reloaded). */
  async allow(node: string, supernet: string, channels: string[]): Promise<void> {
    await this.identity(node);
    this.rules.push({ supernet, node, channels });
    this.writePolicy();
  }

  writePolicy(): void {
    const supernets: Record<string, { rules: unknown[] }> = {};
    for (const r of this.rules) {
      (supernets[r.supernet] ??= { rules: [] }).rules.push({
        name: `${r.node}-in-${r.supernet}`,
        identities: [this.fingerprint(r.node)],
        nodes: [r.node],
        channels: r.channels,
      });
    }
    writeFileSync(
      this.policyFile,
      JSON.stringify({ version: 1, groups: {}, supernets }, null, 2) + '\n',
    );
  }

  /** Starts the admin service on `host` and waits until it serves. */
  async startAdmin(host: string): Promise<void> {
    this.adminHost = host;
    if (!this.rules.length) this.writePolicy();
    const args = [
      'admin',
      'start',
      '--state',
      this.adminState,
      '--listen',
      `${this.bed.host(host).addr}:${ADMIN_PORT}`,
      '--policy',
      this.policyFile,
    ];
    if (this.opts.graceMs !== undefined) args.push('--grace-ms', String(this.opts.graceMs));
    if (this.opts.varpTtlMs !== undefined) args.push('--varp-ttl-ms', String(this.opts.varpTtlMs));
    if (this.opts.storageLeaseMs !== undefined)
      args.push('--storage-lease-ms', String(this.opts.storageLeaseMs));
    // The key tree is the default (docs/keys.md §8); a test may ask for the flat peer.
    args.push('--key-scheme', this.opts.keyScheme ?? 'tree');
    this.admin = this.bed.spawn(this.bed.host(host).ns, SUPERNET_BIN, args, {
      logFile: 'admin.log',
    });
    const admin = this.admin;
    try {
      await until(
        async () => {
          if (!admin.running) throw new Error('the admin service exited');
          const r = await this.bed.run(
            this.bed.host(host).ns,
            'curl',
            ['-sf', `${this.adminUrl}/v1/info`],
            {
              allowFail: true,
              timeoutMs: 5000,
            },
          );
          return r.code === 0 ? true : null;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: `admin service on ${host} answering /v1/info` },
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\nadmin service output:\n${admin.output().slice(-3000)}`,
        { cause: err },
      );
    }
  }

  async stopAdmin(): Promise<void> {
    await this.admin?.stop('SIGTERM', 10_000);
    this.admin = null;
  }

  /** Creates a Supernet through the operator API. */
  async createSupernet(s: PolicySupernet): Promise<void> {
    await this.cli(null, [
      'supernet',
      'create',
      s.id,
      '--pool',
      s.pool,
      '--channels',
      s.channels.join(','),
    ]);
  }

  /** Starts a host agent in `host` and waits for its control socket. */
  async startAgent(host: string, extra: string[] = []): Promise<BedProcess> {
    const p = this.bed.spawn(
      this.bed.host(host).ns,
      SUPERNET_BIN,
      [
        'host',
        'start',
        '--admin-info',
        join(this.adminState, 'admin.json'),
        '--state',
        join(this.dir, `host-${host}`),
        '--control',
        this.agentSocket(host),
        '--ns-prefix',
        `${this.bed.prefix}${host}`,
        '--underlay-dev',
        'eth0',
        '--port',
        String(AGENT_PORT),
        // The agent sizes node MTUs from the underlay's; the bed's links all share one.
        '--mtu',
        String(this.bed.mtu),
        '--log-level',
        'debug',
        // One configfs per simulated host: all agents share this machine's mount namespace.
        '--configfs-mount',
        this.configfsMount(host),
        '--configfs-spool',
        join(this.dir, `configfs-${host}`, 'spool'),
        ...extra,
      ],
      // Only the network namespace: the agent's `ip netns add` must mount the
      // node namespaces where everyone sees them (a real agent runs in the
      // host's own mount namespace too).
      { logFile: `agent-${host}.log`, mounts: 'shared' },
    );
    this.agents.set(host, p);
    await p.waitForOutput(/host agent ready/, 30_000);
    return p;
  }

  async stopAgent(host: string): Promise<void> {
    await this.agents.get(host)?.stop('SIGTERM', 10_000);
    this.agents.delete(host);
  }

  /** Logs node `spec.name` in on its host (identity and policy must exist). */
  async login(spec: NodeSpec, opts: { allowFail?: boolean } = {}): Promise<LoggedIn & RunResult> {
    const idFile = await this.identity(spec.name);
    const r = await this.cli(
      spec.host,
      [
        'login',
        '--id',
        idFile,
        '--supernet',
        spec.supernet,
        '--channels',
        spec.channels.join(','),
        '--name',
        spec.name,
        '--agent',
        this.agentSocket(spec.host),
        '--json',
      ],
      { allowFail: opts.allowFail ?? false },
    );
    if (r.code !== 0)
      return { ...r, name: spec.name, supernet: spec.supernet, vip: '', ns: '', channels: [] };
    return { ...r, ...(JSON.parse(r.stdout) as LoggedIn) };
  }

  /** `supernet status --json` of the agent on `host`. */
  async status(host: string): Promise<AgentStatus> {
    const r = await this.cli(host, ['status', '--agent', this.agentSocket(host), '--json']);
    return JSON.parse(r.stdout) as AgentStatus;
  }

  /** Runs a stock program inside a node through `supernet exec`. */
  async exec(
    host: string,
    node: string,
    cmd: string[],
    opts: { allowFail?: boolean; timeoutMs?: number; supernet?: string } = {},
  ): Promise<RunResult> {
    const args = ['exec', node, '--agent', this.agentSocket(host)];
    if (opts.supernet) args.push('--supernet', opts.supernet);
    return this.cli(host, [...args, '--', ...cmd], opts);
  }

  /** Reads the admin's audit log through the operator API. */
  async audit(): Promise<Array<Record<string, unknown>>> {
    const r = await this.cli(null, ['audit', '--json']);
    const v = JSON.parse(r.stdout) as
      { entries?: Array<Record<string, unknown>> } | Array<Record<string, unknown>>;
    return Array.isArray(v) ? v : (v.entries ?? []);
  }

  adminInfo(): { url: string; sign: string } {
    return JSON.parse(readFileSync(join(this.adminState, 'admin.json'), 'utf8')) as {
      url: string;
      sign: string;
    };
  }
}

export interface AgentStatus {
  endpoint: { host: string; port: number } | null;
  drops: Record<string, number>;
  underlay: Record<string, number>;
  nodes: Array<{
    name: string;
    supernet: string;
    vip: string;
    ns: string;
    channels: string[];
    counters: Record<string, number>;
    tun: Record<string, number>;
    peers: Array<{ name: string; vip: string; sendChannel: number; endpoint: string | null }>;
  }>;
  keyrings: Array<{
    channel: number;
    current: number;
    epochs: Array<{ epoch: number; acceptUntil: number | null }>;
  }>;
}

/** The paper's Figure 6: Supernet 0x4711 on three hosts (admin on h1). */
export const FIGURE6 = {
  supernet: { id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01', '0x123'] },
  nodes: [
    { name: 'a1', host: 'h1', supernet: '0x4711', channels: ['0x01', '0x123'] },
    { name: 'c1', host: 'h2', supernet: '0x4711', channels: ['0x01', '0x123'] },
    { name: 'bigdisk1', host: 'h3', supernet: '0x4711', channels: ['0x123'] },
  ] as NodeSpec[],
};

/** Brings up Figure 6 (admin + three agents + three nodes) on a fresh bed. */
export async function figure6(
  bed: TestBed,
  opts: { graceMs?: number; varpTtlMs?: number; storageLeaseMs?: number } = {},
): Promise<{ sn: SupernetBed; nodes: Map<string, LoggedIn> }> {
  const sn = new SupernetBed(bed, opts);
  for (const n of FIGURE6.nodes) await sn.allow(n.name, n.supernet, n.channels);
  await sn.startAdmin('h1');
  await sn.createSupernet(FIGURE6.supernet);
  for (const h of ['h1', 'h2', 'h3']) await sn.startAgent(h);
  const nodes = new Map<string, LoggedIn>();
  for (const n of FIGURE6.nodes) nodes.set(n.name, await sn.login(n));
  return { sn, nodes };
}
