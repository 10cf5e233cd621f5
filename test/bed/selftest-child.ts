/**
 * A separate program the test bed's own e2e test (test/e2e/testbed.test.ts)
 * runs to prove the safety nets: it builds a bed, starts a tracked and an
 * untracked process inside it, prints one JSON line describing them, and
 * then dies the way argv[2] says:
 *
 *   throw    an uncaught exception → the 'exit' handler (and guardian) clean up
 *   wait     waits for a signal    → the parent sends SIGTERM (signal handler)
 *                                    or SIGKILL (the guardian cleans up)
 *   unguarded  like wait, without a guardian: after SIGKILL only the sweeper
 *              can clean up
 */
import { TestBed } from './bed.js';
import { namespacePids } from './netns.js';

const mode = process.argv[2];
if (mode !== 'throw' && mode !== 'wait' && mode !== 'unguarded') {
  process.stderr.write('usage: selftest-child.js throw|wait|unguarded\n');
  process.exit(64);
}

const bed = await TestBed.create({ hosts: ['a', 'b'], guardian: mode !== 'unguarded' });
const tracked = bed.spawn('a', 'sleep', ['1000']);
// Not tracked by the bed: forks into its own session and returns at once.
await bed.run('b', 'setsid', ['-f', 'sleep', '1000']);

const untracked = namespacePids(bed.host('b').ns);
await bed.run(null, 'mkdir', ['-p', `${bed.dir}/mnt`]);
await bed.run(null, 'mount', ['-t', 'tmpfs', 'bedtest', `${bed.dir}/mnt`]);
process.stdout.write(
  JSON.stringify({ prefix: bed.prefix, dir: bed.dir, pids: [tracked.pid, ...untracked] }) + '\n',
);

if (mode === 'throw') {
  throw new Error('selftest-child: thrown on purpose, mid-test');
}
setInterval(() => {}, 1 << 30);
