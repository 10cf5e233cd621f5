/**
 * A userspace NFSv3 client (RFC 1813) over {@link RpcClient}: MOUNT v3 to
 * get the export's root handle, then the procedures a storage backend needs.
 * Every procedure either returns its decoded results or throws an
 * {@link NfsError} whose `code` is the errno a local filesystem would give.
 *
 * NFS3ERR_JUKEBOX ("try again later", RFC 1813 §2.6: the server is e.g.
 * recalling data from offline storage) is retried here with backoff, up to
 * `jukeboxMs`; only then does it surface as EAGAIN. Results say whether the
 * call was retransmitted after a reconnect, so callers of non-idempotent
 * procedures (REMOVE, RENAME, MKDIR) can tell "done twice" from "failed".
 */
import { tcpConnector, RpcClient, type Connector, type RpcCounters } from './transport.js';
import type { AuthSys } from './rpc.js';
import { AUTH_SYS } from './rpc.js';
import type { XdrReader, XdrWriter } from './xdr.js';
import { NFS3, NfsError } from './errors.js';
import {
  CREATE_MODE,
  dec,
  enc,
  MOUNT_PROGRAM,
  MOUNTPROC,
  NFS_PROGRAM,
  NFS3_COOKIEVERFSIZE,
  PROC,
  PROC_NAME,
  type CreateOk,
  type DirEntry,
  type Fattr,
  type FsinfoOk,
  type FsstatOk,
  type LookupOk,
  type NfsTime,
  type ReadOk,
  type Res,
  type Sattr,
  type Wcc,
  type WriteOk,
} from './nfs3-wire.js';
import { type Logger, nullLogger } from '../../admin/logger.js';

/** Default ports of a server that runs without a portmapper (design brief §4). */
export const NFS_PORT = 2049;
export const MOUNT_PORT = 20048;

/** Where an export is. */
export interface NfsTarget {
  host: string;
  export: string;
  port?: number;
  mountPort?: number;
}

export interface Nfs3Options {
  /** Opens a connection to `port` on the target host (default: plain TCP). */
  connector?: (port: number) => Connector;
  cred?: Partial<AuthSys>;
  maxInFlight?: number;
  timeoutMs?: number;
  deadlineMs?: number;
  /** How long NFS3ERR_JUKEBOX is retried before it becomes EAGAIN (default 60 s). */
  jukeboxMs?: number;
  logger?: Logger;
  tap?: (dir: 'call' | 'reply', prog: 'mount' | 'nfs', proc: number, record: Buffer) => void;
}

/** A result plus whether its call went out more than once. */
export type Sent<T> = T & { retransmitted: boolean };

const JUKEBOX_MIN_MS = 100;
const JUKEBOX_MAX_MS = 2_000;

/** An NFSv3 client for one export. Create with {@link Nfs3Client.mount}. */
export class Nfs3Client {
  private readonly log: Logger;
  private readonly jukeboxMs: number;
  private rootFh: Buffer;
  /** JUKEBOX replies retried (counter). */
  jukeboxRetries = 0;

  private constructor(
    readonly target: Required<NfsTarget>,
    private readonly rpc: RpcClient,
    root: Buffer,
    private readonly opts: Nfs3Options,
  ) {
    this.log = opts.logger ?? nullLogger;
    this.jukeboxMs = opts.jukeboxMs ?? 60_000;
    this.rootFh = root;
  }

  /** Mounts `t.export` (MOUNT v3 MNT) and opens the NFS connection. */
  static async mount(t: NfsTarget, opts: Nfs3Options = {}): Promise<Nfs3Client> {
    const target: Required<NfsTarget> = {
      host: t.host,
      export: t.export,
      port: t.port ?? NFS_PORT,
      mountPort: t.mountPort ?? MOUNT_PORT,
    };
    const root = await mnt(target, opts);
    const connector = opts.connector?.(target.port) ?? tcpConnector(target.host, target.port);
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: connector,
      server: `${target.host}:${target.port}`,
      procNames: PROC_NAME,
      cred: opts.cred,
      maxInFlight: opts.maxInFlight,
      timeoutMs: opts.timeoutMs,
      deadlineMs: opts.deadlineMs,
      logger: opts.logger,
      tap: opts.tap ? (d, p, r) => opts.tap!(d, 'nfs', p, r) : undefined,
    });
    return new Nfs3Client(target, rpc, root, opts);
  }

  /** The export's root handle. */
  get root(): Buffer {
    return this.rootFh;
  }

  /** Asks the MOUNT service again for the root handle (after it went stale). */
  async remount(): Promise<Buffer> {
    this.rootFh = await mnt(this.target, this.opts);
    return this.rootFh;
  }

  get counters(): RpcCounters & { jukeboxRetries: number } {
    return { ...this.rpc.counters, jukeboxRetries: this.jukeboxRetries };
  }

  /** Closes the connection (outstanding calls fail with ESHUTDOWN). */
  close(): void {
    this.rpc.close();
  }

  /** Runs one procedure; retries JUKEBOX; throws {@link NfsError} for error statuses. */
  private async run<T>(
    proc: number,
    what: string,
    args: (w: XdrWriter) => void,
    decode: (r: XdrReader) => Res<T>,
    into?: Buffer,
  ): Promise<Sent<T>> {
    let wait = JUKEBOX_MIN_MS;
    const start = Date.now();
    let retransmitted = false;
    for (;;) {
      const { body, retransmitted: again } = await this.rpc.call(proc, args, into);
      retransmitted ||= again;
      const res = decode(body);
      if (res.status === NFS3.OK) {
        const ok = res as T & { status: 0 };
        return Object.assign(ok, { retransmitted });
      }
      if (res.status === NFS3.ERR_JUKEBOX && Date.now() - start + wait <= this.jukeboxMs) {
        this.jukeboxRetries++;
        this.log.debug('NFS3ERR_JUKEBOX; retrying', { op: what, waitMs: wait });
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, JUKEBOX_MAX_MS);
        continue;
      }
      throw new NfsError(res.status, what);
    }
  }

  /** NULL procedure: a round trip that does nothing (liveness). */
  async ping(): Promise<void> {
    const { body } = await this.rpc.call(PROC.NULL, () => {});
    dec.void(body);
  }

  async getattr(fh: Buffer): Promise<Fattr> {
    return (await this.run(PROC.GETATTR, 'GETATTR', enc.fh(fh), dec.getattr)).attr;
  }

  async setattr(fh: Buffer, s: Sattr, guardCtime?: NfsTime): Promise<Wcc> {
    return (await this.run(PROC.SETATTR, 'SETATTR', enc.setattr(fh, s, guardCtime), dec.setattr))
      .wcc;
  }

  async lookup(dir: Buffer, name: string): Promise<Sent<LookupOk>> {
    return this.run(PROC.LOOKUP, `LOOKUP ${name}`, enc.dirop(dir, name), dec.lookup);
  }

  /** The subset of `mask` (ACCESS3 bits) the server grants. */
  async access(fh: Buffer, mask: number): Promise<number> {
    return (await this.run(PROC.ACCESS, 'ACCESS', enc.access(fh, mask), dec.access)).access;
  }

  /**
   * READ. With `into` (at least {@link readReplyLen}(count) bytes), the reply
   * lands there and `data` is a view of it: lent until the promise settles,
   * valid until the caller reuses it.
   */
  async read(fh: Buffer, offset: number, count: number, into?: Buffer): Promise<Sent<ReadOk>> {
    return this.run(
      PROC.READ,
      `READ ${offset}+${count}`,
      enc.read(fh, offset, count),
      dec.read,
      into,
    );
  }

  /** `data` must not change until the promise settles (it is sent without a copy). */
  async write(fh: Buffer, offset: number, data: Buffer, stable: number): Promise<Sent<WriteOk>> {
    return this.run(
      PROC.WRITE,
      `WRITE ${offset}+${data.length}`,
      enc.write(fh, offset, data, stable),
      dec.write,
    );
  }

  /** COMMIT of `count` bytes at `offset` (0, 0 = the whole file); returns the write verifier. */
  async commit(fh: Buffer, offset = 0, count = 0): Promise<Buffer> {
    return (await this.run(PROC.COMMIT, 'COMMIT', enc.commit(fh, offset, count), dec.commit)).verf;
  }

  /** CREATE with UNCHECKED or GUARDED `attrs`, or EXCLUSIVE with an 8-byte verifier. */
  async create(
    dir: Buffer,
    name: string,
    how: number,
    attrsOrVerf: Sattr | Buffer,
  ): Promise<Sent<CreateOk>> {
    if (how === CREATE_MODE.EXCLUSIVE && !Buffer.isBuffer(attrsOrVerf))
      throw new TypeError('EXCLUSIVE create needs an 8-byte verifier');
    return this.run(
      PROC.CREATE,
      `CREATE ${name}`,
      enc.create(dir, name, how, attrsOrVerf),
      dec.create,
    );
  }

  async mkdir(dir: Buffer, name: string, s: Sattr): Promise<Sent<CreateOk>> {
    return this.run(PROC.MKDIR, `MKDIR ${name}`, enc.mkdir(dir, name, s), dec.create);
  }

  async remove(dir: Buffer, name: string): Promise<Sent<{ wcc: Wcc }>> {
    return this.run(PROC.REMOVE, `REMOVE ${name}`, enc.dirop(dir, name), dec.remove);
  }

  async rmdir(dir: Buffer, name: string): Promise<Sent<{ wcc: Wcc }>> {
    return this.run(PROC.RMDIR, `RMDIR ${name}`, enc.dirop(dir, name), dec.remove);
  }

  async rename(
    fromDir: Buffer,
    from: string,
    toDir: Buffer,
    to: string,
  ): Promise<Sent<{ from: Wcc; to: Wcc }>> {
    return this.run(
      PROC.RENAME,
      `RENAME ${from} ${to}`,
      enc.rename(fromDir, from, toDir, to),
      dec.rename,
    );
  }

  /**
   * Every entry of directory `dir` (READDIRPLUS, following cookies until
   * eof), without `.` and `..`. A directory that changes meanwhile may make
   * the server answer NFS3ERR_BAD_COOKIE; the listing then starts over.
   */
  async readdirplus(
    dir: Buffer,
    opts: { dircount?: number; maxcount?: number } = {},
  ): Promise<DirEntry[]> {
    const dircount = opts.dircount ?? 64 * 1024;
    const maxcount = opts.maxcount ?? 512 * 1024;
    for (let attempt = 0; ; attempt++) {
      const out: DirEntry[] = [];
      let cookie = 0n;
      let verf: Buffer = Buffer.alloc(NFS3_COOKIEVERFSIZE);
      try {
        for (;;) {
          const res = await this.run(
            PROC.READDIRPLUS,
            'READDIRPLUS',
            enc.readdirplus(dir, cookie, verf, dircount, maxcount),
            dec.readdirplus,
          );
          for (const e of res.entries) if (e.name !== '.' && e.name !== '..') out.push(e);
          verf = res.verf;
          if (res.eof) return out;
          const last = res.entries[res.entries.length - 1];
          if (!last) throw new NfsError(NFS3.ERR_IO, 'READDIRPLUS: no entries and no eof');
          cookie = last.cookie;
        }
      } catch (e) {
        if (e instanceof NfsError && e.status === NFS3.ERR_BAD_COOKIE && attempt < 5) continue;
        throw e;
      }
    }
  }

  async fsstat(fh: Buffer = this.rootFh): Promise<FsstatOk> {
    return this.run(PROC.FSSTAT, 'FSSTAT', enc.fh(fh), dec.fsstat);
  }

  async fsinfo(fh: Buffer = this.rootFh): Promise<FsinfoOk> {
    return this.run(PROC.FSINFO, 'FSINFO', enc.fh(fh), dec.fsinfo);
  }
}

/** MOUNT v3 MNT on a short-lived connection: the export's root handle. */
async function mnt(t: Required<NfsTarget>, opts: Nfs3Options): Promise<Buffer> {
  const rpc = new RpcClient({
    program: MOUNT_PROGRAM,
    connect: opts.connector?.(t.mountPort) ?? tcpConnector(t.host, t.mountPort),
    server: `${t.host}:${t.mountPort}`,
    procNames: { [MOUNTPROC.MNT]: 'MNT' },
    cred: opts.cred,
    maxInFlight: 1,
    timeoutMs: opts.timeoutMs,
    deadlineMs: Math.min(opts.deadlineMs ?? 30_000, 30_000),
    logger: opts.logger,
    tap: opts.tap ? (d, p, r) => opts.tap!(d, 'mount', p, r) : undefined,
  });
  try {
    const { body } = await rpc.call(MOUNTPROC.MNT, enc.mnt(t.export));
    const res = dec.mnt(body);
    if (res.status !== 0) throw new NfsError(res.status, `MOUNT ${t.host}:${t.export}`, true);
    const ok = res as { status: 0; fh: Buffer; flavors: number[] };
    if (ok.flavors.length && !ok.flavors.includes(AUTH_SYS))
      throw new NfsError(
        13,
        `MOUNT ${t.host}:${t.export}: export does not accept AUTH_SYS (flavors ${ok.flavors.join(',')})`,
        true,
      );
    return ok.fh;
  } finally {
    rpc.close();
  }
}
