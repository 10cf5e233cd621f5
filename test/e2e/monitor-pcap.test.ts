/**
 * Issue 7, acceptance 4 on the namespace test bed (Figure 6: a1 on h1, c1 on
 * h2, bigdisk1 on h3): `supernet monitor --pcap` on a1's host captures the
 * decrypted a1 ↔ c1 traffic of channel 0x01, and stock tshark opens the file
 * and shows the inner HTTP request curl in a1 sent to Apache in c1. Also:
 * the live counters and drops, the refusal on a host that holds no key for
 * the channel, and the agent's Prometheus metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed, curl, until } from '../bed/bed.js';
import {
  figure6,
  SUPERNET_BIN,
  type LoggedIn,
  type SupernetBed,
} from '../scenario/supernet-bed.js';
import { readPcap, LINKTYPE_RAW } from '../../net/pcap.js';
import type { MonitorSnapshot } from '../../net/monitor.js';
import { apacheCommand, writeApacheSite, type ApacheSite } from '../scenario/apache.js';

let bed: TestBed;
let sn: SupernetBed;
let nodes: Map<string, LoggedIn>;
const node = (n: string): LoggedIn => nodes.get(n)!;
let site: ApacheSite | undefined;

beforeAll(async () => {
  bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  ({ sn, nodes } = await figure6(bed));
  // Stock Apache in c1, as in the Figure 6 test.
  site = writeApacheSite(sn.dir, {
    listen: node('c1').vip,
    serverName: 'c1',
    pages: { 'monitored.html': 'monitored page\n' },
  });
  expect((await sn.exec('h2', 'c1', apacheCommand(site, 'start'))).code).toBe(0);
  await until(
    async () => (await curl(bed, node('a1').ns, `http://${node('c1').vip}/`)).status > 0 || null,
    { what: 'Apache in c1 answering', timeoutMs: 15_000, intervalMs: 250 },
  );
}, 180_000);

afterAll(async () => {
  if (site) await sn?.exec('h2', 'c1', apacheCommand(site, 'stop'), { allowFail: true });
  await bed?.teardown();
}, 60_000);

const monitorArgs = (host: string, extra: string[]): string[] => [
  'monitor',
  '--agent',
  sn.agentSocket(host),
  ...extra,
];

describe('supernet monitor', () => {
  it('--pcap of a1 ↔ c1 opens in tshark and shows the inner HTTP request to Apache', async () => {
    const cap = join(sn.dir, 'a1-c1-inner.pcap');
    const mon = bed.spawn(
      bed.host('h1').ns,
      SUPERNET_BIN,
      monitorArgs('h1', ['--pcap', cap, '--supernet', '0x4711', '--channel', '0x01']),
    );
    await mon.waitForOutput(/capturing to .* decrypted packets of 0x4711\/0x01/, 15_000);
    const page = await curl(bed, node('a1').ns, `http://${node('c1').vip}/monitored.html`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('monitored page');
    await mon.stop('SIGINT', 10_000);
    expect(mon.output()).toMatch(/monitor: \d+ packets written to /);
    expect(existsSync(cap)).toBe(true);

    // Our own reading of the file: raw IPv4 between the two virtual addresses only.
    const { linktype, records } = readPcap(readFileSync(cap));
    expect(linktype).toBe(LINKTYPE_RAW);
    expect(records.length).toBeGreaterThanOrEqual(6); // handshake, request, response, close
    for (const r of records) {
      expect(r.data[0]! >> 4).toBe(4);
      const ends = [r.data.subarray(12, 16).join('.'), r.data.subarray(16, 20).join('.')].sort();
      expect(ends).toEqual([node('a1').vip, node('c1').vip].sort());
    }

    // Stock tshark.
    const t = await bed.run(null, 'tshark', [
      '-r',
      cap,
      '-Y',
      'http',
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'http.request.method',
      '-e',
      'http.request.uri',
      '-e',
      'http.host',
      '-e',
      'http.response.code',
    ]);
    const lines = t.stdout.trim().split('\n');
    expect(lines).toContain(
      `${node('a1').vip}|${node('c1').vip}|GET|/monitored.html|${node('c1').vip}|`,
    );
    expect(lines).toContain(`${node('c1').vip}|${node('a1').vip}||||200`);
  });

  it('the packet view prints one line per decrypted packet, in and out', async () => {
    const mon = bed.spawn(
      bed.host('h1').ns,
      SUPERNET_BIN,
      monitorArgs('h1', ['--packets', '--node', 'a1', '--count', '4']),
    );
    await mon.waitForOutput(/showing decrypted packets/, 15_000);
    await bed.run(node('a1').ns, 'ping', ['-c', '2', '-i', '0.2', node('c1').vip]);
    expect(await mon.exited).toBe(0);
    const out = mon.output();
    expect(out).toMatch(
      new RegExp(
        `0x4711/0x01 e\\d+ a1 out ${node('a1').vip.replace(/\./g, '\\.')} > ${node('c1').vip.replace(/\./g, '\\.')} ICMP echo request`,
      ),
    );
    expect(out).toMatch(/0x4711\/0x01 e\d+ a1 in .* ICMP echo reply/);
    expect(out).toMatch(/monitor: 4 packets\n/);
  });

  it('shows live counters per Supernet, channel and node, and drops by reason', async () => {
    const once = async (): Promise<MonitorSnapshot> =>
      JSON.parse(
        (await sn.cli('h1', monitorArgs('h1', ['--once', '--json']))).stdout,
      ) as MonitorSnapshot;
    const before = await once();
    await bed.run(node('a1').ns, 'ping', ['-c', '3', '-i', '0.2', node('bigdisk1').vip]);
    const after = await once();
    const sn0 = (s: MonitorSnapshot) => s.supernets.find((x) => x.id === '0x4711')!;
    const ch = (s: MonitorSnapshot, id: string) => sn0(s).channels.find((c) => c.id === id)!;
    const a1 = (s: MonitorSnapshot) => sn0(s).nodes.find((n) => n.name === 'a1')!;
    expect(ch(after, '0x123').txPackets - ch(before, '0x123').txPackets).toBe(3);
    expect(ch(after, '0x123').rxPackets - ch(before, '0x123').rxPackets).toBe(3);
    expect(a1(after).txPackets - a1(before).txPackets).toBe(3);
    expect(Object.keys(after.drops)).toEqual(
      expect.arrayContaining(['bad_tag', 'replay', 'not_member']),
    );
    // The human view.
    const human = (await sn.cli('h1', monitorArgs('h1', ['--once']))).stdout;
    expect(human).toMatch(/Supernet 0x4711/);
    expect(human).toMatch(/^ {2}0x123 +\d+/m);
    expect(human).toMatch(/^ {2}a1 +10\.71\.17\.\d+ +0x01,0x123/m);
    expect(human).toMatch(/^drops /m);
  });

  it("refuses a channel this host holds no key for (bigdisk1's host is not in 0x01)", async () => {
    const r = await sn.cli(
      'h3',
      monitorArgs('h3', [
        '--pcap',
        join(sn.dir, 'nope.pcap'),
        '--supernet',
        '0x4711',
        '--channel',
        '0x01',
      ]),
      { allowFail: true },
    );
    expect(r.code).toBe(65);
    expect(r.stderr).toMatch(
      /this host holds no key of channel 0x01 in 0x4711 \(none of its nodes is a member\); it holds 0x4711\/0x123/,
    );
  });

  it('serves Prometheus metrics on the control socket', async () => {
    const r = await bed.run(bed.host('h1').ns, 'curl', [
      '-sf',
      '--unix-socket',
      sn.agentSocket('h1'),
      'http://agent/metrics',
    ]);
    const m =
      /supernet_agent_channel_packets_total\{supernet="0x4711",channel="0x01",direction="tx"\} (\d+)/.exec(
        r.stdout,
      );
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(5);
    expect(r.stdout).toMatch(/supernet_agent_drops_total\{reason="bad_tag"\} \d+/);
    expect(r.stdout).toMatch(
      /supernet_agent_node_bytes_total\{supernet="0x4711",node="a1",direction="rx"\} \d+/,
    );
    expect(r.stdout).toMatch(/^process_resident_memory_bytes \d+/m);
  });
});
