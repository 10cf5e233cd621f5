/**
 * Host agents report each node's traffic counters to the admin service
 * (`POST /v1/stats` with the node's own session), so the administrator's
 * console can show nodes live: where they run, when they were last heard
 * from, how much they send and receive (issue 7; docs/console.md).
 *
 * Telemetry only: a failed report is logged at debug level and simply
 * replaced by the next one; nothing in the packet path waits for it.
 */
import { hostname } from 'node:os';
import type { AdminLink } from './admin-link.js';
import type { NodeCounters } from './datapath.js';
import type { Logger } from '../admin/logger.js';

/** How often (ms); the admin's console expects about this (admin/live.ts REPORT_EVERY_MS). */
export const STATS_EVERY_MS = 10_000;

/** What the agent exposes for reporting. */
export interface Reportable {
  reportables(): Array<{ name: string; token: string; counters: NodeCounters }>;
}

/** The host name as reported: the machine's name, cut to what the admin accepts. */
export function reportedHost(): string {
  return (hostname().replace(/[^A-Za-z0-9._-]/g, '-') || 'host').slice(0, 64);
}

/** Sends one report per hosted node now. */
export async function reportStats(
  agent: Reportable,
  link: AdminLink,
  logger: Logger,
  host = reportedHost(),
): Promise<void> {
  if (!link.report) return;
  await Promise.all(
    agent
      .reportables()
      .map(({ name, token, counters }) =>
        link.report!(token, { host, counters: { ...counters } }).catch((err: unknown) =>
          logger.debug('stats report failed', { node: name, err: String(err) }),
        ),
      ),
  );
}

/** Reports every `everyMs` (and once soon after start); returns the timer to clear. */
export function startStatsReports(
  agent: Reportable,
  link: AdminLink,
  logger: Logger,
  everyMs = STATS_EVERY_MS,
): NodeJS.Timeout {
  const first = setTimeout(() => void reportStats(agent, link, logger), Math.min(1000, everyMs));
  first.unref();
  const t = setInterval(() => void reportStats(agent, link, logger), everyMs);
  t.unref();
  return t;
}
