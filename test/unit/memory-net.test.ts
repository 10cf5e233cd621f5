import { describe, it, expect } from '@jest/globals';
import { MemoryNetwork, MemoryTun } from '../support/memory-net.js';
import { ipv4ToU32, u32ToIpv4, type DatagramBatch } from '../../net/bind.js';
import type { PacketBatch } from '../../net/tun.js';

/** Copies a batch out (its views are only valid during the call). */
function collect(b: PacketBatch): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.count; i++) {
    out.push(Buffer.from(b.buf.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)));
  }
  return out;
}

describe('ipv4ToU32 / u32ToIpv4', () => {
  it('round-trips and rejects malformed text', () => {
    expect(ipv4ToU32('10.1.2.3')).toBe(0x0a010203);
    expect(ipv4ToU32('255.255.255.255')).toBe(0xffffffff);
    expect(u32ToIpv4(0xc0a80001)).toBe('192.168.0.1');
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', ' 1.2.3.4', '1.2.3.x']) {
      expect(() => ipv4ToU32(bad)).toThrow(/IPv4/);
    }
    expect(() => u32ToIpv4(-1)).toThrow(TypeError);
    expect(() => u32ToIpv4(2 ** 32)).toThrow(TypeError);
  });
});

describe('MemoryTun', () => {
  it('delivers injected packets in batches of at most 64 and records writes', () => {
    const tun = new MemoryTun('t0');
    const seen: Buffer[] = [];
    const sizes: number[] = [];
    tun.onPackets((b) => {
      sizes.push(b.count);
      seen.push(...collect(b));
    });
    const packets = Array.from({ length: 100 }, (_, i) => Buffer.alloc(20 + i, i));
    expect(tun.inject(...packets)).toBe(100);
    expect(sizes).toEqual([64, 36]);
    expect(seen).toEqual(packets);
    expect(tun.stats.rxPackets).toBe(100);

    expect(tun.write(Buffer.from([1, 2, 3, 4]), 1, 2)).toBe(true);
    expect(tun.written).toEqual([Buffer.from([2, 3])]);
    expect(() => tun.write(Buffer.alloc(2), 1, 2)).toThrow(RangeError);
  });

  it('counts writes on a down link instead of throwing, and reports failure once', () => {
    const tun = new MemoryTun();
    tun.linkUp = false;
    expect(tun.write(Buffer.alloc(20), 0, 20)).toBe(false);
    expect(tun.stats.txErrors).toBe(1);
    const errors: string[] = [];
    tun.onError((e) => errors.push((e as Error & { code: string }).code));
    tun.fail();
    tun.fail();
    expect(errors).toEqual(['EBADFD']);
    expect(tun.closed).toBe(true);
    expect(tun.inject(Buffer.alloc(20))).toBe(0);
  });
});

describe('MemoryNetwork', () => {
  const A = ipv4ToU32('10.0.0.1');
  const B = ipv4ToU32('10.0.0.2');

  function receiver(): {
    got: { from: string; data: string }[];
    handler: (b: DatagramBatch) => void;
  } {
    const got: { from: string; data: string }[] = [];
    return {
      got,
      handler: (b) => {
        for (let i = 0; i < b.count; i++) {
          got.push({
            from: `${u32ToIpv4(b.addrs[i]!)}:${b.ports[i]}`,
            data: b.buf.toString('utf8', b.offsets[i]!, b.offsets[i]! + b.lengths[i]!),
          });
        }
      },
    };
  }

  it('delivers by (addr, port) after flush, with the sender as source', async () => {
    const net = new MemoryNetwork();
    const a = net.bind(A, 5000);
    const b = await net.openBind({ host: '10.0.0.2', port: 0 });
    const r = receiver();
    b.onDatagrams(r.handler);
    a.send(Buffer.from('xhellox'), 1, 5, B, b.port);
    await net.settle();
    expect(r.got).toEqual([]); // nothing leaves before flush()
    a.flush();
    await net.settle();
    expect(r.got).toEqual([{ from: '10.0.0.1:5000', data: 'hello' }]);
    expect(a.stats.txDatagrams).toBe(1);
    expect(b.stats.rxBytes).toBe(5);
    expect(() => net.bind(A, 5000)).toThrow(/in use/);
    a.close();
    expect(() => net.bind(A, 5000)).not.toThrow();
  });

  it('applies the drop / duplicate / hold (reorder) hook', async () => {
    const net = new MemoryNetwork();
    const a = net.bind(A, 1);
    const b = net.bind(B, 2);
    const r = receiver();
    b.onDatagrams(r.handler);
    net.setHook((d) => {
      const s = d.data.toString();
      return s === 'drop' ? 'drop' : s === 'dup' ? 'duplicate' : s === 'late' ? 'hold' : 'deliver';
    });
    for (const s of ['late', 'one', 'drop', 'dup', 'two'])
      a.send(Buffer.from(s), 0, s.length, B, 2);
    a.flush();
    await net.settle();
    net.release();
    await net.settle();
    expect(r.got.map((g) => g.data)).toEqual(['one', 'dup', 'dup', 'two', 'late']);
  });

  it('counts datagrams to nobody', async () => {
    const net = new MemoryNetwork();
    const a = net.bind(A, 1);
    a.send(Buffer.from('x'), 0, 1, B, 9);
    a.flush();
    await net.settle();
    expect(net.undeliverable).toBe(1);
    expect(() => a.send(Buffer.alloc(1), 0, 2, B, 9)).toThrow(RangeError);
  });
});
