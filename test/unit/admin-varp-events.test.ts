import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Identity } from '../../admin/identity.js';
import { AdminApiError, type ClientEvent } from '../../admin/client.js';
import { startService, removeDir, http, type Running } from './admin-fixture.js';

const TTL = 90_000;

/** Collects a node's events; `next(pred)` waits for a matching one. */
function follow(r: Running, token: string) {
  const seen: ClientEvent[] = [];
  const waiters: Array<{ pred: (e: ClientEvent) => boolean; resolve: (e: ClientEvent) => void }> =
    [];
  const ac = new AbortController();
  const done = r.client
    .events(
      token,
      (e) => {
        seen.push(e);
        for (const w of [...waiters]) {
          if (w.pred(e)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      },
      { signal: ac.signal, minBackoffMs: 20, maxBackoffMs: 100 },
    )
    .then(
      () => null,
      (err: unknown) => err,
    );
  return {
    seen,
    done,
    stop: () => ac.abort(),
    next(pred: (e: ClientEvent) => boolean, ms = 5000): Promise<ClientEvent> {
      const hit = seen.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no matching event; saw ${JSON.stringify(seen)}`)),
          ms,
        );
        waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });
    },
  };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('VARP and event streams', () => {
  let r: Running;
  const a = Identity.generate();
  const b = Identity.generate();
  const x = Identity.generate();
  let ta: string;
  let tb: string;
  let tx: string;

  beforeAll(async () => {
    r = await startService({ varpTtlMs: TTL });
    await r.client.createSupernet({
      id: '0xcafe',
      pool: '10.99.0.0/16',
      channels: ['0x01', '0x02'],
    });
    ta = (
      await r.client.login(a, {
        name: 'a',
        supernet: '0xcafe',
        channels: ['0x01'],
        endpoint: { host: '127.0.0.1', port: 5001 },
      })
    ).token;
  });
  afterAll(async () => {
    await r.stop();
    removeDir(r.dir);
  });

  it('pushes a config event to a member when another node logs in to a shared channel, not to others', async () => {
    const fa = follow(r, ta);
    const first = (await fa.next((e) => e.event === 'config')) as { data: { serial: number } };
    tx = (
      await r.client.login(x, {
        name: 'x',
        supernet: '0xcafe',
        channels: ['0x02'],
        endpoint: { host: '127.0.0.1', port: 5003 },
      })
    ).token;
    const fx = follow(r, tx);
    await fx.next((e) => e.event === 'config');
    const res = await r.client.login(b, {
      name: 'b',
      supernet: '0xcafe',
      channels: ['0x01'],
      endpoint: { host: '127.0.0.1', port: 5002 },
    });
    tb = res.token;
    const ev = (await fa.next(
      (e) => e.event === 'config' && e.data.serial === res.config.serial,
    )) as { data: { serial: number } };
    expect(ev.data.serial).toBeGreaterThan(first.data.serial);
    // x shares no channel with b: its stream saw only the initial serial.
    expect(fx.seen.filter((e) => e.event === 'config')).toHaveLength(1);
    fa.stop();
    fx.stop();
    expect(await fa.done).toBeNull();
    await until(() => r.svc.events.size === 0);
  });

  it('registers, refreshes without a push, and pushes when the endpoint changes (renumbered host)', async () => {
    const fa = follow(r, ta);
    await fa.next((e) => e.event === 'config');
    const rec = await r.client.register(tb, { host: '127.0.0.1', port: 5002 });
    expect(rec).toMatchObject({
      type: 'varp-record',
      supernet: '0xcafe',
      name: 'b',
      vip: '10.99.0.4',
      endpoint: { host: '127.0.0.1', port: 5002 },
      expiresAt: r.clock.now() + TTL,
    });
    const serial0 = (await r.client.config(ta)).config.serial;
    r.clock.advance(TTL / 3);
    await r.client.register(tb, { host: '127.0.0.1', port: 5002 });
    expect((await r.client.config(ta)).config.serial).toBe(serial0);
    await r.client.register(tb, { host: '127.0.0.9', port: 6000 });
    const ev = (await fa.next((e) => e.event === 'config' && e.data.serial > serial0)) as {
      data: { serial: number };
    };
    const { config } = await r.client.config(ta);
    expect(config.serial).toBe(ev.data.serial);
    expect(config.members.find((m) => m.name === 'b')!.endpoint).toEqual({
      host: '127.0.0.9',
      port: 6000,
    });
    fa.stop();
    await fa.done;
  });

  it('resolves members only, and serves an expired mapping as endpoint null until refreshed', async () => {
    const got = await r.client.resolve(ta, '10.99.0.4');
    expect(got.endpoint).toEqual({ host: '127.0.0.9', port: 6000 });
    let err: unknown;
    try {
      await r.client.resolve(ta, '10.99.0.3'); // x: no shared channel
    } catch (e) {
      err = e;
    }
    expect([(err as AdminApiError).status, (err as AdminApiError).code]).toEqual([
      404,
      'not_found',
    ]);
    expect(
      (
        await http(r.url, 'GET', '/v1/varp/resolve?vip=banana', {
          headers: { authorization: `Node ${ta}` },
        })
      ).status,
    ).toBe(400);
    r.clock.advance(TTL + 1);
    const expired = await r.client.resolve(ta, '10.99.0.4');
    expect(expired.endpoint).toBeNull();
    const serial0 = (await r.client.config(ta)).config.serial;
    expect(
      (await r.client.config(ta)).config.members.find((m) => m.name === 'b')!.endpoint,
    ).toBeNull();
    await r.client.register(tb, { host: '127.0.0.9', port: 6000 });
    expect((await r.client.resolve(ta, '10.99.0.4')).endpoint).toEqual({
      host: '127.0.0.9',
      port: 6000,
    });
    expect((await r.client.config(ta)).config.serial).toBe(serial0 + 1);
    const badEp = await http(r.url, 'POST', '/v1/varp/register', {
      headers: { authorization: `Node ${tb}`, 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint: { host: '224.0.0.1', port: 1 } }),
    });
    expect(badEp.json).toMatchObject({
      error: { code: 'bad_request', message: expect.stringMatching(/^endpoint\.host: /) },
    });
  });

  it('sends expelled and ends the stream; the client stops and later calls say expelled', async () => {
    const fb = follow(r, tb);
    await fb.next((e) => e.event === 'config');
    await r.client.expel('0xcafe', 'b', 'policy violation');
    const ev = await fb.next((e) => e.event === 'expelled');
    expect(ev.data).toEqual({ reason: 'policy violation' });
    expect(await fb.done).toBeNull();
    const again = follow(r, tb);
    const err = (await again.done) as AdminApiError;
    expect([err.status, err.code]).toEqual([401, 'expelled']);
    // The VARP mapping is gone.
    const gone = await http(r.url, 'GET', '/v1/varp/resolve?vip=10.99.0.4', {
      headers: { authorization: `Node ${ta}` },
    });
    expect(gone.status).toBe(404);
  });

  it('survives clients that disconnect abruptly', async () => {
    const ac = new AbortController();
    const res = await fetch(`${r.url}/v1/events`, {
      headers: { authorization: `Node ${ta}` },
      signal: ac.signal,
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    await reader.read();
    expect(r.svc.events.size).toBe(1);
    ac.abort();
    await until(() => r.svc.events.size === 0);
    // Pushes to a vanished stream are harmless.
    await r.client.login(b, {
      name: 'b',
      supernet: '0xcafe',
      channels: ['0x01'],
      endpoint: { host: '127.0.0.1', port: 5002 },
    });
    expect((await r.client.config(ta)).config.members.map((m) => m.name)).toEqual(['b']);
  });
});
