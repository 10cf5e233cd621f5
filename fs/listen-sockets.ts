/**
 * The TCP sockets a process listens on, read from /proc (proc(5): the
 * `net/tcp` and `net/tcp6` tables of the process's network namespace, and
 * its `fd/` links `socket:[INODE]`).
 *
 * Why not just connect to the port: a connection proves that *something* in
 * the namespace accepts on it, not that the process we started does (a
 * second nfs-ganesha whose bind failed looked ready because the first one
 * held the port on every address). And nfs-ganesha 4.3 ignores `Bind_addr`
 * when IPv6 is available and listens on `[::]` (nfs-ganesha issues #217,
 * #760), so what it really listens on is worth reporting.
 */
import { endianness, networkInterfaces } from 'node:os';
import { readdir, readFile, readlink } from 'node:fs/promises';

/** One listening socket: its local address (IPv4 dotted, IPv6 text) and port. */
export interface ListenSocket {
  addr: string;
  port: number;
}

/** A row of /proc/net/tcp{,6} in the LISTEN state. */
export interface ProcTcpRow extends ListenSocket {
  inode: number;
}

/** `st` of a listening socket in /proc/net/tcp (include/net/tcp_states.h: TCP_LISTEN = 10). */
const TCP_LISTEN = 0x0a;
const V4_HEX = 8;
const V6_HEX = 32;

/** The four bytes of one 32-bit word as /proc prints it (`%08X` of a native-order load). */
function wordBytes(hex: string, little: boolean): number[] {
  const w = parseInt(hex, 16);
  const b = [(w >>> 24) & 0xff, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff];
  return little ? b.reverse() : b;
}

/**
 * Text form of a 16-byte IPv6 address as inet_ntop(3) prints it (what `ss`
 * shows): the first longest run of two or more zero groups becomes '::'
 * (RFC 5952 §4.2), and an address whose first six groups are zero, or five
 * zero and then ffff, ends in dotted IPv4.
 */
function v6Text(b: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of two or more zero groups becomes '::' (RFC 5952 §4.2).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best === 0 && (bestLen === 6 || (bestLen === 5 && groups[5] === 0xffff)))
    return `::${bestLen === 5 ? 'ffff:' : ''}${b.slice(12).join('.')}`;
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * Parses the text of /proc/PID/net/tcp (`v6` false) or tcp6 (`v6` true) and
 * returns its LISTEN rows. `little` is the host's byte order (the kernel
 * prints each address word as a native-order integer). Rows that do not
 * have the expected shape are skipped.
 */
export function parseProcTcp(
  text: string,
  v6: boolean,
  little = endianness() === 'LE',
): ProcTcpRow[] {
  const out: ProcTcpRow[] = [];
  const addrHex = v6 ? V6_HEX : V4_HEX;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const m = /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4})$/.exec(f[1]!);
    if (!m || m[1]!.length !== addrHex || parseInt(f[3]!, 16) !== TCP_LISTEN) continue;
    const bytes: number[] = [];
    for (let i = 0; i < addrHex; i += V4_HEX)
      bytes.push(...wordBytes(m[1]!.slice(i, i + V4_HEX), little));
    const inode = Number(f[9]);
    if (!Number.isSafeInteger(inode) || inode <= 0) continue;
    out.push({ addr: v6 ? v6Text(bytes) : bytes.join('.'), port: parseInt(m[2]!, 16), inode });
  }
  return out;
}

/** True for an address that accepts on every address of the namespace. */
export function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::';
}

/** `addr:port`, IPv6 in brackets. */
export function formatSocket(s: ListenSocket): string {
  return s.addr.includes(':') ? `[${s.addr}]:${s.port}` : `${s.addr}:${s.port}`;
}

/**
 * The TCP sockets process `pid` listens on (in its own network namespace).
 * Needs permission to read /proc/PID/fd (root, or the same user). A process
 * that is gone yields an empty list.
 */
export async function listenSocketsOf(pid: number): Promise<ListenSocket[]> {
  const inodes = new Set<number>();
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  await Promise.all(
    fds.map(async (fd) => {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) inodes.add(Number(m[1]));
    }),
  );
  const rows: ProcTcpRow[] = [];
  for (const [file, v6] of [
    ['tcp', false],
    ['tcp6', true],
  ] as const) {
    const text = await readFile(`/proc/${pid}/net/${file}`, 'utf8').catch(() => '');
    rows.push(...parseProcTcp(text, v6));
  }
  return rows.filter((r) => inodes.has(r.inode)).map(({ addr, port }) => ({ addr, port }));
}

/**
 * Addresses of this process's network namespace, other than loopback and
 * `except`, that a wildcard listener also accepts on.
 */
export function otherAddresses(except: string | undefined): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? [])
      if (!a.internal && a.address !== except && !a.address.startsWith('fe80:'))
        out.push(a.address);
  return out;
}
