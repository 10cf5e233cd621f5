/**
 * Shared pieces of the NFS end-to-end tests: a TCP connector that opens its
 * connections inside a test namespace (via nfs-ns-helper.ts), and starting
 * a provider with the real CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Connector } from '../../fs/nfs/transport.js';
import type { BedProcess, TestBed } from '../bed/bed.js';
import { SUPERNET_BIN } from '../scenario/supernet-bed.js';

const HELPER = fileURLToPath(new URL('./nfs-ns-helper.js', import.meta.url));

/** Opens TCP connections inside network namespace `ns` for this process. */
export class NsSockets {
  private seq = 0;
  private readonly waiting = new Map<
    number,
    { res: (s: Socket) => void; rej: (e: Error) => void }
  >();
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { id?: number; ok?: boolean; error?: string; code?: string }, h) => {
      if (m.id === undefined) return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (!w) return;
      if (m.ok && h) w.res(h as Socket);
      else w.rej(Object.assign(new Error(m.error ?? 'connect failed'), { code: m.code }));
    });
  }

  static async start(ns: string): Promise<NsSockets> {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, HELPER], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((res, rej) => {
      child.once('message', () => res());
      child.once('exit', (c) => rej(new Error(`namespace helper exited with ${c}`)));
    });
    return new NsSockets(child);
  }

  connect(host: string, port: number): Promise<Socket> {
    const id = ++this.seq;
    return new Promise((res, rej) => {
      this.waiting.set(id, { res, rej });
      this.child.send({ id, host, port });
    });
  }

  /** A connector factory for Nfs3Options.connector. */
  connector(host: string): (port: number) => Connector {
    return (port) => () => this.connect(host, port);
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
    this.child.kill('SIGTERM');
  }
}

/** Starts `supernet storage serve` in host namespace `host` and waits until it serves. */
export async function startProvider(
  bed: TestBed,
  host: string,
  exportDir: string,
  clients: string[],
  extra: string[] = [],
): Promise<{ proc: BedProcess; state: string }> {
  const state = join(bed.dir, `provider-${host}`);
  await bed.run(null, 'mkdir', ['-p', exportDir]);
  const proc = bed.spawn(bed.host(host).ns, SUPERNET_BIN, [
    'storage',
    'serve',
    '--export',
    exportDir,
    '--clients',
    clients.join(','),
    '--state',
    state,
    ...extra,
  ]);
  await proc.waitForOutput(/serving nfs:\/\//, 30_000);
  return { proc, state };
}
