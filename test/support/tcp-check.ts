/**
 * A TCP transfer whose correctness can be checked end to end: `sink PORT`
 * accepts one connection and prints the byte count and SHA-256 of what it
 * received; `source HOST PORT BYTES [RATE_BYTES_PER_S]` sends deterministic
 * pseudo-random bytes (optionally paced) and prints the same for what it sent.
 * Runs inside nodes through `supernet exec`.
 */
import { createHash } from 'node:crypto';
import { createConnection, createServer } from 'node:net';

function block(i: number): Buffer {
  // Deterministic content: block i of a SHA-256 counter stream.
  const b = Buffer.alloc(65536);
  for (let o = 0; o < b.length; o += 32) {
    createHash('sha256').update(`supernet-tcp-check:${i}:${o}`).digest().copy(b, o);
  }
  return b;
}

async function sink(port: number): Promise<void> {
  const server = createServer((sock) => {
    const h = createHash('sha256');
    let n = 0;
    sock.on('data', (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    sock.on('end', () => {
      process.stdout.write(JSON.stringify({ bytes: n, sha256: h.digest('hex') }) + '\n');
      server.close();
    });
    sock.on('error', (err) => {
      process.stderr.write(`sink: ${err.message}\n`);
      process.exit(2);
    });
  });
  server.listen(port, () => process.stderr.write(`listening ${port}\n`));
}

async function source(host: string, port: number, bytes: number, rate: number): Promise<void> {
  const h = createHash('sha256');
  const sock = createConnection({ host, port });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const start = Date.now();
  let sent = 0;
  let i = 0;
  while (sent < bytes) {
    const b = block(i++).subarray(0, Math.min(65536, bytes - sent));
    h.update(b);
    sent += b.length;
    if (!sock.write(b)) await new Promise((r) => sock.once('drain', r));
    if (rate > 0) {
      const due = start + (sent / rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
  await new Promise<void>((resolve) => sock.end(resolve));
  process.stdout.write(JSON.stringify({ bytes: sent, sha256: h.digest('hex') }) + '\n');
}

const [mode, ...args] = process.argv.slice(2);
const run =
  mode === 'sink'
    ? sink(Number(args[0]))
    : mode === 'source'
      ? source(args[0]!, Number(args[1]), Number(args[2]), Number(args[3] ?? 0))
      : Promise.reject(new Error('usage: tcp-check sink PORT | source HOST PORT BYTES [RATE]'));
run.catch((err: unknown) => {
  process.stderr.write(`tcp-check: ${String(err)}\n`);
  process.exit(1);
});
