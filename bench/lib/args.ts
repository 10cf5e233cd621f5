/**
 * Strict command lines for the benchmarks: a misspelt option must not start
 * a run of minutes that then rewrites docs/benchmarks.md with settings
 * nobody asked for. Unknown options, stray arguments and numbers that are
 * not positive integers print the usage and exit 64 (EX_USAGE); `--help`
 * prints it and exits 0.
 */
import { parseArgs } from 'node:util';

/**
 * What a benchmark accepts: numeric options with defaults, boolean flags,
 * string options. `--no-write-docs` is always accepted (every benchmark
 * rewrites its section of docs/benchmarks.md unless told not to).
 */
export interface BenchArgSpec<N extends string, S extends string> {
  usage: string;
  numbers: Record<N, number>;
  flags?: readonly string[];
  strings?: readonly S[];
}

export interface BenchArgs<N extends string, S extends string> {
  num: Record<N, number>;
  str: Partial<Record<S, string>>;
  flag(name: string): boolean;
  /** False with `--no-write-docs`. */
  writeDocs: boolean;
}

const EX_USAGE = 64;

function fail(usage: string, why: string): never {
  process.stderr.write(`${why}\nusage: ${usage}\n`);
  process.exit(EX_USAGE);
}

/** Parses `argv` (default: this process's arguments) or exits with the usage. */
export function benchArgs<N extends string, S extends string = never>(
  spec: BenchArgSpec<N, S>,
  argv: string[] = process.argv.slice(2),
): BenchArgs<N, S> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const n of Object.keys(spec.numbers)) options[n] = { type: 'string' };
  for (const s of spec.strings ?? []) options[s] = { type: 'string' };
  for (const f of ['no-write-docs', ...(spec.flags ?? [])]) options[f] = { type: 'boolean' };
  let values: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    values = parsed.values as Record<string, string | boolean | undefined>;
  } catch (e) {
    fail(spec.usage, (e as Error).message);
  }
  if (values.help) {
    process.stdout.write(`usage: ${spec.usage}\n`);
    process.exit(0);
  }
  const num = { ...spec.numbers };
  for (const n of Object.keys(spec.numbers) as N[]) {
    const v = values[n];
    if (v === undefined) continue;
    const x = Number(v);
    if (!Number.isInteger(x) || x <= 0)
      fail(spec.usage, `--${n} needs a positive integer, got ${String(v)}`);
    num[n] = x;
  }
  const str: Partial<Record<S, string>> = {};
  for (const s of spec.strings ?? []) if (typeof values[s] === 'string') str[s] = values[s];
  return {
    num,
    str,
    flag: (name) => values[name] === true,
    writeDocs: values['no-write-docs'] !== true,
  };
}
