/**
 * The channel-key seam (paper §4.2 "Groupkey management service", §4.3 (1a)
 * and (a); design brief §5).
 *
 * The admission logic tells the scheme about joins and leaves; the scheme
 * owns the key state of each channel (in the store, collection `keys`) and
 * produces, for one member, the sealed keys that go into that member's
 * signed NodeConfig. The first implementation, {@link FlatKeyScheme}
 * (keys-flat.ts), gives each epoch one random key sealed to every member; a
 * later issue replaces it with a Versakey-style key tree behind this same
 * interface.
 */
import type { SealedChannelKey } from './protocol.js';
import type { ReadTx, WriteTx } from './store.js';

/** A channel member as the key scheme needs it. */
export interface KeyMember {
  /** Node name (unique in the Supernet). */
  name: string;
  /** Identity fingerprint; part of the sealing context. */
  id: string;
  /** X25519 public key the member's keys are sealed to. */
  seal: string;
}

/** Operator view of one channel's key state. */
export interface ChannelKeyInfo {
  epoch: number;
  /** When the current epoch started (ms), or null before the first join. */
  startedAt: number | null;
  members: number;
  /** Earlier epochs still accepted, newest first. */
  previous: Array<{ epoch: number; acceptUntil: number }>;
}

export interface GroupKeyScheme {
  /** Short name, e.g. `flat`. */
  readonly name: string;
  /** Sets up the (empty) key state of a new channel. */
  onCreate(tx: WriteTx, supernet: string, channel: string): void;
  /** `member` joins the channel: starts a new epoch; returns its number. */
  onJoin(tx: WriteTx, supernet: string, channel: string, member: KeyMember): number;
  /** `memberName` leaves or is expelled: starts a new epoch the leaver never learns; returns its number. */
  onLeave(tx: WriteTx, supernet: string, channel: string, memberName: string): number;
  /** The keys `member` may hold now (current epoch and previous ones inside their grace), sealed to it. */
  keysFor(tx: ReadTx, supernet: string, channel: string, member: KeyMember): SealedChannelKey[];
  /** Names of the current members. */
  members(tx: ReadTx, supernet: string, channel: string): string[];
  describe(tx: ReadTx, supernet: string, channel: string): ChannelKeyInfo | null;
  /**
   * The channel is dissolved: deletes every stored record of its key state
   * and wipes cached keys, so nothing can derive or hand out its keys again
   * (admin/dissolve.ts).
   */
  onDestroy(tx: WriteTx, supernet: string, channel: string): void;
}
