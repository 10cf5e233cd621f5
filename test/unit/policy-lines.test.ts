/**
 * Policy errors name the line, column and field (admin/json-locate.ts,
 * admin/policy.ts); a refused reload keeps the running policy in force and
 * says where the new file is wrong.
 */
import { describe, it, expect, afterAll } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Policy, PolicyError, PolicyHolder, formatPolicyPath } from '../../admin/policy.js';
import { parseJsonPath, scanJson, JsonSyntaxError } from '../../admin/json-locate.js';
import { MemoryLogger } from '../../admin/logger.js';
import { parsePool } from '../../admin/addr.js';
import { tempDir, removeDir } from './admin-fixture.js';

const FP = 'a11ce000000000000000000000000001';
const GOOD = `{
  "version": 1,
  "groups": { "alice": ["${FP}"] },
  "supernets": {
    "0x4711": {
      "rules": [
        { "name": "alice-a1", "identities": ["group:alice"], "nodes": ["a1"], "channels": ["0x01", "0x123"] },
        {
          "name": "bigdisk1",
          "identities": ["*"],
          "nodes": ["bigdisk1"],
          "channels": ["0x123"]
        }
      ]
    }
  }
}
`;

function refuse(text: string): PolicyError {
  try {
    Policy.parse(text, 'p.json', 0);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('the policy was accepted');
}

describe('policy errors name the line and field', () => {
  it('a bad channel id deep in a rule', () => {
    const e = refuse(GOOD.replace('"0x123"]\n', '"0xzz"]\n'));
    expect(e.path).toBe('supernets["0x4711"].rules[1].channels[0]');
    expect([e.line, e.column]).toEqual([12, 24]);
    expect(e.located('p.json')).toMatch(
      /^p\.json:12:24: supernets\["0x4711"\]\.rules\[1\]\.channels\[0\]: /,
    );
  });

  it('an unknown field points at its key', () => {
    const e = refuse(
      GOOD.replace('"nodes": ["bigdisk1"],', '"nodes": ["bigdisk1"], "chanels": [],'),
    );
    expect(e.path).toBe('supernets["0x4711"].rules[1].chanels');
    expect([e.line, e.column]).toEqual([11, 34]);
    expect(e.problem).toMatch(/unknown field/);
  });

  it('a missing field points at the object that lacks it', () => {
    const e = refuse(GOOD.replace('"identities": ["*"],', ''));
    expect(e.path).toBe('supernets["0x4711"].rules[1].identities');
    expect([e.line, e.column]).toEqual([8, 9]);
  });

  it('an unknown group on one line of many', () => {
    const e = refuse(GOOD.replace('"group:alice"', '"group:alise"'));
    expect(e.path).toBe('supernets["0x4711"].rules[0].identities[0]');
    expect(e.line).toBe(7);
    expect(e.problem).toBe('unknown group "alise"');
  });

  it('a syntax error says where', () => {
    const e = refuse(GOOD.replace('"version": 1,', '"version": 1'));
    expect(e.path).toBe('$');
    expect(e.line).toBe(3);
    expect(e.located('p.json')).toMatch(/^p\.json:3:3: \$: not valid JSON: expected ',' or '}'/);
  });

  it('a duplicate key is refused (JSON.parse would keep only the last)', () => {
    const e = refuse(GOOD.replace('"version": 1,', '"version": 1,\n  "groups": {},'));
    expect(e.path).toBe('groups');
    expect(e.line).toBe(4);
    expect(e.problem).toMatch(/duplicate key/);
  });

  it('the Figure 6 example of docs/policy.md validates and decides as documented', () => {
    const p = Policy.parse(GOOD, null, 0);
    const pool = parsePool('10.71.17.0/24');
    const ask = (name: string, channels: string[], identity = FP) =>
      p.evaluate({ identity, supernet: '0x4711', name, channels }, pool);
    expect(ask('a1', ['0x01', '0x123'])).toEqual({ allow: true, rule: 'alice-a1' });
    expect(ask('bigdisk1', ['0x01'])).toMatchObject({
      allow: false,
      rule: 'bigdisk1',
      reason: expect.stringMatching(/does not allow channel 0x01/),
    });
    expect(ask('c1', ['0x01'])).toEqual({
      allow: false,
      reason: `no rule of supernets["0x4711"] admits identity ${FP} as node "c1"`,
    });
  });
});

describe('json-locate', () => {
  it('agrees with JSON.parse on what is JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v, null, 1);
        expect(() => scanJson(text)).not.toThrow();
      }),
    );
    for (const bad of ['', '{', '[1,]', '{"a":1,}', '01', '"\\x"', 'nul', '1 2', '"a\nb"']) {
      expect(() => JSON.parse(bad)).toThrow();
      expect(() => scanJson(bad)).toThrow(JsonSyntaxError);
    }
  });

  it('round-trips the paths validation uses', () => {
    for (const p of [
      '$',
      'version',
      'groups["alice"][0]',
      'supernets["0x4711"].rules[2].address.fixed',
      'supernets["a\\"b"].comment',
    ])
      expect(formatPolicyPath(parseJsonPath(p)!)).toBe(p);
  });
});

describe('hot reload of a broken file', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  it('refuses it with the line and field, keeps the running policy, and clears the refusal once fixed', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'policy.json');
    writeFileSync(path, GOOD);
    const logger = new MemoryLogger();
    const h = PolicyHolder.fromFile(path, logger);
    const running = h.current;
    writeFileSync(path, GOOD.replace('"nodes": ["a1"]', '"nodes": ["A1"]'));
    expect(h.reload()).toBe(false);
    expect(h.current).toBe(running);
    const warn = logger.records.at(-1)!;
    expect(warn.msg).toBe('policy reload refused; keeping the running policy');
    expect(warn.fields).toMatchObject({
      field: 'supernets["0x4711"].rules[0].nodes[0]',
      line: 7,
      error: expect.stringMatching(
        /policy\.json:7:\d+: supernets\["0x4711"\]\.rules\[0\]\.nodes\[0\]: expected a node name/,
      ),
    });
    expect(h.refused).toMatchObject({ line: 7, field: 'supernets["0x4711"].rules[0].nodes[0]' });
    // The running policy still decides.
    expect(
      h.current.evaluate(
        { identity: FP, supernet: '0x4711', name: 'a1', channels: ['0x01'] },
        parsePool('10.71.17.0/24'),
      ),
    ).toEqual({ allow: true, rule: 'alice-a1' });
    writeFileSync(path, GOOD.replace('"a1"]', '"a1", "a2"]'));
    expect(h.reload()).toBe(true);
    expect(h.refused).toBeNull();
  });
});
