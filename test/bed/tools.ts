/**
 * Helpers tests and benchmarks share: waiting for a condition, and running
 * stock tools (ping, iperf3, curl) inside a bed namespace with their output
 * parsed into numbers.
 */
import type { BedProcess, RunResult } from './proc.js';

/** The part of a TestBed these helpers need (keeps them testable alone). */
export interface Runner {
  run(
    ns: string | null,
    cmd: string,
    args: string[],
    opts?: { timeoutMs?: number; allowFail?: boolean; input?: string },
  ): Promise<RunResult>;
  spawn(ns: string | null, cmd: string, args: string[]): BedProcess;
}

/** Options of {@link until}. */
export interface UntilOptions {
  /** what is being waited for, for the timeout message, e.g. 'h2 to answer ping' */
  what: string;
  /** default 10 s */
  timeoutMs?: number;
  /** default 100 ms */
  intervalMs?: number;
}

/**
 * Calls `fn` until it returns a truthy value, which it then returns. A throw
 * counts as "not yet". After `timeoutMs` it throws an error naming `what`
 * and quoting the last error or value.
 */
export async function until<T>(
  fn: () => T | Promise<T>,
  opts: UntilOptions,
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = `last result: ${JSON.stringify(v)}`;
    } catch (e) {
      last = `last error: ${(e as Error).message}`;
    }
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what} (${last})`);
    await new Promise((r) =>
      setTimeout(r, Math.min(intervalMs, Math.max(1, deadline - Date.now()))),
    );
  }
}

/** Parsed summary of a ping run. */
export interface PingResult {
  transmitted: number;
  received: number;
  /** 0..100 */
  lossPct: number;
  /** round-trip times in ms; null when nothing came back */
  rtt: { min: number; avg: number; max: number; mdev: number } | null;
  /** ping's exit code: 0 all fine, 1 no or partial reply, 2 error (e.g. unreachable) */
  code: number;
  /** ping's complaint when it could not send at all */
  error?: string;
}

/** Parses iputils ping output (the two summary lines). */
export function parsePing(stdout: string, stderr = '', code = 0): PingResult {
  const counts = /(\d+) packets transmitted, (\d+) received/.exec(stdout);
  const rttLine = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(stdout);
  const transmitted = counts ? Number(counts[1]) : 0;
  const received = counts ? Number(counts[2]) : 0;
  const result: PingResult = {
    transmitted,
    received,
    lossPct: transmitted ? (100 * (transmitted - received)) / transmitted : 100,
    rtt: rttLine
      ? {
          min: Number(rttLine[1]),
          avg: Number(rttLine[2]),
          max: Number(rttLine[3]),
          mdev: Number(rttLine[4]),
        }
      : null,
    code,
  };
  if (!counts) result.error = stderr.trim() || stdout.trim() || `ping exited with ${code}`;
  return result;
}

/** Options of {@link ping}. */
export interface PingOptions {
  /** default 3 */
  count?: number;
  /** seconds between packets, default 0.2 (below 0.2 needs root, which we are) */
  intervalS?: number;
  /** seconds to wait for each reply, default 1 */
  waitS?: number;
  /** payload bytes */
  size?: number;
}

/**
 * Pings `addr` from namespace `ns`. Never throws for an unreachable target:
 * the result says what happened (loss 100 %, `error` when ping could not send).
 */
export async function ping(
  bed: Runner,
  ns: string | null,
  addr: string,
  opts: PingOptions = {},
): Promise<PingResult> {
  const count = opts.count ?? 3;
  const intervalS = opts.intervalS ?? 0.2;
  const waitS = opts.waitS ?? 1;
  const args = ['-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', String(waitS)];
  if (opts.size !== undefined) args.push('-s', String(opts.size));
  args.push(addr);
  const r = await bed.run(ns, 'ping', args, {
    allowFail: true,
    timeoutMs: Math.ceil((count * intervalS + waitS) * 1000) + 10_000,
  });
  return parsePing(r.stdout, r.stderr, r.code);
}

/** Parsed result of an iperf3 client run. */
export interface Iperf3Result {
  /** receiver-side throughput (what arrived), bits/s */
  bitsPerSecond: number;
  /** sender-side throughput, bits/s */
  sentBitsPerSecond: number;
  /** TCP retransmits reported by the sender (0 for UDP) */
  retransmits: number;
  /** bytes received */
  bytes: number;
  seconds: number;
  streams: number;
  /** UDP only: lost datagrams in percent */
  lostPct?: number;
  /** the full --json document */
  raw: unknown;
}

interface Iperf3Sum {
  bytes?: number;
  bits_per_second?: number;
  retransmits?: number;
  seconds?: number;
  lost_percent?: number;
}

/** Parses `iperf3 --json` client output; throws with iperf3's own error message. */
export function parseIperf3(json: string): Iperf3Result {
  let doc: {
    error?: string;
    start?: { test_start?: { num_streams?: number } };
    end?: { sum_sent?: Iperf3Sum; sum_received?: Iperf3Sum; sum?: Iperf3Sum };
  };
  try {
    doc = JSON.parse(json);
  } catch {
    throw new Error(`iperf3 printed no JSON: ${json.slice(0, 300)}`);
  }
  if (doc.error) throw new Error(`iperf3: ${doc.error}`);
  const end = doc.end ?? {};
  const streams = doc.start?.test_start?.num_streams ?? 1;
  if (end.sum_received && end.sum_sent) {
    return {
      bitsPerSecond: end.sum_received.bits_per_second ?? 0,
      sentBitsPerSecond: end.sum_sent.bits_per_second ?? 0,
      retransmits: end.sum_sent.retransmits ?? 0,
      bytes: end.sum_received.bytes ?? 0,
      seconds: end.sum_received.seconds ?? end.sum_sent.seconds ?? 0,
      streams,
      raw: doc,
    };
  }
  if (end.sum) {
    return {
      bitsPerSecond: (end.sum.bits_per_second ?? 0) * (1 - (end.sum.lost_percent ?? 0) / 100),
      sentBitsPerSecond: end.sum.bits_per_second ?? 0,
      retransmits: 0,
      bytes: end.sum.bytes ?? 0,
      seconds: end.sum.seconds ?? 0,
      streams,
      lostPct: end.sum.lost_percent ?? 0,
      raw: doc,
    };
  }
  throw new Error('iperf3 JSON has no end summary');
}

/**
 * Starts an iperf3 server in `ns` (bound to `bind` when given) and waits
 * until it listens. Stop it with `.stop()` (teardown does it otherwise).
 */
export async function iperf3Server(
  bed: Runner,
  ns: string | null,
  opts: { port?: number; bind?: string } = {},
): Promise<BedProcess> {
  // --forceflush: to a pipe iperf3 would otherwise block-buffer its banner.
  const args = ['-s', '-p', String(opts.port ?? 5201), '--forceflush'];
  if (opts.bind) args.push('-B', opts.bind);
  const p = bed.spawn(ns, 'iperf3', args);
  try {
    await p.waitForOutput(/Server listening on/, 10_000);
  } catch (e) {
    await p.stop();
    throw e;
  }
  return p;
}

/** Options of {@link iperf3}. */
export interface Iperf3Options {
  port?: number;
  /** test length, default 10 s */
  seconds?: number;
  /** parallel streams (-P), default 1 */
  parallel?: number;
  /** server sends (-R) */
  reverse?: boolean;
  /** UDP at this bitrate (e.g. '100M') instead of TCP */
  udpBitrate?: string;
  /** skip the first N seconds (TCP slow start) in the totals (-O) */
  omitS?: number;
}

/** Runs an iperf3 client in `ns` against `server`; throws iperf3's error when the test fails. */
export async function iperf3(
  bed: Runner,
  ns: string | null,
  server: string,
  opts: Iperf3Options = {},
): Promise<Iperf3Result> {
  const seconds = opts.seconds ?? 10;
  const args = ['-c', server, '-p', String(opts.port ?? 5201), '-t', String(seconds), '--json'];
  if (opts.parallel && opts.parallel > 1) args.push('-P', String(opts.parallel));
  if (opts.reverse) args.push('-R');
  if (opts.udpBitrate) args.push('-u', '-b', opts.udpBitrate);
  if (opts.omitS) args.push('-O', String(opts.omitS));
  const r = await bed.run(ns, 'iperf3', args, {
    allowFail: true,
    timeoutMs: (seconds + (opts.omitS ?? 0)) * 1000 + 30_000,
  });
  return parseIperf3(r.stdout);
}

/** What curl did. */
export interface CurlResult {
  /** HTTP status; 0 when no response arrived */
  status: number;
  body: string;
  /** curl's exit code (0 ok, 7 connection refused, 28 timeout, ...) */
  code: number;
  /** total time in seconds */
  timeS: number;
  /** curl's error message when it failed */
  error?: string;
}

/** Options of {@link curl}. */
export interface CurlOptions {
  /** whole-transfer limit, default 10 s */
  timeoutS?: number;
  method?: string;
  /** request body (sent with --data-binary) */
  data?: string;
  headers?: Record<string, string>;
}

/** Marker between body and the write-out block: improbable in a body. */
const CURL_SEP = '\n--supernet-curl-writeout--\n';

/** Fetches `url` with curl from namespace `ns`. Never throws for network errors (see `code`). */
export async function curl(
  bed: Runner,
  ns: string | null,
  url: string,
  opts: CurlOptions = {},
): Promise<CurlResult> {
  const timeoutS = opts.timeoutS ?? 10;
  const args = [
    '-sS',
    '--max-time',
    String(timeoutS),
    '-w',
    `${CURL_SEP}%{http_code} %{time_total}`,
  ];
  if (opts.method) args.push('-X', opts.method);
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`);
  if (opts.data !== undefined) args.push('--data-binary', '@-');
  args.push('--', url);
  const r = await bed.run(ns, 'curl', args, {
    allowFail: true,
    timeoutMs: timeoutS * 1000 + 10_000,
    input: opts.data,
  });
  const cut = r.stdout.lastIndexOf(CURL_SEP);
  const body = cut >= 0 ? r.stdout.slice(0, cut) : r.stdout;
  const [status, time] = (cut >= 0 ? r.stdout.slice(cut + CURL_SEP.length) : '0 0')
    .trim()
    .split(' ');
  const result: CurlResult = {
    status: Number(status) || 0,
    body,
    code: r.code,
    timeS: Number(time) || 0,
  };
  if (r.code !== 0) result.error = r.stderr.trim() || `curl exited with ${r.code}`;
  return result;
}
