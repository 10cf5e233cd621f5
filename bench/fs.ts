/**
 * `node dist/bench/fs.js [--mib N] [--files N] [--no-write-docs]`: the
 * filesystem benchmark of issue 4. In one run, on the same disk: the plain
 * directory, the Supernet fs, Debian's gocryptfs and CryFS; sequential write
 * (dd bs=1M, conv=fsync) and read (caches dropped) of N MiB, N small files
 * created and stat'ed, and untar + `ls -lR` + `rm -r` of a real source tree
 * (Node's C++ headers). Prints a table and rewrites the `## Filesystem`
 * section of docs/benchmarks.md.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execp = promisify(execFile);
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'dist/bin/supernet.js');

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg('mib', 256);
const FILES = arg('files', 2000);

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
        {
          env: env(dir),
        },
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
      await execp(process.execPath, [CLI, 'fs', 'unmount', mnt], { env: env(resolve(mnt, '..')) });
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
      await new Promise<void>((res, rej) => {
        const c = spawn(
          'cryfs',
          [
            '--cipher',
            'aes-256-gcm',
            '--local-state-dir',
            join(dir, 'cryfs-state'),
            join(dir, 'basedir'),
            mnt,
          ],
          {
            env: {
              ...process.env,
              CRYFS_FRONTEND: 'noninteractive',
              CRYFS_NO_UPDATE_CHECK: 'true',
            },
            stdio: ['pipe', 'ignore', 'ignore'],
          },
        );
        c.stdin.end('benchpw\n');
        c.on('exit', (code) => (code === 0 ? res() : rej(new Error(`cryfs exited ${code}`))));
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

interface Row {
  name: string;
  write: number;
  read: number;
  small: number;
  tree: number;
}

async function bench(t: Target, base: string, tarball: string): Promise<Row> {
  const dir = join(base, t.name.replace(/\W+/g, '-'));
  await mkdir(dir, { recursive: true });
  const mnt = await t.setup(dir);
  try {
    const write = await timed(() =>
      sh(`dd if=/dev/zero of=${mnt}/big bs=1M count=${MIB} conv=fsync status=none`),
    );
    await t.dropCaches(mnt);
    const read = await timed(() => sh(`dd if=${mnt}/big of=/dev/null bs=1M status=none`));
    await sh(`rm ${mnt}/big`);
    const small = await timed(() =>
      execp(process.execPath, [
        '-e',
        `const fs=require('fs');const d=${JSON.stringify(mnt + '/small')};fs.mkdirSync(d);` +
          `for(let i=0;i<${FILES};i++)fs.writeFileSync(d+'/f'+i,'small file '+i+'\\n');` +
          `for(let i=0;i<${FILES};i++)fs.statSync(d+'/f'+i);`,
      ]),
    );
    const tree = await timed(async () => {
      await sh(`mkdir ${mnt}/tree && tar -xf ${tarball} -C ${mnt}/tree`);
      await sh(`ls -lR ${mnt}/tree > /dev/null`);
      await sh(`rm -r ${mnt}/tree`);
    });
    return { name: t.name, write: MIB / write, read: MIB / read, small, tree };
  } finally {
    await t.teardown(mnt).catch((e) => process.stderr.write(`teardown ${t.name}: ${e}\n`));
  }
}

async function main(): Promise<void> {
  const base = await mkdtemp('/var/tmp/snfs-bench-');
  try {
    const tarball = join(base, 'src.tar');
    await sh(`tar -cf ${tarball} -C /usr/include node`);
    const files = Number((await sh(`tar -tf ${tarball} | wc -l`)).stdout.trim());
    const rows: Row[] = [];
    for (const t of targets) {
      process.stderr.write(`bench fs: ${t.name}...\n`);
      rows.push(await bench(t, base, tarball));
      process.stderr.write(`  ${JSON.stringify(rows.at(-1))}\n`);
    }
    const go = rows.find((r) => r.name === 'gocryptfs')!;
    const fmt = (r: Row): string =>
      `| ${r.name} | ${r.write.toFixed(0)} | ${r.read.toFixed(0)} | ${r.small.toFixed(2)} | ${r.tree.toFixed(2)} |`;
    const sn = rows.find((r) => r.name === 'supernet fs')!;
    const table = [
      `| target | seq write MiB/s | seq read MiB/s | ${FILES} small files create+stat, s | untar + ls -lR + rm -r, s |`,
      '|---|---:|---:|---:|---:|',
      ...rows.map(fmt),
    ].join('\n');
    const ratios =
      `Supernet fs vs gocryptfs: write ${(sn.write / go.write).toFixed(2)}×, read ${(sn.read / go.read).toFixed(2)}× ` +
      `(targets ≥ 1.0×); small files ${(sn.small / go.small).toFixed(2)}× its time, tree ${(sn.tree / go.tree).toFixed(2)}× its time (targets ≤ 1.5×).`;
    process.stdout.write(`${table}\n\n${ratios}\n`);
    if (!process.argv.includes('--no-write-docs')) await writeDocs(table, ratios, files);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function writeDocs(table: string, ratios: string, files: number): Promise<void> {
  const path = join(ROOT, 'docs/benchmarks.md');
  let doc = await readFile(path, 'utf8').catch(() => '# Benchmarks\n');
  const section =
    `## Filesystem\n\n` +
    `Command: \`node dist/bench/fs.js\` (as root; ${MIB} MiB, ${FILES} files; the tree is Node's C++ headers, ${files} entries). ` +
    `All four targets in one run on the same disk (\`/var/tmp\`), kernel caches dropped (and the Supernet daemon's own ` +
    `cache, via its control socket) before the read. Measured ${new Date().toISOString().slice(0, 10)} on the 2-core machine.\n\n` +
    `${table}\n\n${ratios}\n`;
  const start = doc.indexOf('## Filesystem');
  if (start < 0) doc = doc.trimEnd() + '\n\n' + section;
  else {
    const next = doc.indexOf('\n## ', start + 1);
    doc = doc.slice(0, start) + section + (next < 0 ? '' : '\n' + doc.slice(next + 1));
  }
  await writeFile(path, doc);
}

main().catch((e) => {
  process.stderr.write(`bench fs failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
