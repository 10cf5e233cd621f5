/**
 * Making a node's /etc files be configfs (docs/dns.md §Inside a node).
 *
 * `ip netns exec NS cmd` (what `supernet exec` runs) starts `cmd` in a new
 * mount namespace, makes / a slave of the host's, and bind-mounts every
 * entry of /etc/netns/NS/ over the /etc file of the same name. Making those
 * entries symlinks to the configfs files means every program started in the
 * node reads its /etc/resolv.conf etc. from configfs, while the host's /etc
 * stays untouched. (mount(2) follows the symlink, so what is bound is the
 * configfs file itself.)
 *
 * Only files that exist in the host's /etc are linked: a bind mount needs a
 * target, and `ip netns exec` reports each failing one.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILES } from './files.js';

export const ETC_NETNS_DIR = '/etc/netns';
const NS_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface EtcNetnsOptions {
  /** Where configfs is mounted. */
  mountpoint: string;
  /** Default /etc/netns (iproute2's fixed path; tests may point elsewhere only for unit tests). */
  etcNetnsDir?: string;
  /** Default /etc: only files that exist here are linked. */
  hostEtcDir?: string;
}

function checkNs(ns: string): void {
  if (!NS_NAME_RE.test(ns)) throw new Error(`invalid namespace name ${JSON.stringify(ns)}`);
}

/** Creates (or corrects) /etc/netns/<ns>/<file> → <mountpoint>/<file>; returns the files linked. */
export function linkEtcNetns(ns: string, opts: EtcNetnsOptions): string[] {
  checkNs(ns);
  const dir = join(opts.etcNetnsDir ?? ETC_NETNS_DIR, ns);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const linked: string[] = [];
  for (const f of CONFIG_FILES) {
    if (!existsSync(join(opts.hostEtcDir ?? '/etc', f))) continue;
    const link = join(dir, f);
    const target = join(opts.mountpoint, f);
    let current: string | null = null;
    try {
      if (lstatSync(link).isSymbolicLink()) current = readlinkSync(link);
    } catch {
      current = null;
    }
    if (current !== target) {
      // Replace atomically: an `ip netns exec` running now sees old or new, never none.
      const tmp = join(dir, `.${f}.${process.pid}.tmp`);
      rmSync(tmp, { force: true });
      symlinkSync(target, tmp);
      renameSync(tmp, link);
    }
    linked.push(f);
  }
  return linked;
}

/** Removes /etc/netns/<ns> (only what {@link linkEtcNetns} made, and the directory if then empty). */
export function unlinkEtcNetns(ns: string, etcNetnsDir = ETC_NETNS_DIR): void {
  checkNs(ns);
  const dir = join(etcNetnsDir, ns);
  for (const f of CONFIG_FILES) {
    const link = join(dir, f);
    try {
      if (lstatSync(link).isSymbolicLink()) rmSync(link);
    } catch {
      // absent
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    // not empty (the operator put something there) or absent
  }
}
