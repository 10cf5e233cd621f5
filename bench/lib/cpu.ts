/**
 * Where the CPU went during one stretch of a benchmark: per-process user and
 * system time from /proc/PID/stat, and the machine's softirq time (packet
 * processing the kernel does outside any process) from /proc/stat. A bench
 * that is CPU-bound on a small machine needs this to say which part of the
 * path to make cheaper; wall time alone cannot tell.
 */
import { readdir, readFile } from 'node:fs/promises';
import { procStatFields } from '../../test/bed/proc.js';

/** Clock ticks per second of /proc times; Linux fixes USER_HZ at 100 on x86. */
const USER_HZ = 100;

interface ProcTimes {
  comm: string;
  ticks: number;
  /** cutime + cstime: children reaped so far */
  reaped: number;
  /** start time since boot: tells a reused pid from the same process (comm changes: kworkers rename themselves) */
  start: number;
}

/** A point-in-time reading; diff two with {@link cpuBetween}. */
export interface CpuSnapshot {
  at: number;
  procs: Map<number, ProcTimes>;
  /** user + system ticks of this process's children that have exited and been waited for */
  reaped: number;
  /** machine-wide ticks by /proc/stat column */
  machine: { user: number; system: number; softirq: number; idle: number; total: number };
}

/** One process's share of a stretch. */
export interface CpuShare {
  pid: number;
  comm: string;
  label: string;
  seconds: number;
}

/** The CPU spent between two snapshots. */
export interface CpuReport {
  wallSeconds: number;
  /** processes that used at least 1% of the stretch's CPU, most first */
  procs: CpuShare[];
  /** children of this process that ran and exited within the stretch (dd, nfs-cp, a CLI) */
  reapedSeconds: number;
  softirqSeconds: number;
  idleSeconds: number;
  /** busy time not in the lists above: processes under 1%, exited ones not ours, kernel threads */
  otherSeconds: number;
  /** all CPU time (every core) of the stretch */
  totalSeconds: number;
}

async function procTimes(pid: number): Promise<ProcTimes | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (!stat) return null;
  const f = procStatFields(stat);
  const n = (field: number): number => Number(f[field] ?? 0);
  // proc(5): utime 14, stime 15, cutime 16, cstime 17, starttime 22.
  return { comm: f[2]!, ticks: n(14) + n(15), reaped: n(16) + n(17), start: n(22) };
}

/** Reads every process's CPU time and the machine's totals. */
export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const procs = new Map<number, ProcTimes>();
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const t = await procTimes(pid);
    if (t) procs.set(pid, t);
  }
  const cpu = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.split(/\s+/).slice(1);
  const n = cpu.map(Number);
  // user nice system idle iowait irq softirq steal
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = n;
  return {
    at: Date.now(),
    procs,
    reaped: procs.get(process.pid)?.reaped ?? 0,
    machine: {
      user: user + nice,
      system: system + irq,
      softirq,
      idle: idle + iowait,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
    },
  };
}

/**
 * The CPU used between `a` and `b`. `label` names a process for the report
 * (e.g. "host agent h1"); unnamed ones go by their command name.
 */
export function cpuBetween(
  a: CpuSnapshot,
  b: CpuSnapshot,
  label: (pid: number, comm: string) => string | undefined = () => undefined,
): CpuReport {
  const totalSeconds = (b.machine.total - a.machine.total) / USER_HZ;
  const procs: CpuShare[] = [];
  for (const [pid, t] of b.procs) {
    const before = a.procs.get(pid);
    const ticks = t.ticks - (before && before.start === t.start ? before.ticks : 0);
    const seconds = ticks / USER_HZ;
    if (seconds <= 0 || seconds < totalSeconds * 0.01) continue;
    procs.push({ pid, comm: t.comm, label: label(pid, t.comm) ?? t.comm, seconds });
  }
  procs.sort((x, y) => y.seconds - x.seconds);
  const reapedSeconds = (b.reaped - a.reaped) / USER_HZ;
  const softirqSeconds = (b.machine.softirq - a.machine.softirq) / USER_HZ;
  const idleSeconds = (b.machine.idle - a.machine.idle) / USER_HZ;
  const listed = procs.reduce((sum, p) => sum + p.seconds, 0);
  return {
    wallSeconds: (b.at - a.at) / 1000,
    procs,
    reapedSeconds,
    softirqSeconds,
    idleSeconds,
    otherSeconds: Math.max(0, totalSeconds - idleSeconds - softirqSeconds - listed - reapedSeconds),
    totalSeconds,
  };
}

/** "node in h1 5.2 s, ganesha.nfsd in bigdisk1 3.1 s, …, softirq 2.0 s, idle 1.1 s". */
export function describeCpu(r: CpuReport): string {
  const parts = r.procs.map((p) => `${p.label} ${p.seconds.toFixed(1)} s`);
  parts.push(
    `commands run by the bench ${r.reapedSeconds.toFixed(1)} s`,
    `softirq ${r.softirqSeconds.toFixed(1)} s`,
    `other ${r.otherSeconds.toFixed(1)} s`,
    `idle ${r.idleSeconds.toFixed(1)} s`,
  );
  return `${parts.join(', ')} (of ${r.totalSeconds.toFixed(1)} CPU-seconds in ${r.wallSeconds.toFixed(1)} s)`;
}
