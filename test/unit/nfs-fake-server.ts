/**
 * An in-memory NFSv3 + MOUNT v3 server on a loopback TCP port, for the unit
 * tests of the RPC transport and of the NFS object store. It speaks the
 * same wire format as a real server (it reuses only the project's XDR
 * primitives, so a codec bug on one side is not mirrored on the other for
 * the message layouts, which are written out here by hand from RFC 1813).
 *
 * Fault injection the real server does not offer on demand:
 *  - `restart()`: a new write verifier, and unstable data written since the
 *    last COMMIT/FILE_SYNC is lost (what a server crash may do);
 *  - `staleAll()`: every handle handed out so far becomes NFS3ERR_STALE;
 *  - `jukebox = n`: the next n NFS calls answer NFS3ERR_JUKEBOX;
 *  - `before(proc, n)`: a hook before each call (n counts calls of that proc):
 *    drop the connection before or after running it, or fail it with a status;
 *  - no duplicate-request cache: a retransmitted RENAME runs twice.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { XdrReader, XdrWriter } from '../../fs/nfs/xdr.js';
import { RecordDecoder } from '../../fs/nfs/rpc.js';

const NFS = 100003;
const MOUNT = 100005;
const REG = 1;
const DIR = 2;

interface Ino {
  id: number;
  gen: number;
  type: number;
  mode: number;
  data: Buffer;
  stable: Buffer;
  entries: Map<string, number>;
}

/**
 * Before each NFS call: 'drop' closes the connection unanswered; 'drop-after'
 * runs the call, then closes the connection instead of answering (a lost
 * reply); a number answers with that nfsstat3.
 */
export type Hook = (proc: number, n: number) => 'drop' | 'drop-after' | number | void;

export class FakeNfsServer {
  private server: Server | null = null;
  private readonly socks = new Set<Socket>();
  private readonly inos = new Map<number, Ino>();
  private nextId = 2;
  private gen = 1;
  verf = randomBytes(8);
  jukebox = 0;
  before: Hook | null = null;
  /** Answer calls in reverse order of arrival, per batch of this many (pipelining tests). */
  reorderBatch = 0;
  private held: Array<{ sock: Socket; rec: Buffer }> = [];
  readonly counts = new Map<number, number>();
  readonly xids: number[] = [];
  port = 0;

  constructor() {
    this.inos.set(1, this.mk(1, DIR, 0o755));
  }

  private mk(id: number, type: number, mode: number): Ino {
    return {
      id,
      gen: this.gen,
      type,
      mode,
      data: Buffer.alloc(0),
      stable: Buffer.alloc(0),
      entries: new Map(),
    };
  }

  async start(): Promise<number> {
    this.server = createServer((s) => {
      this.socks.add(s);
      const dec = new RecordDecoder();
      s.on('data', (d) => {
        try {
          dec.push(d, (rec) => this.onCall(s, rec));
        } catch {
          s.destroy();
        }
      });
      s.on('close', () => this.socks.delete(s));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server!.address() as { port: number }).port;
    return this.port;
  }

  async stop(): Promise<void> {
    for (const s of this.socks) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = null;
  }

  /** Closes every client connection (a server restart without losing data). */
  dropConnections(): void {
    for (const s of this.socks) s.destroy();
  }

  /** A crash: new verifier, unstable data lost, connections dropped if asked. */
  restart(drop = false): void {
    this.verf = randomBytes(8);
    for (const i of this.inos.values()) if (i.type === REG) i.data = Buffer.from(i.stable);
    if (drop) this.dropConnections();
  }

  staleAll(): void {
    this.gen++;
    for (const i of this.inos.values()) i.gen = this.gen;
  }

  /** The file at `path` (slash-separated from the root), for assertions. */
  file(path: string): Buffer | null {
    let cur = this.inos.get(1)!;
    for (const part of path.split('/').filter(Boolean)) {
      const id = cur.entries.get(part);
      if (id === undefined) return null;
      cur = this.inos.get(id)!;
    }
    return cur.type === REG ? cur.data : null;
  }

  names(path: string): string[] {
    let cur = this.inos.get(1)!;
    for (const part of path.split('/').filter(Boolean))
      cur = this.inos.get(cur.entries.get(part)!)!;
    return [...cur.entries.keys()].sort();
  }

  private fh(i: Ino): Buffer {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(0xfa4e, 0);
    b.writeUInt32BE(i.id, 4);
    b.writeUInt32BE(i.gen, 8);
    return b;
  }

  /** Resolves a handle: Ino, or an nfsstat3. */
  private ino(fh: Buffer): Ino | number {
    if (fh.length !== 16 || fh.readUInt32BE(0) !== 0xfa4e) return 10001;
    const i = this.inos.get(fh.readUInt32BE(4));
    if (!i || i.gen !== fh.readUInt32BE(8)) return 70;
    return i;
  }

  private onCall(sock: Socket, rec: Buffer): void {
    const r = new XdrReader(rec);
    const xid = r.u32();
    this.xids.push(xid);
    r.u32(); // CALL
    r.u32(); // rpcvers
    const prog = r.u32();
    const vers = r.u32();
    const proc = r.u32();
    r.u32();
    r.opaque(400); // cred
    r.u32();
    r.opaque(400); // verf
    const n = (this.counts.get(proc) ?? 0) + 1;
    if (prog === NFS) this.counts.set(proc, n);
    const hook = prog === NFS ? this.before?.(proc, n) : undefined;
    if (hook === 'drop') {
      sock.destroy();
      return;
    }
    const w = new XdrWriter();
    const mark = w.reserveU32();
    w.u32(xid).u32(1).u32(0).u32(0).u32(0); // REPLY, ACCEPTED, verf AUTH_NONE
    if ((prog !== NFS && prog !== MOUNT) || vers !== 3) {
      const e = new XdrWriter();
      const m = e.reserveU32();
      e.u32(xid).u32(1).u32(0).u32(0).u32(0).u32(2).u32(3).u32(3); // PROG_MISMATCH 3..3
      e.patchU32(m, (0x80000000 | (e.length - 4)) >>> 0);
      sock.write(Buffer.from(e.bytes));
      return;
    }
    w.u32(0); // SUCCESS
    if (prog === MOUNT) {
      if (proc === 1) {
        const path = r.string();
        if (path === '/export') {
          w.u32(0);
          w.opaque(this.fh(this.inos.get(1)!));
          w.u32(1).u32(1); // flavors: AUTH_SYS
        } else w.u32(13);
      }
    } else if (this.jukebox > 0 && proc !== 0) {
      this.jukebox--;
      w.u32(10008);
      this.failArm(w, proc);
    } else if (typeof hook === 'number') {
      w.u32(hook);
      this.failArm(w, proc);
    } else this.nfs(proc, r, w);
    if (hook === 'drop-after') {
      sock.destroy();
      return;
    }
    w.patchU32(mark, (0x80000000 | (w.length - 4)) >>> 0);
    const out = Buffer.concat(w.chunks());
    if (this.reorderBatch > 1) {
      this.held.push({ sock, rec: out });
      if (this.held.length >= this.reorderBatch) {
        for (const h of this.held.reverse()) h.sock.write(h.rec);
        this.held = [];
      }
    } else sock.write(out);
  }

  /** Writes the failure arm of `proc` after a status (all post-op/wcc absent). */
  private failArm(w: XdrWriter, proc: number): void {
    if ([1, 0].includes(proc)) return;
    if ([2, 7, 8, 9, 12, 13, 21].includes(proc))
      w.bool(false).bool(false); // wcc
    else if (proc === 14) w.bool(false).bool(false).bool(false).bool(false);
    else w.bool(false); // post_op_attr
  }

  private attr(w: XdrWriter, i: Ino): void {
    const size = i.type === DIR ? 4096 : i.data.length;
    w.u32(i.type).u32(i.mode).u32(1).u32(0).u32(0).u64(size).u64(size).u32(0).u32(0);
    w.u64(7).u64(i.id);
    for (let k = 0; k < 3; k++) w.u32(1_700_000_000).u32(0);
  }

  private post(w: XdrWriter, i: Ino | null): void {
    if (i) {
      w.bool(true);
      this.attr(w, i);
    } else w.bool(false);
  }

  private wcc(w: XdrWriter, i: Ino | null): void {
    w.bool(false);
    this.post(w, i);
  }

  private nfs(proc: number, r: XdrReader, w: XdrWriter): void {
    const fail = (st: number): void => {
      w.u32(st);
      this.failArm(w, proc);
    };
    if (proc === 0) return;
    if (
      proc === 19 ||
      proc === 18 ||
      proc === 1 ||
      proc === 6 ||
      proc === 7 ||
      proc === 21 ||
      proc === 2
    ) {
      const i = this.ino(r.opaque(64));
      if (typeof i === 'number') return fail(i);
      if (proc === 1) {
        w.u32(0);
        return this.attr(w, i);
      }
      if (proc === 19) {
        w.u32(0);
        this.post(w, i);
        w.u32(65536).u32(65536).u32(4096).u32(65536).u32(65536).u32(4096).u32(8192);
        w.u64(1n << 40n)
          .u32(0)
          .u32(1)
          .u32(0x1b);
        return;
      }
      if (proc === 18) {
        w.u32(0);
        this.post(w, i);
        w.u64(1 << 30)
          .u64(1 << 29)
          .u64(1 << 29)
          .u64(1000)
          .u64(900)
          .u64(900)
          .u32(0);
        return;
      }
      if (proc === 2) {
        // set_mode, uid, gid, size; times ignored
        if (r.bool()) i.mode = r.u32();
        if (r.bool()) r.u32();
        if (r.bool()) r.u32();
        if (r.bool()) {
          const size = Number(r.u64());
          const d = Buffer.alloc(size);
          i.data.copy(d, 0, 0, Math.min(size, i.data.length));
          i.data = d;
        }
        w.u32(0);
        return this.wcc(w, i);
      }
      const off = Number(r.u64());
      const count = r.u32();
      if (proc === 6) {
        const data = i.data.subarray(off, off + count);
        w.u32(0);
        this.post(w, i);
        w.u32(data.length)
          .bool(off + data.length >= i.data.length)
          .opaque(data);
        return;
      }
      if (proc === 21) {
        i.stable = Buffer.from(i.data);
        w.u32(0);
        this.wcc(w, i);
        w.fixed(this.verf, 8);
        return;
      }
      const stable = r.u32();
      const data = r.opaque();
      if (data.length !== count) return fail(22);
      if (i.data.length < off + count) {
        const d = Buffer.alloc(off + count);
        i.data.copy(d);
        i.data = d;
      }
      data.copy(i.data, off);
      if (stable === 2) i.stable = Buffer.from(i.data);
      w.u32(0);
      this.wcc(w, i);
      w.u32(count)
        .u32(stable === 2 ? 2 : 0)
        .fixed(this.verf, 8);
      return;
    }
    // directory operations
    const d = this.ino(r.opaque(64));
    if (typeof d === 'number') return fail(d);
    if (d.type !== DIR) return fail(20);
    if (proc === 17) {
      const cookie = Number(r.u64());
      r.fixed(8);
      r.u32();
      const maxcount = r.u32();
      const names = [...d.entries.keys()];
      w.u32(0);
      this.post(w, d);
      w.fixed(Buffer.alloc(8, 1), 8);
      let used = 200;
      let k = cookie;
      for (; k < names.length; k++) {
        const child = this.inos.get(d.entries.get(names[k]!)!)!;
        used += 200 + names[k]!.length;
        if (used > maxcount && k > cookie) break;
        w.bool(true)
          .u64(child.id)
          .string(names[k]!)
          .u64(k + 1);
        this.post(w, child);
        w.bool(true).opaque(this.fh(child));
      }
      w.bool(false).bool(k >= names.length);
      return;
    }
    const name = r.string();
    const childId = d.entries.get(name);
    const child = childId === undefined ? null : this.inos.get(childId)!;
    switch (proc) {
      case 3: // LOOKUP
        if (!child) return fail(2);
        w.u32(0).opaque(this.fh(child));
        this.post(w, child);
        this.post(w, d);
        return;
      case 8: // CREATE
      case 9: {
        // MKDIR
        let mode = 0o644;
        if (proc === 8) {
          const how = r.u32();
          if (how === 1 && child) return fail(17);
          if (how === 2) r.fixed(8);
        }
        if (proc === 9 && child) return fail(17);
        if (r.bool()) mode = r.u32();
        let i = child;
        if (!i) {
          i = this.mk(this.nextId++, proc === 9 ? DIR : REG, mode);
          this.inos.set(i.id, i);
          d.entries.set(name, i.id);
        } else if (proc === 8) {
          i.data = Buffer.alloc(0);
          i.stable = Buffer.alloc(0);
        }
        w.u32(0).bool(true).opaque(this.fh(i));
        this.post(w, i);
        this.wcc(w, d);
        return;
      }
      case 12: // REMOVE
      case 13: // RMDIR
        if (!child) return fail(2);
        if (proc === 13 && child.entries.size) return fail(66);
        d.entries.delete(name);
        this.inos.delete(child.id);
        w.u32(0);
        this.wcc(w, d);
        return;
      case 14: {
        // RENAME
        const td = this.ino(r.opaque(64));
        const to = r.string();
        if (typeof td === 'number') return fail(td);
        if (!child) return fail(2);
        const old = td.entries.get(to);
        if (old !== undefined && old !== child.id) this.inos.delete(old);
        d.entries.delete(name);
        td.entries.set(to, child.id);
        w.u32(0);
        this.wcc(w, d);
        this.wcc(w, td);
        return;
      }
      default:
        return fail(10004);
    }
  }
}
