/**
 * Validation of API request bodies. Each parser takes untrusted JSON and
 * returns canonical values (canonical Supernet/channel ids, checked
 * endpoints) or throws a 400 whose message names the field path.
 */
import { parseSupernetId, parseChannelId, formatChannelId } from './ids.js';
import { validatePublicIdentity, fromB64, IdentityError, type PublicIdentity } from './identity.js';
import { NODE_NAME_RE, type Endpoint } from './protocol.js';
import { parseEndpoint, parsePool, ipv4ToInt } from './addr.js';
import { ApiError, badField, fromIdError } from './errors.js';
import { CHALLENGE_LEN } from './sessions.js';

export const MAX_CHANNELS_PER_NODE = 64;
export const MAX_CHANNELS_PER_SUPERNET = 1024;
const MAX_SUPERNET_NAME = 64;
const MAX_REASON = 200;

/** True if `s` holds a control character (U+0000–U+001F, U+007F). */
const hasControl = (s: string): boolean =>
  [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(o: Record<string, unknown>, allowed: string[], path: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw badField(path ? `${path}.${k}` : k, 'unknown field');
  }
}

function supernetId(v: unknown, field: string): string {
  if (typeof v !== 'string') throw badField(field, 'expected a Supernet id such as 0x4711');
  try {
    return parseSupernetId(v, field);
  } catch (err) {
    return fromIdError(err);
  }
}

function channelId(v: unknown, field: string): string {
  if (typeof v !== 'string') throw badField(field, 'expected a channel id such as 0x01');
  try {
    return formatChannelId(parseChannelId(v, field));
  } catch (err) {
    return fromIdError(err);
  }
}

/** A list of distinct channel ids (canonical), at most `max`. */
export function channelList(v: unknown, field: string, max: number, allowEmpty: boolean): string[] {
  if (!Array.isArray(v)) throw badField(field, 'expected an array of channel ids');
  if (!allowEmpty && v.length === 0) throw badField(field, 'must name at least one channel');
  if (v.length > max) throw badField(field, `at most ${max} channels`);
  const out = v.map((c, i) => channelId(c, `${field}[${i}]`));
  const dup = out.find((c, i) => out.indexOf(c) !== i);
  if (dup) throw badField(field, `channel ${dup} is listed twice`);
  return out;
}

/** The checked content of a login request. */
export interface LoginFields {
  challenge: string;
  identity: PublicIdentity;
  name: string;
  supernet: string;
  channels: string[];
  endpoint: Endpoint;
  requestedVip?: string;
}

/** Validates the (already signature-checked) payload of a login-request; fields are under `request.`. */
export function parseLoginFields(p: Record<string, unknown>): LoginFields {
  const f = 'request';
  onlyKeys(
    p,
    [
      'type',
      'v',
      'challenge',
      'identity',
      'name',
      'supernet',
      'channels',
      'endpoint',
      'requestedVip',
    ],
    f,
  );
  try {
    fromB64(p.challenge, CHALLENGE_LEN, `${f}.challenge`);
  } catch (err) {
    throw new ApiError(400, 'bad_request', (err as IdentityError).message);
  }
  if (typeof p.name !== 'string' || !NODE_NAME_RE.test(p.name)) {
    throw badField(
      `${f}.name`,
      'expected a node name: a lowercase letter, then up to 30 of a-z 0-9 -',
    );
  }
  const out: LoginFields = {
    challenge: p.challenge as string,
    identity: validateIdentity(p.identity, `${f}.identity`),
    name: p.name,
    supernet: supernetId(p.supernet, `${f}.supernet`),
    channels: channelList(p.channels, `${f}.channels`, MAX_CHANNELS_PER_NODE, false),
    endpoint: parseEndpoint(p.endpoint, `${f}.endpoint`),
  };
  if (p.requestedVip !== undefined) {
    if (typeof p.requestedVip !== 'string' || ipv4ToInt(p.requestedVip) === null) {
      throw badField(`${f}.requestedVip`, 'expected an IPv4 address');
    }
    out.requestedVip = p.requestedVip;
  }
  return out;
}

/** Validates a public identity, turning key errors into a 400 naming the field. */
export function validateIdentity(v: unknown, field: string): PublicIdentity {
  try {
    const pub = validatePublicIdentity(v, field);
    if (isObj(v)) onlyKeys(v, ['sign', 'seal'], field);
    return pub;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (err instanceof IdentityError) throw new ApiError(400, 'bad_request', err.message);
    throw new ApiError(400, 'bad_request', `${field}: invalid public key`);
  }
}

export interface SupernetCreateFields {
  id: string;
  pool: string;
  channels: string[];
  name: string | null;
}

export function parseSupernetCreate(b: Record<string, unknown>): SupernetCreateFields {
  onlyKeys(b, ['id', 'pool', 'channels', 'name'], '');
  const id = supernetId(b.id, 'id');
  const pool = parsePool(b.pool, 'pool').text;
  const channels =
    b.channels === undefined
      ? []
      : channelList(b.channels, 'channels', MAX_CHANNELS_PER_SUPERNET, true);
  let name: string | null = null;
  if (b.name !== undefined && b.name !== null) {
    if (
      typeof b.name !== 'string' ||
      b.name.length === 0 ||
      b.name.length > MAX_SUPERNET_NAME ||
      hasControl(b.name)
    ) {
      throw badField('name', `expected 1–${MAX_SUPERNET_NAME} printable characters`);
    }
    name = b.name;
  }
  return { id, pool, channels, name };
}

export function parseChannelCreate(b: Record<string, unknown>): string {
  onlyKeys(b, ['id'], '');
  return channelId(b.id, 'id');
}

export function parseExpel(b: Record<string, unknown>): string {
  onlyKeys(b, ['reason'], '');
  if (b.reason === undefined) return 'expelled by the operator';
  if (typeof b.reason !== 'string' || b.reason.length > MAX_REASON || hasControl(b.reason)) {
    throw badField('reason', `expected up to ${MAX_REASON} printable characters`);
  }
  return b.reason || 'expelled by the operator';
}

export function parseVarpRegister(b: Record<string, unknown>): Endpoint {
  onlyKeys(b, ['endpoint'], '');
  return parseEndpoint(b.endpoint, 'endpoint');
}

/** Path/query parameters. */
export function paramSupernet(v: string | undefined): string {
  return supernetId(v, 'supernet id in the path');
}

export function paramNodeName(v: string | undefined): string {
  if (typeof v !== 'string' || !NODE_NAME_RE.test(v))
    throw badField('node name in the path', 'expected a node name');
  return v;
}

export function queryVip(v: unknown): string {
  if (typeof v !== 'string' || ipv4ToInt(v) === null)
    throw badField('vip', 'expected ?vip=<IPv4 address>');
  return v;
}

export function queryInt(
  v: unknown,
  field: string,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v))
    throw badField(field, 'expected a non-negative integer');
  const n = Number(v);
  if (n < min || n > max) throw badField(field, `expected ${min}..${max}`);
  return n;
}
