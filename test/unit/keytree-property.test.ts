/**
 * Acceptance 1 of the group key issue (docs/keys.md §Security argument):
 * random sequences of joins, leaves and expels — thousands of steps —
 * against a slow reference model.
 *
 * The reference model is plain membership bookkeeping (who is in the group
 * at which epoch). The key tree and one MemberKeyState per member run for
 * real, exchanging only the signed messages; some members miss messages and
 * must resynchronise, and the server is reloaded from its stored form now and
 * then. After every step:
 *  - every current member derives the server's traffic key;
 *  - the coalition of ALL former members, using every key any of them ever
 *    held and every message ever broadcast, cannot derive the current key;
 * and at the end:
 *  - that coalition derives no root of an epoch in which none of them was a
 *    member;
 *  - for every epoch j, the coalition of everyone who joined at j or later
 *    (current and former, everything they ever held) derives no root or
 *    traffic key from before j.
 *
 * The adversary's knowledge is a closure: it opens every broadcast sealed key
 * whose sealing key it knows, and applies the scheme's public one-way
 * functions (forward, grow at any level; one step, and two steps but for
 * grow-after-grow) to anything it knows, keeping whatever lands on a key the
 * server ever used. Each sealed key's
 * sealing key is taken from the server's own state and the test asserts that
 * the key really opens the box, so the index cannot hide a wrongly sealed entry.
 */
import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { Identity } from '../../admin/identity.js';
import { KeyTree, nodePos } from '../../admin/keytree.js';
import { MemberKeyState } from '../../admin/keytree-member.js';
import {
  ENTRY_NONCE_LEN,
  NODE_KEY_LEN,
  channelGroupId,
  forwardKey,
  growKey,
  kekOf,
  openEntry,
  trafficKeyOf,
} from '../../admin/keytree-crypto.js';
import {
  ENTRY_AAD_LEN,
  TYPE_REKEY,
  decodeMessage,
  entryAad,
  entryNonce,
  type RekeyMessage,
} from '../../admin/keytree-wire.js';
import type { KeyTreeChunkRecord, KeyTreeHeaderRecord } from '../../admin/keytree-store.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A cheap assertion for the hot loop (Jest's expect costs ~0.1 ms a call here). */
function must(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`key tree property violated: ${what}`);
}

/** Everything the server ever used, to recognise useful derived values. */
class World {
  /** Every node key value the server ever held (complete once the run is over). */
  readonly universe = new Set<string>();
  /** Root value → epochs it was the root of. */
  readonly rootEpochs = new Map<string, number[]>();
  /** Traffic key → its epoch. */
  readonly trafficEpoch = new Map<string, number>();
  /** Every broadcast sealed key, with its (verified) sealing key. */
  readonly entries: Array<{ sealer: string; open: (kek: Buffer) => Buffer | null }> = [];
  maxHeight = 0;
  private readonly reachCache = new Map<string, string[]>();

  /**
   * Keys the server ever used that anyone holding `k` computes with the public
   * one-way functions F (forward) and G (grow, at every level): one step, and
   * two steps except grow-after-grow — F∘F, F∘G, G∘F cover every way the
   * scheme chains them (the spine after growth is F(G(R, l))). Only asked once
   * the universe is complete, so the answer can be kept.
   */
  reach(k: string): string[] {
    let r = this.reachCache.get(k);
    if (r) return r;
    r = [];
    const add = (d: Buffer): void => {
      const h = hex(d);
      if (this.universe.has(h)) r!.push(h);
    };
    const f = forwardKey(Buffer.from(k, 'hex'));
    add(f);
    add(forwardKey(f));
    for (let l = 0; l <= this.maxHeight; l++) {
      add(growKey(f, l));
      const g = growKey(Buffer.from(k, 'hex'), l);
      add(g);
      add(forwardKey(g));
    }
    this.reachCache.set(k, r);
    return r;
  }
}

/** A coalition's knowledge, closed under what the scheme lets anyone compute. */
class Adversary {
  readonly known = new Set<string>();
  readonly traffic = new Set<string>();
  /** Epochs whose root this coalition knows. */
  readonly roots = new Set<number>();
  private readonly queue: string[] = [];
  private readonly bySealer = new Map<string, Array<(kek: Buffer) => Buffer | null>>();
  private seen = 0;

  constructor(private readonly world: World) {}

  addKey(k: string): void {
    if (this.known.has(k)) return;
    this.known.add(k);
    for (const e of this.world.rootEpochs.get(k) ?? []) this.roots.add(e);
    this.queue.push(k);
  }

  addTraffic(tk: string): void {
    this.traffic.add(tk);
  }

  /** Takes in the world's entries broadcast up to index `upTo`. */
  private syncEntries(upTo: number): void {
    for (; this.seen < upTo; this.seen++) {
      const e = this.world.entries[this.seen];
      if (this.known.has(e.sealer)) this.open(e.sealer, e.open);
      else {
        let l = this.bySealer.get(e.sealer);
        if (!l) this.bySealer.set(e.sealer, (l = []));
        l.push(e.open);
      }
    }
  }

  private open(sealer: string, open: (kek: Buffer) => Buffer | null): void {
    const plain = open(kekOf(Buffer.from(sealer, 'hex')));
    if (plain) this.addKey(hex(plain));
  }

  /** Closes the knowledge over every entry broadcast up to index `upTo` (default: all). */
  run(upTo = this.world.entries.length): void {
    this.syncEntries(upTo);
    while (this.queue.length > 0) {
      const k = this.queue.pop()!;
      const waiting = this.bySealer.get(k);
      if (waiting) {
        this.bySealer.delete(k);
        for (const o of waiting) this.open(k, o);
      }
      for (const d of this.world.reach(k)) this.addKey(d);
    }
  }

  /** Earliest epoch whose root is known (Infinity if none). */
  minRoot(): number {
    let m = Infinity;
    for (const e of this.roots) m = Math.min(m, e);
    return m;
  }

  derivesEpoch(e: number, tk: string): boolean {
    return this.roots.has(e) || this.traffic.has(tk);
  }
}

interface Participant {
  name: string;
  identity: Identity;
  joinEpoch: number;
  leftEpoch: number | null;
  state: MemberKeyState | null;
  held: Set<string>;
  /** Its leaf (fixed while it is a member). */
  leaf: number | null;
  /** What its welcome gave it. */
  firstHeld: Set<string> | null;
  heldTraffic: Set<string>;
  /** Broadcasts still to miss, and the types of those missed. */
  skip: number;
  missed: number[];
}

interface Op {
  t: number;
  a: number;
  b: number;
  k: number;
}

const admin = Identity.generate('admin');
const group = channelGroupId(Buffer.from('0000cafebabe00050100', 'hex'), 0x123);

function runScenario(ops: Op[]): {
  steps: number;
  maxSize: number;
  resyncs: number;
  restores: number;
  probes: number;
} {
  const world = new World();
  const treeOpts = { group, signer: admin };
  let tree = KeyTree.create(treeOpts);
  const stored = new Map<string, unknown>();
  const persist = (): void => {
    const ch = tree.takeChanges();
    if (ch.header) stored.set('header', ch.header);
    for (const [i, c] of ch.chunks) {
      if (c) stored.set(`chunk ${i}`, c);
      else stored.delete(`chunk ${i}`);
    }
  };
  persist();

  // The reference model.
  let modelEpoch = 0;
  const current: Participant[] = [];
  const all: Participant[] = [];
  const traffic: string[] = [];
  let serial = 0;
  let maxSize = 0;
  let resyncs = 0;
  let restores = 0;
  let probes = 0;

  const memberOpts = (p: Participant) => ({
    group,
    identity: p.identity,
    adminSign: admin.pub.sign,
  });

  /** The server's key arena after the last op (in-order positions, from its stored form). */
  let arena = Buffer.alloc(0);
  let arenaHex: string[] = [];
  const serverKeyHex = (level: number, index: number): string => {
    const pos = nodePos(level, index);
    return (arenaHex[pos] ??= hex(serverKey(level, index)));
  };
  const serverKey = (level: number, index: number): Buffer => {
    const off = nodePos(level, index) * NODE_KEY_LEN;
    return Buffer.from(arena.subarray(off, off + NODE_KEY_LEN));
  };

  /** Records the server's state after an op: every key value, the root and traffic key of the epoch. */
  const observeServer = (): void => {
    world.maxHeight = Math.max(world.maxHeight, tree.height);
    const { chunks } = tree.toRecords();
    arena = Buffer.alloc((2 ** (tree.height + 1) - 1) * NODE_KEY_LEN);
    arenaHex = [];
    for (const [i, c] of chunks)
      Buffer.from(c.keys, 'base64url').copy(arena, i * 256 * NODE_KEY_LEN);
    for (let o = 0; o < arena.length; o += NODE_KEY_LEN) {
      const k = arena.subarray(o, o + NODE_KEY_LEN);
      if (k.some((x) => x !== 0)) world.universe.add(hex(k));
    }
    if (tree.size > 0) {
      const root = serverKey(tree.height, 0);
      const tk = tree.trafficKey();
      must(
        hex(tk) === hex(trafficKeyOf(root, group, tree.epoch)),
        'traffic key is not derived from the root',
      );
      traffic[tree.epoch] = hex(tk);
      const l = world.rootEpochs.get(hex(root)) ?? [];
      l.push(tree.epoch);
      world.rootEpochs.set(hex(root), l);
      world.trafficEpoch.set(hex(tk), tree.epoch);
    }
  };

  /** Indexes a rekey message's sealed keys under the server's key of each sealing node. */
  const recordEntries = (msg: RekeyMessage): void => {
    msg.entries.forEach((e, i) => {
      const sealer = serverKey(e.level, e.index);
      const open = (kek: Buffer): Buffer | null =>
        openEntry(
          kek,
          entryNonce(msg.nonceBase, i, Buffer.alloc(ENTRY_NONCE_LEN)),
          entryAad(msg.headerBytes, e.level, e.index, Buffer.alloc(ENTRY_AAD_LEN)),
          e.box,
        );
      // The entry must open under the key the server holds for its node, and
      // yield the parent's new key.
      const plain = open(kekOf(sealer));
      must(plain !== null, `entry ${i} does not open under its node's key`);
      must(
        hex(plain) === hex(serverKey(e.level + 1, e.index >> 1)),
        `entry ${i} is not the parent key`,
      );
      world.entries.push({ sealer: hex(sealer), open });
    });
  };

  /**
   * Records what a member holds now: the server's keys of its path (and,
   * every few steps, checks that its own state holds exactly those) and the
   * traffic key of the epoch (checked by the caller).
   */
  const collect = (p: Participant, exact: boolean): void => {
    const leaf = (p.leaf ??= tree.leafOf(p.identity.id)!);
    must(p.state!.leaf === leaf, `${p.name}: not at its leaf`);
    const path: string[] = [];
    for (let l = 0; l <= tree.height; l++) path.push(serverKeyHex(l, leaf >>> l));
    if (exact || p.firstHeld === null) {
      const j = JSON.parse(p.state!.serialize()) as { keys: string };
      must(
        Buffer.from(j.keys, 'base64url').toString('hex') === path.join(''),
        `${p.name}: its path keys differ from the server's`,
      );
    }
    for (const k of path) p.held.add(k);
    p.heldTraffic.add(traffic[modelEpoch]);
    p.firstHeld ??= new Set(path);
  };
  /** Per step: who left, how many entries were out, and the epoch — for the formers' replay. */
  const timeline: Array<{ epoch: number; removed: Participant[]; entries: number; live: boolean }> =
    [];
  let removedNow: Participant[] = [];

  const broadcast = (bytes: Buffer, removedNow: Set<Participant>): void => {
    const type = bytes[1];
    // Every member would verify the bytes; verifying once here and handing
    // each the decoded message runs the same member code (apply()).
    const msg = decodeMessage(bytes, admin.pub.sign);
    for (const p of [...current, ...removedNow]) {
      if (p.skip > 0) {
        p.skip--;
        p.missed.push(type);
        continue;
      }
      const out = p.state!.apply(msg);
      if (removedNow.has(p)) must(out.kind === 'removed', `${p.name}: not told it was removed`);
      else
        must(
          out.kind === 'applied' && out.epoch === modelEpoch,
          `${p.name}: ${JSON.stringify(out)}`,
        );
    }
  };

  const removeMembers = (victims: Participant[]): void => {
    modelEpoch++;
    const gone = new Set(victims);
    for (const v of victims) current.splice(current.indexOf(v), 1);
    const r = tree.remove(victims.map((v) => v.identity.id));
    must(r.epoch === modelEpoch, 'remove: epoch');
    observeServer();
    const msg = decodeMessage(r.message, admin.pub.sign);
    must(msg.type === TYPE_REKEY, 'remove: not a rekey message');
    recordEntries(msg);
    broadcast(r.message, gone);
    for (const v of victims) v.leftEpoch = modelEpoch;
    removedNow = victims;
  };

  for (const op of ops) {
    const size = current.length;
    const joinBias = size < 4 ? 80 : size > 18 ? 15 : 40;
    let kind: 'join' | 'leave' | 'expel' | 'miss' | 'restore';
    if (size === 0 || op.t < joinBias) kind = 'join';
    else if (op.t < joinBias + (100 - joinBias) * 0.45) kind = 'leave';
    else if (op.t < joinBias + (100 - joinBias) * 0.75) kind = 'expel';
    else if (op.t < 96) kind = 'miss';
    else kind = 'restore';

    if (kind === 'join') {
      modelEpoch++;
      const joiners: Participant[] = [];
      for (let i = 0; i < op.k; i++) {
        const id = Identity.generate(`p${serial++}`);
        joiners.push({
          name: id.label,
          identity: id,
          joinEpoch: modelEpoch,
          leftEpoch: null,
          state: null,
          held: new Set(),
          leaf: null,
          firstHeld: null,
          heldTraffic: new Set(),
          skip: 0,
          missed: [],
        });
      }
      const r = tree.join(joiners.map((p) => p.identity.id));
      must(r.epoch === modelEpoch, 'join: epoch');
      observeServer();
      broadcast(r.notice, new Set());
      for (const p of joiners) {
        p.state = MemberKeyState.fromWelcome(
          memberOpts(p),
          tree.welcome(p.identity.id, p.identity.pub.seal),
        );
        current.push(p);
        all.push(p);
      }
    } else if (kind === 'leave') {
      removeMembers([current[op.a % size]]);
    } else if (kind === 'expel') {
      const picks = new Set<Participant>();
      for (let i = 0; i < Math.min(op.k, size); i++)
        picks.add(current[(op.a + i * (op.b | 1)) % size]);
      removeMembers([...picks]);
    } else if (kind === 'miss') {
      const p = current[op.a % size];
      if (p.skip === 0 && p.missed.length === 0) p.skip = 1 + (op.b % 3);
    } else {
      // Reload the server from the incrementally maintained store; it must equal a full export.
      restores++;
      const header = stored.get('header') as KeyTreeHeaderRecord;
      const chunk = (i: number) => stored.get(`chunk ${i}`) as KeyTreeChunkRecord | undefined;
      const full = tree.toRecords();
      tree = KeyTree.fromRecords(treeOpts, header, chunk);
      must(JSON.stringify(tree.toRecords()) === JSON.stringify(full), 'reloaded tree differs');
    }
    persist();

    // The model and the tree agree on the group.
    must(tree.epoch === modelEpoch, `tree epoch ${tree.epoch}, model ${modelEpoch}`);
    must(
      tree.members().sort().join() ===
        current
          .map((p) => p.identity.id)
          .sort()
          .join(),
      'tree and model disagree on the members',
    );
    maxSize = Math.max(maxSize, current.length);

    for (const p of current) {
      if (p.skip === 0 && p.missed.length > 0) {
        // It missed messages and knows it (a gap, or a data packet of a newer epoch).
        must(p.state!.noteEpoch(modelEpoch), `${p.name}: does not notice it is behind`);
        must(p.state!.needsResync, `${p.name}: not marked for resync`);
        // Hashing the root forward is right exactly when only joins were missed.
        const guess = p.state!.speculativeKey(modelEpoch);
        const onlyJoins = p.missed.every((t) => t !== TYPE_REKEY);
        if (p.missed.length <= 16)
          must((hex(guess!) === traffic[modelEpoch]) === onlyJoins, 'speculation');
        const out = p.state!.apply(tree.welcome(p.identity.id, p.identity.pub.seal));
        must(out.kind === 'applied' && out.epoch === modelEpoch, `${p.name}: resync failed`);
        p.missed = [];
        resyncs++;
      }
      if (p.skip > 0) continue;
      must(
        p.state!.status === 'current' && p.state!.epoch === modelEpoch,
        `${p.name}: not current`,
      );
      must(hex(p.state!.trafficKey()!) === traffic[modelEpoch], `${p.name}: wrong traffic key`);
      collect(p, timeline.length % 8 === 0);
    }
    timeline.push({
      epoch: modelEpoch,
      removed: removedNow,
      entries: world.entries.length,
      live: current.length > 0,
    });
    removedNow = [];
  }

  // Forward secrecy against all former members together, step by step: at
  // each step the coalition of everyone removed so far, with every message
  // sent so far, cannot derive that step's key. (Replayed after the run, so
  // the adversary's search already knows every key the server will ever use.)
  const formers = new Adversary(world);
  for (const t of timeline) {
    for (const v of t.removed) {
      for (const k of v.held) formers.addKey(k);
      for (const tk of v.heldTraffic) formers.addTraffic(tk);
    }
    formers.run(t.entries);
    if (t.live)
      must(!formers.derivesEpoch(t.epoch, traffic[t.epoch]), `formers derive epoch ${t.epoch}`);
  }

  // Formers derive roots only of epochs in which one of them was a member.
  const formerList = all.filter((p) => p.leftEpoch !== null);
  const someFormerIn = (e: number): boolean =>
    formerList.some((p) => p.joinEpoch <= e && e < p.leftEpoch!);
  for (const e of formers.roots) must(someFormerIn(e), `formers derive the root of epoch ${e}`);
  for (const t of formers.traffic)
    must(someFormerIn(world.trafficEpoch.get(t)!), 'formers hold a traffic key of a foreign epoch');

  // Backward secrecy: everyone who joined at j or later knows nothing from before j.
  const late = new Adversary(world);
  const byJoin = [...all].sort((x, y) => y.joinEpoch - x.joinEpoch);
  let i = 0;
  while (i < byJoin.length) {
    const j = byJoin[i].joinEpoch;
    for (; i < byJoin.length && byJoin[i].joinEpoch === j; i++) {
      for (const k of byJoin[i].held) late.addKey(k);
      for (const t of byJoin[i].heldTraffic) late.addTraffic(t);
    }
    late.run();
    must(late.minRoot() >= j, `members who joined at ${j} or later derive epoch ${late.minRoot()}`);
    for (const t of late.traffic)
      must(
        world.trafficEpoch.get(t)! >= j,
        `members who joined at ${j} or later hold an older key`,
      );
  }

  // The adversary is not toothless: the formers did derive keys of their own
  // epochs, and from a member's welcome alone (and the broadcasts since) the
  // closure reaches the current key, through forward steps, growth and
  // opened rekey entries alike.
  if (formerList.length > 0) must(formers.roots.size > 0, 'formers derive nothing at all');
  // Preferably a member 20+ epochs old; under heavy churn every member may be
  // younger than that, then the oldest one that has seen any change.
  const older = current
    .filter((p) => p.joinEpoch < modelEpoch)
    .sort((x, y) => y.joinEpoch - x.joinEpoch);
  const probe = older.find((p) => p.joinEpoch <= modelEpoch - 20) ?? older[older.length - 1];
  if (probe) {
    const control = new Adversary(world);
    for (const k of probe.firstHeld!) control.addKey(k);
    control.run();
    must(control.derivesEpoch(modelEpoch, traffic[modelEpoch]), 'closure misses a legitimate key');
    probes++;
  }
  return { steps: ops.length, maxSize, resyncs, restores, probes };
}

/** Steps per run (two runs); KEYTREE_STEPS overrides it for a longer soak. */
const STEPS = Number(process.env.KEYTREE_STEPS ?? 1000);

const opArb = fc.record({
  t: fc.nat(99),
  a: fc.nat(1 << 20),
  b: fc.nat(1 << 20),
  k: fc.integer({ min: 1, max: 3 }),
});

describe('key tree against a reference model', () => {
  it('keeps every member in step, and former and later members out, over thousands of steps', () => {
    const seen: Array<ReturnType<typeof runScenario>> = [];
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: STEPS, maxLength: Math.ceil(STEPS * 1.25) }),
        (ops) => {
          seen.push(runScenario(ops));
        },
      ),
      { numRuns: 2, endOnFailure: true },
    );
    const steps = seen.reduce((a, s) => a + s.steps, 0);
    expect(steps).toBeGreaterThanOrEqual(2 * STEPS);
    // The runs exercised what they claim to: real groups, resyncs and reloads.
    expect(Math.max(...seen.map((s) => s.maxSize))).toBeGreaterThan(10);
    expect(seen.every((s) => s.resyncs > 0 && s.restores > 0)).toBe(true);
    expect(seen.some((s) => s.probes > 0)).toBe(true);
  });
});
