/**
 * `supernet`: the one CLI entry. It only dispatches: each part of the system
 * exports its commands (net/cli.ts, admin/cli.ts, fs/cli.ts, ...), keyed by
 * their full command path.
 */
import { CliError, EXIT, type Command } from './cli-kit.js';

async function loadCommands(): Promise<Record<string, Command>> {
  const all: Record<string, Command> = {};
  const parts: Array<[string, string]> = [
    ['../net/cli.js', 'netCommands'],
    ['../admin/cli.js', 'adminCommands'],
    ['../fs/cli.js', 'fsCommands'],
    ['../configfs/cli.js', 'configfsCommands'],
  ];
  for (const [path, name] of parts) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(path)) as Record<string, unknown>;
    } catch (err) {
      // A part that is not built into this installation simply has no commands.
      if (
        (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
        String(err).includes(path.slice(3))
      )
        continue;
      throw err;
    }
    Object.assign(all, mod[name] as Record<string, Command>);
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
  const commands = await loadCommands();
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
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
