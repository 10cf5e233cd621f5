/** NFS URLs (libnfs form) and the errno table. */
import { describe, it, expect } from '@jest/globals';
import { formatNfsUrl, isNfsUrl, parseNfsUrl } from '../../fs/nfs/url.js';
import { NFS3, NfsError, nfsErrno, nfsStatName } from '../../fs/nfs/errors.js';

describe('NFS URLs', () => {
  it('parses host, ports and the export path', () => {
    expect(parseNfsUrl('nfs://10.71.17.3/export')).toEqual({
      host: '10.71.17.3',
      port: 2049,
      mountPort: 20048,
      export: '/export',
    });
    expect(parseNfsUrl('nfs://bigdisk1:3049/export/v1/?mountport=3048&version=3')).toEqual({
      host: 'bigdisk1',
      port: 3049,
      mountPort: 3048,
      export: '/export/v1',
    });
    expect(parseNfsUrl('nfs://h/e?nfsport=7')).toMatchObject({ port: 7 });
    expect(isNfsUrl('NFS://x/y')).toBe(true);
    expect(isNfsUrl('/srv/nfs')).toBe(false);
  });
  it('refuses what it does not understand, naming it', () => {
    expect(() => parseNfsUrl('/srv')).toThrow(/not an nfs:\/\/ URL/);
    expect(() => parseNfsUrl('nfs://h')).toThrow(/export path is missing/);
    expect(() => parseNfsUrl('nfs://h/')).toThrow(/export path is missing/);
    expect(() => parseNfsUrl('nfs://u:p@h/e')).toThrow(/user information/);
    expect(() => parseNfsUrl('nfs://h/e?version=4')).toThrow(/version=3/);
    expect(() => parseNfsUrl('nfs://h/e?nfsport=0')).toThrow(/nfsport must be/);
    expect(() => parseNfsUrl('nfs://h/e?mountport=99999')).toThrow(/mountport must be/);
    expect(() => parseNfsUrl('nfs://h/e?foo=1')).toThrow(/unknown parameter "foo"/);
    expect(() => parseNfsUrl('nfs://h/e/../x')).toThrow(/\.\./);
    expect(() => parseNfsUrl('nfs://h_x/e')).toThrow(/bad host/);
    expect(() => parseNfsUrl('nfs://h/e#x')).toThrow(/fragment/);
  });
  it('formats back, leaving default ports out', () => {
    expect(formatNfsUrl(parseNfsUrl('nfs://10.0.0.1:2049/export?mountport=20048'))).toBe(
      'nfs://10.0.0.1/export',
    );
    expect(formatNfsUrl(parseNfsUrl('nfs://h:1/e?mountport=2'))).toBe('nfs://h:1/e?mountport=2');
  });
});

describe('NFS errors', () => {
  it('maps every nfsstat3 of RFC 1813 to an errno and a name', () => {
    for (const [k, v] of Object.entries(NFS3)) {
      if (v === 0) continue;
      expect(nfsStatName(v)).toBe(`NFS3${k}`);
      expect(nfsErrno(v)).toMatch(/^E[A-Z]+$/);
    }
    expect(nfsErrno(NFS3.ERR_NOENT)).toBe('ENOENT');
    expect(nfsErrno(NFS3.ERR_STALE)).toBe('ESTALE');
    expect(nfsErrno(NFS3.ERR_DQUOT)).toBe('EDQUOT');
    expect(nfsErrno(NFS3.ERR_JUKEBOX)).toBe('EAGAIN');
    expect(nfsErrno(12345)).toBe('EIO');
    const e = new NfsError(NFS3.ERR_NOSPC, 'WRITE x');
    expect(e.code).toBe('ENOSPC');
    expect(e.message).toBe('WRITE x: NFS3ERR_NOSPC (ENOSPC)');
    expect(new NfsError(999, 'X').message).toBe('X: nfsstat3 999 (EIO)');
  });
});
