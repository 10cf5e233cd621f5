/**
 * Benchmark of group key management (issue "Group key management"; results
 * in docs/benchmarks.md §Group keys):
 *
 *   node dist/bench/groupkeys.js [--quick] [--json FILE]
 *
 * For n = 2^10, 2^14, 2^16 members (full admin path: signed messages,
 * welcomes sealed to identities, stored form) and n = 2^20 (in memory): the
 * key tree's sealed keys and bytes per leave message, admin CPU per leave and
 * per join, memory per member on the server and in a member's state, and the
 * stored form; and, in the same run, the flat scheme (a fresh key sealed to
 * each of the n − 1 remaining members with identity.ts `seal`) as the peer.
 * The flat scheme at 2^20 is estimated from its measured cost per sealed box
 * at 2^16 (it is linear in n; running it would take minutes) and marked so.
 *
 * CPU is process.cpuUsage (user + system) over the whole loop divided by the
 * number of operations; the loops run on one core, nothing else in this
 * process runs meanwhile.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { Identity, SEAL_OVERHEAD, seal } from '../admin/identity.js';
import { KeyTree } from '../admin/keytree.js';
import { MemberKeyState } from '../admin/keytree-member.js';
import { NODE_KEY_LEN, channelGroupId } from '../admin/keytree-crypto.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonAt = args.indexOf('--json');
const jsonFile = jsonAt >= 0 ? args[jsonAt + 1] : null;

const admin = Identity.generate('bench-admin');
const group = channelGroupId(Buffer.from('0000cafebabe00050100', 'hex'), 0x123);
/** Recipients for sealing: the cost of a box does not depend on whose key it is. */
const recipients = Array.from({ length: 16 }, (_, i) => Identity.generate(`r${i}`));

/** Member ids as the admin uses them: 32 hex characters of an identity fingerprint. */
const memberId = (i: number): string =>
  createHash('sha256').update(`member ${i}`).digest('hex').slice(0, 32);

function memory(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** CPU microseconds of `fn` (user + system). */
function cpu(fn: () => void): number {
  const c = process.cpuUsage();
  fn();
  const d = process.cpuUsage(c);
  return d.user + d.system;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

interface TreeRow {
  n: number;
  height: number;
  buildMs: number;
  leaveEntries: { mean: number; max: number; bound: number };
  leaveBytes: { mean: number; max: number };
  leaveCpuUs: { mean: number; p99: number };
  batch8: { entries: number; bytes: number; cpuUs: number };
  joinCpuUs: { mean: number; p99: number; withoutWelcome: number };
  /** CPU of the one join that doubles a full tree. */
  growJoinMs: number;
  joinNoticeBytes: number;
  joinKeyBytes: number;
  welcomeBytes: number;
  serverBytesPerMember: number;
  serverMiB: number;
  memberStateBytes: number | null;
  memberKeyBytes: number;
  storedMiB: number | null;
  storedPerLeaveKiB: number | null;
}

interface FlatRow {
  n: number;
  estimated: boolean;
  boxes: number;
  bytes: number;
  cpuMs: number;
  perBoxUs: number;
}

function benchTree(n: number, full: boolean, ops: number): TreeRow {
  const before = memory();
  const tree = KeyTree.create({ group, signer: admin });
  const ids = Array.from({ length: n }, (_, i) => memberId(i));
  const buildStart = process.hrtime.bigint();
  tree.join(ids);
  const buildMs = Number(process.hrtime.bigint() - buildStart) / 1e6;
  tree.takeChanges();
  const serverBytes = memory() - before;

  let storedMiB: number | null = null;
  let storedPerLeaveKiB: number | null = null;
  if (full) {
    const rec = tree.toRecords();
    storedMiB = JSON.stringify(rec).length / 2 ** 20;
  }

  // Leaves (each followed by an untimed join, so n stays put).
  const entries: number[] = [];
  const bytes: number[] = [];
  const leaveUs: number[] = [];
  const joinUs: number[] = [];
  let changeBytes = 0;
  let next = n;
  let leaveCpu = 0;
  let joinCpu = 0;
  let joinBareCpu = 0;
  let noticeBytes = 0;
  let welcomeBytes = 0;
  for (let i = 0; i < ops; i++) {
    const victim = ids[(i * 2654435761) % ids.length];
    let r: ReturnType<KeyTree['remove']> | undefined;
    const t0 = process.hrtime.bigint();
    leaveCpu += cpu(() => {
      r = tree.remove([victim]);
    });
    leaveUs.push(Number(process.hrtime.bigint() - t0) / 1e3);
    entries.push(r!.entries);
    bytes.push(r!.message.length);
    if (full) changeBytes += JSON.stringify(tree.takeChanges()).length;
    // A join as the admin does it: the notice for everyone, the welcome for the joiner.
    const joiner = memberId(next++);
    const to = recipients[i % recipients.length];
    const t1 = process.hrtime.bigint();
    joinBareCpu += cpu(() => {
      noticeBytes = tree.join([joiner]).notice.length;
    });
    joinCpu += cpu(() => {
      welcomeBytes = tree.welcome(joiner, to.pub.seal).length;
    });
    joinUs.push(Number(process.hrtime.bigint() - t1) / 1e3);
    ids[(i * 2654435761) % ids.length] = joiner;
    if (full) tree.takeChanges();
  }
  joinCpu += joinBareCpu;
  if (full) storedPerLeaveKiB = changeBytes / ops / 1024;
  const height = tree.height;

  // A batch of 8 removals in one message (then 8 joins refill the tree).
  const eight = Array.from({ length: 8 }, (_, i) => ids[(i * 7919 + 13) % ids.length]);
  let b8: ReturnType<KeyTree['remove']> | undefined;
  const b8cpu = cpu(() => {
    b8 = tree.remove(eight);
  });
  const refill = eight.map(() => memberId(next++));
  tree.join(refill);
  for (let i = 0; i < 8; i++) ids[ids.indexOf(eight[i])] = refill[i];

  // The tree is full again: the next join doubles it (arrays grow, once per doubling).
  const growId = memberId(next);
  const growCpu = cpu(() => {
    tree.join([growId]);
  });

  // Member side: what one member holds.
  let memberStateBytes: number | null = null;
  if (full) {
    const sample = 200;
    const members = ids.filter((id) => tree.has(id)).slice(0, sample);
    const who = Identity.generate('member');
    const welcomes = members.map((id) => tree.welcome(id, who.pub.seal));
    const m0 = memory();
    const states = welcomes.map((w) =>
      MemberKeyState.fromWelcome({ group, identity: who, adminSign: admin.pub.sign }, w),
    );
    memberStateBytes = (memory() - m0) / states.length;
    for (const s of states) s.destroy();
  }

  const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
  const row: TreeRow = {
    n,
    height,
    buildMs,
    leaveEntries: {
      mean: mean(entries),
      max: Math.max(...entries),
      bound: 2 * Math.log2(n),
    },
    leaveBytes: { mean: mean(bytes), max: Math.max(...bytes) },
    leaveCpuUs: { mean: leaveCpu / ops, p99: percentile(leaveUs, 99) },
    batch8: { entries: b8!.entries, bytes: b8!.message.length, cpuUs: b8cpu },
    joinCpuUs: {
      mean: joinCpu / ops,
      p99: percentile(joinUs, 99),
      withoutWelcome: joinBareCpu / ops,
    },
    growJoinMs: growCpu / 1000,
    joinNoticeBytes: noticeBytes,
    joinKeyBytes: 0,
    welcomeBytes,
    serverBytesPerMember: serverBytes / n,
    serverMiB: serverBytes / 2 ** 20,
    memberStateBytes,
    memberKeyBytes: (tree.height + 1) * NODE_KEY_LEN,
    storedMiB,
    storedPerLeaveKiB,
  };
  tree.destroy();
  return row;
}

/** The flat scheme's leave: a fresh key sealed to each of the n − 1 remaining members. */
function benchFlat(n: number): FlatRow {
  const key = randomBytes(32);
  let boxBytes = 0;
  const us = cpu(() => {
    for (let i = 0; i < n - 1; i++) {
      const to = recipients[i % recipients.length];
      boxBytes += seal(to.pub.seal, key, `channel-key bench 0x123 2 ${i}`).length;
    }
  });
  return {
    n,
    estimated: false,
    boxes: n - 1,
    bytes: boxBytes,
    cpuMs: us / 1000,
    perBoxUs: us / (n - 1),
  };
}

const fmt = (x: number, d = 1): string => x.toFixed(d);

/** Reference costs on this machine now (it may be shared): one HMAC-SHA256 and one Ed25519 signature, µs. */
function calibrate(): { hmacUs: number; signUs: number } {
  const k = randomBytes(32);
  const m = randomBytes(1500);
  const N = 20000;
  const h = cpu(() => {
    for (let i = 0; i < N; i++) createHmac('sha256', k).update('x').digest();
  });
  const s = cpu(() => {
    for (let i = 0; i < 500; i++) admin.sign(m);
  });
  return { hmacUs: h / N, signUs: s / 500 };
}

function main(): void {
  const load0 = loadavg()[0];
  const cal = calibrate();
  const sizes = quick ? [2 ** 10, 2 ** 14] : [2 ** 10, 2 ** 14, 2 ** 16];
  const ops = quick ? 100 : 300;
  const started = Date.now();
  const tree: TreeRow[] = [];
  const flat: FlatRow[] = [];
  for (const n of sizes) {
    tree.push(benchTree(n, true, ops));
    flat.push(benchFlat(n));
  }
  if (!quick) tree.push(benchTree(2 ** 20, false, ops));
  const last = flat[flat.length - 1];
  for (const n of quick ? [] : [2 ** 20]) {
    flat.push({
      n,
      estimated: true,
      boxes: n - 1,
      bytes: (n - 1) * (SEAL_OVERHEAD + 32),
      cpuMs: ((n - 1) * last.perBoxUs) / 1000,
      perBoxUs: last.perBoxUs,
    });
  }

  const out: string[] = [];
  const p = (s: string): void => {
    out.push(s);
  };
  p(
    `node ${process.version}, ${ops} leaves and ${ops} joins per size, ${new Date().toISOString()}`,
  );
  p(
    `machine: 1-min load average ${fmt(load0, 2)} at start, ${fmt(loadavg()[0], 2)} at end; ` +
      `reference costs now: HMAC-SHA256 ${fmt(cal.hmacUs, 2)} µs, Ed25519 sign ${fmt(cal.signUs)} µs`,
  );
  p('');
  p('Key tree (binary), one leave:');
  p('');
  p(
    '| n | height | sealed keys mean / max (2·log2 n) | message bytes mean / max | admin CPU per leave mean µs | wall p99 µs | batch of 8: keys / bytes / CPU µs |',
  );
  p('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of tree)
    p(
      `| 2^${Math.log2(r.n)} | ${r.height} | ${fmt(r.leaveEntries.mean)} / ${r.leaveEntries.max} (${r.leaveEntries.bound}) | ${fmt(r.leaveBytes.mean, 0)} / ${r.leaveBytes.max} | ${fmt(r.leaveCpuUs.mean)} | ${fmt(r.leaveCpuUs.p99)} | ${r.batch8.entries} / ${r.batch8.bytes} / ${fmt(r.batch8.cpuUs, 0)} |`,
    );
  p('');
  p('Key tree, one join (notice to all + welcome sealed to the joiner):');
  p('');
  p(
    '| n | key bytes broadcast | notice bytes | welcome bytes (unicast) | admin CPU per join mean µs (without welcome) | wall p99 µs | join that doubles the tree, CPU ms |',
  );
  p('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of tree)
    p(
      `| 2^${Math.log2(r.n)} | ${r.joinKeyBytes} | ${r.joinNoticeBytes} | ${r.welcomeBytes} | ${fmt(r.joinCpuUs.mean)} (${fmt(r.joinCpuUs.withoutWelcome)}) | ${fmt(r.joinCpuUs.p99)} | ${fmt(r.growJoinMs)} |`,
    );
  p('');
  p('Memory and storage:');
  p('');
  p(
    '| n | server total MiB | server bytes per member | member state bytes (of which keys) | stored form MiB | stored bytes rewritten per leave KiB | bulk build ms |',
  );
  p('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of tree)
    p(
      `| 2^${Math.log2(r.n)} | ${fmt(r.serverMiB)} | ${fmt(r.serverBytesPerMember, 0)} | ${r.memberStateBytes === null ? '–' : fmt(r.memberStateBytes, 0)} (${r.memberKeyBytes}) | ${r.storedMiB === null ? '– (in memory)' : fmt(r.storedMiB, 2)} | ${r.storedPerLeaveKiB === null ? '–' : fmt(r.storedPerLeaveKiB)} | ${fmt(r.buildMs, 0)} |`,
    );
  p('');
  p(
    'Flat scheme (peer): one leave = a fresh key sealed to each of the n − 1 others (a join: to all n):',
  );
  p('');
  p('| n | sealed keys | bytes | admin CPU ms | µs per box |');
  p('|---:|---:|---:|---:|---:|');
  for (const f of flat)
    p(
      `| 2^${Math.log2(f.n)} | ${f.boxes} | ${f.bytes} | ${fmt(f.cpuMs)}${f.estimated ? ' (estimated from 2^16)' : ''} | ${fmt(f.perBoxUs)} |`,
    );
  p('');
  const at16 = tree.find((r) => r.n === 2 ** 16);
  const checks = [
    [
      '≤ 2·log2(n) sealed keys per single leave',
      tree.every((r) => r.leaveEntries.max <= r.leaveEntries.bound),
    ],
    ['join broadcasts zero key bytes', tree.every((r) => r.joinKeyBytes === 0)],
    ...(at16
      ? [['≤ 1 ms admin CPU per leave at n = 65,536', at16.leaveCpuUs.mean <= 1000] as const]
      : []),
  ] as const;
  for (const [what, ok] of checks) p(`target: ${what}: ${ok ? 'met' : 'MISSED'}`);
  p(`total run time ${fmt((Date.now() - started) / 1000)} s`);
  process.stdout.write(out.join('\n') + '\n');
  if (jsonFile)
    writeFileSync(jsonFile, JSON.stringify({ calibration: cal, tree, flat }, null, 2) + '\n');
}

main();
