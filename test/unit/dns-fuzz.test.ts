/**
 * Acceptance 4 of issue 6: malformed DNS queries are answered with FORMERR
 * or dropped, and never crash the resolver. Random bytes, mutated valid
 * queries, compression loops and truncated headers.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { SupernetResolver, type NameView } from '../../net/dns.js';
import { MemoryLogger } from '../../admin/logger.js';

const view: NameView = {
  supernet: '0x4711',
  domain: '4711.sn',
  pool: '10.71.17.0/24',
  self: { name: 'a1', vip: '10.71.17.10' },
  members: [{ name: 'c1', vip: '10.71.17.20' }],
  resolverVip: '10.71.17.1',
  external: 'refuse',
};

type Reply = dnsPacket.DecodedPacket & { rcode: string };

const RUNS = 3000;

function setup() {
  const logger = new MemoryLogger();
  return { logger, r: new SupernetResolver({ logger }) };
}

/** What must hold for every input: no throw, and either no reply or a well-formed one. */
function check(r: SupernetResolver, input: Uint8Array): Reply | null {
  const out = r.answer(input, view);
  if (out === null) {
    // Only inputs without a usable header, or responses, go unanswered.
    expect(input.length < 12 || (input[2]! & 0x80) !== 0).toBe(true);
    return null;
  }
  expect(input.length).toBeGreaterThanOrEqual(12);
  expect(out.length).toBeLessThanOrEqual(1232);
  const reply = dnsPacket.decode(Buffer.from(out)) as Reply;
  expect(dnsPacket.decode.bytes).toBe(out.length);
  expect(reply.type).toBe('response');
  expect(reply.id).toBe((input[0]! << 8) | input[1]!);
  return reply;
}

const validQuery = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffff }),
    name: fc.constantFrom(
      'c1.4711.sn',
      'a1.4711.sn',
      'nope.4711.sn',
      '4711.sn',
      'c1.4712.sn',
      'example.com',
      '20.17.71.10.in-addr.arpa',
      'localhost',
    ),
    type: fc.constantFrom('A', 'AAAA', 'PTR', 'SOA', 'TXT', 'ANY'),
    edns: fc.boolean(),
  })
  .map(({ id, name, type, edns }) =>
    Uint8Array.from(
      dnsPacket.encode({
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
        additionals: edns
          ? [
              {
                type: 'OPT',
                name: '.',
                udpPayloadSize: 1232,
                extendedRcode: 0,
                ednsVersion: 0,
                flags: 0,
                flag_do: false,
                options: [{ code: 10, data: Buffer.alloc(8, 7) } as never],
              },
            ]
          : [],
      }),
    ),
  );

/** A valid query with some bytes overwritten, cut short, or extended. */
const mutatedQuery = fc
  .tuple(
    validQuery,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.option(fc.nat(), { nil: undefined }),
    fc.uint8Array({ maxLength: 8 }),
  )
  .map(([q, edits, cut, tail]) => {
    const b = Uint8Array.from(q);
    for (const [pos, val] of edits) b[pos % b.length] = val;
    const cutAt = cut === undefined ? b.length : cut % (b.length + 1);
    const out = new Uint8Array(cutAt + tail.length);
    out.set(b.subarray(0, cutAt));
    out.set(tail, cutAt);
    return out;
  });

describe('resolver fuzzing', () => {
  it('survives random bytes', () => {
    const { r, logger } = setup();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), (input) => {
        check(r, input);
      }),
      { numRuns: RUNS },
    );
    expect(logger.records.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('survives random bytes behind a plausible query header', () => {
    const { r, logger } = setup();
    const header = Uint8Array.of(0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (body) => {
        const input = new Uint8Array(12 + body.length);
        input.set(header);
        input.set(body, 12);
        const reply = check(r, input);
        expect(reply).not.toBeNull();
      }),
      { numRuns: RUNS },
    );
    expect(logger.records.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('survives mutated valid queries, answering every query that still is one', () => {
    const { r, logger } = setup();
    fc.assert(
      fc.property(mutatedQuery, (input) => {
        check(r, input);
      }),
      { numRuns: RUNS },
    );
    expect(logger.records.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('answers unmutated valid queries without FORMERR', () => {
    const { r } = setup();
    fc.assert(
      fc.property(validQuery, (input) => {
        const reply = check(r, input)!;
        expect(reply.rcode).not.toBe('FORMERR');
        expect(reply.questions).toHaveLength(1);
      }),
      { numRuns: 500 },
    );
    expect(r.stats.formerr).toBe(0);
  });

  it('answers FORMERR to compression pointers in the question and pointer loops', () => {
    const { r } = setup();
    const hdr = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    // The name is a pointer to itself.
    const self = Uint8Array.of(...hdr, 0xc0, 12, 0, 1, 0, 1);
    // A label, then a pointer back into the header.
    const intoHeader = Uint8Array.of(...hdr, 2, 0x63, 0x31, 0xc0, 2, 0, 1, 0, 1);
    // An OPT record whose owner name points forward to itself (a loop).
    const q = Array.from(
      dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'c1.4711.sn', type: 'A' }] }),
    );
    q[11] = 1;
    const optAt = q.length;
    const loop = Uint8Array.of(...q, 0xc0, optAt, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0);
    for (const m of [self, intoHeader, loop]) {
      expect(check(r, m)!.rcode).toBe('FORMERR');
    }
  });

  it('drops truncated headers and answers FORMERR to impossible counts', () => {
    const { r } = setup();
    const full = dnsPacket.encode({
      type: 'query',
      id: 9,
      questions: [{ name: 'c1.4711.sn', type: 'A' }],
    });
    for (let n = 0; n < 12; n++) expect(r.answer(full.subarray(0, n), view)).toBeNull();
    for (let n = 12; n < full.length; n++) {
      expect(check(r, full.subarray(0, n))!.rcode).toBe('FORMERR');
    }
    for (const [off, val] of [
      [5, 0],
      [5, 2],
      [4, 0xff],
      [7, 1],
      [9, 1],
      [11, 2],
      [10, 0xff],
    ] as const) {
      const m = Uint8Array.from(full);
      m[off] = val;
      expect(check(r, m)!.rcode).toBe('FORMERR');
    }
    // A trailing byte after a complete query.
    expect(check(r, Uint8Array.of(...full, 0))!.rcode).toBe('FORMERR');
    // A response is never answered.
    const resp = Uint8Array.from(full);
    resp[2]! |= 0x80;
    expect(r.answer(resp, view)).toBeNull();
    expect(r.stats.dropped).toBe(13);
  });
});
