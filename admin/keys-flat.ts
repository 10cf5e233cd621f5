/**
 * The flat channel-key scheme: one random 32-byte traffic key per channel
 * epoch (design brief §5, simplified until the key tree lands).
 *
 * - Every join and every leave/expel starts a new epoch (1, 2, 3, …) with a
 *   fresh key, so a joiner cannot read traffic from before it joined and a
 *   leaver cannot read traffic after it left (once the grace ends).
 * - A member's config holds the current key and the previous epochs whose
 *   grace has not ended (`acceptUntil = switch time + graceMs`), but only
 *   epochs that started at or after the member's own join — a joiner never
 *   receives an earlier key.
 * - At most {@link MAX_PREVIOUS_EPOCHS} earlier epochs are kept, so a burst
 *   of joins does not grow every config without bound.
 *
 * At rest, each key is stored sealed to the admin's own X25519 key (context
 * `channel-key-at-rest …`), so a copy of the database alone reveals no
 * traffic key; the admin identity file lives apart from it (mode 0600).
 * Plain keys and the per-member boxes are cached in memory only.
 */
import { randomBytes } from 'node:crypto';
import { seal, type Identity } from './identity.js';
import { channelKeyContext, type SealedChannelKey } from './protocol.js';
import type { ReadTx, WriteTx } from './store.js';
import type { Clock } from './clock.js';
import type { ChannelKeyInfo, GroupKeyScheme, KeyMember } from './keys.js';

export const TRAFFIC_KEY_LEN = 32;
/** Earlier epochs kept for the grace period (newest first). */
export const MAX_PREVIOUS_EPOCHS = 2;

interface StoredEpoch {
  epoch: number;
  /** The key sealed to the admin identity (base64url). */
  box: string;
  startedAt: number;
  /** Set once superseded: when receivers stop accepting it. */
  acceptUntil?: number;
}

/** Per-channel state, collection `keys`, key `<supernet>|<channel>`. */
export interface FlatChannelState {
  scheme: 'flat';
  epoch: number;
  current: StoredEpoch | null;
  previous: StoredEpoch[];
  /** Member name → the first epoch it may know. */
  members: Record<string, number>;
}

const stateKey = (sid: string, ch: string): string => `${sid}|${ch}`;
const restContext = (sid: string, ch: string, epoch: number): string =>
  `channel-key-at-rest ${sid} ${ch} ${epoch}`;

export class FlatKeyScheme implements GroupKeyScheme {
  readonly name = 'flat';
  /** `sid|ch|epoch` → plain key. */
  private readonly plain = new Map<string, Buffer>();
  /** `sid|ch|epoch` → (`memberId|seal` → box for that member). */
  private readonly boxes = new Map<string, Map<string, string>>();

  constructor(
    private readonly admin: Identity,
    private readonly clock: Clock,
    private readonly graceMs: number,
  ) {}

  private state(tx: ReadTx, sid: string, ch: string): FlatChannelState | undefined {
    return tx.get<FlatChannelState>('keys', stateKey(sid, ch));
  }

  onCreate(tx: WriteTx, sid: string, ch: string): void {
    if (this.state(tx, sid, ch)) return;
    const s: FlatChannelState = {
      scheme: 'flat',
      epoch: 0,
      current: null,
      previous: [],
      members: {},
    };
    tx.put('keys', stateKey(sid, ch), s);
  }

  /** Starts epoch `s.epoch + 1`, retiring the current one into `previous`. */
  private rekey(
    s: FlatChannelState,
    sid: string,
    ch: string,
    members: Record<string, number>,
  ): FlatChannelState {
    const now = this.clock.now();
    const epoch = s.epoch + 1;
    const key = randomBytes(TRAFFIC_KEY_LEN);
    const box = seal(this.admin.pub.seal, key, restContext(sid, ch, epoch)).toString('base64url');
    this.plain.set(`${sid}|${ch}|${epoch}`, key);
    const previous = s.current
      ? [{ ...s.current, acceptUntil: now + this.graceMs }, ...s.previous]
      : [...s.previous];
    const kept = previous.filter((p) => (p.acceptUntil ?? 0) > now).slice(0, MAX_PREVIOUS_EPOCHS);
    for (const p of previous) if (!kept.includes(p)) this.forget(sid, ch, p.epoch);
    return {
      scheme: 'flat',
      epoch,
      current: { epoch, box, startedAt: now },
      previous: kept,
      members,
    };
  }

  private forget(sid: string, ch: string, epoch: number): void {
    const prefix = `${sid}|${ch}|${epoch}`;
    this.plain.get(prefix)?.fill(0);
    this.plain.delete(prefix);
    this.boxes.delete(prefix);
  }

  onJoin(tx: WriteTx, sid: string, ch: string, member: KeyMember): number {
    const s = this.state(tx, sid, ch);
    if (!s) throw new Error(`key state of ${sid} channel ${ch} missing`);
    const next = this.rekey(s, sid, ch, { ...s.members });
    next.members[member.name] = next.epoch;
    tx.put('keys', stateKey(sid, ch), next);
    return next.epoch;
  }

  onLeave(tx: WriteTx, sid: string, ch: string, memberName: string): number {
    const s = this.state(tx, sid, ch);
    if (!s) throw new Error(`key state of ${sid} channel ${ch} missing`);
    if (!(memberName in s.members)) return s.epoch;
    const members = { ...s.members };
    delete members[memberName];
    const next = this.rekey(s, sid, ch, members);
    tx.put('keys', stateKey(sid, ch), next);
    return next.epoch;
  }

  private plainKey(sid: string, ch: string, e: StoredEpoch): Buffer {
    const k = `${sid}|${ch}|${e.epoch}`;
    let key = this.plain.get(k);
    if (!key) {
      key = this.admin.open(Buffer.from(e.box, 'base64url'), restContext(sid, ch, e.epoch));
      this.plain.set(k, key);
    }
    return key;
  }

  private boxFor(sid: string, ch: string, e: StoredEpoch, m: KeyMember): string {
    const ek = `${sid}|${ch}|${e.epoch}`;
    let perEpoch = this.boxes.get(ek);
    if (!perEpoch) this.boxes.set(ek, (perEpoch = new Map()));
    const mk = `${m.id}|${m.seal}`;
    let box = perEpoch.get(mk);
    if (!box) {
      const ctx = channelKeyContext(sid, ch, e.epoch, m.id);
      box = seal(m.seal, this.plainKey(sid, ch, e), ctx).toString('base64url');
      perEpoch.set(mk, box);
    }
    return box;
  }

  keysFor(tx: ReadTx, sid: string, ch: string, m: KeyMember): SealedChannelKey[] {
    const s = this.state(tx, sid, ch);
    const since = s?.members[m.name];
    if (!s || since === undefined || !s.current) return [];
    const now = this.clock.now();
    const out: SealedChannelKey[] = [
      { channel: ch, epoch: s.current.epoch, box: this.boxFor(sid, ch, s.current, m) },
    ];
    for (const p of s.previous) {
      // Never an epoch from before the member joined (its own join started `since`).
      if (p.epoch < since || (p.acceptUntil ?? 0) <= now) continue;
      out.push({
        channel: ch,
        epoch: p.epoch,
        box: this.boxFor(sid, ch, p, m),
        acceptUntil: p.acceptUntil,
      });
    }
    return out;
  }

  onDestroy(tx: WriteTx, sid: string, ch: string): void {
    const s = this.state(tx, sid, ch);
    if (s) {
      for (const e of [s.current, ...s.previous]) if (e) this.forget(sid, ch, e.epoch);
    }
    // Epochs already pruned from the record may still sit in the caches.
    for (const k of [...this.plain.keys()])
      if (k.startsWith(`${sid}|${ch}|`))
        this.forget(sid, ch, Number(k.slice(sid.length + ch.length + 2)));
    for (const k of [...this.boxes.keys()]) if (k.startsWith(`${sid}|${ch}|`)) this.boxes.delete(k);
    tx.delete('keys', stateKey(sid, ch));
  }

  members(tx: ReadTx, sid: string, ch: string): string[] {
    return Object.keys(this.state(tx, sid, ch)?.members ?? {});
  }

  describe(tx: ReadTx, sid: string, ch: string): ChannelKeyInfo | null {
    const s = this.state(tx, sid, ch);
    if (!s) return null;
    const now = this.clock.now();
    return {
      epoch: s.epoch,
      startedAt: s.current?.startedAt ?? null,
      members: Object.keys(s.members).length,
      previous: s.previous
        .filter((p) => (p.acceptUntil ?? 0) > now)
        .map((p) => ({ epoch: p.epoch, acceptUntil: p.acceptUntil as number })),
    };
  }
}
