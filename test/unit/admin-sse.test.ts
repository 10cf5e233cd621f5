import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { SseParser } from '../../admin/sse.js';

describe('SSE parser', () => {
  it('parses events, multi-line data, comments, retry, and all line endings', () => {
    const p = new SseParser();
    expect(p.push('retry: 2000\n\n: keep-alive\n\nevent: config\ndata: {"serial":1}\n\n')).toEqual([
      { event: 'config', data: '{"serial":1}' },
    ]);
    expect(p.retryMs).toBe(2000);
    expect(p.push('data: a\r\ndata:b\r\rdata: c\n')).toEqual([{ event: 'message', data: 'a\nb' }]);
    expect(p.push('\n')).toEqual([{ event: 'message', data: 'c' }]);
    expect(p.push('event: x\n\n')).toEqual([]); // no data: nothing dispatched
  });

  it('gives the same messages however the stream is split', () => {
    const text =
      'event: config\ndata: {"serial":1}\n\n: ping\r\n\r\nevent: expelled\r\ndata: {"reason":"x"}\r\n\r\ndata: y\r\r\n';
    const whole = new SseParser().push(text);
    expect(whole).toHaveLength(3);
    fc.assert(
      fc.property(fc.array(fc.nat(text.length), { maxLength: 8 }), (cuts) => {
        const p = new SseParser();
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const out = [];
        let prev = 0;
        for (const c of [...at, text.length]) {
          out.push(...p.push(text.slice(prev, c)));
          prev = c;
        }
        expect(out).toEqual(whole);
      }),
    );
  });
});
