/**
 * A "path" is a way for packets to get from a process on simulated host h1 to
 * one on h2: the raw veth, a wireguard-go tunnel, a pair of Supernet nodes.
 * Every path is measured the same way by {@link measurePath}.
 */
import {
  iperf3,
  iperf3Server,
  ping,
  until,
  type Iperf3Result,
  type PingResult,
} from '../../test/bed/bed.js';
import type { TestBed } from '../../test/bed/bed.js';
import type { Logger } from './log.js';

/** One end of a path: where to run a program, and the address it is reached at. */
export interface PathEnd {
  /** namespace to run in (a bed host's or a Supernet node's) */
  ns: string;
  /** address the other end reaches it at */
  addr: string;
}

/** A path that is up: `a` is the client side (on h1), `b` the server side (on h2). */
export interface PathEnds {
  a: PathEnd;
  b: PathEnd;
  /** takes the path down again (stop daemons, remove devices) */
  stop(): Promise<void>;
  /** extra lines for the docs (e.g. the MTU the path runs at) */
  notes?: string[];
}

/** Brings a path up on a bed with hosts h1 and h2. */
export type PathFactory = (bed: TestBed) => Promise<PathEnds>;

/** Measurement parameters, the same for every path of a run. */
export interface MeasureOptions {
  /** iperf3 -t per test, ≥ 10 for published results */
  seconds: number;
  /** ping packets (at 0.2 s intervals) */
  pingCount: number;
  /** parallel streams of the second iperf3 test */
  streams: number;
  port?: number;
}

/** One path's results. */
export interface PathResult {
  name: string;
  one: Iperf3Result;
  many: Iperf3Result;
  ping: PingResult;
  notes: string[];
}

/**
 * Measures a path: waits until ping crosses it, then ping (idle path,
 * `pingCount` × 0.2 s), iperf3 TCP with 1 stream, and with `streams` streams,
 * server on `b`, client on `a`.
 */
export async function measurePath(
  bed: TestBed,
  name: string,
  ends: PathEnds,
  opts: MeasureOptions,
  logger: Logger,
): Promise<PathResult> {
  const { a, b } = ends;
  await until(async () => (await ping(bed, a.ns, b.addr, { count: 1, waitS: 1 })).received === 1, {
    what: `${name}: ${b.addr} to answer ping from ${a.ns}`,
    timeoutMs: 20_000,
    intervalMs: 200,
  });
  logger.info(`${name}: ping ×${opts.pingCount}`);
  const p = await ping(bed, a.ns, b.addr, { count: opts.pingCount, intervalS: 0.2 });
  if (!p.rtt)
    throw new Error(`${name}: no ping reply came back (${p.error ?? `${p.lossPct}% loss`})`);
  const server = await iperf3Server(bed, b.ns, { port: opts.port });
  try {
    logger.info(`${name}: iperf3 TCP, 1 stream, ${opts.seconds} s`);
    const one = await iperf3(bed, a.ns, b.addr, { seconds: opts.seconds, port: opts.port });
    logger.info(`${name}: iperf3 TCP, ${opts.streams} streams, ${opts.seconds} s`);
    const many = await iperf3(bed, a.ns, b.addr, {
      seconds: opts.seconds,
      parallel: opts.streams,
      port: opts.port,
    });
    return { name, one, many, ping: p, notes: ends.notes ?? [] };
  } finally {
    await server.stop();
  }
}

/** The raw underlay: h1's eth0 to h2's eth0 across the bridge. */
export const rawVeth: PathFactory = async (bed) => ({
  a: { ns: bed.host('h1').ns, addr: bed.host('h1').addr },
  b: { ns: bed.host('h2').ns, addr: bed.host('h2').addr },
  stop: async () => {},
  notes: [`veth + bridge, MTU ${bed.mtu}`],
});
