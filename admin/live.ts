/**
 * What the admin service knows about nodes right now, beyond the store:
 * their traffic counters as their host agents last reported them
 * (`POST /v1/stats`, every {@link REPORT_EVERY_MS}), when, and from which
 * host. Memory only — it is telemetry, rebuilt within one report period
 * after a restart — and bounded by the number of admitted nodes (a report
 * for a node that is not admitted is refused before it gets here).
 */
import { badField } from './errors.js';

/** How often agents report (net/stats-report.ts uses the same value). */
export const REPORT_EVERY_MS = 10_000;
const COUNTERS = ['txPackets', 'txBytes', 'rxPackets', 'rxBytes', 'txNoRoute', 'txNoKey'] as const;
export type NodeTraffic = Record<(typeof COUNTERS)[number], number>;
const MAX_HOST_LEN = 64;

export interface NodeLive {
  /** When the last report arrived (ms). */
  at: number;
  /** The host name the agent reported (informational; the endpoint is what VARP knows). */
  host: string | null;
  counters: NodeTraffic;
  /** Bytes per second over the last two reports (null until there are two). */
  txRate: number | null;
  rxRate: number | null;
}

/** Validates a report body `{host?, counters: {...}}`. */
export function parseStatsReport(body: Record<string, unknown>): {
  host: string | null;
  counters: NodeTraffic;
} {
  for (const k of Object.keys(body))
    if (k !== 'host' && k !== 'counters') throw badField(k, 'unknown field');
  let host: string | null = null;
  if (body.host !== undefined) {
    if (
      typeof body.host !== 'string' ||
      body.host.length > MAX_HOST_LEN ||
      !/^[A-Za-z0-9._-]+$/.test(body.host)
    )
      throw badField('host', `expected a host name of at most ${MAX_HOST_LEN} characters`);
    host = body.host;
  }
  const c = body.counters;
  if (typeof c !== 'object' || c === null || Array.isArray(c))
    throw badField('counters', 'expected an object of counters');
  const out = {} as NodeTraffic;
  for (const k of Object.keys(c))
    if (!(COUNTERS as readonly string[]).includes(k))
      throw badField(`counters.${k}`, 'unknown counter');
  for (const k of COUNTERS) {
    const v = (c as Record<string, unknown>)[k];
    if (!Number.isSafeInteger(v) || (v as number) < 0)
      throw badField(`counters.${k}`, 'expected an integer ≥ 0');
    out[k] = v as number;
  }
  return { host, counters: out };
}

export class LiveStats {
  private readonly nodes = new Map<string, NodeLive>();

  /** Records a report for stream key `key` (`<sid>|<name>`). */
  report(key: string, at: number, r: { host: string | null; counters: NodeTraffic }): void {
    const old = this.nodes.get(key);
    const dt = old ? (at - old.at) / 1000 : 0;
    const rate = (now: number, before: number | undefined): number | null =>
      old && dt > 0 && before !== undefined && now >= before ? (now - before) / dt : null;
    this.nodes.set(key, {
      at,
      host: r.host,
      counters: r.counters,
      txRate: rate(r.counters.txBytes, old?.counters.txBytes),
      rxRate: rate(r.counters.rxBytes, old?.counters.rxBytes),
    });
  }

  get(key: string): NodeLive | null {
    return this.nodes.get(key) ?? null;
  }

  /** Forgets nodes that are gone (expelled, logged out, dissolved). */
  forget(key: string): void {
    this.nodes.delete(key);
  }

  /** Forgets every node whose key is not in `keep`. */
  retain(keep: Set<string>): void {
    for (const k of this.nodes.keys()) if (!keep.has(k)) this.nodes.delete(k);
  }
}
