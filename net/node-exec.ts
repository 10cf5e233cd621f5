/**
 * How `supernet exec` starts a stock program inside a node (design brief
 * §2; paper §4.7; docs/dns.md §Inside a node).
 *
 * `ip netns exec NS` enters the node's network namespace in a new mount
 * namespace (/ made a slave of the host's, /sys remounted for the node),
 * binds each `/etc/netns/NS/<file>` over `/etc/<file>` (links to configfs,
 * net/node-services.ts) and execs the program. On top of that, the program
 * runs:
 *
 * - in a UTS namespace of its own named after the node: hostname(1),
 *   uname(2) and the programs that guess their name from it (Apache's
 *   ServerName) see the node's name, which the node's /etc/hosts resolves,
 *   not the physical host's;
 * - with the host daemons that glibc and friends would ask about names
 *   hidden under empty read-only tmpfs mounts (nscd before reading any
 *   file, systemd-resolved's varlink socket, avahi): their answers describe
 *   the physical network. If a mask cannot be made, the program is not
 *   started.
 *
 * Both happen in a small `sh` between `unshare --uts` and the program,
 * which then replaces the shell (`exec`), so pid, signals and exit status
 * are the program's own.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ETC_NETNS_DIR } from '../configfs/etc-netns.js';
import { configfsMounted } from './configfs-supervisor.js';

/** Host daemon directories hidden from node programs (docs/dns.md §What stock programs read). */
export const MASKED_DIRS = [
  '/run/nscd',
  '/var/run/nscd',
  '/run/systemd/resolve',
  '/run/avahi-daemon',
] as const;

/** Exit status of the wrapper when it cannot prepare the node's context (like a shell's "cannot execute"). */
export const EXEC_SETUP_FAILED = 126;

const SETUP = [
  'name=$1; shift',
  `hostname "$name" || { echo "supernet exec: cannot set the node's host name" >&2; exit ${EXEC_SETUP_FAILED}; }`,
  `for d in ${MASKED_DIRS.join(' ')}; do`,
  '  [ -d "$d" ] || continue',
  `  mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=0755 supernet-mask "$d" || { echo "supernet exec: cannot hide $d from the node" >&2; exit ${EXEC_SETUP_FAILED}; }`,
  'done',
  'exec "$@"',
].join('\n');

/** The argv that runs `cmd` in node namespace `ns` named `name`. */
export function nodeExecArgv(ns: string, name: string, cmd: readonly string[]): string[] {
  return [
    'ip',
    'netns',
    'exec',
    ns,
    'unshare',
    '--uts',
    '--',
    'sh',
    '-c',
    SETUP,
    'supernet-exec',
    name,
    ...cmd,
  ];
}

/**
 * Whether the node's /etc files are configfs's: `none` if the node has no
 * configfs links (the agent runs without configfs: host files, by the
 * operator's choice), `live` if they lead to a live configfs mount, `down`
 * if they lead to a mount point where no configfs serves now.
 */
export function configfsState(
  ns: string,
  etcNetnsDir = ETC_NETNS_DIR,
): { state: 'none' | 'live' | 'down'; mountpoint: string | null } {
  const link = join(etcNetnsDir, ns, 'resolv.conf');
  let target: string;
  try {
    if (!lstatSync(link).isSymbolicLink()) return { state: 'none', mountpoint: null };
    target = resolve(dirname(link), readlinkSync(link));
  } catch {
    return { state: 'none', mountpoint: null };
  }
  const mountpoint = dirname(target);
  return { state: configfsMounted(mountpoint) ? 'live' : 'down', mountpoint };
}

/**
 * Waits up to `timeoutMs` for the node's configfs to serve (the agent
 * restarts a configfs that exited within about a second). Resolves with
 * the final state.
 */
export async function awaitConfigfs(
  ns: string,
  timeoutMs: number,
  etcNetnsDir = ETC_NETNS_DIR,
): Promise<ReturnType<typeof configfsState>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = configfsState(ns, etcNetnsDir);
    if (s.state !== 'down' || Date.now() >= deadline) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}
