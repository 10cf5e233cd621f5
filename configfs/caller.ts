/**
 * Which node a FUSE request comes from (docs/dns.md §Who is calling).
 *
 * The kernel tells a FUSE daemon the pid (thread id) of the calling task, in
 * the daemon's pid namespace. `/proc/<pid>/ns/net` is a handle on that
 * task's network namespace; its inode number (on the nsfs device) names the
 * namespace. A node's namespace is pinned by the agent at a path such as
 * `/run/netns/<ns>` (a bind mount of the same nsfs inode), so comparing
 * (device, inode) pairs tells which node, if any, the caller is in.
 *
 * Nothing is cached per pid: stat'ing `/proc/<pid>/ns/net` costs about as
 * much as validating a cache entry against pid reuse would (reading the
 * start time in `/proc/<pid>/stat`), and is always right. What is cached is
 * the (device, inode) of each node's pinned namespace; it is re-read
 * whenever a caller matches none, so a namespace that was deleted and
 * created again under the same path is recognised at once instead of its
 * processes being taken for host processes.
 *
 * Processes can outlive their node: a namespace stays alive while a process
 * is in it, after the agent removed the node (or replaced its namespace).
 * Such a namespace was a node's, so its processes must not be served the
 * host's files either: the locator remembers the namespaces that stopped
 * being nodes' and reports their callers as {@link UNKNOWN} (EACCES). An
 * nsfs inode number can be reused once its namespace is freed, so a later,
 * unrelated namespace might meet that answer too: failing closed.
 */
import { statSync } from 'node:fs';

/** An nsfs identity: device and inode number of a namespace file. */
export interface NsId {
  dev: number;
  ino: number;
}

/** The seam between the locator and /proc (an in-memory one in unit tests). */
export interface NsProbe {
  /** The network namespace of task `pid`, or null if it cannot be read (gone, no permission). */
  netnsOfPid(pid: number): NsId | null;
  /** The namespace a pinned file (`/run/netns/x`) refers to, or null if it does not exist. */
  netnsOfFile(path: string): NsId | null;
}

function statId(path: string): NsId | null {
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return null;
  }
}

/** The real probe: stat(2) on /proc and on the pinned namespace files. */
export const procProbe: NsProbe = {
  netnsOfPid: (pid) => (Number.isInteger(pid) && pid > 0 ? statId(`/proc/${pid}/ns/net`) : null),
  netnsOfFile: (path) => statId(path),
};

/** The caller is in no registered node (a host process, or a namespace we do not serve). */
export const HOST = Symbol('host');
/** The caller could not be identified (its /proc entry vanished or is unreadable). */
export const UNKNOWN = Symbol('unknown');

export type Located<K> = K | typeof HOST | typeof UNKNOWN;

/** How many former node namespaces are remembered. */
const MAX_FORMER = 4096;

function idKey(id: NsId): string {
  return `${id.dev}:${id.ino}`;
}

/**
 * Maps callers to node keys. `K` is whatever the owner names nodes by (the
 * pinned namespace path, in configfs).
 */
export class NodeLocator<K> {
  private readonly paths = new Map<K, string>();
  private readonly known = new Map<K, string>();
  private readonly byId = new Map<string, K>();
  /** Namespaces that were nodes' and are not any more (insertion-ordered, capped). */
  private readonly former = new Set<string>();

  constructor(private readonly probe: NsProbe = procProbe) {}

  /** Registers (or moves) node `key`, whose namespace is pinned at `nsPath`. */
  set(key: K, nsPath: string): void {
    this.paths.set(key, nsPath);
    this.refresh(key);
  }

  delete(key: K): void {
    this.paths.delete(key);
    const id = this.known.get(key);
    if (id !== undefined && this.byId.get(id) === key) {
      this.byId.delete(id);
      this.retire(id);
    }
    this.known.delete(key);
  }

  /** Number of registered nodes. */
  get size(): number {
    return this.paths.size;
  }

  /**
   * The node task `pid` is in, {@link HOST} if it is in none, or
   * {@link UNKNOWN} if its namespace cannot be read.
   *
   * pid 0 (and any pid that is not a positive integer) is UNKNOWN. The
   * kernel sends pid 0 for a request whose task is not visible in our pid
   * namespace, and the FUSE glue yields no pid for a request without a
   * context (as while the session closes); neither says the caller is a
   * host process, and a node's reader taken for one is served the host's
   * files (docs/dns.md §Who is calling). The host's own programs read /etc,
   * not configfs, so refusing them costs nothing.
   */
  locate(pid: number): Located<K> {
    if (!Number.isInteger(pid) || pid <= 0) return UNKNOWN;
    const id = this.probe.netnsOfPid(pid);
    if (id === null) return UNKNOWN;
    const key = idKey(id);
    const hit = this.byId.get(key);
    if (hit !== undefined) return hit;
    // A miss may be a node whose namespace changed under the same path.
    for (const k of this.paths.keys()) this.refresh(k);
    const again = this.byId.get(key);
    if (again !== undefined) return again;
    return this.former.has(key) ? UNKNOWN : HOST;
  }

  private retire(id: string): void {
    this.former.delete(id);
    this.former.add(id);
    if (this.former.size > MAX_FORMER) {
      this.former.delete(this.former.values().next().value as string);
    }
  }

  private refresh(key: K): void {
    const path = this.paths.get(key);
    if (path === undefined) return;
    const old = this.known.get(key);
    const id = this.probe.netnsOfFile(path);
    const now = id === null ? undefined : idKey(id);
    if (old === now) return;
    if (old !== undefined && this.byId.get(old) === key) {
      this.byId.delete(old);
      this.retire(old);
    }
    if (now === undefined) this.known.delete(key);
    else {
      this.known.set(key, now);
      this.byId.set(now, key);
      this.former.delete(now);
    }
  }
}
