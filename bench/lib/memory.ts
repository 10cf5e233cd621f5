/**
 * Resident memory of a process, for the "host agent with 10 nodes" and
 * "admin service with 1,000 admitted nodes" measurements (issue text in
 * bench/net.ts). The hooks that bring those loads up are the integrator's;
 * they read the number with {@link rssOf}.
 */
import { readFile } from 'node:fs/promises';

/** A memory measurement a hook returns. */
export interface MemoryReading {
  /** resident set size, bytes (VmRSS) */
  rssBytes: number;
  /** peak resident set size, bytes (VmHWM), when known */
  peakBytes?: number;
  /** the load it was measured under, e.g. 10 (nodes) or 1000 (admitted nodes) */
  count: number;
  /** free text for the docs, e.g. how the load was made */
  note?: string;
}

/** VmRSS and VmHWM of `pid` in bytes, from /proc/PID/status. */
export async function rssOf(pid: number): Promise<{ rssBytes: number; peakBytes: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => {
    throw new Error(`rssOf: no process ${pid}`);
  });
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s*(\\d+) kB$`, 'm').exec(status);
    if (!m) throw new Error(`rssOf: /proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
