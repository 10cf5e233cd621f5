/**
 * Network namespace plumbing for the test bed, through iproute2 — the same
 * `/run/netns/NAME` bind mounts `ip netns` and the host agent use, so every
 * namespace of a run is visible to `ip netns list` and to the sweeper.
 *
 * Synchronous variants exist for the process 'exit' / signal safety net,
 * where no more event-loop turns are coming.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { runArgv } from './proc.js';

/** Where `ip netns add` keeps its named namespaces. */
export const NETNS_DIR = '/run/netns';

/** How a command enters a namespace. */
export type MountMode =
  /**
   * `ip netns exec`: network namespace plus a private mount namespace in
   * which /sys shows the namespace's own devices and /etc/netns/NS/* files
   * are bound over /etc. Mounts made inside stay inside.
   */
  | 'private'
  /**
   * `nsenter --net`: only the network namespace; the mount namespace is the
   * runner's, so a FUSE mount made inside is visible to the test (and to
   * teardown, which unmounts it). /sys then still shows the root's devices.
   */
  | 'shared';

/** The argv that runs `cmd args` in namespace `ns` (null: the root namespace). */
export function nsArgv(
  ns: string | null,
  cmd: string,
  args: readonly string[],
  mode: MountMode = 'private',
): string[] {
  if (ns === null) return [cmd, ...args];
  if (mode === 'shared') return ['nsenter', `--net=${NETNS_DIR}/${ns}`, '--', cmd, ...args];
  return ['ip', 'netns', 'exec', ns, cmd, ...args];
}

/** Names of all named network namespaces (read from /run/netns, no spawn). */
export function listNamespaces(): string[] {
  try {
    return readdirSync(NETNS_DIR).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Namespaces whose name starts with `prefix`. */
export function namespacesWithPrefix(prefix: string): string[] {
  return listNamespaces().filter((n) => n.startsWith(prefix));
}

/** Creates named namespace `ns`. */
export async function addNamespace(ns: string): Promise<void> {
  await runArgv(['ip', 'netns', 'add', ns]);
}

/** Deletes named namespace `ns`; a namespace already gone is not an error. */
export async function deleteNamespace(ns: string): Promise<void> {
  const r = await runArgv(['ip', 'netns', 'delete', ns], { allowFail: true });
  if (r.code !== 0 && listNamespaces().includes(ns)) {
    throw new Error(`cannot delete namespace ${ns}: ${r.stderr.trim()}`);
  }
}

/** Synchronous {@link deleteNamespace}, for the exit safety net. */
export function deleteNamespaceSync(ns: string): void {
  try {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  } catch {
    // Already gone, or still busy; the sweeper of a later run retries.
  }
}

/**
 * PIDs of the processes whose network namespace is `ns`. Same scan as
 * `ip netns pids`, done here to avoid a spawn: compare each process's
 * /proc/PID/ns/net with the namespace's (device, inode).
 */
export function namespacePids(ns: string): number[] {
  let target: string;
  try {
    target = nsIdentity(`${NETNS_DIR}/${ns}`);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (nsIdentity(`/proc/${entry}/ns/net`) === target) pids.push(Number(entry));
    } catch {
      // The process exited while we looked.
    }
  }
  return pids;
}

function nsIdentity(path: string): string {
  // statSync follows the magic link to the nsfs inode; dev+ino name the namespace.
  const st = statSync(path, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

/** Links in the root namespace whose name starts with `prefix`. */
export function rootLinksWithPrefix(prefix: string): string[] {
  try {
    // /sys/class/net of the runner's mount namespace shows the root namespace's links.
    return readdirSync('/sys/class/net').filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

/** Deletes root-namespace link `name`, ignoring one already gone. */
export function deleteRootLinkSync(name: string): void {
  try {
    execFileSync('ip', ['link', 'delete', name], { stdio: 'ignore' });
  } catch {
    // Gone already (a TUN vanishes with its last file descriptor).
  }
}

/**
 * Mount points at or under `dir` in the runner's mount namespace, deepest
 * first (the order they must be unmounted in).
 */
export function mountsUnder(dir: string): string[] {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const base = dir.replace(/\/+$/, '');
  const found: string[] = [];
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 5) continue;
    // Field 5 is the mount point, with space, tab, newline, backslash octal-escaped.
    const mp = fields[4].replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    if (mp === base || mp.startsWith(base + '/')) found.push(mp);
  }
  return [...new Set(found)].sort((a, b) => b.length - a.length);
}

/** Lazily unmounts `mountPoint` (works for FUSE too, as root). */
export function unmountSync(mountPoint: string): boolean {
  try {
    execFileSync('umount', ['-l', mountPoint], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
