/**
 * What a node sees while configfs is not running (docs/dns.md §Restart).
 *
 * When the configfs process dies, auto-unmount removes its mount and the
 * mount point's own directory shows again. `ip netns exec` then binds what
 * it finds there. If that were nothing, it would report each failed bind
 * and run the program with the HOST's /etc files: the host's resolver,
 * its hosts file. So the directory under the mount holds placeholders
 * that fail closed: resolv.conf names only the node's loopback (nothing
 * listens there, lookups fail at once), hosts knows only localhost.
 * After a restart, binds of placeholders are repaired like stale binds.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILES, nodeNsswitch, type ConfigFileName } from './files.js';
import type { MountEntry } from './mountinfo.js';
import { makeDev, mountOf } from './mountinfo.js';

const NOTE =
  '# Supernet configfs is not running; this node has no name service until it is back.\n';

/** Placeholder content of each file. */
export function placeholderContent(name: ConfigFileName, hostNsswitch: string | null): string {
  switch (name) {
    case 'resolv.conf':
      return `${NOTE}nameserver 127.0.0.1\noptions timeout:1 attempts:1\n`;
    case 'hosts':
      return `${NOTE}127.0.0.1\tlocalhost\n`;
    case 'hostname':
      return 'localhost\n';
    case 'nsswitch.conf':
      return NOTE + nodeNsswitch(hostNsswitch);
    case 'networks':
      return NOTE;
  }
}

/**
 * Writes the placeholders into `dir` (the mount point, while nothing is
 * mounted on it), read-only. An existing placeholder with the right content
 * is left alone, and one with other content is rewritten in place: binds
 * made of it while configfs was down must keep referring to the file that
 * is there, so that a repair can recognise them (a replaced file shows as
 * `//deleted` in mountinfo, and would keep its old content).
 */
export function writePlaceholders(dir: string, hostNsswitch: string | null): void {
  for (const f of CONFIG_FILES) {
    const path = join(dir, f);
    const want = placeholderContent(f, hostNsswitch);
    let have: string | null;
    try {
      have = readFileSync(path, 'utf8');
    } catch {
      have = null;
    }
    if (have === want) continue;
    writeFileSync(path, want, { mode: 0o444 });
    chmodSync(path, 0o444);
  }
}

/** How binds of placeholders look in mountinfo: their device, and root path → file. */
export interface PlaceholderIds {
  dev: number;
  roots: Map<string, string>;
}

/**
 * Identifies the placeholders from the mount table, before configfs is
 * mounted on top of them: the device and root of the mount the mount point
 * directory is on locate the files inside their file system.
 */
export function placeholderIds(
  table: readonly MountEntry[],
  mountpoint: string,
  fuseType: string,
): PlaceholderIds | null {
  const dirMount = mountOf(
    table.filter((e) => e.fstype !== fuseType),
    mountpoint,
  );
  if (dirMount === null) return null;
  const inside = mountpoint.slice(dirMount.mountPoint === '/' ? 0 : dirMount.mountPoint.length);
  const base = (dirMount.root === '/' ? '' : dirMount.root) + inside;
  const roots = new Map<string, string>();
  for (const f of CONFIG_FILES) roots.set(`${base}/${f}`, f);
  return { dev: makeDev(dirMount.major, dirMount.minor), roots };
}

/** A bind's root in mountinfo, without the mark the kernel adds for a deleted source. */
export function liveRoot(root: string): string {
  return root.endsWith('//deleted') ? root.slice(0, -'//deleted'.length) : root;
}
