/**
 * Network namespaces as nodes (design brief §2): a node is a namespace whose
 * only interfaces are `lo` and one TUN device carrying the node's virtual
 * address. The agent creates the TUN in its own namespace, keeps the file
 * descriptor, and moves the link into the node's namespace; it never enters
 * a namespace itself. Everything goes through iproute2 (`ip`), which keeps
 * the namespaces visible to `ip netns exec` and to operators.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Name of the TUN link inside every node namespace. */
export const NODE_LINK = 'sn0';

export class NetnsError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
    this.name = 'NetnsError';
  }
}

/** Runs `ip ARGS...`; throws a {@link NetnsError} carrying ip's own message. */
export async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new NetnsError(
      `ip ${args.join(' ')}`,
      `ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`,
    );
  }
}

/**
 * The MTU of link `dev` in this process's network namespace, or undefined
 * if there is no such link. Asked over netlink: /sys/class/net shows the
 * namespace that mounted sysfs, not necessarily ours.
 */
export async function linkMtu(dev: string): Promise<number | undefined> {
  try {
    const n = (JSON.parse(await ip('-j', 'link', 'show', 'dev', dev)) as { mtu?: unknown }[])[0]
      ?.mtu;
    return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function netnsExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}

/** Creates the namespace if it does not exist; brings `lo` up and turns IPv6 off (SNSL carries IPv4). */
export async function ensureNamespace(ns: string): Promise<void> {
  if (!netnsExists(ns)) await ip('netns', 'add', ns);
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1'], {
    timeout: 10_000,
  }).catch(() => undefined);
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1'], {
    timeout: 10_000,
  }).catch(() => undefined);
}

/**
 * Moves the TUN link `dev` (created in the agent's namespace) into `ns` as
 * {@link NODE_LINK} and gives it the node's address and MTU. A moved link
 * loses its addresses, so configuration happens after the move (brief §4).
 * An older `sn0` left from a previous agent run is removed first.
 */
export async function attachTun(
  dev: string,
  ns: string,
  addr: string,
  prefixLen: number,
  mtu: number,
): Promise<void> {
  await ip('-n', ns, 'link', 'del', NODE_LINK).catch(() => undefined);
  await ip('link', 'set', 'dev', dev, 'netns', ns);
  await ip('-n', ns, 'link', 'set', 'dev', dev, 'name', NODE_LINK);
  await ip('-n', ns, 'link', 'set', 'dev', NODE_LINK, 'mtu', String(mtu));
  await ip('-n', ns, 'addr', 'add', `${addr}/${prefixLen}`, 'broadcast', '+', 'dev', NODE_LINK);
  await ip('-n', ns, 'link', 'set', 'dev', NODE_LINK, 'up');
  // Multicast stays on the channel: the agent replicates it to members.
  await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', NODE_LINK).catch(() => undefined);
}

/** Deletes a node namespace (processes still inside lose their network, not their lives). */
export async function deleteNamespace(ns: string): Promise<void> {
  if (netnsExists(ns)) await ip('netns', 'del', ns);
}

/** IPv4 addresses of an interface in the current namespace (for the underlay endpoint). */
export async function linkAddresses(dev: string): Promise<string[]> {
  const out = await ip('-4', '-o', 'addr', 'show', 'dev', dev);
  const addrs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /\binet ([0-9.]+)\//.exec(line);
    if (m) addrs.push(m[1]!);
  }
  return addrs;
}
