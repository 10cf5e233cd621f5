/**
 * Who a provider exports to (`supernet storage serve --clients`), and keeping
 * that list current while it serves.
 *
 * The paper's provider (§4.6, Figure 6: bigdisk1 in channel 0x123) is reached
 * by the members of its channel; members come and go (admission, expulsion),
 * so a list fixed at start would either lock a new member out or keep an
 * expelled one's address admitted at the NFS layer. `--clients` therefore
 * takes three kinds of entry:
 *
 *   a.b.c.d[/len]   a fixed address (or prefix)
 *   NODE            a peer node by name: its virtual address
 *   channel:ID      every peer that shares channel ID with the provider node
 *
 * Names and channels are resolved against the provider node's view in its
 * host agent (`GET /status`: peers with their channels, from the admin's
 * signed config), and re-resolved while serving ({@link followClients}), so
 * the export follows the channel's membership within one poll interval of
 * the agent learning of it.
 */
import { parseChannelId, formatChannelId } from '../admin/ids.js';
import { CliError, EXIT } from '../bin/cli-kit.js';
import { checkClient, sameClients } from './provider.js';

/** A node on this host, as its agent reports it, with the peers it can reach. */
export interface NodeContext {
  name: string;
  supernet: string;
  ns: string;
  vip: string;
  /** the node's own channels */
  channels: number[];
  /** peer node name → its virtual address and the channels it is in */
  peers: Map<string, { vip: string; channels: number[] }>;
}

/** A parsed `--clients` list. */
export interface ClientSpec {
  /** Addresses and prefixes, checked. */
  fixed: string[];
  /** Peer node names. */
  names: string[];
  /** Channel ids whose members (other than the provider) are admitted. */
  channels: number[];
}

const IPV4ISH = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;
const CHANNEL_PREFIX = 'channel:';
/** How often a following provider re-reads its node's peers from the agent. */
export const FOLLOW_INTERVAL_MS = 2_000;

/** Parses `--clients`; names and channels need the provider's node (`--node`). */
export function parseClientSpec(list: string, haveNode: boolean): ClientSpec {
  const spec: ClientSpec = { fixed: [], names: [], channels: [] };
  for (const raw of list.split(',').map((s) => s.trim())) {
    if (!raw) continue;
    if (IPV4ISH.test(raw)) {
      try {
        spec.fixed.push(checkClient(raw));
      } catch (e) {
        throw new CliError(EXIT.USAGE, (e as Error).message);
      }
      continue;
    }
    if (!haveNode)
      throw new CliError(
        EXIT.USAGE,
        `client ${raw} is not an address (node names and channel:ID need --node)`,
      );
    if (raw.startsWith(CHANNEL_PREFIX)) {
      try {
        spec.channels.push(parseChannelId(raw.slice(CHANNEL_PREFIX.length), 'client'));
      } catch (e) {
        throw new CliError(EXIT.USAGE, (e as Error).message);
      }
    } else if (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(raw)) spec.names.push(raw);
    else
      throw new CliError(
        EXIT.USAGE,
        `client ${JSON.stringify(raw)} is not an address, node name or channel:ID`,
      );
  }
  if (!spec.fixed.length && !spec.names.length && !spec.channels.length)
    throw new CliError(EXIT.USAGE, '--clients names nobody');
  return spec;
}

/** Whether the list depends on the node's peers (and so must be followed). */
export function isDynamic(spec: ClientSpec): boolean {
  return spec.names.length > 0 || spec.channels.length > 0;
}

/**
 * The addresses `spec` admits now, sorted and unique. `strict` (at start):
 * a name that is not a peer, or a channel the provider is not in, is an
 * error naming it. Not strict (while following): a peer that left is
 * simply no longer admitted.
 */
export function resolveClients(
  spec: ClientSpec,
  node: NodeContext | null,
  strict: boolean,
): string[] {
  const out = new Set(spec.fixed);
  for (const name of spec.names) {
    const p = node?.peers.get(name);
    if (p) out.add(p.vip);
    else if (strict)
      throw new CliError(
        EXIT.DATA,
        `client ${name} is not a peer of ${node?.name ?? 'this node'} (peers: ${[...(node?.peers.keys() ?? [])].join(', ') || 'none'})`,
      );
  }
  if (strict && node)
    for (const c of spec.channels)
      if (!node.channels.includes(c))
        throw new CliError(
          EXIT.DATA,
          `${node.name} is not in channel ${formatChannelId(c)} (its channels: ${node.channels.map(formatChannelId).join(', ') || 'none'})`,
        );
  for (const p of node?.peers.values() ?? [])
    if (spec.channels.some((c) => p.channels.includes(c))) out.add(p.vip);
  return [...out].sort();
}

/**
 * Re-resolves `spec` every `intervalMs` through `lookup` and calls `changed`
 * with each new list. A failed lookup (agent restarting) keeps the last list
 * and is reported once per outage through `warn`. Returns a stop function.
 */
export function followClients(
  spec: ClientSpec,
  initial: string[],
  lookup: () => Promise<NodeContext>,
  changed: (clients: string[]) => void,
  warn: (msg: string) => void,
  intervalMs = FOLLOW_INTERVAL_MS,
): () => void {
  let last = initial;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    try {
      const now = resolveClients(spec, await lookup(), false);
      if (failing) warn('host agent answers again; following the channel members');
      failing = false;
      if (!sameClients(now, last)) {
        last = now;
        changed(now);
      }
    } catch (e) {
      if (!failing)
        warn(
          `cannot read the node's peers (keeping the last client list): ${(e as Error).message}`,
        );
      failing = true;
    }
    if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
  };
  timer = setTimeout(() => void tick(), intervalMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
