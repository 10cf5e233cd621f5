/**
 * The wireguard-go peer path (Debian wireguard-go 0.0.20220316 + wg from
 * wireguard-tools): one `wg0` in each of two bed hosts (h1 and h2 unless told), keys from `wg genkey`,
 * UDP over the bed's underlay.
 *
 * wireguard-go keeps its control socket in /var/run/wireguard (→ /run). Each
 * instance runs in a private mount namespace with a bed directory bound over
 * /run, so the machine's /run is never touched and two instances never meet;
 * `wg` is run the same way to find the socket. Stopped by PID (the bed's
 * process handle), never by name.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { until, type BedProcess, type TestBed } from '../../test/bed/bed.js';
import type { PathEnds, PathFactory } from './paths.js';

/** Addresses and parameters of the tunnel. */
export interface WireguardOptions {
  /** tunnel MTU, default 1420 (wg-quick's default for a 1500 underlay) */
  mtu?: number;
  /** UDP port on both hosts, default 51820 */
  port?: number;
  /** tunnel subnet: the first host gets .1, the second .2; default 198.19.0.0/24 (RFC 2544 range, beside the underlay's) */
  tunnelNet?: string;
  /** the two bed hosts the tunnel joins, default h1 and h2 */
  hosts?: [string, string];
}

const IFNAME = 'wg0';

/** Runs `cmd args` in `ns` inside a mount namespace where `runDir` is /run. */
function withRun(runDir: string, cmd: string, args: string[]): [string, string[]] {
  return [
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /run && exec "$@"',
      runDir,
      cmd,
      ...args,
    ],
  ];
}

/** A {@link PathFactory} for wireguard-go between two bed hosts (h1 and h2 unless told). */
export function wireguardGo(opts: WireguardOptions = {}): PathFactory {
  const mtu = opts.mtu ?? 1420;
  const port = opts.port ?? 51820;
  const net = (opts.tunnelNet ?? '198.19.0.0/24').split('/');
  const base = net[0].split('.').slice(0, 3).join('.');
  const len = net[1] ?? '24';
  return async (bed: TestBed): Promise<PathEnds> => {
    const hosts = (opts.hosts ?? ['h1', 'h2']).map((h) => bed.host(h));
    const sides = await Promise.all(
      hosts.map(async (h, i) => {
        const dir = join(bed.dir, 'wireguard', h.name);
        const runDir = join(dir, 'run');
        await mkdir(runDir, { recursive: true });
        const priv = (await bed.run(null, 'wg', ['genkey'])).stdout.trim();
        const pub = (await bed.run(null, 'wg', ['pubkey'], { input: priv + '\n' })).stdout.trim();
        return { h, dir, runDir, priv, pub, tunnelAddr: `${base}.${i + 1}` };
      }),
    );
    const daemons: BedProcess[] = [];
    const stop = async (): Promise<void> => {
      await Promise.all(daemons.map((d) => d.stop()));
    };
    try {
      for (const s of sides) {
        const [cmd, args] = withRun(s.runDir, 'wireguard-go', ['-f', IFNAME]);
        const d = bed.spawn(s.h.ns, cmd, args, { env: { LOG_LEVEL: 'error' } });
        daemons.push(d);
        const sock = join(s.runDir, 'wireguard', `${IFNAME}.sock`);
        await until(() => existsSync(sock) || !d.running, {
          what: `wireguard-go in ${s.h.ns} to open ${sock}`,
          timeoutMs: 10_000,
        });
        if (!d.running)
          throw new Error(`wireguard-go in ${s.h.ns} exited: ${d.output().slice(-500)}`);
      }
      for (const [i, s] of sides.entries()) {
        const peer = sides[1 - i];
        const conf = join(s.dir, `${IFNAME}.conf`);
        await writeFile(
          conf,
          `[Interface]\nPrivateKey = ${s.priv}\nListenPort = ${port}\n\n` +
            `[Peer]\nPublicKey = ${peer.pub}\nAllowedIPs = ${peer.tunnelAddr}/32\nEndpoint = ${peer.h.addr}:${port}\n`,
          { mode: 0o600 },
        );
        const [cmd, args] = withRun(s.runDir, 'wg', ['setconf', IFNAME, conf]);
        await bed.run(s.h.ns, cmd, args);
        await bed.run(s.h.ns, 'ip', ['addr', 'add', `${s.tunnelAddr}/${len}`, 'dev', IFNAME]);
        await bed.run(s.h.ns, 'ip', ['link', 'set', IFNAME, 'mtu', String(mtu), 'up']);
      }
    } catch (e) {
      await stop();
      throw e;
    }
    return {
      a: { ns: sides[0].h.ns, addr: sides[0].tunnelAddr },
      b: { ns: sides[1].h.ns, addr: sides[1].tunnelAddr },
      stop,
      notes: [`wireguard-go, tunnel MTU ${mtu}, UDP port ${port}`],
    };
  };
}
