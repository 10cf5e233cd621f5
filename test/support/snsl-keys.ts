/**
 * The attacker's and auditor's view of SNSL: fetch every channel key a node
 * holds (with its identity and session token, exactly as its host agent
 * does), and try to open captured packets with a set of keys.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Identity, fromB64 } from '../../admin/identity.js';
import { channelKeyContext, openEnvelope, type NodeConfig } from '../../admin/protocol.js';
import { openPacket, senderSubkey } from '../../net/keyring.js';
import { MemberKeyState } from '../../admin/keytree-member.js';
import { channelGroupId } from '../../admin/keytree-crypto.js';
import { parseChannelId, supernetIdBytes } from '../../admin/ids.js';
import {
  NONCE_LEN,
  OFF_SUPERNET,
  checkHeader,
  readChannel,
  readEpoch,
  readSender,
} from '../../net/wire.js';

export interface HeldKey {
  channel: string;
  epoch: number;
  key: Buffer;
}

/** The saved session token of `node` in a host agent's state dir. */
export function savedToken(hostState: string, node: string): string {
  for (const f of readdirSync(join(hostState, 'nodes'))) {
    const j = JSON.parse(readFileSync(join(hostState, 'nodes', f), 'utf8')) as {
      name: string;
      token: string;
    };
    if (j.name === node) return j.token;
  }
  throw new Error(`no saved node ${node} in ${hostState}`);
}

/** Fetches and opens every channel key in the node's current config. `fetchIn` runs curl where the admin is reachable. */
export async function keysOf(
  identityFile: string,
  token: string,
  adminSign: string,
  fetchConfig: (token: string) => Promise<string>,
): Promise<HeldKey[]> {
  const id = Identity.load(identityFile);
  const env = JSON.parse(await fetchConfig(token)) as unknown;
  const cfg = openEnvelope<NodeConfig>(env, adminSign, 'node-config');
  const flat = cfg.keys.map((k) => ({
    channel: k.channel,
    epoch: k.epoch,
    key: id.open(
      fromB64(k.box, null, 'box'),
      channelKeyContext(cfg.supernet, k.channel, k.epoch, cfg.node.id),
    ),
  }));
  // Key-tree channels (docs/keys.md §8): the welcome (fetch with `?resync=1`) gives the current key.
  const tree = (cfg.keytrees ?? []).flatMap((m) => {
    if (!m.welcome) throw new Error(`config has no welcome for ${m.channel}: fetch with ?resync=1`);
    const st = MemberKeyState.fromWelcome(
      {
        group: channelGroupId(supernetIdBytes(cfg.supernet), parseChannelId(m.channel)),
        identity: id,
        adminSign,
      },
      Buffer.from(m.welcome, 'base64url'),
    );
    const key = st.trafficKey()!;
    const held = { channel: m.channel, epoch: st.epoch, key };
    st.destroy();
    return [held];
  });
  return [...flat, ...tree];
}

/** Tries every held key on an SNSL packet (whatever channel its header names); true if any opens it. */
export function opensWith(pkt: Buffer, keys: HeldKey[]): boolean {
  if (checkHeader(pkt, 0, pkt.length)) return false;
  const sid = pkt.subarray(OFF_SUPERNET, OFF_SUPERNET + 10);
  const channel = readChannel(pkt, 0);
  const epoch = readEpoch(pkt, 0);
  const sender = readSender(pkt, 0);
  const out = Buffer.alloc(pkt.length);
  for (const k of keys) {
    const sub = senderSubkey(k.key, sid, channel, epoch, sender);
    if (openPacket(sub, pkt, 0, pkt.length, out, 0, Buffer.alloc(NONCE_LEN)) >= 0) return true;
  }
  return false;
}
