/**
 * `node dist/bench/fs.js [--mib N] [--files N] [--runs N] [--only a,b] [--no-write-docs]`:
 * the filesystem benchmark of issue 4. In one run, on the same disk: the
 * plain directory, the Supernet fs, Debian's gocryptfs and CryFS; sequential
 * write (dd bs=1M, conv=fsync) and read (caches dropped) of N MiB, N small
 * files created and stat'ed, and untar + `ls -lR` + `rm -r` of a real source
 * tree (Node's C++ headers). Each workload runs `--runs` times on one mount,
 * the targets taking turns run by run, and the median counts (the machine
 * is shared: single runs are noisy).
 * Prints a table and replaces the `## Filesystem` section of
 * docs/benchmarks.md.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describeMachine, machineInfo, toolVersion } from './lib/machine.js';
import { benchArgs } from './lib/args.js';
import { table, writeSection } from './lib/markdown.js';

const execp = promisify(execFile);
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'dist/bin/supernet.js');
const SECTION = '## Filesystem';

const ARGS = benchArgs({
  usage: 'node dist/bench/fs.js [--mib N] [--files N] [--runs N] [--only a,b] [--no-write-docs]',
  numbers: { mib: 256, files: 2000, runs: 3 },
  strings: ['only'],
});
const MIB = ARGS.num.mib;
const FILES = ARGS.num.files;
const RUNS = ARGS.num.runs;
const ONLY = ARGS.str.only !== undefined ? ARGS.str.only.toLowerCase().split(',') : null;

interface Target {
  name: string;
  setup(dir: string): Promise<string>;
  dropCaches(mnt: string): Promise<void>;
  teardown(mnt: string): Promise<void>;
}

const sh = (
  cmd: string,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ stdout: string }> => execp('sh', ['-c', cmd], { maxBuffer: 1 << 28, ...opts });

async function dropKernel(): Promise<void> {
  await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
}

const env = (dir: string): NodeJS.ProcessEnv => ({
  ...process.env,
  SUPERNET_FS_STATE: join(dir, 'state'),
});

const targets: Target[] = [
  {
    name: 'plain directory',
    setup: async (dir) => {
      await mkdir(join(dir, 'plain'));
      return join(dir, 'plain');
    },
    dropCaches: dropKernel,
    teardown: async () => {},
  },
  {
    name: 'supernet fs',
    setup: async (dir) => {
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      await execp(
        process.execPath,
        [CLI, 'fs', 'init', join(dir, 'back'), '--key', join(dir, 'key.json')],
        { env: env(dir) },
      );
      await execp(
        process.execPath,
        [CLI, 'fs', 'mount', join(dir, 'back'), mnt, '--key', join(dir, 'key.json')],
        { env: env(dir) },
      );
      return mnt;
    },
    dropCaches: async (mnt) => {
      await dropKernel();
      const dir = resolve(mnt, '..');
      const { control, resolveState } = await import('../fs/mount.js');
      process.env.SUPERNET_FS_STATE = join(dir, 'state');
      await control(await resolveState(join(dir, 'back')), { op: 'drop-caches' });
    },
    teardown: async (mnt) => {
      // A daemon that died mid-run leaves a dead mount the CLI cannot unmount:
      // detach it, or the bench's temporary folder cannot be removed.
      await execp(process.execPath, [CLI, 'fs', 'unmount', mnt], {
        env: env(resolve(mnt, '..')),
      }).catch(async (e: unknown) => {
        await execp('fusermount', ['-uz', mnt]).catch(() => undefined);
        throw e;
      });
    },
  },
  {
    name: 'gocryptfs',
    setup: async (dir) => {
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      await mkdir(join(dir, 'cipher'));
      await sh(`gocryptfs -init -q -scryptn 10 -extpass 'echo benchpw' ${dir}/cipher`);
      await sh(`gocryptfs -q -extpass 'echo benchpw' ${dir}/cipher ${mnt}`);
      return mnt;
    },
    dropCaches: dropKernel,
    teardown: async (mnt) => {
      await execp('fusermount', ['-u', mnt]);
    },
  },
  {
    name: 'CryFS',
    setup: async (dir) => {
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      await mkdir(join(dir, 'basedir'));
      // CryFS 0.11 takes its state folder from the environment only (the
      // --local-state-dir flag of later versions makes it exit 10). Its key
      // derivation (scrypt) is fixed and slow: mounting takes up to a minute.
      await new Promise<void>((res, rej) => {
        const c = spawn('cryfs', ['--cipher', 'aes-256-gcm', join(dir, 'basedir'), mnt], {
          env: {
            ...process.env,
            CRYFS_FRONTEND: 'noninteractive',
            CRYFS_NO_UPDATE_CHECK: 'true',
            CRYFS_LOCAL_STATE_DIR: join(dir, 'cryfs-state'),
          },
          stdio: ['pipe', 'ignore', 'pipe'],
        });
        let err = '';
        c.stderr.on('data', (d) => (err += d));
        c.stdin.end('benchpw\n');
        c.on('exit', (code) =>
          code === 0 ? res() : rej(new Error(`cryfs exited ${code}: ${err.trim().slice(-300)}`)),
        );
      });
      return mnt;
    },
    dropCaches: dropKernel,
    teardown: async (mnt) => {
      await execp('fusermount', ['-u', mnt]);
    },
  },
];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row {
  name: string;
  /** MiB/s */
  write: number;
  read: number;
  /** seconds */
  small: number;
  tree: number;
  error?: string;
}

/** A mounted target and its timings so far. */
interface Live {
  t: Target;
  mnt: string;
  w: number[];
  r: number[];
  s: number[];
  tr: number[];
  error?: string;
}

/** One run of every workload on one target, its timings appended. */
async function runOnce(l: Live, run: number, tarball: string): Promise<void> {
  const { t, mnt } = l;
  l.w.push(
    await timed(() =>
      sh(`dd if=/dev/zero of=${mnt}/big bs=1M count=${MIB} conv=fsync status=none`),
    ),
  );
  await t.dropCaches(mnt);
  l.r.push(await timed(() => sh(`dd if=${mnt}/big of=/dev/null bs=1M status=none`)));
  await sh(`rm ${mnt}/big`);
  const d = `${mnt}/small${run}`;
  l.s.push(
    await timed(() =>
      execp(process.execPath, [
        '-e',
        `const fs=require('fs');const d=${JSON.stringify(d)};fs.mkdirSync(d);` +
          `for(let i=0;i<${FILES};i++)fs.writeFileSync(d+'/f'+i,'small file '+i+'\\n');` +
          `for(let i=0;i<${FILES};i++)fs.statSync(d+'/f'+i);`,
      ]),
    ),
  );
  const tree = `${mnt}/tree${run}`;
  l.tr.push(
    await timed(async () => {
      await sh(`mkdir ${tree} && tar -xf ${tarball} -C ${tree}`);
      await sh(`ls -lR ${tree} > /dev/null`);
      await sh(`rm -r ${tree}`);
    }),
  );
  process.stderr.write(
    `  ${t.name} run ${run + 1}: write ${(MIB / l.w.at(-1)!).toFixed(0)} MiB/s, read ${(MIB / l.r.at(-1)!).toFixed(0)} MiB/s, ` +
      `small ${l.s.at(-1)!.toFixed(2)} s, tree ${l.tr.at(-1)!.toFixed(2)} s\n`,
  );
}

const firstLine = (e: unknown): string => String((e as Error).message ?? e).split('\n')[0]!;

/**
 * Mounts every target, then runs the workloads round-robin: run k of every
 * target before run k + 1 of any, so a drift of the machine during the
 * bench (other work, the disk's own moods) falls on all targets alike
 * instead of on whichever ran last.
 */
async function benchAll(selected: Target[], base: string, tarball: string): Promise<Row[]> {
  const live: Live[] = [];
  try {
    for (const t of selected) {
      const dir = join(base, t.name.replace(/\W+/g, '-'));
      await mkdir(dir, { recursive: true });
      const l: Live = { t, mnt: '', w: [], r: [], s: [], tr: [] };
      try {
        l.mnt = await t.setup(dir);
      } catch (e) {
        l.error = firstLine(e);
        process.stderr.write(`  ${t.name} FAILED to mount: ${l.error}\n`);
      }
      live.push(l);
    }
    for (let run = 0; run < RUNS; run++) {
      process.stderr.write(`bench fs: run ${run + 1} of ${RUNS}\n`);
      for (const l of live) {
        if (l.error) continue;
        try {
          await runOnce(l, run, tarball);
        } catch (e) {
          l.error = firstLine(e);
          process.stderr.write(`  ${l.t.name} FAILED: ${l.error}\n`);
        }
      }
    }
  } finally {
    for (const l of live)
      if (l.mnt)
        await l.t
          .teardown(l.mnt)
          .catch((e) => process.stderr.write(`teardown ${l.t.name}: ${e}\n`));
  }
  return live.map((l) =>
    l.error
      ? { name: l.t.name, write: NaN, read: NaN, small: NaN, tree: NaN, error: l.error }
      : {
          name: l.t.name,
          write: MIB / median(l.w),
          read: MIB / median(l.r),
          small: median(l.s),
          tree: median(l.tr),
        },
  );
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  const versions = {
    gocryptfs: await toolVersion('gocryptfs', ['-version']),
    cryfs: await toolVersion('cryfs', ['--version']),
  };
  const base = await mkdtemp('/var/tmp/snfs-bench-');
  const rows: Row[] = [];
  let files: number;
  try {
    const tarball = join(base, 'src.tar');
    await sh(`tar -cf ${tarball} -C /usr/include node`);
    files = Number((await sh(`tar -tf ${tarball} | wc -l`)).stdout.trim());
    const selected = targets.filter(
      (t) => !ONLY || ONLY.some((o) => o && t.name.toLowerCase().includes(o)),
    );
    rows.push(...(await benchAll(selected, base, tarball)));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  const num = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const md = table(
    [
      'target',
      'seq write MiB/s',
      'seq read MiB/s',
      `${FILES} small files create+stat, s`,
      'untar + ls -lR + rm -r, s',
    ],
    rows.map((r) => [r.name, num(r.write, 0), num(r.read, 0), num(r.small, 2), num(r.tree, 2)]),
    ['l', 'r', 'r', 'r', 'r'],
  );
  const go = rows.find((r) => r.name === 'gocryptfs');
  const cry = rows.find((r) => r.name === 'CryFS');
  const sn = rows.find((r) => r.name === 'supernet fs');
  const lines: string[] = [];
  if (sn && go && !go.error && !sn.error) {
    const ok = (b: boolean): string => (b ? 'met' : 'NOT met');
    lines.push(
      `Supernet fs vs gocryptfs: write ${(sn.write / go.write).toFixed(2)}×, read ${(sn.read / go.read).toFixed(2)}× ` +
        `(target ≥ 1.0×: ${ok(sn.write >= go.write)}, ${ok(sn.read >= go.read)}); ` +
        `small files ${(sn.small / go.small).toFixed(2)}× its time, tree ${(sn.tree / go.tree).toFixed(2)}× its time ` +
        `(target ≤ 1.5×: ${ok(sn.small <= 1.5 * go.small)}, ${ok(sn.tree <= 1.5 * go.tree)}).`,
    );
  }
  if (sn && cry && !cry.error && !sn.error) {
    const faster =
      sn.write > cry.write && sn.read > cry.read && sn.small < cry.small && sn.tree < cry.tree;
    lines.push(
      `Supernet fs vs CryFS: write ${(sn.write / cry.write).toFixed(2)}×, read ${(sn.read / cry.read).toFixed(2)}×, ` +
        `small files ${(sn.small / cry.small).toFixed(2)}× its time, tree ${(sn.tree / cry.tree).toFixed(2)}× its time ` +
        `(target: faster on everything: ${faster ? 'met' : 'NOT met'}).`,
    );
  }
  for (const r of rows) if (r.error) lines.push(`${r.name}: FAILED in this run: ${r.error}`);
  process.stdout.write(`${md}\n\n${lines.join('\n')}\n`);
  if (!ARGS.writeDocs) return;
  const command =
    process.env.BENCH_COMMAND ?? ['node dist/bench/fs.js', ...process.argv.slice(2)].join(' ');
  const section =
    `${SECTION}\n\n` +
    `Measured ${new Date().toISOString().slice(0, 10)} on ${describeMachine(machine)}. ${versions.gocryptfs}; ${versions.cryfs}.\n\n` +
    `Command (as root): \`${command}\`\n\n` +
    `All targets mounted at once on the same disk (\`/var/tmp\`) and measured in turn: ${MIB} MiB written with ` +
    `\`dd bs=1M conv=fsync\` and read back with \`dd bs=1M\` after dropping the kernel's caches (and the ` +
    `Supernet daemon's own, via its control socket); ${FILES} small files written and stat'ed by one Node ` +
    `process; the tree is Node's C++ headers (${files} entries) untarred, listed with \`ls -lR\` and removed. ` +
    `Each workload ran ${RUNS} times on one mount, round-robin (run k on every target before run k + 1 on any, so a drift of the machine falls on all alike); the table shows the median. gocryptfs and CryFS run ` +
    `with their defaults except AES-256-GCM for CryFS (the Supernet fs uses AES-256-GCM too). Other work ` +
    `on the machine is not controlled (see the load average): compare ratios within one run.\n\n` +
    `${md}\n\n${lines.join('\n')}\n`;
  await writeSection(join(ROOT, 'docs/benchmarks.md'), SECTION, section);
}

main().catch((e) => {
  process.stderr.write(`bench fs failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
