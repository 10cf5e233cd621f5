/**
 * The direct rekey push (docs/keys.md §8 wiring; docs/admin-api.md events):
 * a committed key-tree change goes to the remaining members' event streams as
 * an SSE `rekey` event carrying the signed message; the agent-side states
 * (net/member-keys.ts applyPushed) verify it against the pinned admin key and
 * derive the same new root a config fetch gives; the removed node's stream
 * never carries it; a message that does not apply falls back.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import { join } from 'node:path';
import { Identity } from '../../admin/identity.js';
import type { NodeConfig } from '../../admin/protocol.js';
import type { ClientEvent } from '../../admin/client.js';
import { NodeTreeKeys } from '../../net/member-keys.js';
import { MemoryLogger } from '../../admin/logger.js';
import { parseChannelId } from '../../admin/ids.js';
import { startService, removeDir, tempDir, type Running } from './admin-fixture.js';

const EP = { host: '127.0.0.1', port: 4500 };
const SN = '0x4711';
const CH = '0x01';
const CHN = parseChannelId(CH);

/** One node's agent-side key states, a keyring stand-in, and its event stream. */
class Member {
  token = '';
  current = 0;
  keys = new Map<number, Buffer>();
  trees: NodeTreeKeys;
  events: ClientEvent[] = [];
  readonly identity: Identity;
  constructor(
    readonly name: string,
    dir: string,
    adminSign: string,
  ) {
    this.identity = Identity.generate(name);
    this.trees = new NodeTreeKeys({
      supernet: SN,
      identity: this.identity,
      adminSign,
      file: join(dir, `${name}.keytree`),
      logger: new MemoryLogger(),
    });
  }
  take(keys: Array<{ epoch: number; key: Buffer }>): void {
    for (const k of keys) {
      this.keys.set(k.epoch, k.key);
      this.current = Math.max(this.current, k.epoch);
    }
  }
  feed(cfg: NodeConfig): void {
    this.take(this.trees.update(cfg.keytrees ?? [], () => this.current).keys);
  }
  rekeys(): Array<{ channel: string; epoch: number; msg: string }> {
    return this.events.flatMap((e) => (e.event === 'rekey' ? [e.data] : []));
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('rekey push on the event stream', () => {
  const dirs: string[] = [];
  const streams: AbortController[] = [];
  let r: Running | null = null;
  afterAll(async () => {
    for (const s of streams) s.abort();
    await r?.stop();
    dirs.forEach(removeDir);
  });

  it('expel: the remaining member gets a verifiable rekey event deriving the new root; the expelled node none', async () => {
    const dir = tempDir();
    const agentDir = tempDir('sn-agent-push-');
    dirs.push(dir, agentDir);
    const admin = Identity.generate('admin');
    r = await startService({ dir, identity: admin, keySchemeName: 'tree' });
    await r.client.createSupernet({ id: SN, pool: '10.71.19.0/24', channels: [CH] });
    const [k1, k2, x1] = ['k1', 'k2', 'x1'].map((n) => new Member(n, agentDir, admin.pub.sign));
    const login = async (m: Member): Promise<void> => {
      const res = await r!.client.login(m.identity, {
        name: m.name,
        supernet: SN,
        channels: [CH],
        endpoint: EP,
      });
      m.token = res.token;
      m.feed(res.config);
      const ac = new AbortController();
      streams.push(ac);
      void r!.client
        .events(m.token, (e) => m.events.push(e), { signal: ac.signal, minBackoffMs: 50 })
        .catch(() => undefined);
      await until(`${m.name}'s stream`, () => m.events.some((e) => e.event === 'config'));
    };
    await login(k1);
    await login(x1);

    // A join is pushed too: its notice has no key bytes, members hash forward at once.
    await login(k2);
    await until('the join notices', () => k1.rekeys().some((e) => e.epoch === k2.current));
    // k1 got x1's join notice, then k2's: applied in order, each moves it one epoch.
    expect(k1.rekeys().map((e) => e.epoch)).toEqual([k2.current - 1, k2.current]);
    for (const e of k1.rekeys()) {
      expect(e.channel).toBe(CH);
      const j = k1.trees.applyPushed(e.channel, e.msg, () => k1.current);
      expect(j.kind).toBe('applied');
      if (j.kind === 'applied') k1.take(j.keys);
      expect(k1.current).toBe(e.epoch);
    }
    const join = k1.rekeys().at(-1)!;
    expect(k1.current).toBe(k2.current);
    expect(k1.keys.get(k1.current)!.equals(k2.keys.get(k2.current)!)).toBe(true);
    // x1 follows the join the same way (it is still a member).
    await until("x1's join notice", () => x1.rekeys().some((e) => e.epoch === join.epoch));
    const xj = x1.trees.applyPushed(CH, join.msg, () => x1.current);
    if (xj.kind === 'applied') x1.take(xj.keys);
    expect(x1.current).toBe(join.epoch);
    const x1Before = x1.rekeys().length;

    // Expel x1: the answer comes once the batch is out; the push is on its way.
    await r.client.expel(SN, 'x1', 'push test');
    await until('the rekey event', () => k1.rekeys().some((e) => e.epoch > join.epoch));
    const rekey = k1.rekeys().find((e) => e.epoch > join.epoch)!;
    expect(rekey.epoch).toBe(join.epoch + 1);
    const cfg = (await r.client.config(k1.token)).config;
    // The same bytes the config carries (agents verify exactly these).
    expect(cfg.keytrees![0].messages).toContain(rekey.msg);

    // A tampered copy is refused (signature check before any decryption); an unknown channel falls back.
    const bad = Buffer.from(rekey.msg, 'base64url');
    bad[bad.length - 1] ^= 1;
    expect(k1.trees.applyPushed(CH, bad.toString('base64url'), () => k1.current)).toEqual({
      kind: 'fallback',
      reason: 'refused',
    });
    expect(k1.trees.applyPushed('0x02', rekey.msg, () => k1.current).kind).toBe('fallback');

    const a = k1.trees.applyPushed(CH, rekey.msg, () => k1.current);
    expect(a.kind).toBe('applied');
    if (a.kind === 'applied') {
      expect(a.keys.map((k) => [k.channel, k.epoch])).toEqual([[CHN, rekey.epoch]]);
      k1.take(a.keys);
    }
    // Pushed again (or seen again in a config): already held.
    expect(k1.trees.applyPushed(CH, rekey.msg, () => k1.current)).toEqual({ kind: 'old' });

    // k2 takes the config path: the same new root.
    k2.feed((await r.client.config(k2.token)).config);
    expect(k2.current).toBe(rekey.epoch);
    expect(k1.keys.get(rekey.epoch)!.equals(k2.keys.get(rekey.epoch)!)).toBe(true);
    expect(k1.keys.get(rekey.epoch)!.equals(k1.keys.get(join.epoch)!)).toBe(false);

    // The expelled node's stream got `expelled` and no rekey after the join.
    await until("x1's expelled event", () => x1.events.some((e) => e.event === 'expelled'));
    expect(x1.rekeys().length).toBe(x1Before);
    // Nor can it use the message k1 got.
    expect(x1.trees.applyPushed(CH, rekey.msg, () => x1.current).kind).not.toBe('applied');
    expect(x1.keys.get(rekey.epoch)).toBeUndefined();
  });
});
