/**
 * Runs inside a network namespace (started by test/e2e/nfs-kit.ts through
 * `nsenter --net=…`): opens TCP connections there on request and hands each
 * connected socket to the parent over the IPC channel (SCM_RIGHTS), so the
 * test process can talk to servers inside the namespace while the socket
 * stays bound to the namespace it was created in.
 */
import { connect } from 'node:net';

interface Req {
  id: number;
  host: string;
  port: number;
}

process.on('message', (m: Req) => {
  const s = connect({ host: m.host, port: m.port });
  s.once('connect', () => {
    s.setNoDelay(true);
    process.send!({ id: m.id, ok: true }, s);
  });
  s.once('error', (e: NodeJS.ErrnoException) => {
    process.send!({ id: m.id, ok: false, error: e.message, code: e.code });
  });
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
