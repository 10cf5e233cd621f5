/**
 * `node dist/bench/dns.js [--seconds N] [--members N] [--no-write-docs]`:
 * the DNS benchmark of issue 6. Inside one node namespace, with dnsperf (a
 * stock client): the Supernet resolver behind the node's TUN device (served
 * by a ResolverPort in this process, as the host agent serves it) and
 * Debian's dnsmasq on the node's loopback, serving the same records, in the
 * same run. Latency (p50/p99 of one query at a time, from dnsperf -v) and
 * throughput (queries per second with 64 outstanding). Rewrites the `## DNS`
 * section of docs/benchmarks.md.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestBed } from '../test/bed/bed.js';
import { describeMachine, machineInfo, toolVersion } from './lib/machine.js';
import { table, writeSection } from './lib/markdown.js';
import { nullLogger } from '../admin/logger.js';
import { SupernetResolver, type NameView } from '../net/dns.js';
import { ResolverPort } from '../net/dns-tun.js';
import { formatIpv4, parseIpv4 } from '../net/ipv4.js';
import { attachTun } from '../net/netns.js';
import { openTun } from '../net/tun.js';
import { benchArgs } from './lib/args.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARGS = benchArgs({
  usage: 'node dist/bench/dns.js [--seconds N] [--members N] [--no-write-docs]',
  numbers: { seconds: 5, members: 50 },
});
const SECONDS = ARGS.num.seconds;
const MEMBERS = ARGS.num.members;
const WRITE_DOCS = ARGS.writeDocs;

function buildView(): NameView {
  const members = [];
  for (let i = 0; i < MEMBERS; i++) {
    members.push({ name: `m${i}`, vip: formatIpv4(parseIpv4('10.71.17.20') + i) });
  }
  return {
    supernet: '0x4711',
    domain: '4711.sn',
    pool: '10.71.17.0/24',
    self: { name: 'a1', vip: '10.71.17.10' },
    members,
    resolverVip: '10.71.17.1',
    external: 'refuse',
  };
}

/** The query mix: A of members (most), AAAA (no data), PTR, and unknown names (NXDOMAIN). */
function queryFile(view: NameView): string {
  const lines: string[] = [];
  for (const m of view.members) {
    lines.push(
      `${m.name}.${view.domain} A`,
      `${m.name}.${view.domain} A`,
      `${m.name}.${view.domain} A`,
    );
    lines.push(`${m.name}.${view.domain} AAAA`);
    const o = m.vip.split('.').reverse().join('.');
    lines.push(`${o}.in-addr.arpa PTR`);
    lines.push(`nope-${m.name}.${view.domain} A`);
  }
  return lines.join('\n') + '\n';
}

interface Result {
  server: string;
  p50: number;
  p99: number;
  qps: number;
  lost: number;
  rcodes: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(bed: TestBed, ns: string, server: string, file: string): Promise<Result> {
  const serial = await bed.run(
    ns,
    'dnsperf',
    ['-s', server, '-d', file, '-q', '1', '-l', String(SECONDS), '-v'],
    { timeoutMs: (SECONDS + 30) * 1000 },
  );
  const lat = [...serial.stdout.matchAll(/^> \S+ \S+ \S+ ([0-9.]+)$/gm)]
    .map((m) => Number(m[1]) * 1000)
    .sort((a, b) => a - b);
  const num = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const load = await bed.run(
    ns,
    'dnsperf',
    ['-s', server, '-d', file, '-q', '64', '-c', '4', '-l', String(SECONDS)],
    { timeoutMs: (SECONDS + 30) * 1000 },
  );
  return {
    server,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    qps: num(load.stdout, /Queries per second:\s+([0-9.]+)/),
    lost: num(load.stdout, /Queries lost:\s+(\d+)/),
    rcodes: /Response codes:\s+(.+)$/m.exec(load.stdout)?.[1]?.trim() ?? '?',
  };
}

async function dnsperfVersion(): Promise<string> {
  const r = await new Promise<string>((done) => {
    execFile('dnsperf', ['-h'], (_err, stdout, stderr) => done(`${stdout}${stderr}`));
  });
  return /Version (\S+)/.exec(r)?.[1] ?? 'not installed';
}

async function main(): Promise<number> {
  const machine = await machineInfo();
  const versions = {
    dnsperf: await dnsperfVersion(),
    dnsmasq: (await toolVersion('dnsmasq', ['--version'])).replace(/\s+Copyright.*$/, ''),
  };
  const view = buildView();
  const bed = await TestBed.create({ hosts: ['n'] });
  let dnsmasq: ChildProcess | null = null;
  const results: Result[] = [];
  try {
    const ns = bed.host('n').ns;
    const tun = openTun({ name: `${bed.prefix}d%d` });
    const resolver = new SupernetResolver({ logger: nullLogger });
    const port = new ResolverPort(
      resolver,
      parseIpv4(view.resolverVip),
      parseIpv4(view.self.vip),
      (b, o, l) => tun.write(b, o, l),
    );
    tun.onPackets((b) => {
      for (let i = 0; i < b.count; i++) port.handle(b.buf, b.offsets[i]!, b.lengths[i]!, view);
    });
    await attachTun(tun.name, ns, view.self.vip, 24, 1420);

    const file = join(bed.dir, 'queries.txt');
    writeFileSync(file, queryFile(view));
    const records = [view.self, ...view.members].map(
      (m) => `--host-record=${m.name}.${view.domain},${m.vip}`,
    );
    dnsmasq = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'dnsmasq',
        '--keep-in-foreground',
        '--no-resolv',
        '--no-hosts',
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        `--local=/${view.domain}/`,
        '--local=/17.71.10.in-addr.arpa/',
        `--pid-file=${join(bed.dir, 'dnsmasq.pid')}`,
        '--log-facility=-',
        ...records,
      ],
      { stdio: 'ignore' },
    );
    await new Promise((r) => setTimeout(r, 500));

    results.push(await measure(bed, ns, view.resolverVip, file));
    results.push(await measure(bed, ns, '127.0.0.1', file));
    tun.close();
  } finally {
    if (dnsmasq?.pid) process.kill(dnsmasq.pid, 'SIGTERM');
    await bed.teardown();
  }

  const [sn, dm] = results as [Result, Result];
  const f = (n: number, d = 3) => (Number.isFinite(n) ? n.toFixed(d) : '—');
  const k = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
  const rows = [
    ['Supernet resolver (via the node TUN)', sn],
    ['dnsmasq (node loopback)', dm],
  ].map(([name, r]) => {
    const x = r as Result;
    return [name as string, f(x.p50), f(x.p99), k(x.qps), String(x.lost), x.rcodes];
  });
  const command = process.env.BENCH_COMMAND ?? 'node dist/bench/dns.js';
  const section = [
    '## DNS',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${describeMachine(machine)}. ${versions.dnsmasq}; dnsperf ${versions.dnsperf}.`,
    '',
    `Command (as root): \`${command}\` (${SECONDS} s per run, ${MEMBERS} members).`,
    '',
    'One node namespace of the test bed with its TUN device `sn0` (10.71.17.10/24, MTU 1420). The Supernet resolver answers at 10.71.17.1 through the TUN: ' +
      "the kernel hands the query to this process, a ResolverPort (net/dns-tun.ts, the host agent's code path) answers it and writes the reply packet back. " +
      "dnsmasq runs inside the same namespace on its loopback with the same records (`--host-record` per node, `--local` for the domain and the pool's reverse zone, no upstream). " +
      `Both get the same query file: per member 3× A, AAAA (no data), PTR, and an unknown name (NXDOMAIN); ${6 * MEMBERS} lines, cycled. ` +
      'Latency: `dnsperf -q 1 -v` (one query at a time), percentiles over every answered query; dnsperf paces such a run itself, so its query rate says nothing and is not shown. Throughput: `dnsperf -q 64 -c 4`. ' +
      'The machine is shared with other work (see the load average): p99 in particular moves with it. ' +
      'dnsmasq caches nothing here (all answers are local); the resolver has no cache either (each view is indexed once).',
    '',
    table(['Server', 'p50 ms', 'p99 ms', 'q/s (64 outstanding)', 'lost', 'response codes'], rows, [
      'l',
      'r',
      'r',
      'r',
      'r',
      'l',
    ]),
    '',
    `Ratios in this run: p50 ${f(sn.p50 / dm.p50, 2)}× dnsmasq's, throughput ${f(sn.qps / dm.qps, 2)}× dnsmasq's. ` +
      'The Supernet path includes the TUN round trip and a Node.js event-loop turn per batch; dnsmasq is a C program on the loopback.',
  ].join('\n');
  process.stdout.write(section + '\n');
  if (WRITE_DOCS) await writeSection(join(ROOT, 'docs', 'benchmarks.md'), '## DNS', section);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `bench dns: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 70;
  },
);
