/**
 * fs/listen-sockets.ts: /proc/net/tcp{,6} parsing and the per-process view.
 *
 * Fixtures: captured on this project's test machine (Linux 6.18, x86-64) on
 * 2026-12-03 from a network namespace with three node:net listeners —
 * 10.250.0.1:2049, [::]:20048 and [::1]:4000.
 */
import { createServer, SocketAddress, type Server } from 'node:net';
import fc from 'fast-check';
import {
  formatSocket,
  isWildcard,
  listenSocketsOf,
  parseProcTcp,
} from '../../fs/listen-sockets.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100FA0A:0801 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2608077 1 00000000d2148cff 100 0 0 10 0
   1: 0100FA0A:0801 0900FA0A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2608090 1 00000000d2148c00 100 0 0 10 0
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2608079 1 00000000a73cd701 100 0 0 10 0
   1: 00000000000000000000000000000000:4E50 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2608078 1 000000003af32954 100 0 0 10 0
`;

/** The /proc/net/tcp6 hex of 16 address bytes on a little-endian host. */
function procHex(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < 16; i += 4)
    out += bytes
      .slice(i, i + 4)
      .reverse()
      .map((b) => b.toString(16).padStart(2, '0'))
      .join('')
      .toUpperCase();
  return out;
}

describe('parseProcTcp', () => {
  it('reads the LISTEN rows of a captured /proc/net/tcp, skipping other states', () => {
    expect(parseProcTcp(TCP, false, true)).toEqual([
      { addr: '10.250.0.1', port: 2049, inode: 2608077 },
    ]);
  });

  it('reads a captured /proc/net/tcp6', () => {
    expect(parseProcTcp(TCP6, true, true)).toEqual([
      { addr: '::1', port: 4000, inode: 2608079 },
      { addr: '::', port: 20048, inode: 2608078 },
    ]);
  });

  it('honours the byte order: the same text on a big-endian host is another address', () => {
    expect(parseProcTcp(TCP, false, false)[0]!.addr).toBe('1.0.250.10');
  });

  it('skips malformed rows instead of guessing', () => {
    const bad = [
      'header',
      '   0: 0100FA0A:801 00000000:0000 0A 0:0 00:0 0 0 0 1 1', // 3-digit port
      '   0: 00FA0A:0801 00000000:0000 0A 0:0 00:0 0 0 0 1 1', // short address
      '   0: 0100FA0A:0801 00000000:0000 0A 0:0 00:0 0 0 0 0 1', // inode 0
      '   0: 0100FA0A:0801 00000000:0000', // too few fields
      `   0: ${'0'.repeat(32)}:0801 00000000:0000 0A 0:0 00:0 0 0 0 7 1`, // v6 row in tcp
    ].join('\n');
    expect(parseProcTcp(bad, false, true)).toEqual([]);
  });

  it('formats every IPv6 address as inet_ntop does (node:net SocketAddress as the reference)', () => {
    // Zero-heavy bytes, so compression, ties and the embedded-IPv4 forms all occur.
    const byte = fc.oneof(fc.constant(0), fc.constant(0xff), fc.integer({ min: 0, max: 255 }));
    fc.assert(
      fc.property(fc.array(byte, { minLength: 16, maxLength: 16 }), (bytes) => {
        const row = `   0: ${procHex(bytes)}:0801 ${'0'.repeat(32)}:0000 0A 0:0 00:0 0 0 0 42 1`;
        const [got] = parseProcTcp(`header\n${row}\n`, true, true);
        const groups: string[] = [];
        for (let i = 0; i < 16; i += 2)
          groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
        const want = new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
        expect(got!.addr).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('formatSocket / isWildcard', () => {
  it('brackets IPv6 and knows the two wildcards', () => {
    expect(formatSocket({ addr: '::', port: 2049 })).toBe('[::]:2049');
    expect(formatSocket({ addr: '10.0.0.1', port: 2049 })).toBe('10.0.0.1:2049');
    expect(isWildcard('::')).toBe(true);
    expect(isWildcard('0.0.0.0')).toBe(true);
    expect(isWildcard('::1')).toBe(false);
    expect(isWildcard('10.0.0.1')).toBe(false);
  });
});

describe('listenSocketsOf', () => {
  const listen = (host: string): Promise<Server> =>
    new Promise((res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, host, () => res(s));
    });

  it("finds this process's own listeners, and not one it closed", async () => {
    const a = await listen('127.0.0.1');
    const b = await listen('127.0.0.1');
    const pa = (a.address() as { port: number }).port;
    const pb = (b.address() as { port: number }).port;
    await new Promise((r) => b.close(r));
    try {
      const mine = await listenSocketsOf(process.pid);
      expect(mine).toContainEqual({ addr: '127.0.0.1', port: pa });
      expect(mine.some((s) => s.port === pb)).toBe(false);
    } finally {
      await new Promise((r) => a.close(r));
    }
  });

  it('answers an empty list for a process that does not exist', async () => {
    expect(await listenSocketsOf(2 ** 22 + 12345)).toEqual([]);
  });
});
