/**
 * CLI commands of configfs (bin/supernet.ts dispatches to them):
 *   supernet configfs run     the configfs process (the host agent starts it)
 *   supernet configfs repair  re-bind node files after configfs was restarted
 */
import { resolve } from 'node:path';
import { jsonLogger, type LogLevel } from '../admin/logger.js';
import {
  CliError,
  EXIT,
  output,
  parseOptions,
  type CliOptions,
  type Command,
  type ParsedOptions,
} from '../bin/cli-kit.js';
import { FS_SUBTYPE } from './content.js';
import { ConfigfsDaemon } from './daemon.js';
import { DEFAULT_MOUNTPOINT } from './mount.js';
import { makeDev, mountOf, readMountInfo } from './mountinfo.js';
import { repairStaleBinds } from './repair.js';
import { placeholderIds } from './placeholder.js';
import { DEFAULT_SPOOL_DIR } from './spool.js';

/** configfs commands take options only. */
const parse = (argv: string[], options: CliOptions, usage: string): ParsedOptions['values'] =>
  parseOptions(argv, options, usage, false).values;

function level(v: string | boolean | undefined): LogLevel {
  const l = (v ?? 'info') as string;
  if (!['debug', 'info', 'warn', 'error'].includes(l)) {
    throw new CliError(EXIT.USAGE, `--log-level must be debug, info, warn or error, got ${l}`);
  }
  return l as LogLevel;
}

const run: Command = {
  summary: 'run configfs: per-node /etc files (resolv.conf, hosts, ...) over FUSE',
  usage:
    'supernet configfs run [--mount DIR] [--spool DIR] [--etc DIR] [--no-repair] [--parent-pipe] [--log-level L]',
  async run(argv) {
    const v = parse(
      argv,
      {
        mount: { type: 'string' },
        spool: { type: 'string' },
        etc: { type: 'string' },
        'no-repair': { type: 'boolean' },
        'parent-pipe': { type: 'boolean' },
        'log-level': { type: 'string' },
      },
      this.usage,
    );
    const logger = jsonLogger(level(v['log-level']));
    const daemon = new ConfigfsDaemon({
      logger,
      mountpoint: (v.mount as string | undefined) ?? DEFAULT_MOUNTPOINT,
      spoolDir: (v.spool as string | undefined) ?? DEFAULT_SPOOL_DIR,
      hostEtcDir: v.etc as string | undefined,
      repair: !v['no-repair'],
    });
    try {
      await daemon.start();
    } catch (err) {
      throw new CliError(EXIT.UNAVAILABLE, `cannot mount configfs: ${(err as Error).message}`);
    }
    const why = await new Promise<string>((done) => {
      // `on`, not `once`: a second signal while unmounting must not kill
      // the process half way (the agent and a process-group kill may both send one).
      process.on('SIGTERM', () => done('SIGTERM'));
      process.on('SIGINT', () => done('SIGINT'));
      if (v['parent-pipe']) {
        // The host agent holds the other end of stdin: when it goes, however
        // it ends (SIGKILL included), configfs goes too, so a new agent
        // starts its own instead of finding this one in its way.
        process.stdin.on('end', () => done('parent pipe closed'));
        process.stdin.on('error', () => done('parent pipe error'));
        process.stdin.resume();
      }
    });
    logger.info('configfs: stopping', { why });
    await daemon.stop();
    process.stdin.destroy();
    return EXIT.OK;
  },
};

const repair: Command = {
  summary: 'cover bind mounts of a dead configfs in node mount namespaces with the live one',
  usage: 'supernet configfs repair [--mount DIR] [--json]',
  async run(argv) {
    const v = parse(argv, { mount: { type: 'string' }, json: { type: 'boolean' } }, this.usage);
    const mountpoint = resolve((v.mount as string | undefined) ?? DEFAULT_MOUNTPOINT);
    const m = mountOf(readMountInfo('self'), mountpoint);
    if (m === null || m.mountPoint !== mountpoint || m.fstype !== `fuse.${FS_SUBTYPE}`) {
      throw new CliError(EXIT.UNAVAILABLE, `no live configfs mounted at ${mountpoint}`);
    }
    const report = await repairStaleBinds({
      mountpoint,
      liveDev: makeDev(m.major, m.minor),
      placeholders: placeholderIds(readMountInfo('self'), mountpoint, `fuse.${FS_SUBTYPE}`),
      logger: jsonLogger('warn'),
    });
    output(
      !!v.json,
      report,
      () =>
        `${report.namespaces} mount namespaces, ${report.stale} stale binds, ${report.repaired} repaired, ${report.failed.length} failed\n`,
    );
    return report.failed.length === 0 ? EXIT.OK : EXIT.SOFTWARE;
  },
};

/** Commands keyed by their full path. */
export const configfsCommands: Record<string, Command> = {
  'configfs run': run,
  'configfs repair': repair,
};
