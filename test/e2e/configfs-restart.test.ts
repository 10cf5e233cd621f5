/**
 * configfs survives its process being killed (issue 6, acceptance 5): node
 * processes that were running before keep running, see errors while
 * configfs is down, and see their files again after it was restarted,
 * without being restarted themselves. Processes started while it is down
 * get fail-closed placeholders, never the host's files, and are repaired too. What they see in between is measured
 * and printed (docs/dns.md §Restart has the numbers).
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { until, type BedProcess } from '../bed/bed.js';
import { mounted, setUp, type Kit } from './configfs-kit.js';
import { fileWatch, glibcWatch, samples } from '../scenario/resolver-watch.js';

let kit: Kit;
let hostResolv: string;

beforeAll(async () => {
  hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
  kit = await setUp();
  await kit.start();
}, 60_000);
afterAll(async () => {
  await kit?.teardown();
});

const FILE_WATCH = fileWatch('10.71.17.1');
const GLIBC_WATCH = glibcWatch('c1', '10.71.17.20');

describe('configfs restart', () => {
  it('brings running node processes their files back after kill -9 and restart', async () => {
    const files = kit.bed.spawn(kit.a, 'sh', ['-c', FILE_WATCH]);
    const glibc = kit.bed.spawn(kit.a, 'perl', ['-e', GLIBC_WATCH]);
    await files.waitForOutput(/\d+ ok/, 10_000);
    await glibc.waitForOutput(/\d+ ok/, 10_000);

    const tKill = Date.now();
    await kit.daemon.stop('SIGKILL', 5000);
    // Down: the running processes fail; their files are not the host's.
    await until(() => samples(files).some((s) => s.t > tKill && s.state === 'fail'), {
      what: 'the file watcher to notice',
      timeoutMs: 5000,
    });
    await until(() => !mounted(kit.mnt), { what: 'auto-unmount', timeoutMs: 5000 });
    const downFile = samples(files).filter((s) => s.t > tKill);
    // Processes started while configfs is down get the fail-closed placeholders.
    const during = await kit.bed.run(kit.a, 'cat', ['/etc/resolv.conf'], { allowFail: true });
    const lateFiles = kit.bed.spawn(kit.a, 'sh', ['-c', FILE_WATCH]);
    await lateFiles.waitForOutput(/\d+ placeholder/, 5000);
    await new Promise((r) => setTimeout(r, 200));

    const tStart = Date.now();
    await kit.start();
    const tLive = Date.now();
    await until(() => samples(files).some((s) => s.t > tLive && s.state === 'ok'), {
      what: 'the file watcher to see its file again',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    await until(() => samples(lateFiles).some((s) => s.t > tLive && s.state === 'ok'), {
      what: 'the watcher started while down to see its file',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    await until(() => samples(glibc).some((s) => s.t > tLive && s.state === 'ok'), {
      what: 'the glibc watcher to resolve again',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const firstOk = (p: BedProcess) =>
      samples(p).find((s) => s.t > tKill + 1 && s.state === 'ok')!.t;
    const report = {
      downStates: [...new Set(downFile.map((s) => `${s.state} ${s.text}`))],
      glibcDownStates: [
        ...new Set(
          samples(glibc)
            .filter((s) => s.t > tKill && s.t < tStart)
            .map((s) => `${s.state} ${s.text}`),
        ),
      ],
      newProcessWhileDown: {
        code: during.code,
        stdout: during.stdout,
        stderr: during.stderr.trim(),
      },
      lateWatcherBackAfterRestartMs: firstOk(lateFiles) - tStart,
      restartToMountedMs: tLive - tStart,
      fileBackAfterRestartMs: firstOk(files) - tStart,
      glibcBackAfterRestartMs: firstOk(glibc) - tStart,
    };
    process.stderr.write(`configfs restart measurements: ${JSON.stringify(report, null, 2)}\n`);

    // Never the host's file, neither to running processes nor to new ones.
    // (A process that was running all along is never handed the placeholder either.)
    expect(samples(files).some((s) => s.state === 'other' || s.state === 'placeholder')).toBe(
      false,
    );
    expect(samples(glibc).some((s) => s.state === 'other')).toBe(false);
    expect(during.code).toBe(0);
    expect(during.stdout).not.toContain(hostResolv.trim());
    expect(during.stdout).toMatch(/^nameserver 127\.0\.0\.1$/m);
    expect(during.stderr).not.toMatch(/Bind .* failed/);
    expect(report.downStates.every((s) => s.startsWith('fail'))).toBe(true);
    // The processes were never restarted.
    expect(files.running && glibc.running && lateFiles.running).toBe(true);
    // New processes are served again too.
    const after = await kit.bed.run(kit.a, 'cat', ['/etc/resolv.conf']);
    expect(after.stdout).toMatch(/^nameserver 10\.71\.17\.1$/m);
    await files.stop();
    await glibc.stop();
    await lateFiles.stop();
  });

  it('does the same after an orderly stop and start (upgrade)', async () => {
    const files = kit.bed.spawn(kit.a, 'sh', ['-c', FILE_WATCH]);
    await files.waitForOutput(/\d+ ok/, 10_000);
    await kit.daemon.stop('SIGTERM', 5000);
    expect(mounted(kit.mnt)).toBe(false);
    const t = Date.now();
    await kit.start();
    await until(() => samples(files).some((s) => s.t > t && s.state === 'ok'), {
      what: 'the watcher to see its file again',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    expect(samples(files).some((s) => s.state === 'other' || s.state === 'placeholder')).toBe(
      false,
    );
    await files.stop();
  });
});
