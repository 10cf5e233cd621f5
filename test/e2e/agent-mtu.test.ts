/**
 * `supernet host start` and the underlay MTU: on a host whose underlay
 * device has a smaller MTU than the agent would size its datagrams for
 * (PPPoE 1492, a tunnel), an explicit --mtu above it is refused with a usage
 * error naming both, and the default follows the device. A real veth of the
 * test bed at MTU 1400; the admin service is not needed for these checks
 * (they come before the agent contacts it), so admin.json points nowhere.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestBed } from '../bed/bed.js';
import { SUPERNET_BIN } from '../scenario/supernet-bed.js';

let bed: TestBed;
let info: string;

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1'], mtu: 1400 });
  info = join(bed.dir, 'admin.json');
  // Port 9 (discard) on loopback: nothing answers, nothing leaves the host.
  await writeFile(info, JSON.stringify({ url: 'http://127.0.0.1:9', sign: 'AAAA' }));
}, 60_000);

afterAll(async () => {
  await bed?.teardown();
}, 60_000);

const start = (extra: string[]): string[] => [
  'host',
  'start',
  '--admin-info',
  info,
  '--underlay-dev',
  'eth0',
  '--state',
  join(bed.dir, `state-${extra.join('-') || 'default'}`),
  '--control',
  join(bed.dir, `agent-${extra.join('-') || 'default'}.sock`),
  '--no-configfs',
  ...extra,
];

describe('host agent underlay MTU', () => {
  it('refuses an explicit --mtu above the underlay device MTU, naming both', async () => {
    const r = await bed.run(bed.host('h1').ns, SUPERNET_BIN, start(['--mtu', '1500']), {
      allowFail: true,
    });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--mtu 1500 is more than the MTU of eth0 \(1400\)/);
    expect(r.stderr).toMatch(/pass --mtu 1400 or less/);
  });

  it('takes the device MTU when --mtu is not given', async () => {
    const p = bed.spawn(bed.host('h1').ns, SUPERNET_BIN, start([]));
    try {
      const out = await p.waitForOutput(/underlay MTU taken from the device[^\n]*/, 20_000);
      expect(out).toMatch(/"dev":"eth0"/);
      expect(out).toMatch(/"mtu":1400/);
    } finally {
      await p.stop('SIGTERM', 10_000);
    }
    expect(p.output()).not.toMatch(/--mtu/);
  }, 40_000);

  it('accepts an --mtu at or below the device MTU', async () => {
    const p = bed.spawn(bed.host('h1').ns, SUPERNET_BIN, start(['--mtu', '1400']));
    try {
      // Past the MTU check it goes on to the admin service, which does not
      // answer here: a usage error would have ended it at once.
      const code = await Promise.race([
        p.exited,
        new Promise<string>((r) => setTimeout(() => r('running'), 2_000)),
      ]);
      expect(code).not.toBe(64);
      expect(p.output()).not.toMatch(/is more than the MTU/);
      expect(p.output()).not.toMatch(/underlay MTU taken from the device/);
    } finally {
      await p.stop('SIGTERM', 10_000);
    }
  }, 40_000);
});
