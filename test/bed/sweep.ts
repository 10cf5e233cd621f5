/**
 * Jest globalSetup for the e2e project: removes leftovers of earlier test-bed
 * runs whose owning process died without cleaning up (SIGKILL, power cut of
 * the runner). Live runs of other suites are untouched (their owners live).
 *
 *   jest.config.js, e2e project:  globalSetup: '<rootDir>/dist/test/bed/sweep.js'
 *
 * TestBed.create sweeps too, so this only makes the sweep happen once, early.
 */
import { sweepLeftovers } from './registry.js';

export default async function globalSetup(): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const swept = sweepLeftovers();
  if (swept.length)
    process.stderr.write(`test bed: swept leftovers of dead runs ${swept.join(' ')}\n`);
}
