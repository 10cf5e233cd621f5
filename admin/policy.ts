/**
 * The admission policy (paper §4.2: "authentication and admission control
 * are governed by an explicitly expressed security policy").
 *
 * A policy is a JSON file (docs/policy.md):
 *
 *     { "version": 1,
 *       "groups": { "alice": ["<fingerprint>", ...] },
 *       "supernets": { "0x4711": { "rules": [
 *         { "name": "alice-a1", "identities": ["group:alice"], "nodes": ["a1"],
 *           "channels": ["0x01", "0x123"], "address": { "fixed": "10.71.17.10" } } ] } } }
 *
 * Rules of a Supernet are tried in order; the FIRST rule whose `identities`
 * and `nodes` match the login decides (like a firewall): an `allow` rule
 * admits only if every requested channel is listed, a `deny` rule refuses.
 * No matching rule → deny. Every refusal names the rule and field responsible.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseSupernetId, parseChannelId, formatChannelId, IdError } from './ids.js';
import { NODE_NAME_RE } from './protocol.js';
import { parsePool, poolContains, vipProblem, inPool, ipv4ToInt, type Pool } from './addr.js';
import { ApiError } from './errors.js';
import type { Logger } from './logger.js';
import { JsonSyntaxError, parseJsonPath, scanJson, type JsonSegment } from './json-locate.js';

const IDENT_RE = /^[A-Za-z_]\w*$/;

/** A path in the form validation errors use: `supernets["0x4711"].rules[2].channels`. */
export function formatPolicyPath(path: readonly JsonSegment[]): string {
  let out = '';
  path.forEach((p, i) => {
    const mapKey = i === 1 && (path[0] === 'groups' || path[0] === 'supernets');
    if (typeof p === 'number') out += `[${p}]`;
    else if (mapKey || !IDENT_RE.test(p)) out += `[${JSON.stringify(p)}]`;
    else out += i === 0 ? p : `.${p}`;
  });
  return out || '$';
}

export const POLICY_VERSION = 1;
const FINGERPRINT_RE = /^[0-9a-f]{32}$/;
const GROUP_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NODE_GLOB_RE = /^[a-z0-9*-]{1,31}$/;

/**
 * A policy file failed validation; `path` is the JSON path of the offending
 * field, and `line`/`column` (1-based) where it is in the file, when the
 * error came from {@link Policy.parse}.
 */
export class PolicyError extends Error {
  readonly line: number | null;
  readonly column: number | null;

  constructor(
    readonly path: string,
    readonly problem: string,
    pos?: { line: number; column: number },
  ) {
    super(`${path}: ${problem}`);
    this.name = 'PolicyError';
    this.line = pos?.line ?? null;
    this.column = pos?.column ?? null;
  }

  /** `FILE:LINE:COLUMN: PATH: PROBLEM` (compiler style, so editors jump to it). */
  located(file: string | null): string {
    if (file === null)
      return this.line === null
        ? this.message
        : `line ${this.line}, column ${this.column}: ${this.message}`;
    const at = this.line === null ? '' : `${this.line}:${this.column}:`;
    return `${file}:${at} ${this.message}`;
  }
}

/** One rule, as written in the file (after validation and canonicalisation). */
export interface PolicyRule {
  name: string;
  effect: 'allow' | 'deny';
  identities: string[];
  nodes: string[];
  channels: string[];
  address?: { fixed: string } | { pool: string };
}

export interface PolicyDocument {
  version: number;
  groups: Record<string, string[]>;
  supernets: Record<string, { rules: PolicyRule[] }>;
}

/** What a login asks for. */
export interface AdmissionRequest {
  /** Fingerprint (`Identity.id`) of the authenticated identity. */
  identity: string;
  supernet: string;
  name: string;
  /** Canonical channel ids. */
  channels: string[];
  requestedVip?: string;
}

export type Decision =
  | {
      allow: true;
      /** Name of the deciding rule. */
      rule: string;
      /** A fixed address for this node. */
      vip?: string;
      /** The range addresses come from (CIDR, inside the Supernet pool); absent = whole pool. */
      range?: string;
    }
  | {
      allow: false;
      reason: string;
      /** The rule that refused; absent when no rule matched (operator admissions may then decide, admin/grants.ts). */
      rule?: string;
    };

interface CompiledRule extends PolicyRule {
  where: string;
  matchesIdentity(fp: string): boolean;
  matchesNode(name: string): boolean;
  anyChannel: boolean;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(o: Record<string, unknown>, allowed: string[], path: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k))
      throw new PolicyError(`${path}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

function stringArray(v: unknown, path: string, nonEmpty = true): string[] {
  if (!Array.isArray(v)) throw new PolicyError(path, 'expected an array of strings');
  if (nonEmpty && v.length === 0) throw new PolicyError(path, 'must not be empty');
  v.forEach((x, i) => {
    if (typeof x !== 'string') throw new PolicyError(`${path}[${i}]`, 'expected a string');
  });
  return v as string[];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    '^' +
      glob
        .split('*')
        .map((p) => p.replace(/[-]/g, '\\-'))
        .join('[a-z0-9-]*') +
      '$',
  );
}

/** Validates a parsed policy document; throws {@link PolicyError} naming the field. */
export function validatePolicy(raw: unknown): PolicyDocument {
  if (!isObj(raw)) throw new PolicyError('$', 'expected a JSON object');
  onlyKeys(raw, ['version', 'groups', 'supernets', 'comment'], '$');
  if (raw.version !== POLICY_VERSION) {
    throw new PolicyError(
      'version',
      `expected ${POLICY_VERSION}, got ${JSON.stringify(raw.version)}`,
    );
  }
  const groups: Record<string, string[]> = {};
  if (raw.groups !== undefined) {
    if (!isObj(raw.groups))
      throw new PolicyError('groups', 'expected an object of name → fingerprints');
    for (const [g, members] of Object.entries(raw.groups)) {
      const path = `groups[${JSON.stringify(g)}]`;
      if (!GROUP_NAME_RE.test(g))
        throw new PolicyError(path, 'group names are 1–64 of A-Z a-z 0-9 _ . -');
      groups[g] = stringArray(members, path, false).map((fp, i) => {
        const f = fp.toLowerCase();
        if (!FINGERPRINT_RE.test(f))
          throw new PolicyError(`${path}[${i}]`, 'expected a 32-hex-digit identity fingerprint');
        return f;
      });
    }
  }
  const supernets: PolicyDocument['supernets'] = {};
  const rawSn = raw.supernets ?? {};
  if (!isObj(rawSn))
    throw new PolicyError('supernets', 'expected an object of Supernet id → {rules}');
  for (const [sidText, section] of Object.entries(rawSn)) {
    let sid: string;
    const spath = `supernets[${JSON.stringify(sidText)}]`;
    try {
      sid = parseSupernetId(sidText, spath);
    } catch (err) {
      throw new PolicyError(spath, (err as IdError).message.replace(`${spath}: `, ''));
    }
    if (supernets[sid])
      throw new PolicyError(spath, `names the same Supernet as another key (${sid})`);
    if (!isObj(section)) throw new PolicyError(spath, 'expected an object {rules}');
    onlyKeys(section, ['rules', 'comment'], spath);
    if (!Array.isArray(section.rules))
      throw new PolicyError(`${spath}.rules`, 'expected an array of rules');
    const names = new Set<string>();
    const rules = section.rules.map((r, i) =>
      validateRule(r, `${spath}.rules[${i}]`, groups, names),
    );
    supernets[sid] = { rules };
  }
  return { version: POLICY_VERSION, groups, supernets };
}

function validateRule(
  r: unknown,
  path: string,
  groups: Record<string, string[]>,
  names: Set<string>,
): PolicyRule {
  if (!isObj(r)) throw new PolicyError(path, 'expected a rule object');
  onlyKeys(r, ['name', 'effect', 'identities', 'nodes', 'channels', 'address', 'comment'], path);
  if (typeof r.name !== 'string' || r.name.length === 0 || r.name.length > 64) {
    throw new PolicyError(`${path}.name`, 'expected a rule name of 1–64 characters');
  }
  if (names.has(r.name))
    throw new PolicyError(`${path}.name`, `duplicate rule name ${JSON.stringify(r.name)}`);
  names.add(r.name);
  const effect = r.effect ?? 'allow';
  if (effect !== 'allow' && effect !== 'deny')
    throw new PolicyError(`${path}.effect`, 'expected "allow" or "deny"');
  const identities = stringArray(r.identities, `${path}.identities`).map((x, i) => {
    const p = `${path}.identities[${i}]`;
    if (x === '*') return x;
    if (x.startsWith('group:')) {
      if (!groups[x.slice(6)])
        throw new PolicyError(p, `unknown group ${JSON.stringify(x.slice(6))}`);
      return x;
    }
    const f = x.toLowerCase();
    if (!FINGERPRINT_RE.test(f))
      throw new PolicyError(p, 'expected "*", "group:NAME" or a 32-hex-digit fingerprint');
    return f;
  });
  const nodes = r.nodes === undefined ? ['*'] : stringArray(r.nodes, `${path}.nodes`);
  nodes.forEach((n, i) => {
    if (!(n.includes('*') ? NODE_GLOB_RE.test(n) : NODE_NAME_RE.test(n))) {
      throw new PolicyError(
        `${path}.nodes[${i}]`,
        'expected a node name ([a-z][a-z0-9-]{0,30}) or a pattern with *',
      );
    }
  });
  let channels: string[] = [];
  if (effect === 'allow' || r.channels !== undefined) {
    channels = stringArray(r.channels, `${path}.channels`).map((c, i) => {
      if (c === '*') return c;
      try {
        return formatChannelId(parseChannelId(c, `${path}.channels[${i}]`));
      } catch (err) {
        throw new PolicyError(
          `${path}.channels[${i}]`,
          (err as IdError).message.replace(/^[^:]*: /, ''),
        );
      }
    });
  }
  const rule: PolicyRule = { name: r.name, effect, identities, nodes, channels };
  if (r.address !== undefined) {
    const ap = `${path}.address`;
    if (!isObj(r.address)) throw new PolicyError(ap, 'expected {"fixed": VIP} or {"pool": CIDR}');
    onlyKeys(r.address, ['fixed', 'pool'], ap);
    if ((r.address.fixed === undefined) === (r.address.pool === undefined)) {
      throw new PolicyError(ap, 'give exactly one of "fixed" or "pool"');
    }
    if (effect === 'deny') throw new PolicyError(ap, 'a deny rule assigns no address');
    if (r.address.fixed !== undefined) {
      const v = r.address.fixed;
      if (typeof v !== 'string' || ipv4ToInt(v) === null) {
        throw new PolicyError(`${ap}.fixed`, 'expected an IPv4 address');
      }
      // One fixed address can belong to one node name only (names are unique in a Supernet).
      if (nodes.length !== 1 || nodes[0].includes('*')) {
        throw new PolicyError(
          `${ap}.fixed`,
          'a fixed address needs exactly one literal node name in "nodes"',
        );
      }
      rule.address = { fixed: v };
    } else {
      try {
        rule.address = { pool: parsePool(r.address.pool, `${ap}.pool`).text };
      } catch (err) {
        throw new PolicyError(`${ap}.pool`, (err as ApiError).message.replace(/^[^:]*: /, ''));
      }
    }
  }
  return rule;
}

/** An immutable, validated policy that evaluates logins. */
export class Policy {
  private readonly compiled = new Map<string, CompiledRule[]>();

  constructor(
    readonly doc: PolicyDocument,
    /** sha256 of the source text (hex), shown by GET /v1/policy and in the audit. */
    readonly hash: string,
    readonly source: string | null,
    readonly loadedAt: number,
  ) {
    for (const [sid, { rules }] of Object.entries(doc.supernets)) {
      this.compiled.set(
        sid,
        rules.map((r, i) => {
          const ids = new Set<string>();
          let any = false;
          for (const x of r.identities) {
            if (x === '*') any = true;
            else if (x.startsWith('group:')) for (const fp of doc.groups[x.slice(6)]) ids.add(fp);
            else ids.add(x);
          }
          const lits = new Set(r.nodes.filter((n) => !n.includes('*')));
          const globs = r.nodes.filter((n) => n.includes('*')).map(globToRegExp);
          return {
            ...r,
            where: `rule ${JSON.stringify(r.name)} (supernets["${sid}"].rules[${i}])`,
            matchesIdentity: (fp: string) => any || ids.has(fp),
            matchesNode: (n: string) => lits.has(n) || globs.some((g) => g.test(n)),
            anyChannel: r.channels.includes('*'),
          };
        }),
      );
    }
  }

  /** Parses and validates policy text (JSON). */
  static parse(text: string, source: string | null, loadedAt: number): Policy {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      // Our own scanner says where; JSON.parse's message is the fallback.
      try {
        scanJson(text);
      } catch (syn) {
        if (syn instanceof JsonSyntaxError)
          throw new PolicyError('$', `not valid JSON: ${syn.problem}`, syn.pos);
      }
      throw new PolicyError('$', `not valid JSON (${(err as Error).message})`);
    }
    const locs = scanJson(text);
    const dup = locs.duplicates[0];
    if (dup) {
      // JSON.parse would keep only the last one: a typo must not silently change the policy.
      throw new PolicyError(
        formatPolicyPath(dup.path),
        'duplicate key (only one of them would count)',
        dup.pos,
      );
    }
    const hash = createHash('sha256').update(text).digest('hex');
    let doc: PolicyDocument;
    try {
      doc = validatePolicy(raw);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      const segs = parseJsonPath(err.path);
      throw new PolicyError(err.path, err.problem, segs ? locs.near(segs) : undefined);
    }
    return new Policy(doc, hash, source, loadedAt);
  }

  /** The policy that admits nobody (used when no file exists yet). */
  static denyAll(loadedAt: number): Policy {
    return Policy.parse(
      JSON.stringify({ version: POLICY_VERSION, groups: {}, supernets: {} }),
      null,
      loadedAt,
    );
  }

  /** Decides a login. `pool` is the Supernet's address pool. */
  evaluate(req: AdmissionRequest, pool: Pool): Decision {
    const rules = this.compiled.get(req.supernet);
    if (!rules || rules.length === 0) {
      return { allow: false, reason: `the policy has no rules for supernet ${req.supernet}` };
    }
    const rule = rules.find((r) => r.matchesIdentity(req.identity) && r.matchesNode(req.name));
    if (!rule) {
      return {
        allow: false,
        reason: `no rule of supernets["${req.supernet}"] admits identity ${req.identity} as node ${JSON.stringify(req.name)}`,
      };
    }
    if (rule.effect === 'deny') {
      return {
        allow: false,
        rule: rule.name,
        reason: `${rule.where} denies identity ${req.identity} as node ${JSON.stringify(req.name)}`,
      };
    }
    if (!rule.anyChannel) {
      const bad = req.channels.find((c) => !rule.channels.includes(c));
      if (bad)
        return {
          allow: false,
          rule: rule.name,
          reason: `${rule.where} does not allow channel ${bad} (channels: ${rule.channels.join(', ')})`,
        };
    }
    const addr = rule.address;
    if (addr && 'fixed' in addr) {
      const problem = vipProblem(pool, addr.fixed);
      if (problem)
        return { allow: false, rule: rule.name, reason: `${rule.where} address.fixed: ${problem}` };
      if (req.requestedVip !== undefined && req.requestedVip !== addr.fixed) {
        return {
          allow: false,
          rule: rule.name,
          reason: `${rule.where} assigns ${addr.fixed}; requestedVip ${req.requestedVip} is not allowed`,
        };
      }
      return { allow: true, rule: rule.name, vip: addr.fixed };
    }
    let range: Pool = pool;
    if (addr && 'pool' in addr) {
      range = parsePool(addr.pool);
      if (!poolContains(pool, range)) {
        return {
          allow: false,
          rule: rule.name,
          reason: `${rule.where} address.pool ${range.text} is outside the Supernet pool ${pool.text}`,
        };
      }
    }
    if (req.requestedVip !== undefined) {
      const problem = vipProblem(pool, req.requestedVip);
      if (problem) return { allow: false, rule: rule.name, reason: `requestedVip: ${problem}` };
      if (!inPool(range, req.requestedVip)) {
        return {
          allow: false,
          rule: rule.name,
          reason: `${rule.where} assigns addresses from ${range.text}; requestedVip ${req.requestedVip} is outside it`,
        };
      }
    }
    return range === pool
      ? { allow: true, rule: rule.name }
      : { allow: true, rule: rule.name, range: range.text };
  }
}

/**
 * Holds the running policy, loaded from a file; reloads on demand (SIGHUP,
 * wired by the CLI) and when the file changes. A new policy that does not
 * validate is refused and logged; the running one stays in force.
 */
export class PolicyHolder {
  private policy: Policy;
  private watcher: FSWatcher | null = null;
  private readonly listeners: Array<(p: Policy) => void> = [];
  private timer: NodeJS.Timeout | null = null;
  /** The last reload that was refused (cleared by a successful reload): shown by GET /v1/policy and the console. */
  refused: {
    at: number;
    error: string;
    field: string | null;
    line: number | null;
    column: number | null;
  } | null = null;

  private constructor(
    readonly path: string | null,
    private readonly logger: Logger,
    private readonly now: () => number,
    initial: Policy,
    private readonly onChange?: (p: Policy) => void,
  ) {
    this.policy = initial;
  }

  /** A holder around a fixed policy (no file). */
  static fixed(policy: Policy, logger: Logger): PolicyHolder {
    return new PolicyHolder(null, logger, () => policy.loadedAt, policy);
  }

  /** Loads `path`; throws {@link PolicyError} (or a read error) if the first load fails. */
  static fromFile(
    path: string,
    logger: Logger,
    opts: { now?: () => number; onChange?: (p: Policy) => void } = {},
  ): PolicyHolder {
    const now = opts.now ?? Date.now;
    const p = Policy.parse(readFileSync(path, 'utf8'), path, now());
    return new PolicyHolder(path, logger, now, p, opts.onChange);
  }

  /** Calls `fn` whenever a new policy comes into force. */
  subscribe(fn: (p: Policy) => void): void {
    this.listeners.push(fn);
  }

  get current(): Policy {
    return this.policy;
  }

  /** Re-reads the file; returns true if a new policy is in force. */
  reload(): boolean {
    if (!this.path) return false;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      this.logger.warn('policy reload failed; keeping the running policy', {
        path: this.path,
        error: (err as NodeJS.ErrnoException).code ?? String(err),
      });
      return false;
    }
    let next: Policy;
    try {
      next = Policy.parse(text, this.path, this.now());
    } catch (err) {
      const pe = err instanceof PolicyError ? err : null;
      this.logger.warn('policy reload refused; keeping the running policy', {
        path: this.path,
        error: pe ? pe.located(this.path) : (err as Error).message,
        ...(pe ? { field: pe.path, line: pe.line, column: pe.column } : {}),
      });
      this.refused = {
        at: this.now(),
        error: pe ? pe.located(this.path) : (err as Error).message,
        field: pe?.path ?? null,
        line: pe?.line ?? null,
        column: pe?.column ?? null,
      };
      return false;
    }
    this.refused = null;
    if (next.hash === this.policy.hash) return false;
    this.policy = next;
    this.logger.info('policy loaded', { path: this.path, hash: next.hash });
    this.onChange?.(next);
    for (const l of this.listeners) l(next);
    return true;
  }

  /**
   * Watches the file's folder (editors replace files by rename, which a watch
   * on the file itself would miss) and reloads shortly after a change.
   */
  watch(debounceMs = 100): void {
    if (!this.path || this.watcher) return;
    const name = basename(this.path);
    this.watcher = watch(dirname(this.path), (_event, file) => {
      if (file !== null && file !== name) return;
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.reload();
      }, debounceMs);
    });
    this.watcher.on('error', (err) =>
      this.logger.warn('policy watch failed', { error: String(err) }),
    );
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = null;
  }
}
