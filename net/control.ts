/**
 * The host agent's local control API: HTTP/JSON over a Unix socket that only
 * root can open (mode 0600). The CLI (`supernet login`, `logout`, `exec`,
 * `status`) talks to it; node identities pass through it to the agent, which
 * is the host's trusted computing base for its nodes.
 *
 *   GET    /status                    agent status (counters, nodes, peers, keys)
 *   GET    /nodes                     hosted nodes
 *   POST   /nodes                     {identity, name, supernet, channels} → NodeInfo (login)
 *   DELETE /nodes/:supernet/:name     logout
 *   GET    /monitor/counters          live counters (net/monitor.ts)
 *   GET    /monitor/packets?...       feed of decrypted inner packets (net/monitor.ts)
 *   GET    /metrics                   Prometheus text (net/metrics.ts)
 *   GET    /storage-keys/:sid/:node/:volume[?backing=URL&state=DIR]  volume keyring (net/storage-agent.ts)
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Identity, IdentityError } from '../admin/identity.js';
import { IdError } from '../admin/ids.js';
import { AdminRefusal } from './admin-link.js';
import type { HostAgent } from './agent.js';
import type { Logger } from '../admin/logger.js';
import { MonitorError, PacketMonitor, serveMonitor } from './monitor.js';
import { agentMetrics } from './metrics.js';
import { StorageError } from './storage-agent.js';

export const DEFAULT_CONTROL_SOCKET = '/run/supernet/agent.sock';
const MAX_BODY = 64 * 1024;

/** An error answer of the control API. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ControlError(413, 'too_large', 'request body too large');
    chunks.push(c as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    return v as Record<string, unknown>;
  } catch {
    throw new ControlError(400, 'bad_json', 'request body must be a JSON object');
  }
}

/** Serves the control API for `agent` on the Unix socket `path`. */
export async function serveControl(
  agent: HostAgent,
  path: string,
  logger: Logger,
  opts: { metricsListen?: { host: string; port: number } } = {},
): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  // `supernet monitor` and metrics (net/monitor.ts, net/metrics.ts).
  const monitor = new PacketMonitor(agent.packetPath);
  const metrics = agentMetrics(agent, monitor);
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://agent');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (req.method === 'GET' && url.pathname === '/status') return send(200, agent.status());
      if (req.method === 'GET' && url.pathname === '/nodes')
        return send(200, { nodes: agent.list() });
      if (req.method === 'POST' && url.pathname === '/nodes') {
        const b = await readJson(req);
        if (typeof b.identity !== 'string')
          throw new ControlError(400, 'bad_request', 'identity: expected the identity file text');
        if (typeof b.name !== 'string')
          throw new ControlError(400, 'bad_request', 'name: expected a node name');
        if (typeof b.supernet !== 'string')
          throw new ControlError(400, 'bad_request', 'supernet: expected a Supernet id');
        if (!Array.isArray(b.channels) || !b.channels.every((c) => typeof c === 'string')) {
          throw new ControlError(400, 'bad_request', 'channels: expected a list of channel ids');
        }
        const identity = Identity.parse(b.identity, 'identity');
        const node = await agent.login(identity, {
          name: b.name,
          supernet: b.supernet,
          channels: b.channels as string[],
        });
        return send(201, node);
      }
      if (req.method === 'DELETE' && parts[0] === 'nodes' && parts.length === 3) {
        await agent.logout(parts[1]!, parts[2]!);
        return send(200, { ok: true });
      }
      // Volume keys of a node's storage role (net/storage-agent.ts, issue 5).
      if (req.method === 'GET' && parts[0] === 'storage-keys' && parts.length === 4) {
        const backing = url.searchParams.get('backing');
        const state = url.searchParams.get('state') ?? undefined;
        const where = backing ? { backing, ...(state ? { state } : {}) } : undefined;
        return send(200, await agent.storageKeyring(parts[1]!, parts[2]!, parts[3]!, where));
      }
      if (serveMonitor(agent, monitor, req, res, url)) return;
      if (req.method === 'GET' && url.pathname === '/metrics') return metrics.serve(res);
      throw new ControlError(
        404,
        'not_found',
        `no such control endpoint: ${req.method} ${url.pathname}`,
      );
    })().catch((err: unknown) => {
      if (
        err instanceof ControlError ||
        err instanceof AdminRefusal ||
        err instanceof StorageError ||
        err instanceof MonitorError
      ) {
        return send(err.status, { error: { code: err.code, message: err.message } });
      }
      if (err instanceof IdentityError || err instanceof IdError) {
        return send(400, { error: { code: 'bad_request', message: err.message } });
      }
      logger.error('control request failed', {
        err: err instanceof Error ? err.stack : String(err),
      });
      send(500, {
        error: { code: 'internal', message: err instanceof Error ? err.message : String(err) },
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  if (opts.metricsListen) {
    const { host, port } = opts.metricsListen;
    const m = await metrics.listen(host, port).catch((err: Error) => {
      server.close();
      throw new ControlError(
        503,
        'metrics_listen',
        `--metrics-listen ${host}:${port}: ${err.message}`,
      );
    });
    server.on('close', () => m.close());
    logger.info('metrics listening', { host, port });
  }
  return server;
}

/** Calls the control API on `socket`; throws {@link ControlError} for error answers. */
export async function controlCall(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 60_000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: { 'content-type': 'application/json' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let v: unknown;
          try {
            v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(
              new ControlError(502, 'bad_answer', 'the host agent gave an answer that is not JSON'),
            );
          }
          if ((res.statusCode ?? 500) >= 400) {
            const e = (v as { error?: { code?: string; message?: string } }).error ?? {};
            return reject(
              new ControlError(
                res.statusCode ?? 500,
                e.code ?? 'error',
                e.message ?? 'request failed',
              ),
            );
          }
          resolve(v);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(
          new ControlError(
            503,
            'no_agent',
            `no host agent listening on ${socket} (start one with: supernet host start)`,
          ),
        );
      } else reject(new ControlError(503, 'no_agent', `host agent on ${socket}: ${err.message}`));
    });
    if (body !== undefined) req.end(JSON.stringify(body));
    else req.end();
  });
}
