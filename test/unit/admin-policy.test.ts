import { describe, it, expect, afterAll } from '@jest/globals';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Policy, PolicyError, PolicyHolder, validatePolicy } from '../../admin/policy.js';
import { parsePool } from '../../admin/addr.js';
import { MemoryLogger } from '../../admin/logger.js';
import { tempDir, removeDir } from './admin-fixture.js';

// dist/test/unit → repository root
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const docExample = (): string => {
  const md = readFileSync(join(ROOT, 'docs', 'policy.md'), 'utf8');
  return /```json\n([\s\S]*?)```/.exec(md)![1];
};

const ALICE = 'a11ce000000000000000000000000001';
const ALICE_OLD = 'a11ce000000000000000000000000002';
const BOB = 'b0b00000000000000000000000000001';
const CHUCK = 'c4c40000000000000000000000000001';
const BIGDISK = 'b16d15c0000000000000000000000001';
const HUGEDISK = '4a6ed15c000000000000000000000001';
const P4711 = parsePool('10.71.17.0/24');
const PCAFE = parsePool('10.72.0.0/24');
const CAFE = '0xcafebabe00050100';

describe('policy: the Figure 6 example of docs/policy.md', () => {
  const p = Policy.parse(docExample(), 'docs/policy.md', 0);
  const ev = (
    identity: string,
    supernet: string,
    name: string,
    channels: string[],
    pool = P4711,
    requestedVip?: string,
  ) => p.evaluate({ identity, supernet, name, channels, requestedVip }, pool);

  it('admits the nodes of Supernet 0x4711 to their channels only', () => {
    expect(ev(ALICE, '0x4711', 'a1', ['0x01', '0x123'])).toEqual({ allow: true, rule: 'alice-a1' });
    expect(ev(CHUCK, '0x4711', 'c1', ['0x01'])).toEqual({ allow: true, rule: 'chuck-c1' });
    expect(ev(BIGDISK, '0x4711', 'bigdisk1', ['0x123'])).toEqual({
      allow: true,
      rule: 'bigdisk1-storage',
      vip: '10.71.17.10',
    });
    expect(ev(BIGDISK, '0x4711', 'bigdisk1', ['0x123', '0x01'])).toEqual({
      allow: false,
      rule: 'bigdisk1-storage',
      reason:
        'rule "bigdisk1-storage" (supernets["0x4711"].rules[2]) does not allow channel 0x01 (channels: 0x123)',
    });
    expect(ev(CHUCK, '0x4711', 'a1', ['0x01'])).toEqual({
      allow: false,
      reason: `no rule of supernets["0x4711"] admits identity ${CHUCK} as node "a1"`,
    });
    expect(ev(ALICE, '0x4712', 'a1', ['0x01'])).toEqual({
      allow: false,
      reason: 'the policy has no rules for supernet 0x4712',
    });
  });

  it('keeps the storage providers of 0x0000cafebabe00050100 apart, honours deny rules, pools and fixed addresses', () => {
    expect(ev(ALICE, CAFE, 'a2', ['0x01', '0x02'], PCAFE)).toEqual({
      allow: true,
      rule: 'alice-nodes',
      range: '10.72.0.0/26',
    });
    expect(ev(ALICE_OLD, CAFE, 'a3', ['0x01'], PCAFE)).toEqual({
      allow: false,
      rule: 'banned-laptop',
      reason: `rule "banned-laptop" (supernets["${CAFE}"].rules[0]) denies identity ${ALICE_OLD} as node "a3"`,
    });
    expect(ev(HUGEDISK, CAFE, 'hugedisk1', ['0x03'], PCAFE)).toMatchObject({ allow: false });
    expect(ev(BIGDISK, CAFE, 'bigdisk2', ['0x03'], PCAFE)).toEqual({
      allow: true,
      rule: 'bigdisk2',
      vip: '10.72.0.201',
    });
    expect(ev(BOB, CAFE, 'b1', ['0x03'], PCAFE)).toEqual({ allow: true, rule: 'bob-b1' });
    expect(ev(ALICE, CAFE, 'a2', ['0x01'], PCAFE, '10.72.0.100')).toEqual({
      allow: false,
      rule: 'alice-nodes',
      reason: `rule "alice-nodes" (supernets["${CAFE}"].rules[1]) assigns addresses from 10.72.0.0/26; requestedVip 10.72.0.100 is outside it`,
    });
    expect(ev(ALICE, CAFE, 'a2', ['0x01'], PCAFE, '10.72.0.20')).toEqual({
      allow: true,
      rule: 'alice-nodes',
      range: '10.72.0.0/26',
    });
    expect(ev(BIGDISK, CAFE, 'bigdisk2', ['0x03'], PCAFE, '10.72.0.9')).toMatchObject({
      allow: false,
    });
    // The fixed address of 0x4711's bigdisk1 does not fit the pool of another Supernet.
    expect(ev(BIGDISK, '0x4711', 'bigdisk1', ['0x123'], PCAFE)).toEqual({
      allow: false,
      rule: 'bigdisk1-storage',
      reason:
        'rule "bigdisk1-storage" (supernets["0x4711"].rules[2]) address.fixed: 10.71.17.10 is outside the pool 10.72.0.0/24',
    });
  });
});

describe('policy validation names the field', () => {
  const bad = (doc: unknown, path: string): void => {
    let err: unknown;
    try {
      validatePolicy(doc);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).path).toBe(path);
  };
  const rule = (r: Record<string, unknown>) => ({
    version: 1,
    supernets: {
      '0x4711': { rules: [{ name: 'r', identities: ['*'], channels: ['0x01'], ...r }] },
    },
  });

  it('rejects each kind of mistake with its JSON path', () => {
    bad(null, '$');
    bad({ version: 2 }, 'version');
    bad({ version: 1, extra: 1 }, '$.extra');
    bad({ version: 1, groups: { g: ['nothex'] } }, 'groups["g"][0]');
    bad({ version: 1, supernets: { '0x0': { rules: [] } } }, 'supernets["0x0"]');
    bad(
      { version: 1, supernets: { '0x4711': { rules: [] }, '0x004711': { rules: [] } } },
      'supernets["0x004711"]',
    );
    bad(rule({ identities: ['group:nope'] }), 'supernets["0x4711"].rules[0].identities[0]');
    bad(rule({ identities: [] }), 'supernets["0x4711"].rules[0].identities');
    bad(rule({ nodes: ['Bad'] }), 'supernets["0x4711"].rules[0].nodes[0]');
    bad(rule({ channels: ['0x01', 'x'] }), 'supernets["0x4711"].rules[0].channels[1]');
    bad(rule({ channels: undefined }), 'supernets["0x4711"].rules[0].channels');
    bad(rule({ effect: 'maybe' }), 'supernets["0x4711"].rules[0].effect');
    bad(
      rule({ address: { fixed: '10.0.0.300' }, nodes: ['a'] }),
      'supernets["0x4711"].rules[0].address.fixed',
    );
    bad(
      rule({ address: { fixed: '10.0.0.3' }, nodes: ['a*'] }),
      'supernets["0x4711"].rules[0].address.fixed',
    );
    bad(rule({ address: { pool: '10.0.0.1/24' } }), 'supernets["0x4711"].rules[0].address.pool');
    bad(
      rule({ address: { pool: '10.0.0.0/24', fixed: '10.0.0.2' } }),
      'supernets["0x4711"].rules[0].address',
    );
    bad(rule({ chanels: ['0x01'] }), 'supernets["0x4711"].rules[0].chanels');
    bad(
      {
        version: 1,
        supernets: {
          '0x4711': {
            rules: [
              { name: 'r', identities: ['*'], channels: ['*'] },
              { name: 'r', identities: ['*'], channels: ['*'] },
            ],
          },
        },
      },
      'supernets["0x4711"].rules[1].name',
    );
    expect(() => Policy.parse('{', null, 0)).toThrow(/^\$: not valid JSON/);
  });

  it('canonicalises ids and fingerprints', () => {
    const d = validatePolicy({
      version: 1,
      supernets: {
        '0x00004711': {
          rules: [{ name: 'r', identities: [ALICE.toUpperCase()], channels: ['0x0001', '291'] }],
        },
      },
    });
    expect(d.supernets['0x4711'].rules[0]).toEqual({
      name: 'r',
      effect: 'allow',
      identities: [ALICE],
      nodes: ['*'],
      channels: ['0x01', '0x123'],
    });
  });
});

describe('PolicyHolder', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  it('reloads on demand and on file change, keeps the running policy when the new one is invalid', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'policy.json');
    const v1 = {
      version: 1,
      supernets: { '0x4711': { rules: [{ name: 'one', identities: ['*'], channels: ['*'] }] } },
    };
    writeFileSync(path, JSON.stringify(v1));
    const logger = new MemoryLogger();
    const changes: string[] = [];
    const h = PolicyHolder.fromFile(path, logger);
    h.subscribe((p) => changes.push(p.hash));
    const first = h.current.hash;
    writeFileSync(path, '{"version": 1, "supernets": {"0x4711": {"rules": [{"name": "two"}]}}}');
    expect(h.reload()).toBe(false);
    expect(h.current.hash).toBe(first);
    expect(logger.records.at(-1)).toMatchObject({
      level: 'warn',
      msg: 'policy reload refused; keeping the running policy',
      fields: { error: expect.stringContaining('supernets["0x4711"].rules[0].identities') },
    });
    h.watch(20);
    try {
      // Editors save by writing a temp file and renaming it over the old one.
      const v2 = {
        ...v1,
        supernets: {
          '0x4711': { rules: [{ name: 'two', identities: ['*'], channels: ['0x01'] }] },
        },
      };
      writeFileSync(`${path}.new`, JSON.stringify(v2));
      renameSync(`${path}.new`, path);
      const deadline = Date.now() + 5000;
      while (changes.length === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(changes).toHaveLength(1);
      expect(h.current.doc.supernets['0x4711'].rules[0].name).toBe('two');
    } finally {
      h.close();
    }
  });
});
