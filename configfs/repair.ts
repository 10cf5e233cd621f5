/**
 * Bringing node processes back after configfs restarts (issue 6 acceptance
 * 5; docs/dns.md §Restart).
 *
 * Inside a node, /etc/resolv.conf and friends are bind mounts of configfs
 * files in the node's mount namespace (`ip netns exec` makes them from
 * /etc/netns/<ns>/). A bind mount pins the FUSE connection it was made
 * from. When the configfs process dies, that connection is gone for good:
 * the node's processes get ENOTCONN, and a new configfs mount does not
 * change what the old bind mounts refer to. The new mount itself does reach
 * the node's namespace (`ip netns exec` makes / a slave of the host's, so
 * mounts propagate), so each stale bind mount can be covered by a bind of
 * the same file from the new mount, mounted on top of it. On top, not
 * instead: unmounting first would show the host's own /etc file in the node
 * for a moment (and for good if the bind then failed). The stale mount stays
 * hidden below until the namespace goes away. Processes that had the file
 * open keep a dead file handle (ENOTCONN on read); their next open(2) or
 * stat(2) sees the new file.
 *
 * Every mount namespace on the host is visited once (dedupe by
 * /proc/<pid>/ns/mnt); its stale configfs binds are found in mountinfo and
 * covered by running util-linux `mount --bind` under `nsenter --mount`.
 * They run as child processes, asynchronously: `mount --bind` looks the
 * new file up, which this process's event loop must be free to answer.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import type { Logger } from '../admin/logger.js';
import { FS_SUBTYPE, configfsSource } from './content.js';
import { makeDev, readMountInfo, type MountEntry } from './mountinfo.js';
import { liveRoot, type PlaceholderIds } from './placeholder.js';

/** Runs a program; resolves with its exit status and stderr. A seam for unit tests. */
export type Runner = (file: string, args: string[]) => Promise<{ code: number; stderr: string }>;

const RUN_TIMEOUT_MS = 10_000;

export const execRunner: Runner = (file, args) =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: RUN_TIMEOUT_MS }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stderr: String(stderr).trim() || (err ? err.message : '') });
    });
  });

/** One mount namespace as seen through one of its processes. */
export interface MountNamespace {
  /** `mnt:[inode]` */
  id: string;
  /** Processes in it (any one serves to enter it). */
  pids: number[];
}

/** Every mount namespace on the host, with the pids in it. */
export function listMountNamespaces(): MountNamespace[] {
  const byId = new Map<string, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    let id: string;
    try {
      id = readlinkSync(`/proc/${name}/ns/mnt`);
    } catch {
      continue; // exited, or a kernel thread
    }
    const list = byId.get(id);
    if (list) list.push(Number(name));
    else byId.set(id, [Number(name)]);
  }
  return [...byId].map(([id, pids]) => ({ id, pids }));
}

/** A configfs bind mount whose connection is not the live one. */
export interface StaleBind {
  /** Where it is mounted, e.g. /etc/resolv.conf. */
  target: string;
  /** The configfs file it showed, e.g. /resolv.conf. */
  file: string;
}

/**
 * Stale configfs file binds in one mount table: for every mount point, the
 * TOP mount (the one no other mount on the same path sits on) is what
 * processes see; it is stale if it is a configfs file bind of another
 * connection than the live one (device `liveDev`), or a bind of one of the
 * placeholders (configfs/placeholder.ts). With `source`, only configfs
 * mounts of that source (this instance, configfsSource()) are considered.
 * Also tells whether the live mount is visible at `mountpoint` there, to
 * bind from.
 */
export function findStale(
  table: readonly MountEntry[],
  mountpoint: string,
  liveDev: number,
  placeholders: PlaceholderIds | null = null,
  source: string | null = null,
): { stale: StaleBind[]; liveVisible: boolean } {
  const fstype = `fuse.${FS_SUBTYPE}`;
  const byId = new Map(table.map((e) => [e.id, e]));
  const covered = new Set<number>();
  for (const e of table) {
    const parent = byId.get(e.parent);
    if (parent && parent.mountPoint === e.mountPoint) covered.add(parent.id);
  }
  const stale: StaleBind[] = [];
  let liveVisible = false;
  for (const e of table) {
    if (covered.has(e.id)) continue;
    if (e.fstype !== fstype) {
      // A bind of a placeholder (made while configfs was down).
      const file = placeholders?.roots.get(liveRoot(e.root));
      if (
        file !== undefined &&
        placeholders!.dev === makeDev(e.major, e.minor) &&
        e.mountPoint !== mountpoint
      ) {
        stale.push({ target: e.mountPoint, file: '/' + file });
      }
      continue;
    }
    // Another configfs instance's bind (source names the instance): not ours to cover.
    if (source !== null && e.source !== source) continue;
    if (makeDev(e.major, e.minor) === liveDev) {
      if (e.root === '/' && e.mountPoint === mountpoint) liveVisible = true;
      continue;
    }
    if (e.root !== '/' && e.mountPoint !== mountpoint)
      stale.push({ target: e.mountPoint, file: e.root });
  }
  return { stale, liveVisible };
}

export interface RepairReport {
  namespaces: number;
  /** Stale binds found. */
  stale: number;
  repaired: number;
  failed: { ns: string; target: string; error: string }[];
}

export interface RepairOptions {
  mountpoint: string;
  /** Device of the live configfs mount (ConfigFs.device). */
  liveDev: number;
  /** Where the placeholders are (ConfigFs.placeholders), if known. */
  placeholders?: PlaceholderIds | null;
  /** Mount source of this instance's binds (default configfsSource(mountpoint); null: any). */
  source?: string | null;
  logger: Logger;
  run?: Runner;
  /** Mount namespaces to visit (default: all on the host). */
  namespaces?: MountNamespace[];
}

/** Looks per namespace: find, repair, confirm (and one retry). */
const MAX_ROUNDS = 3;
/** Namespaces repaired at once. */
const PARALLEL = 8;

/** Replaces every stale configfs bind mount on the host by one from the live mount. */
export async function repairStaleBinds(opts: RepairOptions): Promise<RepairReport> {
  const run = opts.run ?? execRunner;
  const namespaces = opts.namespaces ?? listMountNamespaces();
  const report: RepairReport = { namespaces: namespaces.length, stale: 0, repaired: 0, failed: [] };
  const repairOne = async (ns: MountNamespace): Promise<void> => {
    let lastError = '';
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const pid = ns.pids.find((p) => readMountInfo(p).length > 0);
      if (pid === undefined) return;
      const { stale, liveVisible } = findStale(
        readMountInfo(pid),
        opts.mountpoint,
        opts.liveDev,
        opts.placeholders ?? null,
        opts.source === undefined ? configfsSource(opts.mountpoint) : opts.source,
      );
      if (round === 0) report.stale += stale.length;
      if (stale.length === 0) return;
      if (!liveVisible || round === MAX_ROUNDS - 1) {
        const error = !liveVisible
          ? `the live configfs mount is not visible at ${opts.mountpoint} in this mount namespace (private propagation)`
          : lastError || 'still stale after repair';
        for (const s of stale) report.failed.push({ ns: ns.id, target: s.target, error });
        return;
      }
      // One nsenter per namespace binds all its files; -c (no
      // canonicalisation) because a stale target cannot be stat'ed.
      const r = await run('nsenter', [
        `--mount=/proc/${pid}/ns/mnt`,
        '--',
        'sh',
        '-c',
        'r=0; while [ $# -gt 1 ]; do mount --bind -c "$1" "$2" || r=1; shift 2; done; exit $r',
        'sh',
        ...stale.flatMap((st) => [opts.mountpoint + st.file, st.target]),
      ]);
      lastError = r.stderr;
      // The next round looks again: whatever is not stale any more was repaired.
    }
  };
  // Namespaces are independent: a few at a time, so that one slow nsenter
  // does not hold up every node.
  const queue = [...namespaces];
  const workers = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    for (let ns = queue.shift(); ns !== undefined; ns = queue.shift()) await repairOne(ns);
  });
  await Promise.all(workers);
  report.repaired = report.stale - report.failed.length;
  if (report.stale > 0) opts.logger.info('configfs: repaired stale bind mounts', { ...report });
  for (const f of report.failed)
    opts.logger.warn('configfs: could not repair a stale bind mount', f);
  return report;
}
