/**
 * The test bed's pure parts: underlay address arithmetic, the tool-output
 * parsers, and `until`.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import {
  formatIPv4,
  hostAddress,
  inSubnet,
  parseHostCidr,
  parseIPv4,
  parseSubnet,
} from '../bed/addr.js';
import { parseIperf3, parsePing, until } from '../bed/tools.js';
import { quoteArgv } from '../bed/proc.js';

describe('underlay addresses', () => {
  it('hands out host addresses of the default benchmark range in order', () => {
    const s = parseSubnet('198.18.0.0/24');
    expect(s).toEqual({ network: parseIPv4('198.18.0.0'), prefixLen: 24, size: 254 });
    expect(hostAddress(s, 0)).toBe('198.18.0.1');
    expect(hostAddress(s, 253)).toBe('198.18.0.254');
    expect(() => hostAddress(s, 254)).toThrow(/does not fit/);
    expect(inSubnet(s, '198.18.0.255')).toBe(false);
    expect(inSubnet(s, '198.18.0.0')).toBe(false);
    expect(inSubnet(s, '198.18.1.1')).toBe(false);
    expect(inSubnet(s, '198.18.0.77')).toBe(true);
  });

  it('round-trips every 32-bit value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => parseIPv4(formatIPv4(v)) === v),
    );
  });

  it('rejects malformed input, naming it', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', 'a.b.c.d', ' 1.2.3.4']) {
      expect(() => parseIPv4(bad)).toThrow(/not an IPv4 address/);
    }
    expect(() => parseSubnet('198.18.0.0')).toThrow(/prefix length/);
    expect(() => parseSubnet('198.18.0.1/24')).toThrow(/host bits set/);
    expect(() => parseSubnet('198.18.0.0/31')).toThrow(/1\.\.30/);
    expect(() => parseSubnet('198.18.0.0/x')).toThrow(/bad prefix length/);
    expect(parseHostCidr('10.0.0.5', 24)).toEqual({ addr: '10.0.0.5', prefixLen: 24 });
    expect(parseHostCidr('10.0.0.5/16', 24)).toEqual({ addr: '10.0.0.5', prefixLen: 16 });
    expect(() => parseHostCidr('10.0.0.5/33', 24)).toThrow(/bad prefix length/);
  });
});

describe('tool output parsers', () => {
  it('parses an iputils ping summary', () => {
    const out = [
      'PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.',
      '',
      '--- 198.18.0.2 ping statistics ---',
      '20 packets transmitted, 19 received, 5% packet loss, time 3804ms',
      'rtt min/avg/max/mdev = 0.040/0.061/0.099/0.013 ms',
      '',
    ].join('\n');
    expect(parsePing(out, '', 1)).toEqual({
      transmitted: 20,
      received: 19,
      lossPct: 5,
      rtt: { min: 0.04, avg: 0.061, max: 0.099, mdev: 0.013 },
      code: 1,
    });
  });

  it('reports total loss and a ping that could not send', () => {
    const lost = parsePing(
      '3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n',
      '',
      1,
    );
    expect(lost).toMatchObject({ transmitted: 3, received: 0, lossPct: 100, rtt: null });
    expect(lost.error).toBeUndefined();
    const unreachable = parsePing('', 'ping: connect: Network is unreachable\n', 2);
    expect(unreachable).toMatchObject({
      transmitted: 0,
      lossPct: 100,
      error: 'ping: connect: Network is unreachable',
    });
  });

  it('parses iperf3 --json TCP and UDP summaries, and its errors', () => {
    const tcp = JSON.stringify({
      start: { test_start: { num_streams: 4 } },
      end: {
        sum_sent: { bytes: 1000, bits_per_second: 8e9, retransmits: 7, seconds: 10 },
        sum_received: { bytes: 990, bits_per_second: 7.9e9, seconds: 10 },
      },
    });
    expect(parseIperf3(tcp)).toMatchObject({
      bitsPerSecond: 7.9e9,
      sentBitsPerSecond: 8e9,
      retransmits: 7,
      bytes: 990,
      streams: 4,
    });
    const udp = JSON.stringify({
      end: { sum: { bytes: 500, bits_per_second: 1e8, lost_percent: 10, seconds: 5 } },
    });
    expect(parseIperf3(udp)).toMatchObject({ bitsPerSecond: 9e7, lostPct: 10, retransmits: 0 });
    expect(() =>
      parseIperf3(JSON.stringify({ error: 'unable to connect to server: Connection refused' })),
    ).toThrow(/iperf3: unable to connect/);
    expect(() => parseIperf3('iperf3: error')).toThrow(/no JSON/);
    expect(() => parseIperf3('{}')).toThrow(/no end summary/);
  });

  it('quotes argv for messages like a shell would', () => {
    expect(quoteArgv(['ip', 'netns', 'exec', 'sn1234-h1', 'sh', '-c', "echo 'hi' there"])).toBe(
      `ip netns exec sn1234-h1 sh -c 'echo '\\''hi'\\'' there'`,
    );
  });
});

describe('until', () => {
  it('returns the first truthy value, treating throws as not yet', async () => {
    let n = 0;
    const v = await until(
      () => {
        n++;
        if (n < 3) throw new Error('not yet');
        return n === 3 ? { n } : null;
      },
      { what: 'the third call', intervalMs: 1 },
    );
    expect(v).toEqual({ n: 3 });
  });

  it('times out with a message naming what it waited for and the last error', async () => {
    await expect(
      until(
        () => {
          throw new Error('connection refused');
        },
        { what: 'the admin service to listen', timeoutMs: 30, intervalMs: 5 },
      ),
    ).rejects.toThrow(
      /timed out after 30 ms waiting for the admin service to listen \(last error: connection refused\)/,
    );
    await expect(
      until(() => 0, { what: 'zero to be truthy', timeoutMs: 10, intervalMs: 5 }),
    ).rejects.toThrow(/zero to be truthy \(last result: 0\)/);
  });
});
