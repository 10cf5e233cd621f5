/**
 * The mount daemon process (`supernet fs mount` starts it detached unless
 * `--foreground`). Arguments arrive as one JSON value in argv[2]; it reports
 * `{ready}` or `{error}` to its parent over the IPC channel, then serves
 * until the mount goes away or it is sent SIGTERM/SIGINT.
 */
import { mountVolume, type MountArgs } from './mount.js';
import { jsonLogger } from '../admin/logger.js';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as MountArgs & { debug?: boolean };
  const logger = jsonLogger(args.debug ? 'debug' : 'info');
  let m;
  try {
    m = await mountVolume({ ...args, logger });
  } catch (e) {
    const err = e as Error & { kind?: string };
    process.send?.({ error: err.message, kind: err.kind ?? null });
    logger.error('mount failed', { error: err.message });
    process.exit(1);
  }
  // Handlers before the ready message: whoever waits for it may signal at once.
  const stop = (): void => {
    m.unmount().catch((e) => logger.warn('unmount on signal failed', { error: String(e) }));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.send?.({ ready: true, pid: process.pid });
  if (process.connected) process.disconnect();
  await m.done;
  process.exit(0);
}

void main();
