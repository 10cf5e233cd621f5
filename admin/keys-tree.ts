/**
 * The key-tree channel-key scheme (paper §4.2 "Groupkey management service",
 * after Versakey; docs/keys.md §8): one {@link KeyTree} per channel behind the
 * {@link GroupKeyScheme} seam.
 *
 * - Join: the tree moves the joiner's path forward; the only broadcast is a
 *   signed join notice with no key material. The joiner gets its welcome
 *   (its path keys sealed to its identity) in its login config.
 * - Leave / expel: one signed rekey message (2·log2 n − 1 sealed keys).
 * - Delivery: every member's signed config carries the latest
 *   {@link LOG_MESSAGES} broadcast messages of each tree channel; the config
 *   push (SSE `config`) tells members to fetch it. A member that is further
 *   behind, or whose keys do not fit, asks for its config with `resync=1` and
 *   receives its welcome at the current epoch.
 *
 * Stored form (collection `keys`): `keytree|<sid>|<ch>` header,
 * `keytree|<sid>|<ch>|<chunk>` chunks (KeyTree.takeChanges, written in the
 * same transaction as the membership change), and `keytree-log|<sid>|<ch>`
 * with the recent messages. The in-memory trees are a cache reloaded from
 * those records after a restart.
 */
import { seal, type Identity } from './identity.js';
import type { KeyTreeMaterial, SealedChannelKey } from './protocol.js';
import type { ReadTx, WriteTx } from './store.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { ChannelKeyInfo, GroupKeyScheme, KeyMember } from './keys.js';
import { KeyTree } from './keytree.js';
import { channelGroupId } from './keytree-crypto.js';
import type { KeyTreeChunkRecord, KeyTreeHeaderRecord } from './keytree-store.js';
import { parseChannelId, supernetIdBytes } from './ids.js';

/** Broadcast messages kept per channel (and carried in every config). */
export const LOG_MESSAGES = 8;

interface LogEntry {
  epoch: number;
  /** base64url signed join notice or rekey message. */
  msg: string;
  at: number;
}

interface LogRecord {
  scheme: 'tree';
  /** When each recent epoch started (for describe); newest last. */
  entries: LogEntry[];
  /** Earlier epochs still accepted: epoch → acceptUntil. */
  previous: Array<{ epoch: number; acceptUntil: number }>;
}

const headerKey = (sid: string, ch: string): string => `keytree|${sid}|${ch}`;
const chunkKey = (sid: string, ch: string, c: number): string => `keytree|${sid}|${ch}|${c}`;
const logKey = (sid: string, ch: string): string => `keytree-log|${sid}|${ch}`;
const pendingKey = (sid: string, ch: string): string => `keytree-pending|${sid}|${ch}`;

/** A chunk as stored: its keys sealed at rest (`box`), its member ids plain. */
interface SealedChunkRecord {
  /** base64url box of the chunk's `keys` bytes, sealed to the admin identity. */
  box: string;
  members: string[];
}
type StoredChunk = SealedChunkRecord | KeyTreeChunkRecord;

/** Sealing context of a stored chunk: binds the box to its group and place. */
const chunkContext = (sid: string, ch: string, c: number): string =>
  `supernet keytree chunk at rest v1 ${sid} ${ch} ${c}`;

/** Removals waiting for their batch (docs/keys.md §Batching), stored so an aborted transaction drops them too. */
interface PendingRecord {
  names: string[];
}

/** Options of {@link TreeKeyScheme} beyond its required arguments. */
export interface TreeKeySchemeOptions {
  /**
   * Batching window for leaves and expels (ms; 0 = each removal rekeys at
   * once). With a window, `onLeave` only records the removal; the batch goes
   * out as one rekey message when {@link TreeKeyScheme.flushPending} runs
   * (from the caller's timer, or before the next join of the channel).
   */
  batchMs?: number;
  /** Called (inside the removal's transaction) when a removal waits for its batch. */
  onPending?: (supernet: string, channel: string) => void;
}

/** The tree scheme; `welcomeFor` is the extra seam method the config builder uses. */
export class TreeKeyScheme implements GroupKeyScheme {
  readonly name = 'tree';
  private readonly trees = new Map<string, KeyTree>();

  constructor(
    private readonly admin: Identity,
    private readonly clock: Clock,
    private readonly graceMs: number,
    private readonly logger?: Logger,
    private readonly opts: TreeKeySchemeOptions = {},
  ) {}

  /** Batching window (ms); 0 when removals rekey at once. */
  get batchMs(): number {
    return this.opts.batchMs ?? 0;
  }

  private pendingOf(tx: ReadTx, sid: string, ch: string): string[] {
    return tx.get<PendingRecord>('keys', pendingKey(sid, ch))?.names ?? [];
  }

  /**
   * Sends the channel's pending removals as ONE rekey message (one epoch).
   * Returns the new epoch and the removed names, or null if nothing was pending.
   */
  flushPending(tx: WriteTx, sid: string, ch: string): { epoch: number; removed: string[] } | null {
    const names = this.pendingOf(tx, sid, ch);
    if (names.length === 0) return null;
    tx.delete('keys', pendingKey(sid, ch));
    const t = this.tree(tx, sid, ch);
    if (!t) return null;
    const removed = names.filter((n) => t.has(n));
    if (removed.length === 0) return null;
    const r = t.remove(removed);
    this.persist(tx, sid, ch, t);
    this.appendLog(tx, sid, ch, r.epoch, r.message);
    this.logger?.info('keytree batch rekey', {
      supernet: sid,
      channel: ch,
      removed: removed.length,
      epoch: r.epoch,
    });
    return { epoch: r.epoch, removed };
  }

  private group(sid: string, ch: string): Buffer {
    return channelGroupId(supernetIdBytes(sid), parseChannelId(ch));
  }

  /**
   * The channel's tree: from the cache if it matches the store, else loaded
   * from the store's records (after a restart, or when the cache ran ahead of
   * a transaction that was undone or never became durable: every change
   * moves the epoch, so an epoch that differs from the header's means the
   * cache does not hold what the store holds).
   */
  private tree(tx: ReadTx, sid: string, ch: string): KeyTree | undefined {
    const k = `${sid}|${ch}`;
    const header = tx.get<KeyTreeHeaderRecord>('keys', headerKey(sid, ch));
    const have = this.trees.get(k);
    if (have && header && have.epoch === header.epoch) return have;
    if (have) {
      this.logger?.warn('keytree cache differs from the store: reloaded', {
        supernet: sid,
        channel: ch,
        cached: have.epoch,
        stored: header?.epoch ?? null,
      });
      // Wipe the stale copy: its keys may be ones the store never kept.
      have.destroy();
      this.trees.delete(k);
    }
    if (!header) return undefined;
    const t = KeyTree.fromRecords(
      { group: this.group(sid, ch), signer: this.admin, logger: this.logger },
      header,
      (c) => this.openChunk(tx.get<StoredChunk>('keys', chunkKey(sid, ch, c)), sid, ch, c),
    );
    this.trees.set(k, t);
    return t;
  }

  /**
   * A stored chunk as KeyTree reads it: the keys sealed at rest are opened
   * with the admin identity (docs/keys.md §6). A chunk in the plain form of
   * earlier versions is read as is and sealed at its next write.
   */
  private openChunk(
    rec: StoredChunk | undefined,
    sid: string,
    ch: string,
    c: number,
  ): KeyTreeChunkRecord | undefined {
    if (!rec) return undefined;
    if ('keys' in rec) return rec;
    const plain = this.admin.open(Buffer.from(rec.box, 'base64url'), chunkContext(sid, ch, c));
    const out = { keys: plain.toString('base64url'), members: rec.members };
    plain.fill(0);
    return out;
  }

  private persist(tx: WriteTx, sid: string, ch: string, t: KeyTree): void {
    const { header, chunks } = t.takeChanges();
    if (header) tx.put('keys', headerKey(sid, ch), header);
    for (const [c, rec] of chunks) {
      if (rec) {
        // At rest the chunk's keys are sealed to the admin's own X25519 key,
        // as keys-flat.ts does: a copy of the database alone reveals no key.
        const plain = Buffer.from(rec.keys, 'base64url');
        const box = seal(this.admin.pub.seal, plain, chunkContext(sid, ch, c));
        plain.fill(0);
        tx.put('keys', chunkKey(sid, ch, c), {
          box: box.toString('base64url'),
          members: rec.members,
        } satisfies SealedChunkRecord);
      } else tx.delete('keys', chunkKey(sid, ch, c));
    }
  }

  private appendLog(tx: WriteTx, sid: string, ch: string, epoch: number, msg: Buffer): void {
    const now = this.clock.now();
    const old = tx.get<LogRecord>('keys', logKey(sid, ch)) ?? {
      scheme: 'tree',
      entries: [],
      previous: [],
    };
    const prevEpoch = old.entries.at(-1)?.epoch;
    const previous = [
      ...(prevEpoch !== undefined ? [{ epoch: prevEpoch, acceptUntil: now + this.graceMs }] : []),
      ...old.previous,
    ].filter((p) => p.acceptUntil > now);
    const entries = [...old.entries, { epoch, msg: msg.toString('base64url'), at: now }].slice(
      -LOG_MESSAGES,
    );
    tx.put('keys', logKey(sid, ch), { scheme: 'tree', entries, previous } satisfies LogRecord);
  }

  onCreate(tx: WriteTx, sid: string, ch: string): void {
    if (this.tree(tx, sid, ch)) return;
    const t = KeyTree.create({
      group: this.group(sid, ch),
      signer: this.admin,
      logger: this.logger,
    });
    this.trees.set(`${sid}|${ch}`, t);
    this.persist(tx, sid, ch, t);
    tx.put('keys', logKey(sid, ch), {
      scheme: 'tree',
      entries: [],
      previous: [],
    } satisfies LogRecord);
  }

  private need(tx: ReadTx, sid: string, ch: string): KeyTree {
    const t = this.tree(tx, sid, ch);
    if (!t) throw new Error(`key tree of ${sid} channel ${ch} missing`);
    return t;
  }

  onJoin(tx: WriteTx, sid: string, ch: string, member: KeyMember): number {
    const t = this.need(tx, sid, ch);
    // Pending leavers hold the current keys, from which a join's keys follow
    // by the one-way step: they must be gone before anyone joins.
    this.flushPending(tx, sid, ch);
    if (t.has(member.name)) return t.epoch;
    const r = t.join([member.name]);
    this.persist(tx, sid, ch, t);
    this.appendLog(tx, sid, ch, r.epoch, r.notice);
    return r.epoch;
  }

  onLeave(tx: WriteTx, sid: string, ch: string, memberName: string): number {
    const t = this.need(tx, sid, ch);
    if (!t.has(memberName)) return t.epoch;
    if (this.batchMs > 0) {
      const names = this.pendingOf(tx, sid, ch);
      if (!names.includes(memberName))
        tx.put('keys', pendingKey(sid, ch), {
          names: [...names, memberName],
        } satisfies PendingRecord);
      this.opts.onPending?.(sid, ch);
      // The batch's epoch, unless a join flushes it first (then that is one later).
      return t.epoch + 1;
    }
    const r = t.remove([memberName]);
    this.persist(tx, sid, ch, t);
    this.appendLog(tx, sid, ch, r.epoch, r.message);
    return r.epoch;
  }

  /** Tree channels carry no per-member sealed traffic keys. */
  keysFor(): SealedChannelKey[] {
    return [];
  }

  /**
   * What `member`'s config carries for channel `ch`: the recent broadcast
   * messages, and (on login or when asked) its welcome at the current epoch.
   */
  materialFor(
    tx: ReadTx,
    sid: string,
    ch: string,
    member: KeyMember,
    welcome: boolean,
  ): KeyTreeMaterial | null {
    const t = this.tree(tx, sid, ch);
    if (!t || !t.has(member.name) || this.pendingOf(tx, sid, ch).includes(member.name)) return null;
    const log = tx.get<LogRecord>('keys', logKey(sid, ch));
    const out: KeyTreeMaterial = {
      channel: ch,
      epoch: t.epoch,
      messages: (log?.entries ?? []).map((e) => e.msg),
    };
    if (welcome) out.welcome = t.welcome(member.name, member.seal).toString('base64url');
    return out;
  }

  /** Current members; a removal waiting for its batch has already left. */
  members(tx: ReadTx, sid: string, ch: string): string[] {
    const pending = new Set(this.pendingOf(tx, sid, ch));
    return (this.tree(tx, sid, ch)?.members() ?? []).filter((n) => !pending.has(n));
  }

  describe(tx: ReadTx, sid: string, ch: string): ChannelKeyInfo | null {
    const t = this.tree(tx, sid, ch);
    if (!t) return null;
    const log = tx.get<LogRecord>('keys', logKey(sid, ch));
    const now = this.clock.now();
    return {
      epoch: t.epoch,
      startedAt: log?.entries.at(-1)?.at ?? null,
      members: t.size - this.pendingOf(tx, sid, ch).filter((n) => t.has(n)).length,
      previous: (log?.previous ?? []).filter((p) => p.acceptUntil > now),
    };
  }

  onDestroy(tx: WriteTx, sid: string, ch: string): void {
    const k = `${sid}|${ch}`;
    this.trees.get(k)?.destroy();
    this.trees.delete(k);
    for (const [key] of tx.list('keys', `${headerKey(sid, ch)}|`)) tx.delete('keys', key);
    tx.delete('keys', headerKey(sid, ch));
    tx.delete('keys', logKey(sid, ch));
    tx.delete('keys', pendingKey(sid, ch));
  }

  /** Wipes every cached tree (service shutdown). */
  destroy(): void {
    for (const t of this.trees.values()) t.destroy();
    this.trees.clear();
  }
}

/** True for a scheme that delivers key-tree material instead of sealed keys. */
export function isTreeScheme(s: GroupKeyScheme): s is TreeKeyScheme {
  return s instanceof TreeKeyScheme;
}
