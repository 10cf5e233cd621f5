/**
 * The host agent's side of the key-tree scheme (docs/keys.md §5, §8): one
 * {@link MemberKeyState} per (node, channel), fed from the key-tree
 * material of the node's signed config, and the traffic keys it derives
 * installed into the channel keyrings.
 *
 * Every message is verified against the pinned admin key before anything
 * is decrypted (keytree-wire.ts decodeMessage). A state that misses a
 * message (epoch gap), does not fit one (stale), or is absent asks for a
 * resync: the agent then fetches its config with `resync=1`, which carries
 * the node's welcome at the current epoch. The states are kept in
 * `<state>/nodes/<node>.keytree.json` (mode 0600: it holds keys) so a
 * restarted agent continues from them, or resynchronises if they are stale.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Identity } from '../admin/identity.js';
import type { KeyTreeMaterial } from '../admin/protocol.js';
import { parseChannelId, supernetIdBytes } from '../admin/ids.js';
import { MemberKeyState, type MemberKeyStateOptions } from '../admin/keytree-member.js';
import { channelGroupId } from '../admin/keytree-crypto.js';
import type { Logger } from '../admin/logger.js';

/** A traffic key to install: `key` is a fresh copy the keyring takes over. */
export interface TreeTrafficKey {
  channel: number;
  epoch: number;
  key: Buffer;
}

/** What one update produced. */
export interface TreeUpdate {
  /** Current-epoch keys (and intermediate epochs) newer than what `currentOf` reported. */
  keys: TreeTrafficKey[];
  /** Some channel is behind: fetch the config again with `resync=1`. */
  resync: boolean;
  /** Messages refused (malformed, bad signature, wrong group). */
  refused: number;
}

interface StoredStates {
  kind: 'supernet-agent-keytrees';
  v: 1;
  /** channel text → MemberKeyState.serialize() */
  states: Record<string, string>;
}

/** Key-tree member states of one hosted node. */
export class NodeTreeKeys {
  private readonly states = new Map<string, MemberKeyState>();

  constructor(
    private readonly o: {
      supernet: string;
      identity: Identity;
      adminSign: string;
      /** File the states are kept in. */
      file: string;
      logger: Logger;
    },
  ) {
    this.load();
  }

  private group(ch: string): Buffer {
    return channelGroupId(supernetIdBytes(this.o.supernet), parseChannelId(ch));
  }

  private opts(ch: string): MemberKeyStateOptions {
    return { group: this.group(ch), identity: this.o.identity, adminSign: this.o.adminSign };
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.o.file, 'utf8');
    } catch {
      return;
    }
    try {
      const j = JSON.parse(text) as StoredStates;
      if (j.kind !== 'supernet-agent-keytrees' || j.v !== 1) throw new Error('kind/version');
      for (const [ch, s] of Object.entries(j.states ?? {}))
        this.states.set(ch, MemberKeyState.restore(this.opts(ch), s));
    } catch (err) {
      // A damaged file costs a resync, never wrong keys.
      this.o.logger.warn('stored key-tree states unusable; will resynchronise', {
        file: this.o.file,
        err: String(err),
      });
      this.wipe();
    }
  }

  private save(): void {
    const states: Record<string, string> = {};
    for (const [ch, s] of this.states) if (s.status !== 'removed') states[ch] = s.serialize();
    const body: StoredStates = { kind: 'supernet-agent-keytrees', v: 1, states };
    writeFileSync(`${this.o.file}.tmp`, JSON.stringify(body) + '\n', { mode: 0o600 });
    renameSync(`${this.o.file}.tmp`, this.o.file);
  }

  /** Epoch of channel `ch`'s state (0 if none). */
  epochOf(ch: string): number {
    return this.states.get(ch)?.epoch ?? 0;
  }

  /**
   * Applies the material of a verified config. `currentOf(channel)` is the
   * keyring's current epoch: only newer epochs are returned for installing,
   * so a restart never re-opens the grace of an epoch that already ended.
   */
  update(materials: KeyTreeMaterial[], currentOf: (channel: number) => number): TreeUpdate {
    const out: TreeUpdate = { keys: [], resync: false, refused: 0 };
    const seen = new Set<string>();
    for (const m of materials) {
      seen.add(m.channel);
      let st = this.states.get(m.channel);
      if (m.welcome) {
        try {
          const w = Buffer.from(m.welcome, 'base64url');
          if (!st || st.status === 'removed') {
            st?.destroy();
            st = MemberKeyState.fromWelcome(this.opts(m.channel), w);
            this.states.set(m.channel, st);
          } else st.apply(w);
        } catch (err) {
          out.refused++;
          this.o.logger.warn('key-tree welcome refused', { channel: m.channel, err: String(err) });
        }
      }
      if (st) {
        for (const b64 of m.messages) {
          try {
            const r = st.apply(Buffer.from(b64, 'base64url'));
            if (r.kind === 'removed') break;
          } catch (err) {
            out.refused++;
            this.o.logger.warn('key-tree message refused', {
              channel: m.channel,
              err: String(err),
            });
          }
        }
      }
      if (!st || st.status === 'removed' || st.needsResync || st.epoch < m.epoch) {
        out.resync = true;
        if (!st) continue;
      }
      if (st.status === 'removed') continue;
      const ch = parseChannelId(m.channel);
      const cur = currentOf(ch);
      for (const e of st.heldEpochs().reverse()) {
        if (e <= cur) continue;
        const key = st.trafficKey(e);
        if (key) out.keys.push({ channel: ch, epoch: e, key });
      }
      // The keyring owns the copies and their grace now; wipe ours.
      st.forgetBefore(st.epoch);
    }
    for (const [ch, st] of this.states) {
      if (seen.has(ch)) continue;
      st.destroy(); // no longer a member of that channel
      this.states.delete(ch);
    }
    this.save();
    return out;
  }

  /** Wipes every state and removes the file (node removed). */
  wipe(): void {
    for (const s of this.states.values()) s.destroy();
    this.states.clear();
    rmSync(this.o.file, { force: true });
  }
}
