/**
 * The host agent's side of storage key groups (issue 5; docs/nfs.md
 * §Storage keys and §Automatic revocation).
 *
 * - **Volume keys**: `supernet fs init|mount|rekey --node N --volume V` asks
 *   the agent (control socket, root only) for the volume's keyring. The agent
 *   fetches the node's signed `storage-keys` message from the admin service
 *   with the node's token, verifies it against the PINNED admin signing key,
 *   opens each epoch key with the node's X25519 identity, and answers with a
 *   keyring (fs/keys.ts format). Only nodes holding the storage role get one;
 *   the provider node holds none.
 * - **Automatic re-encryption**: on every config change (a revocation bumps
 *   the Supernet serial) the agent looks at its nodes' volumes; where the
 *   admin names one of its nodes as the member to re-encrypt (`reencrypt.by`)
 *   and the agent knows where that volume is stored (remembered when the node
 *   mounted it), it runs `supernet fs rekey --node N --volume V BACKING` and
 *   reports progress with the node's token. A rekey that dies is started
 *   again after a pause (it resumes: the keyring keeps both epochs until the
 *   admin hears `done`); so is one that an agent restart interrupted.
 * - **Hand-over**: the named member holds the job on a lease that its
 *   `running` reports renew (a heartbeat every few seconds while the rekey
 *   runs). An agent whose node holds the role and which knows where the
 *   volume is stored asks for unfinished jobs that are not its own
 *   (`POST /storage/claim/:volume`), again every `claimPollMs` while one is
 *   pending: the admin hands the job over once the holder's lease lapsed
 *   (its host is down, cut off, or never mounted the volume). A runner whose
 *   report is refused because the job moved on stops its rekey.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromB64, type Identity } from '../admin/identity.js';
import {
  API_PREFIX,
  NODE_AUTH_SCHEME,
  openEnvelope,
  type SignedEnvelope,
} from '../admin/protocol.js';
import { storageKeyContext, type StorageKeysMessage } from '../admin/storage-keys.js';
import type { Logger } from '../admin/logger.js';

/** A hosted node as the storage side needs it. */
export interface StorageNode {
  supernet: string;
  name: string;
  token: string;
  identity: Identity;
  nodeId: string;
}

/** The keyring answer (fs/keys.ts key-file JSON). */
export interface VolumeKeyring {
  format: 'supernet-fs-key';
  version: 1;
  volume: string;
  keys: Array<{ epoch: number; key: string }>;
  /** Not part of the key file: the admin's view, for the caller. */
  current: number;
  reencrypt: StorageKeysMessage['reencrypt'];
}

export class StorageError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export interface StorageAgentOptions {
  adminUrl: string;
  adminSign: string;
  stateDir: string;
  logger: Logger;
  /** The agent's control socket, handed to the rekey it starts. */
  controlSocket: string;
  /** Pause before restarting a failed re-encryption (ms). */
  retryMs?: number;
  /** While another member's re-encryption is pending, how often to ask for it (ms). */
  claimPollMs?: number;
  /** Progress report interval while a rekey runs, even without progress (renews the lease). */
  heartbeatMs?: number;
}

const VOLUME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const CLI_PATH = (): string => fileURLToPath(new URL('../bin/supernet.js', import.meta.url));

interface Remembered {
  backing: string;
  /** The fs state folder the node's mount uses (`--state`), if not the default. */
  state?: string;
}

export class StorageAgent {
  private readonly running = new Map<string, ChildProcess>();
  private readonly retryAt = new Map<string, number>();
  private readonly checking = new Set<string>();
  /** Per node: a re-check already scheduled (another member's job is pending). */
  private readonly polls = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly o: StorageAgentOptions) {}

  private dir(n: StorageNode): string {
    return join(this.o.stateDir, 'storage', n.supernet, n.name);
  }

  private remembered(n: StorageNode, volume: string): Remembered | null {
    try {
      const j = JSON.parse(readFileSync(join(this.dir(n), `${volume}.json`), 'utf8')) as Remembered;
      return typeof j.backing === 'string' ? j : null;
    } catch {
      return null;
    }
  }

  private remember(n: StorageNode, volume: string, where: Remembered): void {
    const dir = this.dir(n);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const f = join(dir, `${volume}.json`);
    writeFileSync(`${f}.tmp`, JSON.stringify(where satisfies Remembered) + '\n', {
      mode: 0o600,
    });
    renameSync(`${f}.tmp`, f);
  }

  private async call(
    n: StorageNode,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(this.o.adminUrl.replace(/\/+$/, '') + API_PREFIX + path, {
        method,
        headers: {
          Authorization: `${NODE_AUTH_SCHEME} ${n.token}`,
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (e) {
      throw new StorageError(503, 'admin_unreachable', `admin service: ${(e as Error).message}`);
    }
    const text = await res.text();
    let j: unknown = null;
    try {
      j = JSON.parse(text);
    } catch {
      // fall through with null
    }
    if (!res.ok) {
      const err = (j as { error?: { code?: string; message?: string } } | null)?.error;
      throw new StorageError(
        res.status,
        err?.code ?? 'admin_error',
        err?.message ?? text.slice(0, 200),
      );
    }
    return j;
  }

  /** The node's verified storage messages (all volumes, or one). */
  private async messages(n: StorageNode, volume?: string): Promise<StorageKeysMessage[]> {
    const q = volume ? `?volume=${encodeURIComponent(volume)}` : '';
    const j = (await this.call(n, 'GET', `/storage/keys${q}`)) as { messages?: unknown };
    if (!Array.isArray(j?.messages))
      throw new StorageError(502, 'bad_answer', 'admin service: no storage-keys messages');
    const out: StorageKeysMessage[] = [];
    for (const env of j.messages as SignedEnvelope[]) {
      const m = openEnvelope<StorageKeysMessage>(env, this.o.adminSign, 'storage-keys');
      // A message for another node or Supernet is refused, even when signed.
      if (m.supernet !== n.supernet || m.node !== n.name || !VOLUME_RE.test(m.volume))
        throw new StorageError(502, 'bad_answer', 'admin service: storage-keys for someone else');
      out.push(m);
    }
    return out;
  }

  /**
   * The keyring of `volume` for node `n` (control API). `backing`, when
   * given, is remembered as where the volume lives (for re-encryption).
   */
  async keyring(
    n: StorageNode,
    volume: string,
    where?: { backing: string; state?: string },
  ): Promise<VolumeKeyring> {
    if (!VOLUME_RE.test(volume))
      throw new StorageError(400, 'bad_request', `bad volume name ${volume}`);
    const [m] = await this.messages(n, volume);
    if (!m)
      throw new StorageError(
        403,
        'no_storage_role',
        `${n.name} holds no storage role of ${volume}`,
      );
    if (!/^[0-9a-f]{32}$/.test(m.volumeId))
      throw new StorageError(502, 'bad_answer', 'admin service: bad volume id');
    const keys = m.keys.map((k) => {
      const key = n.identity.open(
        fromB64(k.box, null, 'storage key box'),
        storageKeyContext(n.supernet, volume, k.epoch, n.nodeId),
      );
      return { epoch: k.epoch, key: key.toString('base64url') };
    });
    if (where) this.remember(n, volume, where);
    return {
      format: 'supernet-fs-key',
      version: 1,
      volume: m.volumeId,
      keys,
      current: m.current,
      reencrypt: m.reencrypt,
    };
  }

  /** A config of `n` changed: start any re-encryption the admin asks of it. */
  onConfig(n: StorageNode): void {
    const k = `${n.supernet}/${n.name}`;
    if (this.stopped || this.checking.has(k)) return;
    this.checking.add(k);
    void this.check(n)
      .catch((e: unknown) =>
        this.o.logger.warn('storage check failed', { node: n.name, err: String(e) }),
      )
      .finally(() => this.checking.delete(k));
  }

  private async check(n: StorageNode): Promise<void> {
    let msgs: StorageKeysMessage[];
    try {
      msgs = await this.messages(n);
    } catch (e) {
      // An admin without storage key groups, or a node without roles: nothing to do.
      if (e instanceof StorageError && e.status === 404) return;
      throw e;
    }
    let pendingElsewhere = false;
    for (const m of msgs) {
      const r = m.reencrypt;
      if (r.epoch === null || r.state === 'done' || r.state === 'idle') continue;
      const key = `${n.supernet}/${n.name}/${m.volume}`;
      if (this.running.has(key) || (this.retryAt.get(key) ?? 0) > Date.now()) continue;
      const where = this.remembered(n, m.volume);
      if (!where) {
        if (r.by === n.name)
          this.o.logger.warn(
            'cannot re-encrypt: this host never mounted the volume (another member will take over)',
            { node: n.name, volume: m.volume },
          );
        continue;
      }
      if (r.by !== n.name && !(await this.claim(n, m.volume))) {
        pendingElsewhere = true;
        continue;
      }
      this.start(n, m.volume, r.epoch, where);
    }
    const k = `${n.supernet}/${n.name}`;
    if (pendingElsewhere && !this.polls.has(k) && !this.stopped) {
      const t = setTimeout(() => {
        this.polls.delete(k);
        this.onConfig(n);
      }, this.o.claimPollMs ?? 10_000);
      t.unref();
      this.polls.set(k, t);
    }
  }

  /**
   * Asks the admin for another member's unfinished job. False while its
   * holder's lease runs, and also when the admin cannot be asked now: the
   * poll asks again, and the node's other volumes are still looked at.
   */
  private async claim(n: StorageNode, volume: string): Promise<boolean> {
    try {
      await this.call(n, 'POST', `/storage/claim/${encodeURIComponent(volume)}`);
      this.o.logger.info('took over re-encryption', { node: n.name, volume });
      return true;
    } catch (e) {
      if (!(e instanceof StorageError && e.status === 409))
        this.o.logger.warn('cannot ask for the re-encryption', {
          node: n.name,
          volume,
          err: String(e),
        });
      return false;
    }
  }

  private start(n: StorageNode, volume: string, epoch: number, where: Remembered): void {
    const key = `${n.supernet}/${n.name}/${volume}`;
    const args = [
      CLI_PATH(),
      'fs',
      'rekey',
      where.backing,
      ...(where.state ? ['--state', where.state] : []),
      '--node',
      n.name,
      '--supernet',
      n.supernet,
      '--volume',
      volume,
      '--agent',
      this.o.controlSocket,
    ];
    this.o.logger.info('re-encryption starts', { node: n.name, volume, epoch });
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.running.set(key, child);
    let done: number | null = null;
    let total: number | null = null;
    let last = 0;
    let pending: Promise<unknown> = Promise.resolve();
    let lost = false;
    const report = (state: string, force = false): void => {
      const now = Date.now();
      if (!force && now - last < 500) return;
      last = now;
      pending = pending
        .then(() =>
          this.call(n, 'PUT', `/storage/progress/${encodeURIComponent(volume)}`, {
            state,
            done,
            total,
            epoch,
          }),
        )
        .catch((e: unknown) => {
          // The job went to another member (our lease lapsed): stop ours.
          if (e instanceof StorageError && e.status === 403 && !lost) {
            lost = true;
            this.o.logger.warn('re-encryption was taken over by another member; stopping', {
              node: n.name,
              volume,
            });
            if (child.exitCode === null) child.kill('SIGTERM');
            return;
          }
          this.o.logger.warn('cannot report re-encryption progress', { volume, err: String(e) });
        });
    };
    report('running', true);
    const heartbeat = setInterval(() => report('running', true), this.o.heartbeatMs ?? 2_000);
    heartbeat.unref();
    let buf = '';
    let tail = '';
    child.stderr!.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      // fs rekey's progress lines: "rekey to epoch N [###---]  42% done/total objects"
      for (const mm of buf.matchAll(/(\d+)\/(\d+) objects/g)) {
        done = Number(mm[1]);
        total = Number(mm[2]);
      }
      const nl = buf.lastIndexOf('\n');
      if (nl >= 0) {
        tail = (tail + buf.slice(0, nl + 1)).slice(-2000);
        buf = buf.slice(nl + 1);
      }
      if (total !== null) report('running');
    });
    child.once('error', (e) => this.o.logger.error('cannot run fs rekey', { err: e.message }));
    child.once('close', (code, signal) => {
      this.running.delete(key);
      clearInterval(heartbeat);
      if (lost) return;
      if (code === 0) {
        this.o.logger.info('re-encryption done', { node: n.name, volume, epoch });
        report('done', true);
        return;
      }
      this.o.logger.error('re-encryption failed; will resume', {
        node: n.name,
        volume,
        code,
        signal,
        stderr: (tail + buf).trim().split('\n').slice(-3).join(' | '),
      });
      report('failed', true);
      if (this.stopped) return;
      const retry = this.o.retryMs ?? 5000;
      this.retryAt.set(key, Date.now() + retry);
      setTimeout(() => {
        if (!this.stopped) this.onConfig(n);
      }, retry).unref();
    });
  }

  /** Stops running re-encryptions (they resume on the next start). */
  stop(): void {
    this.stopped = true;
    for (const t of this.polls.values()) clearTimeout(t);
    this.polls.clear();
    for (const c of this.running.values()) if (c.exitCode === null) c.kill('SIGTERM');
  }
}
