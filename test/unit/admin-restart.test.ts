import { describe, it, expect, afterAll } from '@jest/globals';
import { statSync } from 'node:fs';
import { Identity } from '../../admin/identity.js';
import { AdminClient, type ClientEvent } from '../../admin/client.js';
import { signEnvelope } from '../../admin/protocol.js';
import { verifyAuditChain } from '../../admin/audit.js';
import { LowdbStore } from '../../admin/store-lowdb.js';
import { StoreError } from '../../admin/store.js';
import { startService, removeDir, http, OPERATOR_TOKEN, tempDir } from './admin-fixture.js';

const EP = { host: '127.0.0.1', port: 4500 };

describe('restart on the same database', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  it('keeps Supernets, nodes, sessions, epochs, challenges and the audit chain; agents reconnect', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const admin = Identity.generate('admin');
    const a = Identity.generate();
    const b = Identity.generate();
    const r1 = await startService({ dir, identity: admin });
    const port = Number(new URL(r1.url).port);
    await r1.client.createSupernet({ id: '0x4711', pool: '10.71.17.0/24', channels: ['0x01'] });
    const la = await r1.client.login(a, {
      name: 'a1',
      supernet: '0x4711',
      channels: ['0x01'],
      endpoint: EP,
    });
    await r1.client.login(b, { name: 'b1', supernet: '0x4711', channels: ['0x01'], endpoint: EP });
    const before = (await r1.client.config(la.token)).config;
    const audit1 = await r1.client.audit(0);
    const pending = await r1.client.challenge();
    expect(statSync(r1.dbPath).mode & 0o777).toBe(0o600);

    const seen: ClientEvent[] = [];
    const ac = new AbortController();
    const following = r1.client.events(la.token, (e) => seen.push(e), {
      signal: ac.signal,
      minBackoffMs: 20,
      maxBackoffMs: 50,
    });
    while (seen.length === 0) await new Promise((res) => setTimeout(res, 10));
    await r1.stop();

    const r2 = await startService({ dir, identity: admin, clock: r1.clock });
    // Same address, so the agent's stream comes back by itself.
    await r2.svc.close();
    await r2.svc.listen(port, '127.0.0.1');
    const client = new AdminClient(`http://127.0.0.1:${port}`, {
      adminSign: admin.pub.sign,
      operatorToken: OPERATOR_TOKEN,
    });
    try {
      const after = (await client.config(la.token)).config;
      expect(after.serial).toBe(before.serial);
      expect(after.node).toEqual(before.node);
      expect(after.members).toEqual(before.members);
      expect(after.keys.map((k) => [k.channel, k.epoch, k.acceptUntil])).toEqual(
        before.keys.map((k) => [k.channel, k.epoch, k.acceptUntil]),
      );
      // Same key material, re-sealed: the database kept the epochs' keys.
      const open = (cfgKeys: typeof before.keys) =>
        cfgKeys.map((k) =>
          a
            .open(
              Buffer.from(k.box, 'base64url'),
              `channel-key 0x4711 ${k.channel} ${k.epoch} ${a.id}`,
            )
            .toString('hex'),
        );
      expect(open(after.keys)).toEqual(open(before.keys));
      expect((await client.nodes('0x4711')).map((n) => n.name)).toEqual(['a1', 'b1']);
      const audit2 = await client.audit(0);
      expect(audit2.entries.slice(0, audit1.entries.length)).toEqual(audit1.entries);
      expect(verifyAuditChain(audit2.entries, admin.pub.sign, audit2.head).ok).toBe(true);
      // A challenge issued before the restart is still good (and single-use).
      const req = signEnvelope(b, 'login-request', {
        challenge: pending.challenge,
        identity: b.pub,
        name: 'b1',
        supernet: '0x4711',
        channels: ['0x01'],
        endpoint: EP,
      });
      const ok = await http(client.baseUrl, 'POST', '/v1/login', {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request: req }),
      });
      expect(ok.status).toBe(200);
      // The agent's event stream reconnected and said so.
      const deadline = Date.now() + 5000;
      while (!seen.some((e) => e.event === 'reconnect') && Date.now() < deadline)
        await new Promise((res) => setTimeout(res, 20));
      expect(seen.map((e) => e.event)).toContain('reconnect');
    } finally {
      ac.abort();
      await following;
      await r2.stop();
    }
  });

  it('refuses a second service on a database in use, and a corrupt database', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const r = await startService({ dir });
    await expect(LowdbStore.open(r.dbPath)).rejects.toThrow(/in use by process/);
    await r.stop();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(r.dbPath, '{"kind":"something else"}');
    await expect(LowdbStore.open(r.dbPath)).rejects.toBeInstanceOf(StoreError);
    writeFileSync(r.dbPath, '{"kind":"supernet-admin-db","v":1,');
    await expect(LowdbStore.open(r.dbPath)).rejects.toThrow(/not valid JSON/);
  });
});
