/**
 * ONC RPC version 2 messages (RFC 5531) and TCP record marking (RFC 5531
 * §11): the call header with AUTH_SYS credentials, the reply header with
 * every accepted/denied outcome, and a record decoder that joins fragments.
 *
 *   record mark (4 bytes): bit 31 = last fragment, bits 0..30 = fragment length
 *
 *   call:  xid | CALL=0 | rpcvers=2 | prog | vers | proc | cred | verf | args…
 *   reply: xid | REPLY=1 | MSG_ACCEPTED=0 | verf | accept_stat | results…
 *                        | MSG_DENIED=1   | reject_stat | (mismatch info | auth_stat)
 */
import { XdrError, XdrReader, XdrWriter, XDR_UNIT } from './xdr.js';

export const RPC_VERSION = 2;
export const MSG_CALL = 0;
export const MSG_REPLY = 1;
export const MSG_ACCEPTED = 0;
export const MSG_DENIED = 1;

/** accept_stat (RFC 5531 §9). */
export const ACCEPT = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;

/** reject_stat. */
export const REJECT = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

/** auth_flavor. */
export const AUTH_NONE = 0;
export const AUTH_SYS = 1;

/** auth_stat names, for error messages. */
export const AUTH_STAT: Record<number, string> = {
  0: 'AUTH_OK',
  1: 'AUTH_BADCRED',
  2: 'AUTH_REJECTEDCRED',
  3: 'AUTH_BADVERF',
  4: 'AUTH_REJECTEDVERF',
  5: 'AUTH_TOOWEAK',
  6: 'AUTH_INVALIDRESP',
  7: 'AUTH_FAILED',
};

/** Limits of RFC 5531 §8.2 / §14. */
export const MAX_AUTH_BYTES = 400;
export const AUTH_SYS_MAX_MACHINENAME = 255;
export const AUTH_SYS_MAX_GIDS = 16;

/** The record mark's last-fragment bit. */
export const LAST_FRAGMENT = 0x80000000;
export const MARK_LEN = 4;
/** A reply's xid: its first 4 bytes (RFC 5531 §9). */
const XID_LEN = 4;
/** Largest fragment/record we accept (a 1 MiB READ plus headers fits well). */
export const MAX_RECORD = 4 * 1024 * 1024 + 64 * 1024;

/** AUTH_SYS credentials (RFC 5531 appendix A). */
export interface AuthSys {
  stamp: number;
  machinename: string;
  uid: number;
  gid: number;
  gids: number[];
}

/** The body of an AUTH_SYS credential, ready to be embedded in calls. */
export function encodeAuthSys(a: AuthSys): Buffer {
  if (a.gids.length > AUTH_SYS_MAX_GIDS)
    throw new XdrError(`AUTH_SYS allows at most ${AUTH_SYS_MAX_GIDS} groups`);
  const w = new XdrWriter(64)
    .u32(a.stamp >>> 0)
    .string(a.machinename, AUTH_SYS_MAX_MACHINENAME)
    .u32(a.uid)
    .u32(a.gid)
    .u32(a.gids.length);
  for (const g of a.gids) w.u32(g);
  const body = Buffer.from(w.bytes);
  if (body.length > MAX_AUTH_BYTES) throw new XdrError('AUTH_SYS credential too long');
  return body;
}

/** Decodes an AUTH_SYS body (used by tests and the fixture notes). */
export function decodeAuthSys(body: Buffer): AuthSys {
  const r = new XdrReader(body);
  const stamp = r.u32();
  const machinename = r.string(AUTH_SYS_MAX_MACHINENAME);
  const uid = r.u32();
  const gid = r.u32();
  const n = r.u32();
  if (n > AUTH_SYS_MAX_GIDS) throw new XdrError(`AUTH_SYS with ${n} groups`);
  const gids: number[] = [];
  for (let i = 0; i < n; i++) gids.push(r.u32());
  r.end('AUTH_SYS credential');
  return { stamp, machinename, uid, gid, gids };
}

/** One program/version an RPC client talks to. */
export interface Program {
  prog: number;
  vers: number;
  name: string;
}

/**
 * Writes a complete call record into `w`: the record mark (patched once the
 * length is known by {@link finishRecord}), the call header with `cred`
 * (flavor + opaque body) and an AUTH_NONE verifier. Arguments follow.
 */
export function beginCall(
  w: XdrWriter,
  xid: number,
  p: Program,
  proc: number,
  credFlavor: number,
  credBody: Buffer,
): number {
  w.reset();
  const mark = w.reserveU32();
  w.u32(xid)
    .u32(MSG_CALL)
    .u32(RPC_VERSION)
    .u32(p.prog)
    .u32(p.vers)
    .u32(proc)
    .u32(credFlavor)
    .opaque(credBody, MAX_AUTH_BYTES)
    .u32(AUTH_NONE)
    .u32(0);
  return mark;
}

/** Patches the record mark: one fragment, the last. */
export function finishRecord(w: XdrWriter, mark: number): void {
  const len = w.length - MARK_LEN;
  if (len > MAX_RECORD) throw new XdrError(`call of ${len} bytes exceeds ${MAX_RECORD}`);
  w.patchU32(mark, (LAST_FRAGMENT | len) >>> 0);
}

/** Why an RPC reply was not a success. */
export type RpcFailure =
  | { kind: 'prog-unavail' }
  | { kind: 'prog-mismatch'; low: number; high: number }
  | { kind: 'proc-unavail' }
  | { kind: 'garbage-args' }
  | { kind: 'system-err' }
  | { kind: 'rpc-mismatch'; low: number; high: number }
  | { kind: 'auth-error'; stat: number };

/** An RPC-level failure (the server did not run the procedure). */
export class RpcError extends Error {
  constructor(
    readonly failure: RpcFailure,
    program: string,
  ) {
    super(`${program}: ${describe(failure)}`);
    this.name = 'RpcError';
  }
}

function describe(f: RpcFailure): string {
  switch (f.kind) {
    case 'prog-mismatch':
      return `program version not supported (server has ${f.low}..${f.high})`;
    case 'rpc-mismatch':
      return `RPC version not supported (server has ${f.low}..${f.high})`;
    case 'auth-error':
      return `credentials refused (${AUTH_STAT[f.stat] ?? `auth_stat ${f.stat}`})`;
    case 'prog-unavail':
      return 'program not available on this server';
    case 'proc-unavail':
      return 'procedure not available';
    case 'garbage-args':
      return 'server could not decode the arguments';
    case 'system-err':
      return 'server system error';
  }
}

/** A decoded reply header: the results follow at `body.pos`. */
export type Reply =
  { xid: number; ok: true; body: XdrReader } | { xid: number; ok: false; failure: RpcFailure };

/** The xid of a record, or null when it is too short to hold one. */
export function peekXid(record: Buffer): number | null {
  return record.length >= XDR_UNIT ? record.readUInt32BE(0) : null;
}

/**
 * Decodes a reply record (without its record marks). Throws {@link XdrError}
 * for anything that is not a well-formed RPC v2 reply.
 */
export function decodeReply(record: Buffer): Reply {
  const r = new XdrReader(record);
  const xid = r.u32();
  const mtype = r.u32();
  if (mtype !== MSG_REPLY) throw new XdrError(`message type ${mtype} is not a reply`);
  const stat = r.u32();
  if (stat === MSG_ACCEPTED) {
    r.u32(); // verifier flavor: AUTH_NONE for AUTH_SYS calls; body ignored
    r.opaque(MAX_AUTH_BYTES);
    const as = r.u32();
    switch (as) {
      case ACCEPT.SUCCESS:
        return { xid, ok: true, body: r };
      case ACCEPT.PROG_MISMATCH: {
        const low = r.u32();
        const high = r.u32();
        return { xid, ok: false, failure: { kind: 'prog-mismatch', low, high } };
      }
      case ACCEPT.PROG_UNAVAIL:
        return { xid, ok: false, failure: { kind: 'prog-unavail' } };
      case ACCEPT.PROC_UNAVAIL:
        return { xid, ok: false, failure: { kind: 'proc-unavail' } };
      case ACCEPT.GARBAGE_ARGS:
        return { xid, ok: false, failure: { kind: 'garbage-args' } };
      case ACCEPT.SYSTEM_ERR:
        return { xid, ok: false, failure: { kind: 'system-err' } };
      default:
        throw new XdrError(`unknown accept_stat ${as}`);
    }
  }
  if (stat === MSG_DENIED) {
    const rs = r.u32();
    if (rs === REJECT.RPC_MISMATCH) {
      const low = r.u32();
      const high = r.u32();
      return { xid, ok: false, failure: { kind: 'rpc-mismatch', low, high } };
    }
    if (rs === REJECT.AUTH_ERROR)
      return { xid, ok: false, failure: { kind: 'auth-error', stat: r.u32() } };
    throw new XdrError(`unknown reject_stat ${rs}`);
  }
  throw new XdrError(`unknown reply_stat ${stat}`);
}

/**
 * Joins record-marked fragments from a byte stream into records. Feeding it
 * arbitrary chunks yields each complete record once; a fragment longer than
 * {@link MAX_RECORD} (or a zero-length non-final fragment flood) is a
 * protocol error: the caller drops the connection.
 *
 * Every fragment is copied, as it arrives, into one buffer of exactly its
 * length (known from its mark), so a record never aliases the bytes pushed:
 * the caller may reuse its read buffer as soon as push() returns (the TCP
 * connector reads into one fixed buffer, `onread`). A single-fragment record
 * goes where `alloc` says once its xid has arrived: the RPC client answers
 * with a buffer the caller lent for that call's reply (a READ into a reused
 * buffer, docs/nfs.md "Performance"), or a fresh one.
 */
export class RecordDecoder {
  private readonly mark = Buffer.alloc(MARK_LEN);
  private markHave = 0;
  /** The first fragment's xid is being read before its buffer is chosen. */
  private wantXid = false;
  private readonly xidBuf = Buffer.alloc(XID_LEN);
  private xidHave = 0;
  private fragLen = 0;
  /** The fragment being filled (null: reading a mark or an xid). */
  private frag: Buffer | null = null;
  private fragHave = 0;
  private fragLast = false;
  /** Complete fragments of the record being assembled. */
  private frags: Buffer[] = [];
  private fragBytes = 0;

  /**
   * @param alloc where a single-fragment record of `len` bytes (≥ 4) with
   *   this `xid` goes; it must return at least `len` bytes that nothing
   *   else writes until the record is handed out (see {@link disown})
   */
  constructor(
    private readonly maxRecord = MAX_RECORD,
    private readonly alloc?: (len: number, xid: number) => Buffer,
  ) {}

  /** Feeds bytes; calls `onRecord` for each complete record. `data` is not kept. */
  push(data: Buffer, onRecord: (record: Buffer) => void): void {
    let at = 0;
    const end = data.length;
    while (at < end) {
      if (this.frag === null && !this.wantXid) {
        const k = Math.min(MARK_LEN - this.markHave, end - at);
        data.copy(this.mark, this.markHave, at, at + k);
        this.markHave += k;
        at += k;
        if (this.markHave < MARK_LEN) return;
        this.markHave = 0;
        const mark = this.mark.readUInt32BE(0);
        const len = mark & 0x7fffffff;
        const last = (mark & LAST_FRAGMENT) !== 0;
        if (len > this.maxRecord || this.fragBytes + len > this.maxRecord)
          throw new XdrError(`RPC record larger than ${this.maxRecord} bytes`);
        if (!last && len === 0) throw new XdrError('empty non-final RPC fragment');
        this.fragLast = last;
        this.fragLen = len;
        if (this.alloc && last && this.frags.length === 0 && len >= XID_LEN) {
          this.wantXid = true;
          this.xidHave = 0;
          continue;
        }
        this.frag = Buffer.allocUnsafe(len);
        this.fragHave = 0;
      }
      if (this.wantXid) {
        const k = Math.min(XID_LEN - this.xidHave, end - at);
        data.copy(this.xidBuf, this.xidHave, at, at + k);
        this.xidHave += k;
        at += k;
        if (this.xidHave < XID_LEN) return;
        this.wantXid = false;
        const into = this.alloc!(this.fragLen, this.xidBuf.readUInt32BE(0));
        if (into.length < this.fragLen)
          throw new RangeError('RecordDecoder: alloc returned too few bytes');
        this.frag = into.subarray(0, this.fragLen);
        this.xidBuf.copy(this.frag, 0);
        this.fragHave = XID_LEN;
      }
      const frag = this.frag!;
      const k = Math.min(frag.length - this.fragHave, end - at);
      data.copy(frag, this.fragHave, at, at + k);
      this.fragHave += k;
      at += k;
      if (this.fragHave < frag.length) return;
      this.frag = null;
      this.fragHave = 0;
      if (!this.fragLast) {
        this.frags.push(frag);
        this.fragBytes += frag.length;
        continue;
      }
      const rec = this.frags.length === 0 ? frag : Buffer.concat([...this.frags, frag]);
      this.frags = [];
      this.fragBytes = 0;
      onRecord(rec);
    }
  }

  /**
   * Stops filling memory of `buf` (a reply buffer whose call ended without
   * this record: timed out, closed): the part of a record received so far
   * moves to a buffer of the decoder's own, so the lender may reuse `buf`.
   */
  disown(buf: Buffer): void {
    const f = this.frag;
    if (f === null || f.buffer !== buf.buffer) return;
    const own = Buffer.allocUnsafe(f.length);
    f.copy(own, 0, 0, this.fragHave);
    this.frag = own;
  }

  /** Bytes buffered but not yet part of a complete record. */
  get pending(): number {
    return this.markHave + (this.wantXid ? this.xidHave : 0) + this.fragHave + this.fragBytes;
  }
}

/** Frames `body` as one last fragment (for tests and simple servers). */
export function frameRecord(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(MARK_LEN + body.length);
  out.writeUInt32BE((LAST_FRAGMENT | body.length) >>> 0, 0);
  body.copy(out, MARK_LEN);
  return out;
}
