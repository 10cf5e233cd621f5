/**
 * CLI commands of the network layer: identities, the host agent, and what an
 * operator does with nodes on a host (login, logout, exec, status).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { Identity, IdentityError } from '../admin/identity.js';
import { jsonLogger, type LogLevel } from '../admin/logger.js';
import type { Endpoint } from '../admin/protocol.js';
import {
  CliError,
  EXIT,
  output,
  parseOptions as parse,
  pickNode,
  type Command,
} from '../bin/cli-kit.js';
import { httpAdminLink } from './admin-http.js';
import { StorageAgent } from './storage-agent.js';
import { HostAgent, type NodeInfo } from './agent.js';
import { openBind } from './bind.js';
import { ControlError, DEFAULT_CONTROL_SOCKET, controlCall, serveControl } from './control.js';
import { openTun } from './tun.js';
import { linkMtu } from './netns.js';
import { DEFAULT_MOUNTPOINT } from '../configfs/mount.js';
import { DEFAULT_SPOOL_DIR } from '../configfs/spool.js';
import { UdpForwarder } from './dns-forward.js';
import { NodeServices } from './node-services.js';
import { awaitConfigfs, nodeExecArgv } from './node-exec.js';
import { isIPv4 } from 'node:net';
import { monitorCommand } from './monitor-cli.js';

const DEFAULT_PORT = 7411;
const DEFAULT_STATE = '/var/lib/supernet/host';

function agentSocket(v: string | undefined): string {
  return v ?? process.env.SUPERNET_AGENT ?? DEFAULT_CONTROL_SOCKET;
}

/** Maps control-API failures to exit codes. */
function fromControl(err: unknown): never {
  if (err instanceof ControlError) {
    const code =
      err.code === 'no_agent'
        ? EXIT.UNAVAILABLE
        : err.status === 403 || err.status === 401
          ? EXIT.DENIED
          : err.status >= 500
            ? EXIT.SOFTWARE
            : EXIT.DATA;
    throw new CliError(
      code,
      code === EXIT.DENIED
        ? `refused by the admin service (${err.code}): ${err.message}`
        : err.message,
    );
  }
  throw err;
}

/** The first IPv4 address of `dev`, or of any non-loopback interface. */
/** Underlay MTU when neither --mtu nor a smaller --underlay-dev MTU says otherwise. */
const DEFAULT_UNDERLAY_MTU = 1500;
/** IPv4 hosts must accept 576-byte datagrams (RFC 791); nothing smaller is a usable underlay. */
const MIN_UNDERLAY_MTU = 576;

export function underlayAddress(dev: string | undefined): string {
  const ifs = networkInterfaces();
  const pick = (name: string): string | undefined =>
    ifs[name]?.find((a) => a.family === 'IPv4' && !a.internal)?.address;
  if (dev) {
    const a = pick(dev);
    if (!a) throw new Error(`interface ${dev} has no IPv4 address`);
    return a;
  }
  for (const name of Object.keys(ifs)) {
    const a = pick(name);
    if (a) return a;
  }
  throw new Error('no non-loopback IPv4 address on this host; pass --endpoint');
}

const idNew: Command = {
  summary: 'make a new node identity (Ed25519 + X25519 keypair)',
  usage: 'supernet id new --out FILE [--label TEXT] [--force] [--json]',
  async run(argv) {
    const { values } = parse(
      argv,
      {
        out: { type: 'string' },
        label: { type: 'string' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      this.usage,
    );
    if (!values.out) throw new CliError(EXIT.USAGE, `--out FILE is required\nusage: ${this.usage}`);
    const out = values.out as string;
    if (existsSync(out) && !values.force)
      throw new CliError(EXIT.DATA, `${out} exists (use --force to replace it)`);
    const id = Identity.generate((values.label as string | undefined) ?? '');
    id.save(out);
    output(Boolean(values.json), { id: id.id, ...id.pub, file: out }, () => `${id.id}  ${out}\n`);
    return EXIT.OK;
  },
};

const idShow: Command = {
  summary: 'show the public part and fingerprint of an identity',
  usage: 'supernet id show FILE [--json]',
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, this.usage);
    if (positionals.length !== 1) throw new CliError(EXIT.USAGE, `usage: ${this.usage}`);
    let id: Identity;
    try {
      id = Identity.load(positionals[0]!);
    } catch (err) {
      throw new CliError(EXIT.DATA, (err as Error).message);
    }
    output(
      Boolean(values.json),
      { id: id.id, label: id.label, ...id.pub },
      () => `id:    ${id.id}\nsign:  ${id.pub.sign}\nseal:  ${id.pub.seal}\n`,
    );
    return EXIT.OK;
  },
};

/** How long `supernet exec` waits for a restarting configfs before refusing. */
const CONFIGFS_WAIT_MS = 5000;

/** The resolver and configfs wiring of `host start` (docs/dns.md). */
function nodeServices(
  values: Record<string, string | boolean | undefined>,
  logger: ReturnType<typeof jsonLogger>,
  offload: boolean,
): NodeServices {
  let forward: string[] | null = null;
  if (values['dns-forward'] !== undefined) {
    forward = String(values['dns-forward'])
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    const bad = forward.find((a) => !isIPv4(a));
    if (bad !== undefined || forward.length === 0)
      throw new CliError(
        EXIT.USAGE,
        `--dns-forward: expected IPv4 addresses separated by commas, got ${JSON.stringify(values['dns-forward'])}`,
      );
  }
  try {
    return new NodeServices({
      logger,
      dnsSuffix: values['dns-suffix'] as string | undefined,
      external: forward ? { forward } : 'refuse',
      forwarder: forward ? new UdpForwarder({ logger }) : undefined,
      // Offload TUNs may hand over UDP with a partial checksum (virtio-net header).
      checkUdpChecksum: !offload,
      configfs: values['no-configfs']
        ? null
        : {
            mountpoint: (values['configfs-mount'] as string | undefined) ?? DEFAULT_MOUNTPOINT,
            spoolDir: (values['configfs-spool'] as string | undefined) ?? DEFAULT_SPOOL_DIR,
            logLevel: ((values['log-level'] as string) ?? 'info') as LogLevel,
          },
    });
  } catch (err) {
    throw new CliError(EXIT.USAGE, `--dns-suffix: ${(err as Error).message}`);
  }
}

const hostStart: Command = {
  summary: 'run the host agent (foreground) for this host',
  usage:
    'supernet host start (--admin-info FILE | --admin URL --admin-key SIGNKEY) [--state DIR] [--port N] ' +
    '[--underlay-dev DEV | --endpoint HOST] [--control SOCKET] [--ns-prefix P] [--mtu N] [--no-offload] ' +
    '[--configfs-mount DIR] [--configfs-spool DIR] [--no-configfs] [--dns-suffix S] [--dns-forward IP[,IP...]] [--metrics-listen IP:PORT] [--stats-every-ms MS] [--log-level L]',
  async run(argv) {
    const { values } = parse(
      argv,
      {
        'admin-info': { type: 'string' },
        admin: { type: 'string' },
        'admin-key': { type: 'string' },
        state: { type: 'string' },
        port: { type: 'string' },
        'underlay-dev': { type: 'string' },
        endpoint: { type: 'string' },
        control: { type: 'string' },
        'ns-prefix': { type: 'string' },
        mtu: { type: 'string' },
        'log-level': { type: 'string' },
        'no-offload': { type: 'boolean' },
        'configfs-mount': { type: 'string' },
        'configfs-spool': { type: 'string' },
        'no-configfs': { type: 'boolean' },
        'dns-suffix': { type: 'string' },
        'dns-forward': { type: 'string' },
        'metrics-listen': { type: 'string' },
        'stats-every-ms': { type: 'string' },
      },
      this.usage,
    );
    const statsEveryMs = Number(values['stats-every-ms'] ?? 10_000);
    if (!Number.isInteger(statsEveryMs) || statsEveryMs < 1000 || statsEveryMs > 3_600_000)
      throw new CliError(
        EXIT.USAGE,
        `--stats-every-ms: expected 1000 to 3600000, got ${JSON.stringify(values['stats-every-ms'])}`,
      );
    let metricsListen: { host: string; port: number } | undefined;
    if (values['metrics-listen'] !== undefined) {
      const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(String(values['metrics-listen']));
      if (!m || !isIPv4(m[1]!) || Number(m[2]) < 1 || Number(m[2]) > 65535)
        throw new CliError(
          EXIT.USAGE,
          `--metrics-listen: expected IPV4:PORT (e.g. 127.0.0.1:9411), got ${JSON.stringify(values['metrics-listen'])}`,
        );
      metricsListen = { host: m[1]!, port: Number(m[2]) };
    }
    let url = values.admin as string | undefined;
    let signKey = values['admin-key'] as string | undefined;
    if (values['admin-info']) {
      let info: { url?: string; sign?: string };
      try {
        info = JSON.parse(readFileSync(values['admin-info'] as string, 'utf8')) as typeof info;
      } catch (err) {
        throw new CliError(
          EXIT.DATA,
          `cannot read --admin-info ${values['admin-info']}: ${(err as Error).message}`,
        );
      }
      url ??= info.url;
      signKey ??= info.sign;
    }
    if (!url || !signKey)
      throw new CliError(
        EXIT.USAGE,
        `the admin service and its key are required\nusage: ${this.usage}`,
      );
    const port = Number(values.port ?? DEFAULT_PORT);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new CliError(EXIT.USAGE, `--port: not a UDP port: ${values.port}`);
    let mtu = Number(values.mtu ?? DEFAULT_UNDERLAY_MTU);
    if (!Number.isInteger(mtu) || mtu < MIN_UNDERLAY_MTU || mtu > 65535)
      throw new CliError(EXIT.USAGE, `--mtu: not an MTU: ${values.mtu}`);
    const logger = jsonLogger(((values['log-level'] as string) ?? 'info') as LogLevel);
    const fixedHost = values.endpoint as string | undefined;
    const dev = values['underlay-dev'] as string | undefined;
    // Sealed datagrams are sized from --mtu (net/wire.ts innerMtu): on an
    // underlay device with a smaller MTU (PPPoE 1492, a tunnel) every full
    // packet would be fragmented or dropped.
    const devMtu = dev === undefined ? undefined : await linkMtu(dev);
    if (devMtu !== undefined && devMtu < mtu) {
      if (values.mtu !== undefined || devMtu < MIN_UNDERLAY_MTU)
        throw new CliError(
          EXIT.USAGE,
          `--mtu ${mtu} is more than the MTU of ${dev} (${devMtu}): sealed datagrams would not fit` +
            (devMtu >= MIN_UNDERLAY_MTU ? `; pass --mtu ${devMtu} or less` : ''),
        );
      logger.info('underlay MTU taken from the device', { dev, mtu: devMtu });
      mtu = devMtu;
    }
    const endpoint = async (): Promise<Endpoint> => ({
      host: fixedHost ?? underlayAddress(dev),
      port,
    });
    try {
      await endpoint();
    } catch (err) {
      throw new CliError(EXIT.UNAVAILABLE, (err as Error).message);
    }
    // Kernel offloads (design brief §4): TSO super-segments from node TUNs,
    // UDP GSO/GRO on the underlay. --no-offload for kernels or NICs without them.
    const offload = !values['no-offload'];
    const services = nodeServices(values, logger, offload);
    const bind = await openBind({ port, gso: offload, gro: offload }).catch((err: Error) => {
      throw new CliError(EXIT.UNAVAILABLE, `cannot open UDP port ${port}: ${err.message}`);
    });
    const stateDir = (values.state as string | undefined) ?? DEFAULT_STATE;
    const agent = new HostAgent({
      stateDir,
      link: httpAdminLink(url, signKey, logger),
      adminSign: signKey,
      // Storage key groups (issue 5): volume keys for fs mounts, automatic re-encryption.
      storage: new StorageAgent({
        adminUrl: url,
        adminSign: signKey,
        stateDir,
        logger,
        controlSocket: agentSocket(values.control as string | undefined),
      }),
      bind,
      endpoint,
      nsPrefix: (values['ns-prefix'] as string | undefined) ?? 'sn-',
      underlayMtu: mtu,
      openTun: () => openTun({ name: 'snt%d', offload }),
      logger,
      services,
      statsEveryMs,
    });
    await agent.start();
    const socket = agentSocket(values.control as string | undefined);
    const server = await serveControl(agent, socket, logger, { metricsListen }).catch(
      async (err: Error) => {
        await agent.stop();
        throw new CliError(EXIT.UNAVAILABLE, err.message);
      },
    );
    // Handlers first: whoever waits for the ready line may signal at once.
    const stopped = new Promise<void>((resolve) => {
      const stop = (): void => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    logger.info('host agent ready', {
      control: socket,
      port,
      admin: url,
      endpoint: await endpoint(),
    });
    await stopped;
    logger.info('host agent stopping');
    server.close();
    await agent.stop();
    return EXIT.OK;
  },
};

const login: Command = {
  summary: 'admit a node to a Supernet on this host (creates its namespace)',
  usage:
    'supernet login --id FILE --supernet ID --channels C[,C...] [--name NAME] [--agent SOCKET] [--json]',
  async run(argv) {
    const { values } = parse(
      argv,
      {
        id: { type: 'string' },
        supernet: { type: 'string' },
        channels: { type: 'string' },
        name: { type: 'string' },
        agent: { type: 'string' },
        json: { type: 'boolean' },
      },
      this.usage,
    );
    if (!values.id || !values.supernet || !values.channels)
      throw new CliError(EXIT.USAGE, `usage: ${this.usage}`);
    let id: Identity;
    try {
      id = Identity.load(values.id as string);
    } catch (err) {
      throw new CliError(
        err instanceof IdentityError ? EXIT.DATA : EXIT.SOFTWARE,
        (err as Error).message,
      );
    }
    const name = (values.name as string | undefined) ?? (id.label || '');
    if (!name) throw new CliError(EXIT.USAGE, '--name is required (the identity has no label)');
    const channels = (values.channels as string)
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean);
    const node = (await controlCall(
      agentSocket(values.agent as string | undefined),
      'POST',
      '/nodes',
      {
        identity: id.serialize(),
        name,
        supernet: values.supernet,
        channels,
      },
    ).catch(fromControl)) as NodeInfo;
    output(
      Boolean(values.json),
      node,
      () =>
        `${node.name} admitted to ${node.supernet}: ${node.vip} on ${node.channels.join(',')} (namespace ${node.ns})\n`,
    );
    return EXIT.OK;
  },
};

const logout: Command = {
  summary: 'log a node out of its Supernet and remove it from this host',
  usage: 'supernet logout NODE [--supernet ID] [--agent SOCKET]',
  async run(argv) {
    const { values, positionals } = parse(
      argv,
      { supernet: { type: 'string' }, agent: { type: 'string' } },
      this.usage,
    );
    if (positionals.length !== 1) throw new CliError(EXIT.USAGE, `usage: ${this.usage}`);
    const sock = agentSocket(values.agent as string | undefined);
    const node = await findNode(sock, positionals[0]!, values.supernet as string | undefined);
    await controlCall(
      sock,
      'DELETE',
      `/nodes/${encodeURIComponent(node.supernet)}/${encodeURIComponent(node.name)}`,
    ).catch(fromControl);
    process.stdout.write(`${node.name} logged out of ${node.supernet}\n`);
    return EXIT.OK;
  },
};

async function findNode(
  sock: string,
  name: string,
  supernet: string | undefined,
): Promise<NodeInfo> {
  const { nodes } = (await controlCall(sock, 'GET', '/nodes').catch(fromControl)) as {
    nodes: NodeInfo[];
  };
  return pickNode(nodes, name, supernet);
}

const exec: Command = {
  summary: 'run a stock program inside a node (its network is the Supernet)',
  usage: 'supernet exec NODE [--supernet ID] [--agent SOCKET] -- COMMAND [ARGS...]',
  async run(argv) {
    const dd = argv.indexOf('--');
    if (dd < 0 || dd === argv.length - 1) throw new CliError(EXIT.USAGE, `usage: ${this.usage}`);
    const { values, positionals } = parse(
      argv.slice(0, dd),
      { supernet: { type: 'string' }, agent: { type: 'string' } },
      this.usage,
    );
    if (positionals.length !== 1) throw new CliError(EXIT.USAGE, `usage: ${this.usage}`);
    const node = await findNode(
      agentSocket(values.agent as string | undefined),
      positionals[0]!,
      values.supernet as string | undefined,
    );
    const cmd = argv.slice(dd + 1);
    // The node's /etc files must be its own: while configfs is down (the
    // agent restarts it within about a second) wait, then refuse.
    const cfs = await awaitConfigfs(node.ns, CONFIGFS_WAIT_MS);
    if (cfs.state === 'down')
      throw new CliError(
        EXIT.UNAVAILABLE,
        `configfs is not running (nothing serves ${cfs.mountpoint}): ${node.name} would have no name service; the host agent restarts it, try again`,
      );
    // `ip netns exec` enters the node's network namespace in a private mount
    // namespace (with /sys remounted for it, /etc files bound to configfs);
    // then the node's host name and masks (net/node-exec.ts), then the program.
    const [file, ...args] = nodeExecArgv(node.ns, node.name, cmd);
    const child = spawn(file!, args, { stdio: 'inherit' });
    return new Promise((resolve) => {
      child.on('error', (err) => {
        process.stderr.write(`supernet exec: ${err.message}\n`);
        resolve(EXIT.UNAVAILABLE);
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : EXIT.SOFTWARE)));
    });
  },
};

const status: Command = {
  summary: 'show the host agent: nodes, channels, peers, keys, counters',
  usage: 'supernet status [--agent SOCKET] [--json]',
  async run(argv) {
    const { values } = parse(
      argv,
      { agent: { type: 'string' }, json: { type: 'boolean' } },
      this.usage,
    );
    const s = (await controlCall(
      agentSocket(values.agent as string | undefined),
      'GET',
      '/status',
    ).catch(fromControl)) as StatusView;
    output(Boolean(values.json), s, () => formatStatus(s));
    return EXIT.OK;
  },
};

interface StatusView {
  endpoint: Endpoint | null;
  /** Which AEAD seals and opens packets: the native addon, or the slower node:crypto fallback. */
  packetAead?: string;
  drops: Record<string, number>;
  nodes: Array<
    NodeInfo & {
      counters: Record<string, number>;
      peers: Array<{ name: string; vip: string; sendChannel: number; endpoint: string | null }>;
    }
  >;
  services?: {
    dns: { suffix: string; resolver: Record<string, number> };
    configfs: {
      mountpoint: string;
      pid?: number | null;
      mounted?: boolean;
      restarts?: number;
    } | null;
  } | null;
}

function formatStatus(s: StatusView): string {
  const lines: string[] = [];
  lines.push(`endpoint ${s.endpoint ? `${s.endpoint.host}:${s.endpoint.port}` : '-'}`);
  if (s.packetAead === 'node')
    lines.push('packet AEAD node:crypto (the native addon is not built or is disabled: slower)');
  else if (s.packetAead) lines.push(`packet AEAD ${s.packetAead}`);
  for (const n of s.nodes) {
    const c = n.counters;
    lines.push(
      `node ${n.name}  supernet ${n.supernet}  vip ${n.vip}  channels ${n.channels.join(',')}  ns ${n.ns}`,
      `  tx ${c.txPackets} pkts ${c.txBytes} B   rx ${c.rxPackets} pkts ${c.rxBytes} B   no-route ${c.txNoRoute}  no-key ${c.txNoKey}`,
    );
    for (const p of n.peers) {
      lines.push(
        `  peer ${p.name.padEnd(12)} ${p.vip.padEnd(15)} via 0x${p.sendChannel.toString(16).padStart(2, '0')} at ${p.endpoint ?? '-'}`,
      );
    }
  }
  const drops = Object.entries(s.drops).filter(([, v]) => v > 0);
  lines.push(`drops ${drops.length ? drops.map(([k, v]) => `${k}=${v}`).join(' ') : 'none'}`);
  const sv = s.services;
  if (sv) {
    const r = sv.dns.resolver;
    lines.push(
      `dns *.${sv.dns.suffix}: ${r.queries ?? 0} queries, ${r.answered ?? 0} answered, ${r.nxdomain ?? 0} nxdomain, ${r.refused ?? 0} refused, ${(r.formerr ?? 0) + (r.dropped ?? 0)} malformed`,
    );
    const c = sv.configfs;
    lines.push(
      c
        ? `configfs ${c.mountpoint} ${c.mounted === false ? 'DOWN' : 'up'}${c.pid ? ` pid ${c.pid}` : ''}${c.restarts ? ` restarts ${c.restarts}` : ''}`
        : 'configfs off (nodes read the host /etc files)',
    );
  }
  return lines.join('\n') + '\n';
}

export const netCommands: Record<string, Command> = {
  'id new': idNew,
  'id show': idShow,
  'host start': hostStart,
  login,
  logout,
  exec,
  status,
  monitor: monitorCommand,
};
