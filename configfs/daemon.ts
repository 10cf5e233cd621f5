/**
 * The configfs process (docs/dns.md §Agent ↔ configfs): mounts configfs,
 * follows the agent's spool directory, and on start repairs node mount
 * namespaces left with bind mounts of a previous (killed) configfs.
 *
 * It runs as its own process, started and restarted by the host agent
 * (`supernet configfs run`), so that a fault in FUSE handling cannot take
 * the packet path down, and so that it can be restarted alone.
 */
import type { Logger } from '../admin/logger.js';
import { ConfigFs, DEFAULT_MOUNTPOINT } from './mount.js';
import { repairStaleBinds, type RepairReport } from './repair.js';
import { DEFAULT_SPOOL_DIR, SpoolWatcher } from './spool.js';

export interface ConfigfsDaemonOptions {
  logger: Logger;
  mountpoint?: string;
  spoolDir?: string;
  hostEtcDir?: string;
  /** Repair stale bind mounts after mounting (default true). */
  repair?: boolean;
  /** Spool rescan interval, ms (inotify does the fast path). */
  rescanMs?: number;
}

export class ConfigfsDaemon {
  readonly fs: ConfigFs;
  private readonly logger: Logger;
  private readonly spool: SpoolWatcher;
  private readonly repair: boolean;
  private readonly mountpoint: string;
  /** Resolves when the start-up repair is done (with its report, or null if disabled). */
  repaired: Promise<RepairReport | null> = Promise.resolve(null);

  constructor(opts: ConfigfsDaemonOptions) {
    this.logger = opts.logger;
    this.mountpoint = opts.mountpoint ?? DEFAULT_MOUNTPOINT;
    this.repair = opts.repair ?? true;
    this.fs = new ConfigFs({
      mountpoint: this.mountpoint,
      logger: opts.logger,
      hostEtcDir: opts.hostEtcDir,
    });
    this.spool = new SpoolWatcher(
      opts.spoolDir ?? DEFAULT_SPOOL_DIR,
      (key, entry) => {
        if (entry === null) {
          this.logger.info('configfs: node removed', { key });
          this.fs.removeNode(key);
        } else if (entry === 'invalid') {
          this.fs.breakNode(key);
        } else {
          this.logger.debug('configfs: node updated', { key, netns: entry.netns });
          this.fs.setNode(key, entry.netns, entry.spec);
        }
      },
      opts.logger,
      opts.rescanMs,
    );
  }

  /**
   * Loads the spool, then mounts (so no node process is ever served before
   * its node is known, which would make it look like a host process), then
   * repairs stale binds in the background.
   */
  async start(): Promise<void> {
    this.spool.start();
    await this.fs.mount();
    const dev = this.fs.device;
    if (this.repair && dev !== null) {
      this.repaired = repairStaleBinds({
        mountpoint: this.mountpoint,
        liveDev: dev,
        placeholders: this.fs.placeholders,
        logger: this.logger,
      }).catch((err: unknown) => {
        this.logger.error('configfs: repair failed', { error: String(err) });
        return null;
      });
    }
  }

  async stop(): Promise<void> {
    this.spool.stop();
    await this.repaired;
    await this.fs.unmount();
  }
}
