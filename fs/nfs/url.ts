/**
 * NFS URLs as the storage backend takes them, in the form libnfs uses
 * (RFC 2224 names the scheme):
 *
 *   nfs://HOST[:PORT]/EXPORT/PATH[?mountport=N&nfsport=N&version=3]
 *
 * HOST is an IPv4 address or a name (a node name is resolved to its virtual
 * address by `--node`); the path is the export's pseudo path the client
 * MOUNTs (ganesha with Mount_Path_Pseudo); `nfsport` overrides PORT.
 */
import { MOUNT_PORT, NFS_PORT, type NfsTarget } from './nfs3.js';

export const NFS_URL_SCHEME = 'nfs:';

/** True when `s` looks like an NFS URL (so callers can pick the backend). */
export function isNfsUrl(s: string): boolean {
  return /^nfs:\/\//i.test(s);
}

const HOST =
  /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function port(v: string, what: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535)
    throw new Error(`NFS URL: ${what} must be 1..65535, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** Parses an NFS URL; throws an Error naming what is wrong. */
export function parseNfsUrl(s: string): Required<NfsTarget> {
  if (!isNfsUrl(s)) throw new Error(`not an nfs:// URL: ${JSON.stringify(s)}`);
  // URL normalises dot segments away; refuse them before it does.
  const rawPath = s.replace(/^nfs:\/\/[^/?#]*/i, '').split(/[?#]/)[0]!;
  if (rawPath.split('/').some((c) => c === '.' || c === '..' || /^%2e(%2e)?$/i.test(c)))
    throw new Error('NFS URL: . and .. are not allowed in the path');
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error(`malformed NFS URL ${JSON.stringify(s)}`);
  }
  if (u.username || u.password) throw new Error('NFS URL: user information is not supported');
  if (u.hash) throw new Error('NFS URL: a #fragment is not allowed');
  const host = u.hostname;
  if (!host || !HOST.test(host)) throw new Error(`NFS URL: bad host ${JSON.stringify(host)}`);
  const path = decodeURIComponent(u.pathname).replace(/\/+$/, '');
  if (!path || path === '/')
    throw new Error('NFS URL: the export path is missing (nfs://HOST/export)');
  if (path.split('/').some((c) => c === '.' || c === '..'))
    throw new Error('NFS URL: . and .. are not allowed in the path');
  let nfsPort = u.port ? port(u.port, 'port') : NFS_PORT;
  let mountPort = MOUNT_PORT;
  for (const [k, v] of u.searchParams) {
    if (k === 'nfsport') nfsPort = port(v, 'nfsport');
    else if (k === 'mountport') mountPort = port(v, 'mountport');
    else if (k === 'version') {
      if (v !== '3') throw new Error(`NFS URL: only version=3 is supported, got ${v}`);
    } else throw new Error(`NFS URL: unknown parameter ${JSON.stringify(k)}`);
  }
  return { host, port: nfsPort, mountPort, export: path };
}

/** Formats a target as a URL (ports only when not the defaults). */
export function formatNfsUrl(t: NfsTarget): string {
  const q: string[] = [];
  if (t.mountPort !== undefined && t.mountPort !== MOUNT_PORT) q.push(`mountport=${t.mountPort}`);
  const p = t.port !== undefined && t.port !== NFS_PORT ? `:${t.port}` : '';
  return `nfs://${t.host}${p}${t.export}${q.length ? `?${q.join('&')}` : ''}`;
}
