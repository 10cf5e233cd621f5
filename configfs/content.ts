/**
 * The heart of configfs without FUSE: which bytes a given caller sees for a
 * given file (docs/dns.md §configfs). A caller inside a registered node sees
 * that node's generated file; a caller in no node sees the host's own
 * /etc/<file> (read through, so a host process reading the configfs path
 * gets exactly what it would get from /etc); a caller that cannot be
 * identified gets EACCES, never some other context's file.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from '../admin/logger.js';
import { systemClock, type Clock } from '../admin/clock.js';
import { HOST, NodeLocator, UNKNOWN, procProbe, type NsProbe } from './caller.js';
import { mountOf, readMountInfo, type MountEntry } from './mountinfo.js';
import { CONFIG_FILES, renderNodeFiles, type ConfigFileName, type NodeSpec } from './files.js';

/** The fstype of configfs mounts is `fuse.<FS_SUBTYPE>`. */
export const FS_SUBTYPE = 'supernet-configfs';

/** Mount points that can travel verbatim inside a mount option (no comma, space, backslash, ...). */
const PLAIN_PATH_RE = /^\/[A-Za-z0-9._/-]*$/;

/**
 * The mount source ("fsname") of the configfs mounted at `mountpoint`:
 * `supernet-configfs@/run/supernet/configfs`. It shows in mountinfo for the
 * mount and for every bind made of its files, also after the connection
 * died, so binds can be told apart by the configfs instance they came from
 * (a machine may run several, e.g. one per simulated host in the test bed;
 * a repair must never cover one instance's binds with another's files). A
 * mount point that cannot be written into an option is named by a hash.
 */
export function configfsSource(mountpoint: string): string {
  const id = PLAIN_PATH_RE.test(mountpoint)
    ? mountpoint
    : `sha256:${createHash('sha256').update(mountpoint).digest('hex').slice(0, 16)}`;
  return `${FS_SUBTYPE}@${id}`;
}
const MOUNT_TABLE_TTL_MS = 1000;
const MAX_SYMLINK_HOPS = 16;

/** errno values handed to FUSE (positive here; the FUSE glue negates them). */
export const ERRNO = { ENOENT: 2, EIO: 5, EACCES: 13 } as const;

/** One file as one caller sees it. */
export interface FileView {
  data: Buffer;
  /** Modification time, ms since the epoch (changes when the content does). */
  mtime: number;
}

/** Reads the host's files; a seam so unit tests need not touch /etc. */
export interface HostFiles {
  /** Content and mtime of the host's file, null if it does not exist; throws an errno error otherwise. */
  read(name: ConfigFileName): FileView | null;
}

/**
 * The host's /etc (or another directory), read through.
 *
 * A host file that is, or links to, a file on a configfs mount would be
 * configfs reading itself from its own event loop: a deadlock (docs/dns.md
 * §Failure modes). That happens when this process runs in a mount namespace
 * whose /etc/resolv.conf is bound to configfs, or on a host that follows
 * the paper literally (/etc/resolv.conf → the configfs file). So the path
 * and every symlink hop are checked against the mount table (never by
 * stat'ing into configfs) and such a file is refused with ELOOP.
 */
export function hostEtc(dir = '/etc'): HostFiles {
  let table: MountEntry[] = [];
  let tableAt = -Infinity;
  const mounts = (): MountEntry[] => {
    const now = Date.now();
    if (now - tableAt > MOUNT_TABLE_TTL_MS) {
      table = readMountInfo('self');
      tableAt = now;
    }
    return table;
  };
  const onConfigfs = (path: string): boolean =>
    mountOf(mounts(), path)?.fstype === `fuse.${FS_SUBTYPE}`;
  const loop = (path: string): never => {
    const e = new Error(`${path} is served by configfs itself`) as NodeJS.ErrnoException;
    e.code = 'ELOOP';
    throw e;
  };
  return {
    read(name) {
      let path = resolve(dir, name);
      for (let hop = 0; ; hop++) {
        if (hop > MAX_SYMLINK_HOPS || onConfigfs(path)) loop(path);
        let st;
        try {
          st = lstatSync(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw err;
        }
        if (!st.isSymbolicLink()) {
          const data = readFileSync(path);
          return { data, mtime: st.mtimeMs };
        }
        path = resolve(dirname(path), readlinkSync(path));
      }
    },
  };
}

interface NodeState {
  netns: string;
  /** null after the node's spec became unusable: its files answer EIO. */
  files: Map<ConfigFileName, FileView> | null;
}

export interface ConfigContentOptions {
  logger: Logger;
  host?: HostFiles;
  probe?: NsProbe;
  clock?: Clock;
}

/** Counters, all monotonic. */
export interface ContentStats {
  nodeReads: number;
  hostReads: number;
  /** Callers that could not be identified (EACCES). */
  unknownCallers: number;
  /** Node files unavailable because the node's spec is unusable (EIO). */
  brokenReads: number;
  /** Host files that could not be read (EIO). */
  hostErrors: number;
}

/** Per-caller content of every configfs file. Keys name nodes (configfs uses the netns name). */
export class ConfigContent {
  readonly stats: ContentStats = {
    nodeReads: 0,
    hostReads: 0,
    unknownCallers: 0,
    brokenReads: 0,
    hostErrors: 0,
  };
  private readonly logger: Logger;
  private readonly host: HostFiles;
  private readonly clock: Clock;
  private readonly locator: NodeLocator<string>;
  private readonly nodes = new Map<string, NodeState>();

  constructor(opts: ConfigContentOptions) {
    this.logger = opts.logger;
    this.host = opts.host ?? hostEtc();
    this.clock = opts.clock ?? systemClock;
    this.locator = new NodeLocator(opts.probe ?? procProbe);
  }

  /** Registered node keys. */
  keys(): string[] {
    return [...this.nodes.keys()];
  }

  /**
   * Registers or updates node `key`. Files whose content is unchanged keep
   * their mtime (so glibc, which re-reads resolv.conf when its stat changes,
   * does not re-read for nothing); changed files get the current time.
   */
  setNode(key: string, netns: string, spec: NodeSpec): void {
    const prev = this.nodes.get(key);
    let files: Map<ConfigFileName, FileView> | null;
    try {
      const rendered = renderNodeFiles(spec, (n) => this.hostText(n), this.logger);
      const now = this.clock.now();
      files = new Map();
      for (const [name, data] of rendered) {
        const old = prev?.files?.get(name);
        files.set(name, old && old.data.equals(data) ? old : { data, mtime: now });
      }
    } catch (err) {
      this.logger.error('configfs: unusable node spec; its files answer EIO', {
        key,
        error: (err as Error).message,
      });
      files = null;
    }
    this.nodes.set(key, { netns, files });
    // Always re-read the pinned namespace: the node may have been recreated.
    this.locator.set(key, netns);
  }

  /**
   * Marks node `key` unusable (its spec became malformed): its callers get
   * EIO rather than the host's files. Unknown keys are ignored.
   */
  breakNode(key: string): void {
    const n = this.nodes.get(key);
    if (n) n.files = null;
  }

  removeNode(key: string): void {
    this.nodes.delete(key);
    this.locator.delete(key);
  }

  /**
   * What task `pid` sees as file `name`: its view, null if the file does not
   * exist for it (only possible for host callers), or an errno.
   */
  lookup(pid: number, name: ConfigFileName): FileView | null | number {
    const who = this.locator.locate(pid);
    if (who === UNKNOWN) {
      this.stats.unknownCallers++;
      this.logger.debug('configfs: caller not identifiable', { pid });
      return ERRNO.EACCES;
    }
    if (who === HOST) {
      this.stats.hostReads++;
      // Every host-classified request is logged (debug): a node's process
      // wrongly taken for the host is the one leak configfs must not have.
      this.logger.debug('configfs: host caller', { pid, name });
      try {
        return this.host.read(name);
      } catch (err) {
        this.stats.hostErrors++;
        this.logger.warn('configfs: cannot read host file', {
          name,
          error: (err as Error).message,
        });
        return ERRNO.EIO;
      }
    }
    const node = this.nodes.get(who);
    if (!node?.files) {
      this.stats.brokenReads++;
      return ERRNO.EIO;
    }
    this.stats.nodeReads++;
    return node.files.get(name) ?? null;
  }

  /** The node a task is in (its key), 'host', or 'unknown': for diagnostics and tests. */
  whoIs(pid: number): string {
    const who = this.locator.locate(pid);
    return who === HOST ? 'host' : who === UNKNOWN ? 'unknown' : who;
  }

  /** The host's file as text (null if absent or unreadable). */
  hostText(name: ConfigFileName): string | null {
    try {
      return this.host.read(name)?.data.toString('utf8') ?? null;
    } catch {
      return null;
    }
  }
}

export { CONFIG_FILES };
