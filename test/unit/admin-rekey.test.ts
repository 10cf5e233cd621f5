import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { channelKeyContext, type NodeConfig, type SealedChannelKey } from '../../admin/protocol.js';
import { AdminApiError } from '../../admin/client.js';
import { startService, removeDir, type Running } from './admin-fixture.js';

const EP = { host: '127.0.0.1', port: 4500 };
const GRACE = 30_000;

function key(identity: Identity, cfg: NodeConfig, channel: string, epoch: number): Buffer {
  const k = cfg.keys.find((x) => x.channel === channel && x.epoch === epoch);
  if (!k) throw new Error(`no key for ${channel} epoch ${epoch}`);
  return identity.open(
    Buffer.from(k.box, 'base64url'),
    channelKeyContext(cfg.supernet, channel, epoch, identity.id),
  );
}
const epochs = (keys: SealedChannelKey[], ch: string) =>
  keys.filter((k) => k.channel === ch).map((k) => [k.epoch, k.acceptUntil ?? null]);

describe('channel epochs (flat key scheme) over the API', () => {
  let r: Running;
  const a = Identity.generate('a1');
  const c = Identity.generate('c1');
  const d = Identity.generate('bigdisk1');
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    r = await startService({ graceMs: GRACE, keySchemeName: 'flat' });
    await r.client.createSupernet({
      id: '0x4711',
      pool: '10.71.17.0/24',
      channels: ['0x01', '0x123'],
      name: 'Figure 6 (b)',
    });
  });
  afterAll(async () => {
    await r.stop();
    removeDir(r.dir);
  });

  it('starts a new epoch on every join; members share the key; joiners never get earlier epochs', async () => {
    const ra = await r.client.login(a, {
      name: 'a1',
      supernet: '0x4711',
      channels: ['0x01', '0x123'],
      endpoint: EP,
    });
    tokens.a1 = ra.token;
    expect(epochs(ra.config.keys, '0x123')).toEqual([[1, null]]);
    const t0 = r.clock.now();
    r.clock.advance(1000);
    const rc = await r.client.login(c, {
      name: 'c1',
      supernet: '0x4711',
      channels: ['0x01', '0x123'],
      endpoint: { host: '127.0.0.2', port: 4500 },
    });
    tokens.c1 = rc.token;
    // c1 joined at epoch 2 of both channels, and is not given epoch 1.
    expect(epochs(rc.config.keys, '0x01')).toEqual([[2, null]]);
    const { config: ca } = await r.client.config(tokens.a1);
    expect(epochs(ca.keys, '0x01')).toEqual([
      [2, null],
      [1, t0 + 1000 + GRACE],
    ]);
    expect(key(a, ca, '0x01', 2).equals(key(c, rc.config, '0x01', 2))).toBe(true);
    expect(key(a, ca, '0x01', 1).equals(key(a, ca, '0x01', 2))).toBe(false);
    // Members see each other, with the shared channels only.
    expect(ca.members).toEqual([
      {
        name: 'c1',
        id: c.id,
        vip: '10.71.17.3',
        channels: ['0x01', '0x123'],
        endpoint: { host: '127.0.0.2', port: 4500 },
        expiresAt: expect.any(Number),
      },
    ]);
    r.clock.advance(1000);
    const rd = await r.client.login(d, {
      name: 'bigdisk1',
      supernet: '0x4711',
      channels: ['0x123'],
      endpoint: EP,
    });
    tokens.bigdisk1 = rd.token;
    expect(epochs(rd.config.keys, '0x123')).toEqual([[3, null]]);
    expect(rd.config.members.map((m) => [m.name, m.channels])).toEqual([
      ['a1', ['0x123']],
      ['c1', ['0x123']],
    ]);
    // bigdisk1 is not in channel 0x01: its join did not touch that channel.
    const { config: cc } = await r.client.config(tokens.c1);
    expect(epochs(cc.keys, '0x01')).toEqual([[2, null]]);
    expect(epochs(cc.keys, '0x123').map((e) => e[0])).toEqual([3, 2]);
  });

  it('expel: the member leaves every channel, remaining keys change, the old epoch has acceptUntil, its config is gone', async () => {
    const { config: before } = await r.client.config(tokens.a1);
    const oldKey = key(a, before, '0x123', 3);
    r.clock.advance(500);
    const switchAt = r.clock.now();
    await r.client.expel('0x4711', 'c1', 'laptop stolen');
    let err: unknown;
    try {
      await r.client.config(tokens.c1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AdminApiError);
    expect((err as AdminApiError).status).toBe(401);
    expect((err as AdminApiError).code).toBe('expelled');
    expect((err as AdminApiError).message).toBe('laptop stolen');
    const { config: after } = await r.client.config(tokens.a1);
    // Epoch 2 (superseded 1.5 s earlier by bigdisk1's join) is still inside its grace too.
    expect(epochs(after.keys, '0x123')).toEqual([
      [4, null],
      [3, switchAt + GRACE],
      [2, switchAt - 500 + GRACE],
    ]);
    expect(epochs(after.keys, '0x01')).toEqual([
      [3, null],
      [2, switchAt + GRACE],
      [1, switchAt - 1500 + GRACE],
    ]);
    const newKey = key(a, after, '0x123', 4);
    expect(newKey.equals(oldKey)).toBe(false);
    const { config: disk } = await r.client.config(tokens.bigdisk1);
    expect(key(d, disk, '0x123', 4).equals(newKey)).toBe(true);
    expect(after.members.map((m) => m.name)).toEqual(['bigdisk1']);
    expect(after.serial).toBeGreaterThan(before.serial);
    // After the grace the old epoch is no longer handed out.
    r.clock.advance(GRACE + 1);
    const { config: later } = await r.client.config(tokens.a1);
    expect(epochs(later.keys, '0x123')).toEqual([[4, null]]);
    const sn = (await r.client.supernet('0x4711')) as {
      channels: Array<{ id: string; epoch: number; memberNames: string[] }>;
    };
    expect(sn.channels.map((ch) => [ch.id, ch.epoch, ch.memberNames])).toEqual([
      ['0x01', 3, ['a1']],
      ['0x123', 4, ['a1', 'bigdisk1']],
    ]);
    const { entries } = await r.client.audit(0);
    expect(entries.find((e) => e.action === 'expel')).toMatchObject({
      node: 'c1',
      identity: c.id,
      detail: { reason: 'laptop stolen' },
    });
  });

  it('logout rekeys too, and the expelled name can be admitted again by policy', async () => {
    await r.client.logout(tokens.bigdisk1);
    const { config } = await r.client.config(tokens.a1);
    expect(epochs(config.keys, '0x123')[0]).toEqual([5, null]);
    const back = await r.client.login(c, {
      name: 'c1',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    });
    expect(back.config.node.vip).toBe('10.71.17.3');
    expect(epochs(back.config.keys, '0x01')).toEqual([[4, null]]);
  });
});
