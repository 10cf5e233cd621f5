/**
 * Sends datagrams given as hex (one per line on stdin) to HOST:PORT from
 * wherever it runs (the test runs it inside a simulated host with
 * `ip netns exec`). Used to inject forged, replayed and damaged SNSL packets.
 * A line `-` is an empty datagram.
 *
 *   node dist/test/support/inject.js HOST PORT [--bind ADDR] < hexlines
 */
import { createSocket } from 'node:dgram';

async function main(): Promise<void> {
  const [host, portText] = process.argv.slice(2);
  const port = Number(portText);
  if (!host || !Number.isInteger(port)) throw new Error('usage: inject HOST PORT < hexlines');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const lines = Buffer.concat(chunks)
    .toString('utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const sock = createSocket('udp4');
  let sent = 0;
  for (const l of lines) {
    const pkt = l === '-' ? Buffer.alloc(0) : Buffer.from(l, 'hex');
    await new Promise<void>((resolve, reject) =>
      sock.send(pkt, port, host, (err) => (err ? reject(err) : resolve())),
    );
    sent++;
  }
  sock.close();
  process.stdout.write(`${sent}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`inject: ${String(err)}\n`);
  process.exit(1);
});
