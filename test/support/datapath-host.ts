/**
 * One in-memory host of the packet path for unit tests: a Datapath on a
 * MemoryNetwork bind with one local node, one peer on channel 0x01 and one
 * installed epoch key. Used by the datapath and monitor tests.
 */
import { MemoryNetwork, MemoryTun } from './memory-net.js';
import { Datapath, newStage, type LocalNode } from '../../net/datapath.js';
import { ChannelKeyring } from '../../net/keyring.js';
import { parseIpv4, parsePrefix } from '../../net/ipv4.js';
import { supernetKeyOf } from '../../net/wire.js';

/** The UDP port every in-memory host binds. */
export const HOST_PORT = 7411;

export function memoryHost(
  net: MemoryNetwork,
  addr: string,
  me: { name: string; vip: string },
  peer: { name: string; vip: string; addr: string },
  sid: Uint8Array,
  key: Uint8Array,
) {
  const sk = supernetKeyOf(sid);
  const bind = net.bind(addr, HOST_PORT);
  const dp = new Datapath(
    bind,
    () => Date.now(),
    () => undefined,
    () => undefined,
  );
  const ring = new ChannelKeyring(sid, 0x01, 1);
  ring.install(1, Buffer.from(key), undefined, Date.now(), 1000);
  const tun = new MemoryTun();
  const node: LocalNode = {
    name: me.name,
    supernetKey: sk,
    vip: parseIpv4(me.vip),
    pool: parsePrefix('10.71.17.0/24'),
    channels: new Set([0x01]),
    peers: new Map([
      [
        parseIpv4(peer.vip),
        {
          vip: parseIpv4(peer.vip),
          name: peer.name,
          channels: new Set([0x01]),
          sendChannel: 0x01,
          addr: parseIpv4(peer.addr),
          port: HOST_PORT,
        },
      ],
    ]),
    tun,
    counters: { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, txNoRoute: 0, txNoKey: 0 },
    stage: newStage(),
  };
  dp.supernets.set(sk, {
    idBytes: sid,
    nodes: new Map([[node.vip, node]]),
    keyrings: new Map([[0x01, ring]]),
  });
  dp.attach(node);
  return { dp, tun, node, ring, bind };
}
