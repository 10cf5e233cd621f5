/**
 * The key-tree scheme behind the admin API and the agent's member states
 * (admin/keys-tree.ts, net/member-keys.ts; docs/keys.md §8): configs carry
 * signed messages instead of sealed keys, members derive equal traffic keys,
 * an expelled member cannot follow, the tree survives an admin restart, and a
 * member that fell behind resynchronises from its welcome.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import { join } from 'node:path';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { Identity } from '../../admin/identity.js';
import type { NodeConfig } from '../../admin/protocol.js';
import { LOG_MESSAGES } from '../../admin/keys-tree.js';
import { joinLen } from '../../admin/keytree-wire.js';
import { NodeTreeKeys, type TreeUpdate } from '../../net/member-keys.js';
import { MemoryLogger } from '../../admin/logger.js';
import { startService, removeDir, tempDir, type Running } from './admin-fixture.js';

const EP = { host: '127.0.0.1', port: 4500 };
const SN = '0x4711';
const CH = '0x01';

/** One node: identity, token and its agent-side key states with a keyring's current epoch. */
class Member {
  token = '';
  current = 0;
  keys = new Map<number, Buffer>();
  trees: NodeTreeKeys;
  constructor(
    readonly name: string,
    readonly identity: Identity,
    readonly dir: string,
    adminSign: string,
  ) {
    this.trees = this.open(adminSign);
  }
  open(adminSign: string): NodeTreeKeys {
    return new NodeTreeKeys({
      supernet: SN,
      identity: this.identity,
      adminSign,
      file: join(this.dir, `${this.name}.keytree`),
      logger: new MemoryLogger(),
    });
  }
  feed(cfg: NodeConfig): TreeUpdate {
    const u = this.trees.update(cfg.keytrees ?? [], () => this.current);
    for (const k of u.keys) {
      this.keys.set(k.epoch, k.key);
      this.current = Math.max(this.current, k.epoch);
    }
    return u;
  }
  key(): Buffer | undefined {
    return this.keys.get(this.current);
  }
}

describe('key-tree scheme over the admin API', () => {
  const dirs: string[] = [];
  let r: Running | null = null;
  afterAll(async () => {
    await r?.stop();
    dirs.forEach(removeDir);
  });

  it('joins broadcast no key, removals rekey, the tree survives a restart, a stale member resyncs', async () => {
    const dir = tempDir();
    const agentDir = tempDir('sn-agent-keys-');
    dirs.push(dir, agentDir);
    const admin = Identity.generate('admin');
    r = await startService({ dir, identity: admin, keySchemeName: 'tree' });
    await r.client.createSupernet({ id: SN, pool: '10.71.17.0/24', channels: [CH] });
    const mk = (n: string) => new Member(n, Identity.generate(n), agentDir, admin.pub.sign);
    const [a, b, c] = [mk('a1'), mk('b1'), mk('c1')];
    const login = async (m: Member): Promise<NodeConfig> => {
      const res = await r!.client.login(m.identity, {
        name: m.name,
        supernet: SN,
        channels: [CH],
        endpoint: EP,
      });
      m.token = res.token;
      return res.config;
    };
    const refresh = async (m: Member, resync = false): Promise<TreeUpdate> =>
      m.feed((await r!.client.config(m.token, resync)).config);

    // Joins: the joiner's login config has its welcome; the others apply the notice.
    for (const m of [a, b, c]) {
      const cfg = await login(m);
      expect(cfg.keys).toEqual([]);
      expect(cfg.keytrees?.[0].welcome).toBeDefined();
      expect(m.feed(cfg).resync).toBe(false);
    }
    const plain = (await r.client.config(a.token)).config;
    expect(plain.keytrees?.[0].welcome).toBeUndefined();
    // The join notice of c1 carries no key: 113 bytes for one joiner, at any size.
    expect(Buffer.from(plain.keytrees![0].messages.at(-1)!, 'base64url').length).toBe(joinLen(1));
    for (const m of [a, b]) expect((await refresh(m)).resync).toBe(false);
    expect(a.current).toBe(3);
    expect(a.key()!.equals(c.key()!)).toBe(true);
    expect(b.key()!.equals(c.key()!)).toBe(true);
    expect(statSync(join(agentDir, 'a1.keytree')).mode & 0o777).toBe(0o600);

    // Expel c1: one rekey message; a1 and b1 agree on a key c1 cannot derive.
    const oldKey = Buffer.from(a.key()!);
    await r.client.expel(SN, 'c1', 'test');
    const after = (await r.client.config(a.token)).config;
    expect(after.keytrees![0].epoch).toBe(4);
    a.feed(after);
    await refresh(b);
    expect(a.current).toBe(4);
    expect(a.key()!.equals(b.key()!)).toBe(true);
    expect(a.key()!.equals(oldKey)).toBe(false);
    const cu = c.feed(after); // c1 sees the broadcast: it is removed and derives nothing
    expect(cu.keys).toEqual([]);
    expect(c.current).toBe(3);

    // Admin restart on the same database: the tree is reloaded from its records.
    await r.stop();
    r = await startService({ dir, identity: admin, keySchemeName: 'tree' });
    const d = mk('d1');
    d.feed(await login(d));
    await refresh(a);
    expect(a.current).toBe(5);
    expect(a.key()!.equals(d.key()!)).toBe(true);

    // b1's agent stops; more than LOG_MESSAGES epochs pass; on restart it reloads
    // its states (epoch 4), notices the gap and resynchronises from its welcome.
    for (let i = 0; i < LOG_MESSAGES + 1; i++) {
      const e = mk(`e${i}`);
      await login(e);
    }
    b.trees = b.open(admin.pub.sign);
    expect(b.trees.epochOf(CH)).toBe(4);
    expect((await refresh(b)).resync).toBe(true);
    expect((await refresh(b, true)).resync).toBe(false);
    expect((await refresh(a)).resync).toBe(true); // a1 did not follow either
    await refresh(a, true);
    expect(b.current).toBe(5 + LOG_MESSAGES + 1);
    expect(a.current).toBe(b.current);
    expect(b.key()!.equals(a.key()!)).toBe(true);

    // A damaged state file costs a resync, never wrong keys.
    const file = join(agentDir, 'b1.keytree');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, text.length >> 1));
    b.trees = b.open(admin.pub.sign);
    expect(b.trees.epochOf(CH)).toBe(0);
    b.current = 0;
    expect((await refresh(b)).resync).toBe(true);
    expect((await refresh(b, true)).resync).toBe(false);
    expect(b.key()!.equals(a.key()!)).toBe(true);
  });

  it('expels inside the batching window go out as one rekey message; the rest converge', async () => {
    const dir = tempDir();
    const agentDir = tempDir('sn-agent-batch-');
    dirs.push(dir, agentDir);
    const admin = Identity.generate('admin');
    await r?.stop();
    r = await startService({ dir, identity: admin, keySchemeName: 'tree' });
    await r.client.createSupernet({ id: SN, pool: '10.71.18.0/24', channels: [CH] });
    const ms = ['k1', 'k2', 'x1', 'x2', 'x3', 'x4'].map(
      (n) => new Member(n, Identity.generate(n), agentDir, admin.pub.sign),
    );
    for (const m of ms) {
      const res = await r.client.login(m.identity, {
        name: m.name,
        supernet: SN,
        channels: [CH],
        endpoint: EP,
      });
      m.token = res.token;
      m.feed(res.config);
    }
    const [k1, k2, ...gone] = ms;
    for (const m of [k1, k2]) m.feed((await r.client.config(m.token)).config);
    expect(k1.current).toBe(6);
    expect(k1.key()!.equals(k2.key()!)).toBe(true);
    const before = (await r.client.config(k1.token)).config.keytrees![0];
    const oldKey = Buffer.from(k1.key()!);

    // Four expels at once: each answers only once its batch is out.
    await Promise.all(gone.map((m) => r!.client.expel(SN, m.name, 'batch test')));
    const after = (await r.client.config(k1.token)).config;
    const tree = after.keytrees![0];
    expect(tree.epoch).toBe(before.epoch + 1); // one epoch for four removals
    const fresh = tree.messages.filter((m) => !before.messages.includes(m));
    expect(fresh).toHaveLength(1); // one signed rekey message
    k1.feed(after);
    k2.feed((await r.client.config(k2.token)).config);
    expect(k1.current).toBe(7);
    expect(k2.current).toBe(7);
    expect(k1.key()!.equals(k2.key()!)).toBe(true);
    expect(k1.key()!.equals(oldKey)).toBe(false);
    for (const m of gone) {
      expect(m.feed(after).keys).toEqual([]); // no expelled member follows
      expect(m.current).toBeLessThan(7);
      expect(m.keys.get(7)).toBeUndefined();
    }
  });
});
