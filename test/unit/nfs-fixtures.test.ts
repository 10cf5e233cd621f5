/**
 * Decoding real replies captured from nfs-ganesha 4.3 (test/fixtures/nfs/,
 * see its README for how they were captured). Expectations come from what
 * the capture did (what it wrote, which names it created, which call was
 * meant to fail), and replies are checked against each other (LOOKUP finds
 * the handle CREATE returned, COMMIT's verifier is WRITE's, READ returns
 * the written bytes), so a decoder bug cannot hide behind its own output.
 */
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodeAuthSys, decodeReply, AUTH_SYS } from '../../fs/nfs/rpc.js';
import { XdrReader } from '../../fs/nfs/xdr.js';
import { dec, FTYPE, STABLE, type DirEntry, type Res } from '../../fs/nfs/nfs3-wire.js';
import { NfsError, nfsErrno } from '../../fs/nfs/errors.js';

interface Rec {
  label: string;
  prog: 'mount' | 'nfs';
  proc: number;
  call: string;
  reply: string;
  expect?: Record<string, unknown>;
}
const FIX = fileURLToPath(new URL('../../../test/fixtures/nfs/ganesha-4.3.json', import.meta.url));
const fixture = JSON.parse(readFileSync(FIX, 'utf8')) as { server: string; records: Rec[] };
const all = (label: string): Rec[] => fixture.records.filter((r) => r.label === label);
const one = (label: string): Rec => {
  const r = all(label);
  if (r.length !== 1) throw new Error(`fixture has ${r.length} records labelled ${label}`);
  return r[0]!;
};
/** The results of a captured successful RPC. */
const body = (label: string, i = 0): XdrReader => {
  const rec = all(label)[i]!;
  const rep = decodeReply(Buffer.from(rec.reply, 'hex'));
  if (!rep.ok) throw new Error(`${label}: RPC refused`);
  expect(rep.xid).toBe(Buffer.from(rec.call, 'hex').readUInt32BE(0));
  return rep.body;
};
const ok = <T>(r: Res<T>): T => {
  expect(r.status).toBe(0);
  return r as T & { status: 0 };
};

describe(`captured ganesha replies (${fixture.server})`, () => {
  it('every call we sent carries AUTH_SYS and every reply is for its call', () => {
    for (const r of fixture.records) {
      const call = new XdrReader(Buffer.from(r.call, 'hex'));
      const xid = call.u32();
      expect(call.u32()).toBe(0);
      expect(call.u32()).toBe(2);
      expect(call.u32()).toBe(r.prog === 'nfs' ? 100003 : 100005);
      call.u32();
      expect(call.u32()).toBe(r.proc);
      const flavor = call.u32();
      const cred = Buffer.from(call.opaque(400));
      if (r.label !== 'auth-none-refused') {
        expect(flavor).toBe(AUTH_SYS);
        expect(decodeAuthSys(cred).uid).toBe(0);
      }
      expect(Buffer.from(r.reply, 'hex').readUInt32BE(0)).toBe(xid);
    }
  });

  it('MNT gives the root handle with AUTH_SYS; an unknown export is MNT3ERR_ACCES', () => {
    const m = ok(dec.mnt(body('mnt')));
    expect(m.fh.length).toBeGreaterThan(0);
    expect(m.flavors).toContain(AUTH_SYS);
    const bad = dec.mnt(body('mnt-noent'));
    expect(bad.status).toBe(one('mnt-noent').expect!.mountstat);
    expect(new NfsError(bad.status, 'MOUNT', true).code).toBe('EACCES');
  });

  it('GETATTR, FSINFO, FSSTAT, ACCESS of the root', () => {
    const root = ok(dec.getattr(body('getattr-root'))).attr;
    expect(root.type).toBe(FTYPE.DIR);
    const info = ok(dec.fsinfo(body('fsinfo')));
    expect(info.rtmax).toBeGreaterThanOrEqual(info.rtpref > 0 ? 4096 : 0);
    expect(info.wtmax).toBeGreaterThanOrEqual(4096);
    expect(info.maxfilesize).toBeGreaterThan(1n << 32n);
    const st = ok(dec.fsstat(body('fsstat')));
    expect(st.tbytes).toBeGreaterThanOrEqual(st.fbytes);
    expect(st.fbytes).toBeGreaterThanOrEqual(st.abytes);
    const acc = ok(dec.access(body('access-root')));
    expect(acc.access & ~(one('access-root').expect!.mask as number)).toBe(0);
  });

  it('MKDIR, CREATE (unchecked, guarded, exclusive) and LOOKUP agree on handles and modes', () => {
    const mk = ok(dec.create(body('mkdir')));
    expect(mk.attr!.type).toBe(FTYPE.DIR);
    expect(mk.attr!.mode & 0o777).toBe(0o700);
    const exist = dec.create(body('mkdir-exist'));
    expect(exist.status).toBe(17);
    expect(nfsErrno(exist.status)).toBe('EEXIST');
    const cr = ok(dec.create(body('create')));
    expect(cr.attr!.type).toBe(FTYPE.REG);
    expect(cr.attr!.mode & 0o777).toBe(0o600);
    expect(dec.create(body('create-guarded-exist')).status).toBe(17);
    expect(ok(dec.create(body('create-exclusive'))).fh).not.toBeNull();
    const lk = ok(dec.lookup(body('lookup')));
    expect(lk.fh.equals(cr.fh!)).toBe(true);
    expect(lk.attr!.fileid).toBe(cr.attr!.fileid);
    expect(dec.lookup(body('lookup-noent')).status).toBe(2);
  });

  it('WRITE (unstable, file sync), COMMIT, GETATTR, READ, SETATTR', () => {
    const w = ok(dec.write(body('write-unstable')));
    const data = Buffer.from(one('write-unstable').expect!.data as string, 'hex');
    expect(w.count).toBe(data.length);
    const c = ok(dec.commit(body('commit')));
    expect(c.verf.equals(w.verf)).toBe(true);
    const fsync = ok(dec.write(body('write-filesync')));
    expect(fsync.committed).toBe(STABLE.FILE_SYNC);
    expect(fsync.count).toBe(3);
    const ga = ok(dec.getattr(body('getattr-file'))).attr;
    expect(ga.size).toBe(one('getattr-file').expect!.size);
    const rd = ok(dec.read(body('read')));
    expect(rd.data.toString('hex')).toBe(one('read').expect!.data);
    expect(rd.eof).toBe(true);
    const past = ok(dec.read(body('read-past-eof')));
    expect(past.count).toBe(0);
    expect(past.eof).toBe(true);
    const sa = ok(dec.setattr(body('setattr-truncate')));
    expect(sa.wcc.after!.size).toBe(5);
    expect(sa.wcc.before!.size).toBe(ga.size);
  });

  it('RENAME, REMOVE, RMDIR and their failures', () => {
    const rn = ok(dec.rename(body('rename')));
    expect(rn.from.after!.type).toBe(FTYPE.DIR);
    expect(dec.rename(body('rename-noent')).status).toBe(2);
    const notEmpty = dec.remove(body('rmdir-notempty')).status;
    expect(notEmpty).toBe(66);
    expect(nfsErrno(notEmpty)).toBe('ENOTEMPTY');
    ok(dec.remove(body('remove')));
    expect(dec.remove(body('remove-noent')).status).toBe(2);
    const bad = dec.getattr(body('getattr-badhandle')).status;
    expect(['ESTALE', 'EINVAL', 'EIO']).toContain(nfsErrno(bad));
  });

  it('READDIRPLUS pages join to the same listing as one big READDIRPLUS', () => {
    const pages = all('readdirplus-small').map((_, i) =>
      ok(dec.readdirplus(body('readdirplus-small', i))),
    );
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.slice(0, -1).every((p) => !p.eof)).toBe(true);
    expect(pages[pages.length - 1]!.eof).toBe(true);
    // Each page continues after the last cookie of the previous one.
    const pageCalls = all('readdirplus-small').map((r) => {
      const c = new XdrReader(Buffer.from(r.call, 'hex'));
      for (let i = 0; i < 6; i++) c.u32();
      c.u32();
      c.opaque(400);
      c.u32();
      c.opaque(400);
      c.opaque(64);
      return c.u64();
    });
    expect(pageCalls[0]).toBe(0n);
    for (let i = 1; i < pages.length; i++) {
      const prev = pages[i - 1]!.entries;
      expect(pageCalls[i]).toBe(prev[prev.length - 1]!.cookie);
    }
    const names = (es: DirEntry[]): string[] =>
      es
        .map((e) => e.name)
        .filter((n) => n !== '.' && n !== '..')
        .sort();
    const joined = names(pages.flatMap((p) => p.entries));
    const big = ok(dec.readdirplus(body('readdirplus')));
    expect(big.eof).toBe(true);
    expect(names(big.entries)).toEqual(joined);
    expect(joined).toEqual([...(one('readdirplus').expect!.names as string[])].sort());
    for (const e of big.entries) {
      if (e.name === '.' || e.name === '..') continue;
      expect(e.fh).not.toBeNull();
      expect(e.attr!.fileid).toBe(e.fileid);
    }
  });

  it('refused calls: AUTH_NONE is too weak, NFSv4 is a version mismatch, proc 99 is unavailable', () => {
    expect(decodeReply(Buffer.from(one('auth-none-refused').reply, 'hex'))).toMatchObject({
      ok: false,
      failure: { kind: 'auth-error', stat: 5 },
    });
    expect(decodeReply(Buffer.from(one('prog-mismatch').reply, 'hex'))).toMatchObject({
      ok: false,
      failure: { kind: 'prog-mismatch', low: 3, high: 3 },
    });
    expect(decodeReply(Buffer.from(one('proc-unavail').reply, 'hex'))).toMatchObject({
      ok: false,
      failure: { kind: 'proc-unavail' },
    });
  });

  it('every captured reply fails to decode when truncated by one unit', () => {
    for (const r of fixture.records) {
      const rep = decodeReply(Buffer.from(r.reply, 'hex'));
      if (!rep.ok) continue;
      const full = rep.body.buf;
      const cut = full.subarray(0, full.length - 4);
      const decoder = {
        mount: dec.mnt,
        nfs: [
          null,
          dec.getattr,
          dec.setattr,
          dec.lookup,
          dec.access,
          null,
          dec.read,
          dec.write,
          dec.create,
          dec.create,
          null,
          null,
          dec.remove,
          dec.remove,
          dec.rename,
          null,
          null,
          dec.readdirplus,
          dec.fsstat,
          dec.fsinfo,
          null,
          dec.commit,
        ][r.proc],
      }[r.prog];
      if (!decoder || typeof decoder !== 'function') continue;
      const d = decoder as (x: XdrReader) => unknown;
      expect(() => d(new XdrReader(full, rep.body.pos))).not.toThrow();
      expect(() => d(new XdrReader(cut, rep.body.pos))).toThrow();
    }
  });
});
