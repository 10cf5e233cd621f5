/**
 * The benchmarks' strict command lines (bench/lib/args.ts): values and
 * defaults, and that a misspelt option or a bad number stops the run with
 * the usage and exit 64 instead of starting it (checked in a child process,
 * as the parser exits).
 */
import { describe, it, expect } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchArgs } from '../../bench/lib/args.js';

const spec = {
  usage: 'bench x [--mib N] [--only a,b] [--no-write-docs]',
  numbers: { mib: 256, runs: 3 },
  flags: ['no-write-docs'],
  strings: ['only'] as const,
};

/** Exit status and stderr of benchArgs(spec, argv) run in a fresh node. */
function child(argv: string[]): { status: number; stderr: string } {
  const lib = fileURLToPath(new URL('../../bench/lib/args.js', import.meta.url));
  const code = `import(${JSON.stringify(lib)}).then((m) => { m.benchArgs(${JSON.stringify(spec)}, ${JSON.stringify(argv)}); process.exit(5); })`;
  try {
    execFileSync(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { status: 0, stderr: '' };
  } catch (e) {
    const x = e as { status: number; stderr: Buffer };
    return { status: x.status, stderr: x.stderr.toString() };
  }
}

describe('benchArgs', () => {
  it('reads numbers, flags and strings, with defaults for what is not given', () => {
    const a = benchArgs(spec, ['--mib', '64', '--no-write-docs', '--only', 'supernet,gocryptfs']);
    expect(a.num).toEqual({ mib: 64, runs: 3 });
    expect(a.flag('no-write-docs')).toBe(true);
    expect(a.str.only).toBe('supernet,gocryptfs');
    const d = benchArgs(spec, []);
    expect(d.num).toEqual({ mib: 256, runs: 3 });
    expect(d.flag('no-write-docs')).toBe(false);
    expect(d.str.only).toBeUndefined();
  });

  it('refuses unknown options, stray arguments and numbers that are not positive integers', () => {
    expect(child(['--mib', '8'])).toEqual({ status: 5, stderr: '' }); // parsed: reached exit(5)
    for (const bad of [['--bogus'], ['extra'], ['--mib', '0'], ['--mib', '1.5'], ['--runs', 'x']]) {
      const r = child(bad);
      expect(r.status).toBe(64);
      expect(r.stderr).toContain('usage: bench x');
    }
  });
});
