/**
 * The pipelining RPC client and the NFSv3 client over a loopback server:
 * replies matched by xid in any order, unmatched and malformed input
 * dropped and counted, reconnect + retransmit under the original xid after
 * a dropped connection or an overdue reply, a clear timeout when the server
 * stays away, JUKEBOX retried, refusals as typed errors.
 */
import { describe, it, expect, beforeEach, afterEach } from '@jest/globals';
import { createServer, type Server, type Socket } from 'node:net';
import { FakeNfsServer } from './nfs-fake-server.js';
import { RpcClient, RpcTimeout, RpcClosed, tcpConnector } from '../../fs/nfs/transport.js';
import { RpcError, RecordDecoder, frameRecord } from '../../fs/nfs/rpc.js';
import { XdrWriter } from '../../fs/nfs/xdr.js';
import { Nfs3Client } from '../../fs/nfs/nfs3.js';
import { NfsError } from '../../fs/nfs/errors.js';
import { CREATE_MODE, NFS_PROGRAM, PROC, PROC_NAME, dec, enc } from '../../fs/nfs/nfs3-wire.js';
import { MemoryLogger } from '../../admin/logger.js';

let fake: FakeNfsServer;
let port: number;
const clients: Array<{ close(): void }> = [];
const raws: Array<() => Promise<void>> = [];

beforeEach(async () => {
  fake = new FakeNfsServer();
  port = await fake.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const close of raws.splice(0)) await close();
  await fake.stop();
});

const mount = async (o: Parameters<typeof Nfs3Client.mount>[1] = {}): Promise<Nfs3Client> => {
  const c = await Nfs3Client.mount(
    { host: '127.0.0.1', export: '/export', port, mountPort: port },
    { deadlineMs: 10_000, ...o },
  );
  clients.push(c);
  return c;
};

/** A raw TCP server whose records are handled by `onRecord(connection number, socket, record)`. */
async function rawServer(
  onRecord: (conn: number, sock: Socket, rec: Buffer) => void,
): Promise<{ server: Server; port: number }> {
  let conns = 0;
  const socks = new Set<Socket>();
  const server = createServer((sock) => {
    const n = ++conns;
    socks.add(sock);
    const d = new RecordDecoder();
    sock.on('data', (b) => d.push(b, (r) => onRecord(n, sock, r)));
    sock.on('error', () => {});
    sock.on('close', () => socks.delete(sock));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  raws.push(async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { server, port: (server.address() as { port: number }).port };
}

/** A NULL reply for call record `rec`. */
const nullReply = (rec: Buffer, xid = rec.readUInt32BE(0)): Buffer =>
  frameRecord(Buffer.from(new XdrWriter().u32(xid).u32(1).u32(0).u32(0).u32(0).u32(0).bytes));

describe('RpcClient', () => {
  it('pipelines calls and matches replies that come back in reverse order', async () => {
    const c = await mount();
    const names = Array.from({ length: 8 }, (_, i) => `f${i}`);
    const fhs: Buffer[] = [];
    for (const n of names) fhs.push((await c.create(c.root, n, CREATE_MODE.UNCHECKED, {})).fh!);
    const ids = await Promise.all(fhs.map((fh) => c.getattr(fh).then((a) => a.fileid)));
    const expected = await Promise.all(fhs.map((fh) => c.getattr(fh).then((a) => a.fileid)));
    fake.reorderBatch = 8;
    const reordered = await Promise.all(fhs.map((fh) => c.getattr(fh).then((a) => a.fileid)));
    expect(reordered).toEqual(expected);
    expect(new Set(ids).size).toBe(8);
    // The last 8 calls were all on the wire before the first reply.
    const xids = fake.xids.slice(-8);
    expect(new Set(xids).size).toBe(8);
  });

  it('drops a reply with an unknown xid and counts it', async () => {
    const { port: p } = await rawServer((_, sock, rec) => {
      sock.write(nullReply(rec, (rec.readUInt32BE(0) ^ 0x5555) >>> 0));
      sock.write(nullReply(rec));
    });
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', p),
      server: 'raw',
    });
    clients.push(rpc);
    const r = await rpc.call(PROC.NULL, () => {});
    expect(r.body.remaining).toBe(0);
    expect(rpc.counters.unmatched).toBe(1);
  });

  it('reconnects and retransmits under the same xid when the connection drops', async () => {
    const c = await mount();
    fake.before = (proc, n) => (proc === PROC.GETATTR && n === 1 ? 'drop' : undefined);
    const log = new MemoryLogger();
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', port),
      server: 'fake',
      logger: log,
    });
    clients.push(rpc);
    const res = await rpc.call(PROC.GETATTR, enc.fh(c.root));
    expect(res.retransmitted).toBe(true);
    expect(dec.getattr(res.body).status).toBe(0);
    expect(rpc.counters.retransmits).toBe(1);
    expect(rpc.counters.reconnects).toBe(1);
    const xid = fake.xids[fake.xids.length - 1];
    expect(fake.xids.filter((x) => x === xid)).toHaveLength(2);
    expect(log.records.some((r) => r.msg.includes('retransmitting'))).toBe(true);
  });

  it('retransmits on a new connection when a reply is overdue', async () => {
    const { port: p } = await rawServer((conn, sock, rec) => {
      if (conn >= 2) sock.write(nullReply(rec)); // the first connection swallows calls
    });
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', p),
      server: 'raw',
      timeoutMs: 600,
    });
    clients.push(rpc);
    const r = await rpc.call(PROC.NULL, () => {});
    expect(r.retransmitted).toBe(true);
    expect(rpc.counters.reconnects).toBe(1);
  });

  it('drops a connection whose stream is not record-marked RPC, then recovers', async () => {
    const { port: p } = await rawServer((conn, sock, rec) => {
      if (conn === 1) sock.write(Buffer.from('ffffffff00000000', 'hex'));
      else sock.write(nullReply(rec));
    });
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', p),
      server: 'raw',
    });
    clients.push(rpc);
    await rpc.call(PROC.NULL, () => {});
    expect(rpc.counters.malformed).toBe(1);
  });

  it('fails a call for a reply it cannot decode, with a protocol error', async () => {
    const { port: p } = await rawServer((_, sock, rec) => {
      sock.write(
        frameRecord(Buffer.from(new XdrWriter().u32(rec.readUInt32BE(0)).u32(1).u32(7).bytes)),
      );
    });
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', p),
      server: 'raw',
    });
    clients.push(rpc);
    await expect(rpc.call(PROC.NULL, () => {})).rejects.toMatchObject({ code: 'EPROTO' });
  });

  it('gives up with a clear timeout when the server stays away', async () => {
    await fake.stop();
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', port),
      server: `127.0.0.1:${port}`,
      procNames: PROC_NAME,
      deadlineMs: 1200,
    });
    clients.push(rpc);
    const err = await rpc.call(PROC.NULL, () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(RpcTimeout);
    expect(err.code).toBe('ETIMEDOUT');
    expect(err.message).toMatch(
      /NFSv3 NULL to 127\.0\.0\.1:\d+: no reply after \d+ s .*ECONNREFUSED/,
    );
    expect(rpc.counters.connectFailures).toBeGreaterThan(1);
    fake = new FakeNfsServer();
    await fake.start();
  });

  it('answers a refused program version with RpcError and fails outstanding calls on close', async () => {
    const rpc = new RpcClient({
      program: { ...NFS_PROGRAM, vers: 4 },
      connect: tcpConnector('127.0.0.1', port),
      server: 'fake',
    });
    const err = await rpc.call(PROC.NULL, () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err.failure).toEqual({ kind: 'prog-mismatch', low: 3, high: 3 });
    fake.before = () => 'drop';
    const pending = rpc.call(PROC.NULL, () => {});
    rpc.close();
    await expect(pending).rejects.toBeInstanceOf(RpcClosed);
    await expect(rpc.call(PROC.NULL, () => {})).rejects.toBeInstanceOf(RpcClosed);
  });

  it('receives a reply in the buffer the call lent, and never writes it once the call failed', async () => {
    const replies: Buffer[] = [];
    let rest: (() => void) | undefined;
    const { port: p } = await rawServer((_, sock, rec) => {
      const reply = nullReply(rec);
      replies.push(reply);
      if (replies.length !== 2) sock.write(reply);
      else {
        // Half of the second reply; the rest only after that call timed out.
        sock.write(reply.subarray(0, 10));
        rest = () => sock.write(reply.subarray(10));
      }
    });
    const rpc = new RpcClient({
      program: NFS_PROGRAM,
      connect: tcpConnector('127.0.0.1', p),
      server: 'raw',
      deadlineMs: 300,
    });
    clients.push(rpc);
    const lent = Buffer.alloc(256, 0x11);
    expect((await rpc.call(PROC.NULL, () => {}, lent)).body.remaining).toBe(0);
    const body = replies[0]!.subarray(4); // without its record mark
    expect(lent.subarray(0, body.length).equals(body)).toBe(true);
    expect(lent[body.length]).toBe(0x11);

    const lent2 = Buffer.alloc(256, 0x11);
    const err = await rpc.call(PROC.NULL, () => {}, lent2).catch((e) => e);
    expect(err).toBeInstanceOf(RpcTimeout);
    lent2.fill(0x22); // the caller has its buffer back and reuses it
    rest!();
    // The late reply completes elsewhere and matches no call; the next call works.
    expect((await rpc.call(PROC.NULL, () => {}, Buffer.alloc(8))).body.remaining).toBe(0);
    expect(lent2.every((x) => x === 0x22)).toBe(true);
    expect(rpc.counters.unmatched).toBe(1);
  });

  it('limits calls in flight and queues the rest', async () => {
    const c = await mount({ maxInFlight: 2 });
    fake.reorderBatch = 2;
    const fhs = await Promise.all(
      Array.from({ length: 6 }, async () => c.getattr(c.root).then((a) => a.fileid)),
    );
    expect(fhs.every((f) => f === 1n)).toBe(true);
  });
});

describe('Nfs3Client', () => {
  it('retries NFS3ERR_JUKEBOX and then succeeds', async () => {
    const c = await mount();
    fake.jukebox = 2;
    expect((await c.getattr(c.root)).type).toBe(2);
    expect(c.counters.jukeboxRetries).toBe(2);
  });

  it('turns a JUKEBOX that does not end into EAGAIN', async () => {
    const c = await mount({ jukeboxMs: 150 });
    fake.jukebox = 100;
    const err = await c.getattr(c.root).catch((e) => e);
    expect(err).toBeInstanceOf(NfsError);
    expect(err.code).toBe('EAGAIN');
    expect(err.message).toMatch(/NFS3ERR_JUKEBOX/);
  });

  it('maps NFS errors to errno and refuses bad names before sending', async () => {
    const c = await mount();
    await expect(c.lookup(c.root, 'missing')).rejects.toMatchObject({ code: 'ENOENT', status: 2 });
    await c.mkdir(c.root, 'd', { mode: 0o700 });
    await c.create(c.root, 'd2', CREATE_MODE.UNCHECKED, {});
    const d = (await c.lookup(c.root, 'd')).fh;
    await c.create(d, 'x', CREATE_MODE.UNCHECKED, {});
    await expect(c.rmdir(c.root, 'd')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(c.mkdir(c.root, 'd', {})).rejects.toMatchObject({ code: 'EEXIST' });
    fake.staleAll();
    await expect(c.getattr(d)).rejects.toMatchObject({ code: 'ESTALE' });
    await expect(c.getattr(Buffer.alloc(5))).rejects.toMatchObject({
      code: 'ESTALE',
      status: 10001,
    });
    await expect(c.lookup(c.root, '../etc')).rejects.toThrow(/invalid file name/);
    await expect(c.lookup(c.root, '')).rejects.toThrow(/invalid file name/);
    await expect(c.lookup(c.root, 'x'.repeat(256))).rejects.toThrow(/255 bytes/);
  });

  it('refuses an export the server does not know with the MOUNT status', async () => {
    await expect(
      Nfs3Client.mount({ host: '127.0.0.1', export: '/nope', port, mountPort: port }),
    ).rejects.toMatchObject({ code: 'EACCES', mount: true });
  });

  it('lists a directory across READDIRPLUS pages', async () => {
    const c = await mount();
    const want: string[] = [];
    for (let i = 0; i < 30; i++) {
      want.push(`n${i}`);
      await c.create(c.root, `n${i}`, CREATE_MODE.UNCHECKED, {});
    }
    const got = await c.readdirplus(c.root, { maxcount: 1500 });
    expect(got.map((e) => e.name).sort()).toEqual(want.sort());
    expect(fake.counts.get(PROC.READDIRPLUS)).toBeGreaterThan(3);
  });
});
