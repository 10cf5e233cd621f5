/**
 * Micro-benchmarks of the native packet I/O addon (docs/native.md).
 *
 *   node dist/bench/native.js [seconds]        (as root; ~30 s with the default 3 s per run)
 *
 * A. UDP over loopback, one process: sender and receiver binds keep up to
 *    1024 datagrams of 1400 bytes in flight; node:dgram vs native
 *    (recvmmsg/sendmmsg) vs native with UDP GSO/GRO.
 * B. TCP (iperf3, one stream) between two namespaces whose TUNs are joined by
 *    a JS forwarder (writeMany per batch), plain vs offload (TSO4) TUNs.
 * C. The same, with the packets crossing a pair of UDP binds on loopback in
 *    between (TUN -> bind -> bind -> TUN, no crypto): the host agent's data path
 *    shape; plain vs offload + GSO/GRO.
 * Prints a Markdown table. Numbers are for comparing modes on one machine.
 */

import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  ipv4ToU32,
  openBind,
  openDgramBind,
  type BindOptions,
  type DatagramBind,
} from '../net/bind.js';
import { openTun, type TunDevice } from '../net/tun.js';

const run = promisify(execFile);
const LOOPBACK = ipv4ToU32('127.0.0.1');
const SECONDS = Number(process.argv[2] ?? 3);
const rows: string[][] = [];

async function udpLoopback(
  label: string,
  open: (o: BindOptions) => Promise<DatagramBind>,
  opts: Partial<BindOptions>,
) {
  const buffers = { rcvBuf: 4 << 20, sndBuf: 4 << 20 }; // the same for node:dgram (rmem_max permitting)
  const a = await open({ port: 0, host: '127.0.0.1', ...buffers, ...opts });
  const b = await open({ port: 0, host: '127.0.0.1', ...buffers, ...opts });
  const size = 1400;
  const window = 1024;
  const payload = randomBytes(size);
  let sent = 0;
  let received = 0;
  let running = true;
  let pumping = false;
  const pump = (): void => {
    if (pumping) return;
    pumping = true;
    while (running && sent - received < window - 64) {
      for (let i = 0; i < 64; i++) a.send(payload, 0, size, LOOPBACK, b.port);
      a.flush();
      sent += 64;
    }
    pumping = false;
  };
  b.onDatagrams((batch) => {
    received += batch.count;
    if (sent - received < window / 2) setImmediate(pump);
  });
  // Datagrams lost to a full receive buffer would stall the window: if nothing
  // arrived for 20 ms, write the in-flight ones off.
  let seen = -1;
  const topUp = setInterval(() => {
    if (received === seen) received = sent;
    seen = received;
    pump();
  }, 20);
  const t0 = process.hrtime.bigint();
  const start = b.stats.rxDatagrams;
  pump();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  running = false;
  clearInterval(topUp);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const n = b.stats.rxDatagrams - start;
  rows.push([
    'A',
    label,
    `${Math.round(n / secs / 1000)} k datagrams/s`,
    `${Math.round((n * size * 8) / secs / 1e6)} Mbit/s payload`,
    `drops ${b.stats.rxKernelDrops}`,
  ]);
  a.close();
  b.close();
}

const PREFIX = `snB${randomBytes(2).toString('hex')}`;
const made: string[] = [];
function cleanup(): void {
  for (const ns of made.splice(0)) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // gone
    }
  }
}
process.on('exit', cleanup);

async function netns(name: string): Promise<void> {
  await run('ip', ['netns', 'add', name]);
  made.push(name);
}

async function attach(dev: string, ns: string, addr: string, peer: string): Promise<void> {
  for (const args of [
    ['link', 'set', dev, 'netns', ns],
    ['-n', ns, 'link', 'set', 'lo', 'up'],
    ['-n', ns, 'link', 'set', dev, 'mtu', '1420'],
    ['-n', ns, 'addr', 'add', `${addr}/32`, 'dev', dev],
    ['-n', ns, 'link', 'set', dev, 'up'],
    ['-n', ns, 'route', 'add', `${peer}/32`, 'dev', dev],
  ]) {
    await run('ip', args);
  }
}

/** iperf3 -c from nsA to nsB's server; returns received Mbit/s. */
async function iperf(nsA: string, nsB: string, server: string): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', nsB, 'iperf3', '-s', '-1', '-B', server], {
    stdio: 'ignore',
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const { stdout } = await run('ip', [
      'netns',
      'exec',
      nsA,
      'iperf3',
      '-c',
      server,
      '-t',
      String(SECONDS),
      '-J',
    ]);
    const j = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    srv.kill();
  }
}

async function tunPair(
  label: string,
  offload: boolean,
  via?: { opts: Partial<BindOptions> },
): Promise<void> {
  const tag = `${offload ? 'o' : 'p'}${via ? 'u' : 'd'}`;
  const nsA = `${PREFIX}${tag}a`;
  const nsB = `${PREFIX}${tag}b`;
  await netns(nsA);
  await netns(nsB);
  const a: TunDevice = openTun({ name: `${PREFIX}${tag}a`, offload });
  const b: TunDevice = openTun({ name: `${PREFIX}${tag}b`, offload });
  const binds: DatagramBind[] = [];
  if (!via) {
    a.onPackets((x) => b.writeMany(x.buf, x.offsets, x.lengths, x.count));
    b.onPackets((x) => a.writeMany(x.buf, x.offsets, x.lengths, x.count));
  } else {
    const ua = await openBind({ port: 0, host: '127.0.0.1', ...via.opts });
    const ub = await openBind({ port: 0, host: '127.0.0.1', ...via.opts });
    binds.push(ua, ub);
    const link = (tun: TunDevice, from: DatagramBind, to: DatagramBind, other: TunDevice) => {
      tun.onPackets((x) => {
        for (let i = 0; i < x.count; i++)
          from.send(x.buf, x.offsets[i]!, x.lengths[i]!, LOOPBACK, to.port);
        from.flush();
      });
      to.onDatagrams((d) => other.writeMany(d.buf, d.offsets, d.lengths, d.count));
    };
    link(a, ua, ub, b);
    link(b, ub, ua, a);
  }
  try {
    await attach(a.name, nsA, '10.210.0.1', '10.210.0.2');
    await attach(b.name, nsB, '10.210.0.2', '10.210.0.1');
    const mbit = await iperf(nsA, nsB, '10.210.0.2');
    rows.push([
      via ? 'C' : 'B',
      label,
      `${Math.round(mbit)} Mbit/s`,
      `super-packets split ${a.stats.rxSuperPackets + b.stats.rxSuperPackets}, merged ${a.stats.txSuperPackets + b.stats.txSuperPackets}`,
      `TUN write errors ${a.stats.txErrors + b.stats.txErrors}`,
    ]);
  } finally {
    a.close();
    b.close();
    for (const x of binds) x.close();
    cleanup();
  }
}

async function main(): Promise<void> {
  await udpLoopback('node:dgram', openDgramBind, {});
  await udpLoopback('native recvmmsg/sendmmsg', openBind, {});
  await udpLoopback('native + GSO/GRO', openBind, { gso: true, gro: true });
  if (process.getuid?.() === 0) {
    await tunPair('TUN↔TUN, plain', false);
    await tunPair('TUN↔TUN, offload (TSO4 split)', true);
    await tunPair('TUN→UDP→TUN, plain', false, { opts: {} });
    await tunPair('TUN→UDP→TUN, offload + GSO/GRO', true, { opts: { gso: true, gro: true } });
  }
  process.stdout.write('| | mode | rate | | |\n|---|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
});
