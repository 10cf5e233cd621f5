/**
 * `supernet monitor` (paper §4.7; docs/console.md §Monitor): on a host,
 * live per-Supernet/channel/node counters and drops by reason, or a packet
 * view of the decrypted inner packets of the channels this host holds keys
 * for, optionally written to a pcap file tshark and Wireshark open.
 *
 *   supernet monitor [--supernet ID] [--interval S] [--once] [--json]
 *   supernet monitor --packets [--pcap FILE] [--supernet ID] [--channel C] [--node N]
 *                    [--count N] [--duration S] [--snaplen N]
 *   supernet monitor --pcap FILE ...            (the same, without printing each packet)
 */
import { request } from 'node:http';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, EXIT, type Command } from '../bin/cli-kit.js';
import { ControlError, DEFAULT_CONTROL_SOCKET, controlCall } from './control.js';
import { FeedParser, FRAME_LOST, type FeedFrame, type MonitorSnapshot } from './monitor.js';
import { PcapWriter } from './pcap.js';
import { formatIpv4 } from './ipv4.js';
import { formatChannelId } from '../admin/ids.js';

export const MONITOR_USAGE =
  'supernet monitor [--agent SOCKET] [--supernet ID] [--channel C] [--node N] ' +
  '[--packets] [--pcap FILE] [--count N] [--duration S] [--snaplen N] [--interval S] [--once] [--json]';

const out = (s: string): void => {
  process.stdout.write(s);
};
const err = (s: string): void => {
  process.stderr.write(s);
};

type Options = NonNullable<ParseArgsConfig['options']>;
const OPTIONS: Options = {
  agent: { type: 'string' },
  supernet: { type: 'string' },
  channel: { type: 'string' },
  node: { type: 'string' },
  packets: { type: 'boolean' },
  pcap: { type: 'string' },
  count: { type: 'string' },
  duration: { type: 'string' },
  snaplen: { type: 'string' },
  interval: { type: 'string' },
  once: { type: 'boolean' },
  json: { type: 'boolean' },
};

function num(v: unknown, name: string, min: number, max: number): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new CliError(
      EXIT.USAGE,
      `--${name}: expected a number from ${min} to ${max}, got ${String(v)}`,
    );
  return n;
}

const fmtBytes = (n: number): string =>
  n < 1024
    ? `${n} B`
    : n < 1 << 20
      ? `${(n / 1024).toFixed(1)} KiB`
      : n < 1 << 30
        ? `${(n / (1 << 20)).toFixed(1)} MiB`
        : `${(n / (1 << 30)).toFixed(2)} GiB`;
const fmtRate = (bytesPerS: number | null): string =>
  bytesPerS === null ? '' : `${((bytesPerS * 8) / 1e6).toFixed(2)} Mbit/s`;

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  '))
      .join('\n') + '\n'
  );
}

/** The counter view: one screen per snapshot, with rates against the previous one. */
export function formatSnapshot(
  s: MonitorSnapshot,
  prev: MonitorSnapshot | null,
  supernet?: string,
): string {
  const dt = prev ? (s.time - prev.time) / 1000 : 0;
  const rate = (now: number, before: number | undefined): number | null =>
    prev && dt > 0 && before !== undefined && now >= before ? (now - before) / dt : null;
  const lines: string[] = [`supernet monitor  ${new Date(s.time).toISOString()}`];
  for (const sn of s.supernets) {
    if (supernet && sn.id !== supernet) continue;
    const psn = prev?.supernets.find((x) => x.id === sn.id);
    lines.push('', `Supernet ${sn.id}`);
    const rows = [
      ['  CHANNEL', 'EPOCH', 'TX PKTS', 'TX BYTES', 'RX PKTS', 'RX BYTES', 'TX RATE', 'RX RATE'],
    ];
    for (const c of sn.channels) {
      const p = psn?.channels.find((x) => x.id === c.id);
      rows.push([
        `  ${c.id}`,
        `${c.epoch}${c.epochs > 1 ? ` (+${c.epochs - 1})` : ''}`,
        String(c.txPackets),
        fmtBytes(c.txBytes),
        String(c.rxPackets),
        fmtBytes(c.rxBytes),
        fmtRate(rate(c.txBytes, p?.txBytes)),
        fmtRate(rate(c.rxBytes, p?.rxBytes)),
      ]);
    }
    lines.push(table(rows).trimEnd());
    const nrows = [
      [
        '  NODE',
        'VIP',
        'CHANNELS',
        'TX PKTS',
        'TX BYTES',
        'RX PKTS',
        'RX BYTES',
        'NO ROUTE',
        'NO KEY',
      ],
    ];
    for (const n of sn.nodes) {
      nrows.push([
        `  ${n.name}`,
        n.vip,
        n.channels.join(','),
        String(n.txPackets),
        fmtBytes(n.txBytes),
        String(n.rxPackets),
        fmtBytes(n.rxBytes),
        String(n.txNoRoute),
        String(n.txNoKey),
      ]);
    }
    lines.push(table(nrows).trimEnd());
  }
  if (s.supernets.length === 0) lines.push('', 'this host carries no nodes');
  const drops = Object.entries(s.drops).filter(([, v]) => v > 0);
  lines.push(
    '',
    `drops  ${drops.length ? drops.map(([k, v]) => `${k}=${v}`).join('  ') : 'none'}`,
    `underlay  rx ${s.underlay.rxDatagrams ?? 0} datagrams ${fmtBytes(s.underlay.rxBytes ?? 0)}  tx ${s.underlay.txDatagrams ?? 0} datagrams ${fmtBytes(s.underlay.txBytes ?? 0)}`,
  );
  return lines.join('\n') + '\n';
}

const TCP_FLAGS = ['F', 'S', 'R', 'P', '.', 'U', 'E', 'C'];

/** One line about an inner IPv4 packet: addresses, protocol, ports, flags, length. */
export function describePacket(p: Buffer, origLen: number): string {
  if (p.length < 20 || p[0]! >> 4 !== 4) return `non-IPv4 packet, ${origLen} bytes`;
  const ihl = (p[0]! & 0x0f) * 4;
  const proto = p[9]!;
  const src = formatIpv4(p.readUInt32BE(12));
  const dst = formatIpv4(p.readUInt32BE(16));
  const fragOff = p.readUInt16BE(6) & 0x1fff;
  const l4 = p.subarray(ihl);
  if (fragOff === 0 && (proto === 6 || proto === 17) && l4.length >= 4) {
    const sp = l4.readUInt16BE(0);
    const dp = l4.readUInt16BE(2);
    if (proto === 6 && l4.length >= 14) {
      const flags = TCP_FLAGS.filter((_, i) => l4[13]! & (1 << i)).join('') || '-';
      const hl = (l4[12]! >> 4) * 4;
      const payload = origLen - ihl - hl;
      return `${src}:${sp} > ${dst}:${dp} TCP [${flags}] seq ${l4.readUInt32BE(4)} len ${payload}`;
    }
    return `${src}:${sp} > ${dst}:${dp} ${proto === 6 ? 'TCP' : 'UDP'} len ${origLen - ihl - (proto === 17 ? 8 : 0)}`;
  }
  if (proto === 1 && l4.length >= 2) {
    const names: Record<number, string> = {
      0: 'echo reply',
      3: 'unreachable',
      8: 'echo request',
      11: 'time exceeded',
    };
    return `${src} > ${dst} ICMP ${names[l4[0]!] ?? `type ${l4[0]}`}${l4[0] === 0 || l4[0] === 8 ? ` id ${l4.readUInt16BE(4)} seq ${l4.readUInt16BE(6)}` : ''}, ${origLen} bytes`;
  }
  return `${src} > ${dst} proto ${proto}, ${origLen} bytes`;
}

function formatFrame(f: FeedFrame): string {
  const t = new Date(f.timeUs / 1000).toISOString().slice(11, 23);
  const dir = f.dir === 1 ? 'in ' : 'out';
  return `${t} ${f.supernet}/${formatChannelId(f.channel)} e${f.epoch} ${f.node} ${dir} ${describePacket(f.packet, f.origLen)}\n`;
}

function fromControl(e: unknown): never {
  if (e instanceof ControlError)
    throw new CliError(
      e.code === 'no_agent' ? EXIT.UNAVAILABLE : e.status >= 500 ? EXIT.SOFTWARE : EXIT.DATA,
      e.message,
    );
  throw e;
}

async function counters(socket: string, values: Record<string, unknown>): Promise<number> {
  const interval = (num(values.interval, 'interval', 0.1, 3600) ?? 1) * 1000;
  const sid = values.supernet as string | undefined;
  const tty = process.stdout.isTTY && !values.json && !values.once;
  let prev: MonitorSnapshot | null = null;
  let stop = false;
  const onSig = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    for (;;) {
      const s = (await controlCall(socket, 'GET', '/monitor/counters').catch(
        fromControl,
      )) as MonitorSnapshot;
      if (values.json) out(JSON.stringify(s) + '\n');
      else out((tty ? '\x1b[H\x1b[2J' : prev ? '\n' : '') + formatSnapshot(s, prev, sid));
      prev = s;
      if (values.once || stop) return EXIT.OK;
      await new Promise((r) => setTimeout(r, interval));
      if (stop) return EXIT.OK;
    }
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

async function packets(socket: string, values: Record<string, unknown>): Promise<number> {
  const count = num(values.count, 'count', 1, Number.MAX_SAFE_INTEGER);
  const duration = num(values.duration, 'duration', 0.1, 86_400 * 365);
  const snaplen = num(values.snaplen, 'snaplen', 20, 65535);
  const q = new URLSearchParams();
  for (const k of ['supernet', 'channel', 'node'] as const)
    if (values[k]) q.set(k, values[k] as string);
  if (snaplen !== null) q.set('snaplen', String(snaplen));
  const show = Boolean(values.packets);
  const pcapPath = values.pcap as string | undefined;
  let writer: PcapWriter | null = null;
  if (pcapPath) {
    try {
      writer = new PcapWriter(pcapPath, snaplen ?? undefined);
    } catch (e) {
      throw new CliError(EXIT.NOPERM, `--pcap ${pcapPath}: ${(e as Error).message}`);
    }
  }
  let seen = 0;
  let lost = 0;
  const what =
    [values.supernet, values.channel].filter(Boolean).join('/') ||
    'every channel this host holds keys for';
  return new Promise<number>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      req.destroy();
      writer?.close();
      err(
        `monitor: ${seen} packet${seen === 1 ? '' : 's'}${writer ? ` written to ${writer.path}` : ''}` +
          (lost ? `; ${lost} not captured (this reader fell behind)` : '') +
          '\n',
      );
      resolve(code);
    };
    const onSig = (): void => finish(EXIT.OK);
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const req = request(
      { socketPath: socket, method: 'GET', path: `/monitor/packets?${q.toString()}` },
      (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            done = true;
            writer?.close();
            process.off('SIGINT', onSig);
            process.off('SIGTERM', onSig);
            let message = `the host agent refused (${res.statusCode})`;
            try {
              message = (
                JSON.parse(Buffer.concat(chunks).toString()) as { error: { message: string } }
              ).error.message;
            } catch {
              // keep the status line
            }
            reject(new CliError(EXIT.DATA, `monitor: ${message}`));
          });
          return;
        }
        err(
          `monitor: ${writer ? `capturing to ${writer.path}` : 'showing'} decrypted packets of ${what} (Ctrl-C to stop)\n`,
        );
        if (duration !== null) timer = setTimeout(() => finish(EXIT.OK), duration * 1000);
        const parser = new FeedParser();
        res.on('data', (chunk: Buffer) => {
          if (done) return;
          let frames: FeedFrame[];
          try {
            frames = parser.push(chunk);
          } catch (e) {
            err(`monitor: ${(e as Error).message}\n`);
            return finish(EXIT.SOFTWARE);
          }
          for (const f of frames) {
            if (f.type === FRAME_LOST) {
              lost += f.origLen;
              if (show) out(`-- ${f.origLen} packets not shown (this reader fell behind)\n`);
              continue;
            }
            seen++;
            writer?.write(f.timeUs, f.packet, f.origLen);
            if (show) out(formatFrame(f));
            if (count !== null && seen >= count) return finish(EXIT.OK);
          }
        });
        res.on('end', () => finish(EXIT.OK));
        res.on('error', () => finish(EXIT.OK));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (done) return;
      done = true;
      writer?.close();
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      reject(
        new CliError(
          EXIT.UNAVAILABLE,
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
            ? `no host agent listening on ${socket} (start one with: supernet host start)`
            : `host agent on ${socket}: ${e.message}`,
        ),
      );
    });
    req.end();
  });
}

export const monitorCommand: Command = {
  summary:
    'live counters per Supernet/channel/node and drops; --packets/--pcap: decrypted inner packets',
  usage: MONITOR_USAGE,
  async run(argv) {
    let values: Record<string, unknown>;
    try {
      const r = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
      values = r.values as Record<string, unknown>;
    } catch (e) {
      throw new CliError(EXIT.USAGE, `${(e as Error).message}\nusage: ${MONITOR_USAGE}`);
    }
    const socket =
      (values.agent as string | undefined) ?? process.env.SUPERNET_AGENT ?? DEFAULT_CONTROL_SOCKET;
    if (values.packets || values.pcap) return packets(socket, values);
    for (const k of ['channel', 'node', 'count', 'duration', 'snaplen'])
      if (values[k] !== undefined)
        throw new CliError(
          EXIT.USAGE,
          `--${k} applies to the packet view: add --packets or --pcap FILE`,
        );
    return counters(socket, values);
  },
};
