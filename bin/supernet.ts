/**
 * `supernet`: the one CLI entry. It only dispatches: each part of the system
 * exports its commands (net/cli.ts, admin/cli.ts, fs/cli.ts, ...), keyed by
 * their full command path.
 */
import { CliError, EXIT, type Command } from './cli-kit.js';

/** Which module serves a command, by its first word: only that module is loaded (fast start, and one broken part cannot take the others down). */
const PARTS: Array<{ module: string; exportName: string; words: string[] }> = [
  {
    module: '../net/cli.js',
    exportName: 'netCommands',
    words: ['id', 'host', 'login', 'logout', 'exec', 'status', 'monitor'],
  },
  {
    module: '../admin/cli.js',
    exportName: 'adminCommands',
    words: [
      'admin',
      'supernet',
      'channel',
      'expel',
      'nodes',
      'audit',
      'policy',
      'storage-role',
      'admission',
    ],
  },
  { module: '../fs/cli.js', exportName: 'fsCommands', words: ['fs'] },
  { module: '../fs/cli-storage.js', exportName: 'storageCommands', words: ['storage'] },
  { module: '../configfs/cli.js', exportName: 'configfsCommands', words: ['configfs'] },
];

async function loadPart(part: (typeof PARTS)[number]): Promise<Record<string, Command>> {
  try {
    const mod = (await import(part.module)) as Record<string, unknown>;
    return (mod[part.exportName] as Record<string, Command> | undefined) ?? {};
  } catch (err) {
    // A part that is not built into this installation simply has no commands.
    if (
      (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      String(err).includes(part.module.slice(3))
    ) {
      return {};
    }
    throw err;
  }
}

async function loadCommands(first: string | null): Promise<Record<string, Command>> {
  const all: Record<string, Command> = {};
  for (const part of PARTS) {
    if (first !== null && !part.words.includes(first)) continue;
    try {
      Object.assign(all, await loadPart(part));
    } catch (err) {
      if (first !== null) throw err;
      process.stderr.write(
        `supernet: commands of ${part.module.slice(3)} unavailable: ${String(err)}\n`,
      );
    }
  }
  return all;
}

function help(commands: Record<string, Command>): string {
  const names = Object.keys(commands).sort();
  const w = Math.max(...names.map((n) => n.length));
  return (
    'usage: supernet COMMAND [OPTIONS]\n\ncommands:\n' +
    names.map((n) => `  ${n.padEnd(w)}  ${commands[n]!.summary}`).join('\n') +
    '\n\nRun `supernet COMMAND --help` for the options of one command.\n'
  );
}

async function main(argv: string[]): Promise<number> {
  const wantsHelp =
    argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help';
  const commands = await loadCommands(wantsHelp ? null : argv[0]!);
  if (wantsHelp) {
    process.stdout.write(help(commands));
    return argv.length === 0 ? EXIT.USAGE : EXIT.OK;
  }
  for (let words = Math.min(3, argv.length); words >= 1; words--) {
    const cmd = commands[argv.slice(0, words).join(' ')];
    if (!cmd) continue;
    const rest = argv.slice(words);
    if (rest[0] === '--help' || rest[0] === '-h') {
      process.stdout.write(`${cmd.summary}\nusage: ${cmd.usage}\n`);
      return EXIT.OK;
    }
    return cmd.run(rest);
  }
  process.stderr.write(
    `supernet: unknown command: ${argv.slice(0, 2).join(' ')}\n\n${help(commands)}`,
  );
  return EXIT.USAGE;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`supernet: ${err.message}\n`);
      process.exitCode = err.code;
    } else {
      process.stderr.write(
        `supernet: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = EXIT.SOFTWARE;
    }
  },
);
