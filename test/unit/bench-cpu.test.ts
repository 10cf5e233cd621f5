/**
 * bench/lib/cpu.ts against real processes: a child that burns CPU shows up
 * under its pid with the label we give it, one that burns and exits within
 * the stretch is counted as reaped, and the parts never exceed the whole.
 */
import { describe, it, expect } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { cpuBetween, cpuSnapshot, describeCpu } from '../../bench/lib/cpu.js';

const execp = promisify(execFile);
/** Spins until it has used 300 ms of CPU itself (not wall time: the machine may be busy). */
const BURN =
  'const c=()=>{const u=process.cpuUsage();return (u.user+u.system)/1e3};while(c()<300);';

describe('CPU accounting of a benchmark stretch', () => {
  it('names a running process and counts a reaped one', async () => {
    const a = await cpuSnapshot();
    expect(a.procs.get(process.pid)?.comm).toBeTruthy();
    // Burns, then waits on stdin so it is still alive at the second snapshot.
    const live = spawn(
      process.execPath,
      ['-e', `${BURN}process.stdout.write('x');process.stdin.resume()`],
      {
        stdio: ['pipe', 'pipe', 'ignore'],
      },
    );
    await new Promise((r) => live.stdout.once('data', r));
    await execp(process.execPath, ['-e', BURN]);
    const b = await cpuSnapshot();
    live.stdin.end();
    await new Promise((r) => live.once('exit', r));

    const r = cpuBetween(a, b, (pid) => (pid === live.pid ? 'burner' : undefined));
    const burner = r.procs.find((p) => p.pid === live.pid);
    expect(burner?.label).toBe('burner');
    expect(burner!.seconds).toBeGreaterThanOrEqual(0.2);
    expect(r.reapedSeconds).toBeGreaterThanOrEqual(0.2);
    const parts =
      r.procs.reduce((s, p) => s + p.seconds, 0) +
      r.reapedSeconds +
      r.softirqSeconds +
      r.otherSeconds +
      r.idleSeconds;
    // Per-process and machine counters tick separately: allow a few ticks.
    expect(parts).toBeLessThanOrEqual(r.totalSeconds + 0.1 * Math.max(1, r.procs.length));
    expect(r.wallSeconds).toBeGreaterThan(0.3);
    expect(describeCpu(r)).toMatch(/burner \d+\.\d s.*commands run by the bench/);
  });
});
