/** What a benchmark records about the machine it ran on. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { promisify } from 'node:util';

const execp = promisify(execFile);

/** Machine facts printed with every result. */
export interface MachineInfo {
  nproc: number;
  kernel: string;
  cpu: string;
  memGiB: number;
  node: string;
  /** 1-minute load average when the benchmark started (other work on the machine skews results) */
  load1: number;
}

/** Collects {@link MachineInfo}. */
export async function machineInfo(): Promise<MachineInfo> {
  let cpu = 'unknown CPU';
  try {
    const info = await readFile('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpu;
  } catch {
    // Not Linux /proc: keep 'unknown'.
  }
  return {
    nproc: availableParallelism(),
    kernel: release(),
    cpu,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    load1: Math.round(loadavg()[0] * 100) / 100,
  };
}

/** First line a tool prints for `args` (e.g. its version), or 'not installed'. */
export async function toolVersion(cmd: string, args: string[] = ['--version']): Promise<string> {
  try {
    const { stdout, stderr } = await execp(cmd, args, { timeout: 5_000 });
    return (
      (stdout || stderr)
        .split('\n')
        .find((l) => l.trim())
        ?.trim() ?? 'unknown'
    );
  } catch {
    return 'not installed';
  }
}

/** One line for docs: "2 cores (model), 7.8 GiB, Linux 6.1.0, Node v20.11.0". */
export function describeMachine(m: MachineInfo): string {
  return `${m.nproc} cores (${m.cpu}), ${m.memGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}; 1-min load average at start ${m.load1}`;
}
