/**
 * Captures real MOUNT v3 / NFSv3 replies from a running nfs-ganesha for the
 * unit tests (test/fixtures/nfs/). Not a test: run it inside the network
 * namespace of a provider started with `supernet storage serve`, e.g.
 *
 *   ip netns exec NS node dist/test/e2e/nfs-capture.js 127.0.0.1 test/fixtures/nfs/ganesha-4.3.json
 *
 * It performs a fixed sequence of operations with the project's own client
 * (plus a few deliberately bad calls on raw connections) and writes every
 * call and reply record (hex, without record marks) with a label and what
 * the unit tests may expect from decoding it.
 */
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Nfs3Client } from '../../fs/nfs/nfs3.js';
import { CREATE_MODE, NFS_PROGRAM, STABLE, ACCESS } from '../../fs/nfs/nfs3-wire.js';
import {
  AUTH_NONE,
  AUTH_SYS,
  beginCall,
  encodeAuthSys,
  finishRecord,
  RecordDecoder,
  type Program,
} from '../../fs/nfs/rpc.js';
import { XdrWriter } from '../../fs/nfs/xdr.js';

interface Rec {
  label: string;
  prog: 'mount' | 'nfs';
  proc: number;
  call: string;
  reply: string;
  expect?: Record<string, unknown>;
}

const host = process.argv[2] ?? '127.0.0.1';
const out = process.argv[3] ?? 'ganesha.json';
const records: Rec[] = [];
let label = '';
let expect: Record<string, unknown> | undefined;
const calls = new Map<number, { prog: 'mount' | 'nfs'; proc: number; call: string }>();

const tap = (dir: 'call' | 'reply', prog: 'mount' | 'nfs', proc: number, rec: Buffer): void => {
  const xid = rec.readUInt32BE(0);
  if (dir === 'call') calls.set(xid, { prog, proc, call: rec.toString('hex') });
  else {
    const c = calls.get(xid)!;
    // Unlabelled helper calls and repeats of one label are not kept.
    if (!label || (label === 'create-many' && records.some((r) => r.label === label))) return;
    records.push({ label, ...c, reply: rec.toString('hex'), expect });
  }
};

/** One call on a fresh connection with a given credential flavor (for refused calls). */
async function raw(
  p: Program,
  proc: number,
  flavor: number,
  port: number,
  args?: (w: XdrWriter) => void,
): Promise<Rec> {
  const w = new XdrWriter();
  const cred =
    flavor === AUTH_SYS
      ? encodeAuthSys({ stamp: 1, machinename: 'capture', uid: 0, gid: 0, gids: [] })
      : Buffer.alloc(0);
  const mark = beginCall(w, 0x5e0e0001 + records.length, p, proc, flavor, cred);
  args?.(w);
  finishRecord(w, mark);
  const msg = Buffer.from(w.bytes);
  return new Promise((res, rej) => {
    const s = connect({ host, port });
    const dec = new RecordDecoder();
    s.on('connect', () => s.write(msg));
    s.on('data', (d) =>
      dec.push(d, (r) => {
        s.destroy();
        res({
          label,
          prog: p.prog === NFS_PROGRAM.prog ? 'nfs' : 'mount',
          proc,
          call: msg.subarray(4).toString('hex'),
          reply: r.toString('hex'),
          expect,
        });
      }),
    );
    s.on('error', rej);
  });
}

async function step<T>(
  l: string,
  e: Record<string, unknown> | undefined,
  f: () => Promise<T>,
): Promise<T | Error> {
  label = l;
  expect = e;
  try {
    return await f();
  } catch (err) {
    return err as Error;
  }
}

async function main(): Promise<void> {
  const c = await step('mnt', { ok: true }, () =>
    Nfs3Client.mount({ host, export: '/export' }, { tap, cred: { machinename: 'capture' } }),
  );
  if (c instanceof Error) throw c;
  await step('mnt-noent', { mountstat: 13 }, () =>
    Nfs3Client.mount({ host, export: '/no-such-export' }, { tap }),
  );
  const root = c.root;
  await step('getattr-root', { type: 2 }, () => c.getattr(root));
  await step('fsinfo', {}, () => c.fsinfo());
  await step('fsstat', {}, () => c.fsstat());
  await step('access-root', { mask: ACCESS.READ | ACCESS.LOOKUP | ACCESS.MODIFY }, () =>
    c.access(root, ACCESS.READ | ACCESS.LOOKUP | ACCESS.MODIFY),
  );
  await step('mkdir', { name: 'objects', mode: 0o700 }, () =>
    c.mkdir(root, 'objects', { mode: 0o700 }),
  );
  await step('mkdir-exist', { status: 17 }, () => c.mkdir(root, 'objects', { mode: 0o700 }));
  label = '';
  const dir = (await c.lookup(root, 'objects')).fh;
  const data = Buffer.from('supernet fixture data, 37 bytes long.');
  const cr = await step('create', { name: 'f1', mode: 0o600 }, () =>
    c.create(dir, 'f1', CREATE_MODE.UNCHECKED, { mode: 0o600, size: 0 }),
  );
  if (cr instanceof Error) throw cr;
  const fh = cr.fh!;
  await step('create-guarded-exist', { status: 17 }, () =>
    c.create(dir, 'f1', CREATE_MODE.GUARDED, { mode: 0o600 }),
  );
  await step('create-exclusive', { name: 'f2' }, () =>
    c.create(dir, 'f2', CREATE_MODE.EXCLUSIVE, Buffer.from('0123abcd')),
  );
  await step('write-unstable', { count: data.length, data: data.toString('hex') }, () =>
    c.write(fh, 0, data, STABLE.UNSTABLE),
  );
  await step('commit', {}, () => c.commit(fh));
  await step('write-filesync', { count: 3, committed: STABLE.FILE_SYNC }, () =>
    c.write(fh, data.length, Buffer.from('END'), STABLE.FILE_SYNC),
  );
  await step('getattr-file', { type: 1, size: data.length + 3 }, () => c.getattr(fh));
  await step('lookup', { name: 'f1' }, () => c.lookup(dir, 'f1'));
  await step('lookup-noent', { status: 2 }, () => c.lookup(dir, 'nothing-here'));
  await step(
    'read',
    { data: Buffer.concat([data, Buffer.from('END')]).toString('hex'), eof: true },
    () => c.read(fh, 0, 4096),
  );
  await step('read-past-eof', { count: 0, eof: true }, () => c.read(fh, 10_000, 100));
  await step('setattr-truncate', { size: 5 }, () => c.setattr(fh, { size: 5 }));
  await step('rename', { from: 'f2', to: 'f3' }, () => c.rename(dir, 'f2', dir, 'f3'));
  await step('rename-noent', { status: 2 }, () => c.rename(dir, 'f2', dir, 'f4'));
  for (let i = 0; i < 40; i++) {
    label = 'create-many';
    await c.create(dir, `entry-${String(i).padStart(3, '0')}`, CREATE_MODE.UNCHECKED, {
      mode: 0o600,
    });
  }
  await step('readdirplus-small', { pages: true }, () =>
    c.readdirplus(dir, { dircount: 512, maxcount: 2048 }),
  );
  await step(
    'readdirplus',
    {
      names: [
        'f1',
        'f3',
        ...Array.from({ length: 40 }, (_, i) => `entry-${String(i).padStart(3, '0')}`),
      ],
    },
    () => c.readdirplus(dir),
  );
  await step('rmdir-notempty', { status: 66 }, () => c.rmdir(root, 'objects'));
  await step('remove', { name: 'f3' }, () => c.remove(dir, 'f3'));
  await step('remove-noent', { status: 2 }, () => c.remove(dir, 'f3'));
  await step('getattr-badhandle', { status: 'error' }, () => c.getattr(Buffer.alloc(24, 0xab)));
  // Refused calls, on raw connections.
  label = 'auth-none-refused';
  expect = { failure: 'auth-error' };
  records.push(await raw(NFS_PROGRAM, 1, AUTH_NONE, 2049, (w) => w.opaque(root)));
  label = 'prog-mismatch';
  expect = { failure: 'prog-mismatch' };
  records.push(await raw({ ...NFS_PROGRAM, vers: 4 }, 0, AUTH_SYS, 2049));
  label = 'proc-unavail';
  expect = { failure: 'proc-unavail' };
  records.push(await raw(NFS_PROGRAM, 99, AUTH_SYS, 2049, (w) => w.opaque(root)));
  c.close();
  let version = 'unknown';
  try {
    version = execFileSync('ganesha.nfsd', ['-v'], { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    // keep unknown
  }
  writeFileSync(
    out,
    JSON.stringify(
      {
        note: 'Captured by test/e2e/nfs-capture.ts from a real nfs-ganesha started by `supernet storage serve` (VFS FSAL, NFSv3/TCP). Records are hex, without record marks.',
        server: version,
        captured: new Date().toISOString(),
        records,
      },
      null,
      1,
    ) + '\n',
  );
  process.stdout.write(`${records.length} records → ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`capture failed: ${(e as Error).stack}\n`);
  process.exit(1);
});
