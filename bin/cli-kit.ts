/**
 * The few things every `supernet` sub-command shares: named exit codes
 * (sysexits.h numbering where one fits), a typed CLI error, an option parser
 * and output helpers.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Named exit codes of the `supernet` CLI. */
export const EXIT = {
  OK: 0,
  /** The admin service refused (policy denial, expelled, not authorised). */
  DENIED: 3,
  USAGE: 64,
  DATA: 65,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  NOPERM: 77,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports as one line on stderr and turns into `code`. */
export class CliError extends Error {
  constructor(
    readonly code: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** One CLI command, keyed by its full path (e.g. `'admin start'`). */
export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** Prints `value` as JSON (for `--json`) or as the given human text. */
export function output(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human());
}

/** Option declarations of {@link parseOptions} (node:util `parseArgs` form). */
export type CliOptions = NonNullable<ParseArgsConfig['options']>;

/** What {@link parseOptions} found. */
export interface ParsedOptions {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `argv` strictly against `options` (node:util `parseArgs`): an
 * unknown option, a missing value or (without `allowPositionals`) a stray
 * argument is a {@link CliError} with exit code USAGE, the parser's message
 * naming what was wrong, followed by the command's usage line.
 */
export function parseOptions(
  argv: string[],
  options: CliOptions,
  usage: string,
  allowPositionals = true,
): ParsedOptions {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return {
      values: r.values as ParsedOptions['values'],
      positionals: r.positionals,
    };
  } catch (err) {
    throw new CliError(EXIT.USAGE, `${(err as Error).message}\nusage: ${usage}`);
  }
}

/**
 * The one node of a host agent's list that `--node NAME [--supernet ID]`
 * names: none is a DATA error, several (one name in two Supernets) a USAGE
 * error asking for `--supernet`.
 */
export function pickNode<T extends { name: string; supernet: string }>(
  nodes: readonly T[],
  name: string,
  supernet: string | undefined,
): T {
  const hits = nodes.filter((n) => n.name === name && (!supernet || n.supernet === supernet));
  if (hits.length === 0)
    throw new CliError(
      EXIT.DATA,
      `no node ${name} on this host${supernet ? ` in ${supernet}` : ''}`,
    );
  if (hits.length > 1)
    throw new CliError(EXIT.USAGE, `several nodes named ${name}; add --supernet`);
  return hits[0]!;
}
