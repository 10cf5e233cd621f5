/**
 * Where things are in a JSON text: a strict scanner (RFC 8259) that records
 * the line and column of every key and value by path, finds syntax errors
 * with their position, and reports duplicate keys — which `JSON.parse`
 * silently resolves to the last one. The policy loader uses it so that an
 * error names the line and the field (docs/policy.md §Errors); the values
 * themselves still come from `JSON.parse`.
 */

/** One step of a path: an object key or an array index. */
export type JsonSegment = string | number;

export interface JsonPos {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units like editors count. */
  column: number;
  offset: number;
}

export class JsonSyntaxError extends Error {
  constructor(
    readonly pos: JsonPos,
    readonly problem: string,
  ) {
    super(`line ${pos.line}, column ${pos.column}: ${problem}`);
    this.name = 'JsonSyntaxError';
  }
}

export interface JsonLocations {
  /** Position of the value at `path` (null: no such value). */
  value(path: readonly JsonSegment[]): JsonPos | null;
  /** Position of the key naming the value at `path` (null: root, array element, or absent). */
  key(path: readonly JsonSegment[]): JsonPos | null;
  /** The best place to point at for `path`: its key, else its value, else the nearest ancestor. */
  near(path: readonly JsonSegment[]): JsonPos;
  /** Keys that occur twice in one object (the first repeat of each). */
  duplicates: Array<{ path: JsonSegment[]; pos: JsonPos }>;
}

const pathKey = (p: readonly JsonSegment[]): string => JSON.stringify(p);

/** Scans `text`; throws {@link JsonSyntaxError} where it is not JSON. */
export function scanJson(text: string): JsonLocations {
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const posOf = (offset: number): JsonPos => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - lineStarts[lo] + 1, offset };
  };
  const values = new Map<string, number>();
  const keys = new Map<string, number>();
  const duplicates: JsonLocations['duplicates'] = [];
  let i = 0;

  const fail = (problem: string, at = i): never => {
    throw new JsonSyntaxError(posOf(at), problem);
  };
  const describe = (at: number): string =>
    at >= text.length ? 'end of text' : JSON.stringify(text[at]);
  const ws = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const string = (): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in a string (escape it)');
      if (c === 0x5c) {
        const e = text[i + 1];
        const simple: Record<string, string> = {
          '"': '"',
          '\\': '\\',
          '/': '/',
          b: '\b',
          f: '\f',
          n: '\n',
          r: '\r',
          t: '\t',
        };
        if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail('bad escape in a string');
        continue;
      }
      out += text[i];
      i++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (path: JsonSegment[]): void => {
    ws();
    values.set(pathKey(path), i);
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      const seen = new Set<string>();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a key in quotes, found ${describe(i)}`);
        const at = i;
        const k = string();
        const child = [...path, k];
        if (seen.has(k)) duplicates.push({ path: child, pos: posOf(at) });
        else keys.set(pathKey(child), at);
        seen.add(k);
        ws();
        if (text[i] !== ':') fail(`expected ':' after the key ${JSON.stringify(k)}`);
        i++;
        // A repeated key's value is recorded under the same path; JSON.parse keeps the last too.
        value(child);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(`expected ',' or '}' after a value, found ${describe(i)}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (let n = 0; ; n++) {
        value([...path, n]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(`expected ',' or ']' after a value, found ${describe(i)}`);
      }
    }
    if (c === '"') {
      string();
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m && m[0].length > 0) {
      i += m[0].length;
      return;
    }
    fail(`expected a value, found ${describe(i)}`);
  };

  value([]);
  ws();
  if (i < text.length) fail(`unexpected ${describe(i)} after the end of the document`);

  const at = (m: Map<string, number>, p: readonly JsonSegment[]): JsonPos | null => {
    const o = m.get(pathKey(p));
    return o === undefined ? null : posOf(o);
  };
  return {
    value: (p) => at(values, p),
    key: (p) => at(keys, p),
    near(p) {
      for (let n = p.length; n >= 0; n--) {
        const q = p.slice(0, n);
        const hit = at(keys, q) ?? at(values, q);
        if (hit) return hit;
      }
      return posOf(0);
    },
    duplicates,
  };
}

/**
 * Parses a path as admin/policy.ts writes them — `$`, `version`,
 * `groups["alice"][0]`, `supernets["0x4711"].rules[2].address.fixed` —
 * into segments. Returns null for text that is not such a path.
 */
export function parseJsonPath(path: string): JsonSegment[] | null {
  if (path === '$') return [];
  const out: JsonSegment[] = [];
  const re = /(?:^|\.)([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  let at = 0;
  while (at < path.length) {
    re.lastIndex = at;
    const m = re.exec(path);
    if (!m) return null;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else {
      try {
        out.push(JSON.parse(m[3]!) as string);
      } catch {
        return null;
      }
    }
    at = re.lastIndex;
  }
  return out;
}
