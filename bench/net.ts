/**
 * The network benchmark (issue: "iperf3 TCP throughput (1 stream and 4
 * streams, ≥ 10 s) and ping RTT between two nodes on two simulated hosts; in
 * the same run, on the same topology, wireguard-go (Debian package) and the
 * raw veth. Also report the host agent's resident memory with 10 nodes
 * (target ≤ 150 MiB) and the admin service's with 1,000 admitted nodes
 * (target ≤ 200 MiB). Write the table, the ratio to wireguard-go, and the
 * exact command to docs/benchmarks.md.")
 *
 *   node dist/bench/net.js [--seconds N] [--no-write-docs] [--write-partial]   (as root)
 *   node dist/bench/run.js net                                  (the same, via the runner)
 *
 * One test bed with hosts h1 and h2; each path is brought up, measured by
 * bench/lib/paths.ts and taken down before the next, so paths never compete
 * for the 2 cores. The Supernet path and the memory measurements come from
 * hooks the integrator supplies (see {@link NetBenchOptions}); when run from
 * the command line they are loaded from dist/bench/net-hooks.js if present.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TestBed } from '../test/bed/bed.js';
import { describeMachine, machineInfo, toolVersion, type MachineInfo } from './lib/machine.js';
import { table, writeSection } from './lib/markdown.js';
import { mib, type MemoryReading } from './lib/memory.js';
import {
  measurePath,
  rawVeth,
  type MeasureOptions,
  type PathFactory,
  type PathResult,
} from './lib/paths.js';
import { wireguardGo } from './lib/wireguard.js';
import { stderrLogger, type Logger } from './lib/log.js';

export type { PathEnds, PathFactory } from './lib/paths.js';
export type { MemoryReading } from './lib/memory.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
/** The section of docs/benchmarks.md this benchmark owns. */
export const SECTION = '## Network';
/** Published numbers need iperf3 runs of at least this long (the issue's "≥ 10 s"). */
export const MIN_PUBLISHED_SECONDS = 10;
/** Targets from the issue. */
export const AGENT_RSS_TARGET_MIB = 150;
export const ADMIN_RSS_TARGET_MIB = 200;
export const AGENT_NODES = 10;
export const ADMIN_NODES = 1000;

/** Options of {@link run}. */
export interface NetBenchOptions {
  /** iperf3 seconds per test (default 10) */
  seconds?: number;
  /** ping packets (default 20, at 0.2 s) */
  pingCount?: number;
  /** rewrite the ## Network section (default true; refused below 10 s, and when something failed unless `writePartial`) */
  writeDocs?: boolean;
  /** write the docs even though a path or a memory hook failed (the failures are listed there) */
  writePartial?: boolean;
  docsFile?: string;
  /** the command line recorded in the docs */
  command?: string;
  /**
   * Brings up two Supernet nodes, one on h1 and one on h2, and returns their
   * namespaces and virtual addresses. Absent: "Supernet: not yet wired".
   */
  supernet?: PathFactory;
  /** host agent RSS with 10 nodes on one host of the bed */
  agentMemory?: (bed: TestBed) => Promise<MemoryReading>;
  /** admin service RSS with 1,000 admitted nodes */
  adminMemory?: (bed: TestBed) => Promise<MemoryReading>;
  logger?: Logger;
}

/** What {@link run} measured. */
export interface NetBenchResult {
  date: string;
  machine: MachineInfo;
  versions: Record<string, string>;
  options: MeasureOptions;
  paths: PathResult[];
  /** paths that failed, with the reason */
  failed: { name: string; error: string }[];
  agentMemory: MemoryReading | null;
  adminMemory: MemoryReading | null;
  markdown: string;
}

/** Runs the network benchmark; see the module comment. */
export async function run(opts: NetBenchOptions = {}): Promise<NetBenchResult> {
  const logger = opts.logger ?? stderrLogger('bench net');
  if (process.getuid?.() !== 0)
    throw new Error('bench net: must run as root (namespaces, veth, TUN)');
  const measure: MeasureOptions = {
    seconds: opts.seconds ?? 10,
    pingCount: opts.pingCount ?? 20,
    streams: 4,
  };
  if (!Number.isInteger(measure.seconds) || measure.seconds < 1)
    throw new Error(`bench net: bad --seconds ${opts.seconds}`);
  const machine = await machineInfo();
  const versions = {
    iperf3: await toolVersion('iperf3'),
    'wireguard-go': await toolVersion('wireguard-go', ['--version']),
    wg: await toolVersion('wg', ['--version']),
  };
  const date = new Date().toISOString().slice(0, 10);
  const paths: PathResult[] = [];
  const failed: { name: string; error: string }[] = [];
  let agentMemory: MemoryReading | null = null;
  let adminMemory: MemoryReading | null = null;

  const bed = await TestBed.create({ hosts: ['h1', 'h2'] });
  try {
    const candidates: [string, PathFactory | undefined][] = [
      ['raw veth', rawVeth],
      ['wireguard-go', wireguardGo()],
      ['Supernet', opts.supernet],
    ];
    for (const [name, factory] of candidates) {
      if (!factory) continue;
      logger.info(`${name}: bringing the path up`);
      try {
        const ends = await withTimeout(factory(bed), HOOK_UP_MS, `${name}: bringing the path up`);
        try {
          paths.push(await measurePath(bed, name, ends, measure, logger));
        } finally {
          await withTimeout(ends.stop(), HOOK_STOP_MS, `${name}: taking the path down`);
        }
      } catch (e) {
        logger.error(`${name}: failed`, { error: (e as Error).message });
        failed.push({ name, error: (e as Error).message.split('\n')[0] });
      }
    }
    if (opts.agentMemory)
      agentMemory = await readMemory('host agent', () => opts.agentMemory!(bed), failed, logger);
    if (opts.adminMemory)
      adminMemory = await readMemory('admin service', () => opts.adminMemory!(bed), failed, logger);
  } finally {
    await bed.teardown();
  }

  const command =
    opts.command ??
    `node dist/bench/run.js net${measure.seconds === 10 ? '' : ` -- --seconds ${measure.seconds}`}`;
  const markdown = renderSection({
    date,
    machine,
    versions,
    options: measure,
    paths,
    failed,
    agentMemory,
    adminMemory,
    command,
    wired: !!opts.supernet,
  });
  const result: NetBenchResult = {
    date,
    machine,
    versions,
    options: measure,
    paths,
    failed,
    agentMemory,
    adminMemory,
    markdown,
  };
  if (opts.writeDocs !== false) {
    if (measure.seconds < MIN_PUBLISHED_SECONDS) {
      logger.warn(
        `not writing docs: runs of ${measure.seconds} s are shorter than the ${MIN_PUBLISHED_SECONDS} s the issue asks for`,
      );
    } else if (failed.length && !opts.writePartial) {
      logger.warn(
        'not writing docs: part of the benchmark failed (the last complete results stay; --write-partial writes anyway)',
      );
    } else {
      const file = opts.docsFile ?? join(ROOT, 'docs', 'benchmarks.md');
      await writeSection(file, SECTION, markdown);
      logger.info(`wrote the ${SECTION} section of ${file}`);
    }
  }
  return result;
}

async function readMemory(
  what: string,
  hook: () => Promise<MemoryReading>,
  failed: { name: string; error: string }[],
  logger: Logger,
): Promise<MemoryReading | null> {
  logger.info(`${what}: measuring resident memory`);
  try {
    return await withTimeout(hook(), HOOK_MEMORY_MS, `${what}: memory measurement`);
  } catch (e) {
    logger.error(`${what} memory: failed`, { error: (e as Error).message });
    failed.push({ name: `${what} memory`, error: (e as Error).message.split('\n')[0] });
    return null;
  }
}

/** Limits for the integrator's hooks: a hook that hangs becomes a named failure. */
const HOOK_UP_MS = 180_000;
const HOOK_STOP_MS = 60_000;
const HOOK_MEMORY_MS = 300_000;

/**
 * Rejects when `p` has not settled after `ms`. Besides bounding the wait, the
 * timer keeps the event loop alive: a hook awaiting something that can never
 * happen (with no handle left open) would otherwise let Node exit silently,
 * with status 0, in the middle of the benchmark.
 */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

const mbit = (bps: number): string => Math.round(bps / 1e6).toLocaleString('en-US');
const ratio = (x: number, y: number): string => (y > 0 ? `${(x / y).toFixed(2)}×` : '–');

/** The ## Network section. */
export function renderSection(r: {
  date: string;
  machine: MachineInfo;
  versions: Record<string, string>;
  options: MeasureOptions;
  paths: PathResult[];
  failed: { name: string; error: string }[];
  agentMemory: MemoryReading | null;
  adminMemory: MemoryReading | null;
  command: string;
  wired: boolean;
}): string {
  const wg = r.paths.find((p) => p.name === 'wireguard-go');
  const rows = r.paths.map((p) => [
    p.name,
    mbit(p.one.bitsPerSecond),
    mbit(p.many.bitsPerSecond),
    p.ping.rtt!.avg.toFixed(3),
    wg ? ratio(p.one.bitsPerSecond, wg.one.bitsPerSecond) : '–',
    wg ? ratio(p.many.bitsPerSecond, wg.many.bitsPerSecond) : '–',
    wg ? ratio(p.ping.rtt!.avg, wg.ping.rtt!.avg) : '–',
    `${p.one.retransmits} / ${p.many.retransmits}`,
  ]);
  const { seconds, pingCount, streams } = r.options;
  const lines = [
    SECTION,
    '',
    `Measured ${r.date} on ${describeMachine(r.machine)}. ${r.versions.iperf3}; ${r.versions['wireguard-go']}; ${r.versions.wg}.`,
    '',
    `Command (as root): \`${r.command}\``,
    '',
    `Two simulated hosts h1 and h2 (network namespaces of the test bed, test/bed/) on a bridge in a third ` +
      `namespace, veth MTU 1500, underlay 198.18.0.0/24. iperf3 server on h2's side of each path, client on h1's: ` +
      `TCP, ${seconds} s per test, \`--json\`, receiver-side throughput; 1 stream, then ${streams} (\`-P ${streams}\`). ` +
      `Ping: \`ping -c ${pingCount} -i 0.2\` on the idle path, average RTT. Paths are brought up and measured one ` +
      `after another, never two at once; other work on the machine is not controlled (see the load average above: ` +
      `a busy machine lowers every path's numbers). Ratios are to wireguard-go in the same run (RTT ratio: lower is better).`,
    '',
    table(
      [
        'Path',
        '1 stream Mbit/s',
        `${streams} streams Mbit/s`,
        'ping avg ms',
        '1 stream vs wg-go',
        `${streams} streams vs wg-go`,
        'RTT vs wg-go',
        'TCP retransmits (1 / 4)',
      ],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  ];
  for (const p of r.paths) if (p.notes.length) lines.push(`- ${p.name}: ${p.notes.join('; ')}`);
  if (!r.wired)
    lines.push(
      '- Supernet: not yet wired (bench/net.ts takes a `supernet` path factory; see dist/bench/net-hooks.js).',
    );
  for (const f of r.failed) lines.push(`- ${f.name}: FAILED in this run: ${f.error}`);
  lines.push(
    '',
    table(
      ['Process', 'Load', 'Resident memory (RSS)', 'Target'],
      [
        memoryRow('host agent', `${AGENT_NODES} nodes`, r.agentMemory, AGENT_RSS_TARGET_MIB),
        memoryRow(
          'admin service',
          `${ADMIN_NODES.toLocaleString('en-US')} admitted nodes`,
          r.adminMemory,
          ADMIN_RSS_TARGET_MIB,
        ),
      ],
      ['l', 'l', 'r', 'r'],
    ),
  );
  return lines.join('\n') + '\n';
}

function memoryRow(
  what: string,
  load: string,
  m: MemoryReading | null,
  targetMiB: number,
): string[] {
  if (!m) return [what, load, 'not yet wired', `≤ ${targetMiB} MiB`];
  const verdict = m.rssBytes <= targetMiB * 2 ** 20 ? 'met' : 'MISSED';
  const peak = m.peakBytes ? ` (peak ${mib(m.peakBytes)})` : '';
  const note = m.note ? ` — ${m.note}` : '';
  return [
    what,
    `${m.count.toLocaleString('en-US')}${load.replace(/^\S+/, '')}${note}`,
    `${mib(m.rssBytes)} MiB${peak}`,
    `≤ ${targetMiB} MiB (${verdict})`,
  ];
}

/** Hooks the integrator provides in bench/net-hooks.ts (compiled to dist/bench/net-hooks.js). */
async function loadHooks(
  logger: Logger,
): Promise<Pick<NetBenchOptions, 'supernet' | 'agentMemory' | 'adminMemory'>> {
  const file = join(HERE, 'net-hooks.js');
  if (!existsSync(file)) return {};
  const mod = (await import(pathToFileURL(file).href)) as Pick<
    NetBenchOptions,
    'supernet' | 'agentMemory' | 'adminMemory'
  >;
  logger.info(`using hooks from ${file}`, {
    supernet: !!mod.supernet,
    agentMemory: !!mod.agentMemory,
    adminMemory: !!mod.adminMemory,
  });
  return { supernet: mod.supernet, agentMemory: mod.agentMemory, adminMemory: mod.adminMemory };
}

/** Command-line entry. */
async function main(argv: string[]): Promise<number> {
  const logger = stderrLogger('bench net');
  let seconds = 10;
  let writeDocs = true;
  let writePartial = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seconds') seconds = Number(argv[++i]);
    else if (a === '--no-write-docs') writeDocs = false;
    else if (a === '--write-partial') writePartial = true;
    else {
      process.stderr.write(
        `usage: node dist/bench/net.js [--seconds N] [--no-write-docs] [--write-partial]\nunknown argument: ${a}\n`,
      );
      return 64;
    }
  }
  const hooks = await loadHooks(logger);
  // bench/run.ts passes the command line it was given, so the docs show that one.
  const command = process.env.BENCH_COMMAND ?? ['node dist/bench/net.js', ...argv].join(' ');
  let finished = false;
  // Belt and braces: if the event loop ever drains before run() settles, fail loudly.
  process.once('beforeExit', () => {
    if (finished) return;
    process.stderr.write(
      'bench net: stalled: the event loop drained before the benchmark finished\n',
    );
    process.exitCode = 70;
  });
  const result = await run({ seconds, writeDocs, writePartial, logger, command, ...hooks });
  finished = true;
  process.stdout.write(result.markdown);
  return result.failed.length ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`bench net: ${e.stack ?? e.message}\n`);
      process.exit(70);
    },
  );
}
