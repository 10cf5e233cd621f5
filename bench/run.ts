/**
 * Runs the benchmarks: `node dist/bench/run.js [NAME...] [-- ARGS...]`
 * (`bin/dev bench` runs them all). NAME is a file of dist/bench/ without
 * `.js` (net, fs, native, ...); no NAME runs every one found. ARGS go to each
 * selected benchmark.
 *
 * Each benchmark runs as its own child process, one after another, rather
 * than being imported here: some benchmark files are plain scripts that
 * start measuring when loaded, a crash of one must not take the others down,
 * and a memory measurement must not include another benchmark's heap. Each
 * child gets BENCH_COMMAND, the command line to record in docs/benchmarks.md.
 * Files ending in `-hooks.js` (e.g. net-hooks.js, the integrator's Supernet
 * hooks for bench/net.ts) are helpers, not benchmarks.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
/** Run first, in this order, when present; the rest follow alphabetically. */
const PREFERRED = ['net', 'fs', 'native'];
const EXIT_USAGE = 64;

/** Benchmark names found in dist/bench/. */
export function discover(dir = HERE): string[] {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.js') && f !== 'run.js' && !f.endsWith('-hooks.js'))
    .map((f) => f.slice(0, -3));
  const rank = (n: string): number =>
    PREFERRED.includes(n) ? PREFERRED.indexOf(n) : PREFERRED.length;
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function runOne(name: string, args: string[]): Promise<number> {
  const command = ['node dist/bench/run.js', name, ...(args.length ? ['--', ...args] : [])].join(
    ' ',
  );
  process.stderr.write(`\n=== bench ${name}: ${command}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(HERE, `${name}.js`), ...args], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_COMMAND: command },
    });
    child.on('error', (e) => {
      process.stderr.write(`bench ${name}: cannot start: ${e.message}\n`);
      resolve(70);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 70)));
  });
}

async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const names = dash < 0 ? argv : argv.slice(0, dash);
  const args = dash < 0 ? [] : argv.slice(dash + 1);
  const available = discover();
  if (names.some((n) => n === '-h' || n === '--help')) {
    process.stdout.write(
      `usage: node dist/bench/run.js [NAME...] [-- ARGS...]\nbenchmarks: ${available.join(' ')}\n`,
    );
    return 0;
  }
  const unknown = names.filter((n) => !available.includes(n));
  if (unknown.length) {
    process.stderr.write(
      `bench: no benchmark named ${unknown.join(', ')} (have: ${available.join(' ')})\n`,
    );
    return EXIT_USAGE;
  }
  const selected = names.length ? names : available;
  const results: [string, number][] = [];
  for (const name of selected) results.push([name, await runOne(name, args)]);
  process.stderr.write(
    `\n=== bench summary: ${results.map(([n, c]) => `${n} ${c === 0 ? 'ok' : `FAILED (exit ${c})`}`).join(', ')}\n`,
  );
  return results.every(([, c]) => c === 0) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
    process.exit(70);
  },
);
