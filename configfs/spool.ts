/**
 * How the host agent tells a configfs process about its nodes (docs/dns.md
 * §Agent ↔ configfs): one JSON file per node in a spool directory
 * (default `/run/supernet/configfs.d`), written atomically (temp file +
 * rename) by the agent, read and watched by configfs.
 *
 * A directory of files, rather than a socket protocol, because it survives
 * either side restarting: a configfs process that was killed and started
 * again reads the whole state back, and the agent never has to notice.
 *
 * File `<key>.json`, where `<key>` is the node's namespace name:
 *
 *   { "v": 1, "netns": "/run/netns/<ns>", "spec": { "view": NameView, "hostname"?: string } }
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../admin/logger.js';
import type { NodeSpec } from './files.js';

export const SPOOL_VERSION = 1;
export const DEFAULT_SPOOL_DIR = '/run/supernet/configfs.d';
const SUFFIX = '.json';
/** A spool key is a namespace name as iproute2 allows it, restricted to safe file names. */
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Larger files are not specs (a view of 10,000 members is ~600 KB). */
const MAX_SPEC_BYTES = 4 * 1024 * 1024;

/** One node as the spool describes it. */
export interface SpoolEntry {
  /** Path of the pinned network namespace, e.g. `/run/netns/sn-4711-a1`. */
  netns: string;
  spec: NodeSpec;
}

/** Thrown for a key or an entry that cannot be written. */
export class SpoolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolError';
  }
}

function checkKey(key: string): void {
  if (!KEY_RE.test(key)) {
    throw new SpoolError(`spool key ${JSON.stringify(key)} must match ${KEY_RE.source}`);
  }
}

/** Agent side: records (or replaces) node `key` atomically. */
export function writeSpoolEntry(dir: string, key: string, entry: SpoolEntry): void {
  checkKey(key);
  if (!entry.netns.startsWith('/')) throw new SpoolError('netns must be an absolute path');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const final = join(dir, key + SUFFIX);
  const tmp = join(dir, `.${key}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify({ v: SPOOL_VERSION, ...entry }), { mode: 0o644 });
  renameSync(tmp, final);
}

/** Agent side: forgets node `key`. */
export function removeSpoolEntry(dir: string, key: string): void {
  checkKey(key);
  rmSync(join(dir, key + SUFFIX), { force: true });
}

/**
 * Parses one spool file's text. Returns null (and logs why) for anything
 * that is not a version-1 entry with a netns path and a view; the view's
 * own content is checked when the files are rendered.
 */
export function parseSpoolEntry(text: string, key: string, logger: Logger): SpoolEntry | null {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    logger.warn('configfs: spool file is not JSON', { key, error: (err as Error).message });
    return null;
  }
  const e = o as Record<string, unknown> | null;
  const spec = e?.spec as Record<string, unknown> | undefined;
  const view = spec?.view as Record<string, unknown> | undefined;
  const problem =
    typeof e !== 'object' || e === null
      ? 'not an object'
      : e.v !== SPOOL_VERSION
        ? `version ${JSON.stringify(e.v)} is not ${SPOOL_VERSION}`
        : typeof e.netns !== 'string' || !e.netns.startsWith('/')
          ? 'netns is not an absolute path'
          : typeof view !== 'object' || view === null
            ? 'spec.view missing'
            : typeof view.self !== 'object' || view.self === null || !Array.isArray(view.members)
              ? 'spec.view lacks self or members'
              : spec!.hostname !== undefined && typeof spec!.hostname !== 'string'
                ? 'spec.hostname is not a string'
                : null;
  if (problem !== null) {
    logger.warn('configfs: ignoring malformed spool file', { key, problem });
    return null;
  }
  return { netns: e!.netns as string, spec: spec as unknown as NodeSpec };
}

/** The keys present in the spool directory. */
export function listSpool(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(SUFFIX) && !n.startsWith('.'))
    .map((n) => n.slice(0, -SUFFIX.length))
    .filter((k) => KEY_RE.test(k));
}

/**
 * What a spool watcher reports: an entry appeared or changed (`entry`),
 * went away (null), or is now malformed (`'invalid'`: the owner must not
 * forget the node, or its processes would be taken for host processes).
 */
export type SpoolListener = (key: string, entry: SpoolEntry | null | 'invalid') => void;

/**
 * Configfs side: reports every entry now present, then every change.
 * inotify (fs.watch) gives changes within milliseconds; a full rescan every
 * `rescanMs` catches anything it missed (queue overflow, a directory that
 * was replaced). Unchanged files are not reported again.
 */
export class SpoolWatcher {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly listener: SpoolListener,
    private readonly logger: Logger,
    private readonly rescanMs = 2000,
  ) {}

  start(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    this.rescan();
    try {
      this.watcher = watch(this.dir, (_event, name) => {
        if (typeof name === 'string' && name.endsWith(SUFFIX) && !name.startsWith('.')) {
          this.check(name.slice(0, -SUFFIX.length));
        }
      });
      this.watcher.on('error', (err) => {
        this.logger.warn('configfs: spool watch failed; relying on rescans', {
          error: err.message,
        });
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (err) {
      this.logger.warn('configfs: cannot watch spool; relying on rescans', {
        error: (err as Error).message,
      });
    }
    this.timer = setInterval(() => this.rescan(), this.rescanMs);
    this.timer.unref();
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Re-reads every entry and reports what changed since the last look. */
  rescan(): void {
    const present = new Set(listSpool(this.dir));
    for (const k of present) this.check(k);
    for (const k of [...this.seen.keys()]) if (!present.has(k)) this.check(k);
  }

  private check(key: string): void {
    if (!KEY_RE.test(key)) return;
    let text: string | null;
    try {
      text = readFileSync(join(this.dir, key + SUFFIX), 'utf8');
    } catch {
      text = null;
    }
    if (text !== null && text.length > MAX_SPEC_BYTES) {
      this.logger.warn('configfs: spool file too large', { key, bytes: text.length });
      text = '';
    }
    const before = this.seen.get(key);
    if (text === before || (text === null && before === undefined)) return;
    if (text === null) {
      this.seen.delete(key);
      this.listener(key, null);
      return;
    }
    this.seen.set(key, text);
    this.listener(key, parseSpoolEntry(text, key, this.logger) ?? 'invalid');
  }
}
