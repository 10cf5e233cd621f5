/**
 * A small command-line option parser for the admin commands:
 * `--name value`, `--name=value`, boolean `--flag`, repeatable options, and
 * positional arguments; `--` ends the options. Every mistake is a
 * {@link CliError} with exit code USAGE naming the option.
 */
import { CliError, EXIT } from '../bin/cli-kit.js';

export type OptionKind = 'string' | 'boolean' | 'multi';

export interface ParsedArgs {
  opts: Record<string, string | boolean | string[] | undefined>;
  args: string[];
}

/** Parses `argv` for command `cmd` with the option kinds in `spec`. */
export function parseArgs(
  cmd: string,
  argv: string[],
  spec: Record<string, OptionKind>,
  positionals: { min: number; max: number; names: string },
): ParsedArgs {
  const opts: ParsedArgs['opts'] = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '-') {
      if (a.startsWith('-') && a !== '-')
        throw new CliError(EXIT.USAGE, `${cmd}: unknown option ${a}`);
      args.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const kind = spec[name];
    if (!kind) throw new CliError(EXIT.USAGE, `${cmd}: unknown option --${name}`);
    if (kind === 'boolean') {
      if (eq >= 0) throw new CliError(EXIT.USAGE, `${cmd}: --${name} takes no value`);
      opts[name] = true;
      continue;
    }
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new CliError(EXIT.USAGE, `${cmd}: --${name} needs a value`);
      value = argv[++i];
    }
    if (kind === 'multi') opts[name] = [...((opts[name] as string[] | undefined) ?? []), value];
    else if (opts[name] !== undefined)
      throw new CliError(EXIT.USAGE, `${cmd}: --${name} given twice`);
    else opts[name] = value;
  }
  if (args.length < positionals.min || args.length > positionals.max) {
    throw new CliError(EXIT.USAGE, `${cmd}: expected ${positionals.names || 'no arguments'}`);
  }
  return { opts, args };
}

/** A non-negative integer option (milliseconds and the like). */
export function intOption(cmd: string, name: string, v: unknown, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v) || Number(v) < min) {
    throw new CliError(
      EXIT.USAGE,
      `${cmd}: --${name} expects an integer ≥ ${min}, got ${JSON.stringify(v)}`,
    );
  }
  return Number(v);
}

/** `HOST:PORT` or `[V6]:PORT`. */
export function hostPort(cmd: string, name: string, v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : -1;
  if (!m || port > 65535)
    throw new CliError(EXIT.USAGE, `${cmd}: --${name} expects HOST:PORT, got ${JSON.stringify(v)}`);
  return { host: m[1] ?? m[2], port };
}
