/**
 * /proc/<pid>/mountinfo (proc(5)): which mounts a mount namespace has.
 *
 * configfs needs this because it must never stat(2) its own files from its
 * own event loop (the request would wait for the very thread that makes
 * it: a deadlock only `/sys/fs/fuse/connections/N/abort` undoes). So the
 * mount's device, and whether a path lies on a configfs mount, are read
 * from mountinfo instead.
 *
 * Line format (proc(5)):
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   id parent major:minor root mount-point options [optional...] - fstype source super-options
 */
import { readFileSync } from 'node:fs';

export interface MountEntry {
  id: number;
  parent: number;
  major: number;
  minor: number;
  /** The path inside the mounted file system that is mounted (`/` for a whole mount, `/resolv.conf` for a file bind). */
  root: string;
  mountPoint: string;
  fstype: string;
  source: string;
  /** Propagation: member of a shared peer group (`shared:N`) and/or slave of one (`master:N`). */
  shared: boolean;
  slave: boolean;
}

/** Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses mountinfo text; malformed lines are skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 2 >= f.length) continue;
    const dev = /^(\d+):(\d+)$/.exec(f[2]!);
    if (!dev) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      major: Number(dev[1]),
      minor: Number(dev[2]),
      root: unescape(f[3]!),
      mountPoint: unescape(f[4]!),
      fstype: f[sep + 1]!,
      source: unescape(f[sep + 2]!),
      shared: f.slice(6, sep).some((o) => o.startsWith('shared:')),
      slave: f.slice(6, sep).some((o) => o.startsWith('master:')),
    });
  }
  return out;
}

/** Reads the mount table of a process (default: this one); [] if it is gone. */
export function readMountInfo(pid: number | 'self' = 'self'): MountEntry[] {
  try {
    return parseMountInfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  } catch {
    return [];
  }
}

/**
 * The mount an absolute, normalised `path` lies on: of the mounts with the
 * longest mount point that is a prefix of it, the one on top (that no other
 * mount on the same point has as its parent; the last listed if in doubt).
 */
export function mountOf(entries: readonly MountEntry[], path: string): MountEntry | null {
  let best: MountEntry[] = [];
  for (const e of entries) {
    const mp = e.mountPoint;
    if (!(path === mp || mp === '/' || path.startsWith(mp + '/'))) continue;
    const len = best[0]?.mountPoint.length ?? -1;
    if (mp.length > len) best = [e];
    else if (mp.length === len) best.push(e);
  }
  const covered = new Set(best.map((e) => e.parent));
  const top = best.filter((e) => !covered.has(e.id));
  return top[top.length - 1] ?? best[best.length - 1] ?? null;
}

/** The kernel's st_dev encoding of major:minor (new_encode_dev, as glibc's makedev). */
export function makeDev(major: number, minor: number): number {
  return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
}
