/**
 * The admission / configuration / VARP protocol between host agents and the
 * admin service (paper §4.3 steps 1–2 and (a)/(b); docs/protocol.md §Admin).
 *
 * Both ends import this module. Everything that carries keys or membership is
 * a {@link SignedEnvelope}: the payload is the exact JSON bytes that were
 * signed (no canonicalisation needed) and names its own `type`, so a
 * signature over one kind of message can never be replayed as another.
 */
import { Identity, verify, fromB64, SIG_LEN, IdentityError } from './identity.js';

export const PROTOCOL_VERSION = 1;
export const API_PREFIX = '/v1';

/** Message types that are signed. */
export type SignedType =
  | 'login-request'
  | 'node-config'
  | 'varp-record'
  // A node's volume keys (admin/storage-keys.ts StorageKeysMessage, issue 5).
  | 'storage-keys';

/** Wire form of a signed message (JSON over HTTP). */
export interface SignedEnvelope {
  /** base64url of the UTF-8 JSON payload; the payload has `type` and `v`. */
  payload: string;
  /** base64url Ed25519 signature over `SIGN_DOMAIN ‖ payload bytes`. */
  sig: string;
}

const SIGN_DOMAIN = Buffer.from('supernet signed message v1\0');

function domainBytes(payload: Buffer): Buffer {
  return Buffer.concat([SIGN_DOMAIN, payload]);
}

/** Signs `body` (a JSON object) as a message of `type`. */
export function signEnvelope(signer: Identity, type: SignedType, body: object): SignedEnvelope {
  const payload = Buffer.from(JSON.stringify({ ...body, type, v: PROTOCOL_VERSION }), 'utf8');
  return {
    payload: payload.toString('base64url'),
    sig: signer.sign(domainBytes(payload)).toString('base64url'),
  };
}

/**
 * Verifies an envelope signed by `signPub` and of the expected `type`; returns
 * the parsed payload. Throws {@link IdentityError} with one uninformative
 * message for any failure (bad shape, bad signature, wrong type or version).
 */
export function openEnvelope<T>(env: unknown, signPub: string, type: SignedType): T {
  const fail = new IdentityError(`invalid signed ${type}`);
  if (typeof env !== 'object' || env === null) throw fail;
  const e = env as Record<string, unknown>;
  let payload: Buffer;
  let sig: Buffer;
  try {
    payload = fromB64(e.payload, null, 'payload');
    sig = fromB64(e.sig, SIG_LEN, 'sig');
  } catch {
    throw fail;
  }
  if (!verify(signPub, domainBytes(payload), sig)) throw fail;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw fail;
  }
  if (body.type !== type || body.v !== PROTOCOL_VERSION) throw fail;
  return body as T;
}

/** Reads the payload of an envelope WITHOUT verifying it (only to find out who claims to have signed it). */
export function peekEnvelope<T>(env: SignedEnvelope): T {
  return JSON.parse(Buffer.from(env.payload, 'base64url').toString('utf8')) as T;
}

/** A physical (underlay) UDP endpoint. */
export interface Endpoint {
  host: string;
  port: number;
}

/** GET /v1/info (no authentication): who the admin service is. Agents pin `sign`. */
export interface AdminInfo {
  service: 'supernet-admin';
  version: number;
  id: string;
  sign: string;
  seal: string;
}

/** POST /v1/challenge → a fresh single-use challenge for one login. */
export interface ChallengeResponse {
  challenge: string; // base64url, 32 random bytes
  expiresAt: number; // ms since epoch
}

/**
 * The signed body of POST /v1/login, signed by the node's own identity
 * (proof of possession of the private key, over the server's fresh challenge).
 */
export interface LoginRequest {
  type: 'login-request';
  v: number;
  challenge: string;
  identity: { sign: string; seal: string };
  /** Node name, unique in the Supernet: `[a-z][a-z0-9-]{0,30}`. */
  name: string;
  supernet: string;
  channels: string[];
  /** Where this node's host agent receives SNSL packets. */
  endpoint: Endpoint;
  /** A virtual address the node asks for (policy decides); optional. */
  requestedVip?: string;
}

/** POST /v1/login body. */
export interface LoginBody {
  request: SignedEnvelope;
}

/** POST /v1/login 200 answer. */
export interface LoginResponse {
  /** The node's session token, sealed to its X25519 key (context {@link tokenContext}). */
  tokenBox: string;
  config: SignedEnvelope;
}

/** Sealing context for a node's session token. */
export function tokenContext(supernet: string, nodeId: string): string {
  return `node-token ${supernet} ${nodeId}`;
}

/** Sealing context for a channel traffic key of one epoch. */
export function channelKeyContext(
  supernet: string,
  channel: string,
  epoch: number,
  nodeId: string,
): string {
  return `channel-key ${supernet} ${channel} ${epoch} ${nodeId}`;
}

/** One channel key of one epoch, sealed to the recipient node. */
export interface SealedChannelKey {
  channel: string;
  epoch: number;
  /** base64url sealed 32-byte traffic key (context {@link channelKeyContext}). */
  box: string;
  /** For a previous epoch: when receivers stop accepting it (ms since epoch). Absent for the current one. */
  acceptUntil?: number;
}

/**
 * Key-tree material of one channel in a node's config (docs/keys.md §8): the
 * latest signed broadcast messages (join notices carry no key; rekey
 * messages carry keys sealed under tree keys), and the member's welcome when
 * it logged in or asked for its config with `resync=1`.
 */
export interface KeyTreeMaterial {
  channel: string;
  /** The channel's current epoch. */
  epoch: number;
  /** base64url signed messages of the latest epochs, ascending by epoch. */
  messages: string[];
  /** base64url signed welcome: the member's path keys sealed to its X25519 key. */
  welcome?: string;
}

/** A member as another node sees it: enough to address it and to check its packets. */
export interface MemberView {
  name: string;
  id: string;
  vip: string;
  channels: string[];
  /** VARP mapping (null when expired or not yet registered). */
  endpoint: Endpoint | null;
  /** When the VARP mapping expires unless refreshed (ms since epoch). */
  expiresAt: number;
}

/**
 * GET /v1/config → signed `node-config`: everything a node needs, for one
 * node. Its `serial` grows with every change that concerns the Supernet, so
 * an agent that missed pushes notices and fetches again.
 */
export interface NodeConfig {
  type: 'node-config';
  v: number;
  supernet: string;
  serial: number;
  issuedAt: number;
  node: { name: string; id: string; vip: string; prefixLen: number; channels: string[] };
  /** The Supernet's address pool, e.g. `10.71.17.0/24`. */
  pool: string;
  /** Every other node that shares at least one channel with this one. */
  members: MemberView[];
  /** Current epoch keys of each of the node's channels, and previous epochs still inside their grace. */
  keys: SealedChannelKey[];
  /** Key-tree channels (admin `--key-scheme tree`): their material instead of sealed keys. */
  keytrees?: KeyTreeMaterial[];
  /** How long receivers keep accepting the previous epoch after a rekey (ms). */
  graceMs: number;
  /** VARP lifetime of a registration (ms); agents refresh at a third of it. */
  varpTtlMs: number;
}

/** POST /v1/varp/register (node token): (re-)register this node's endpoint. */
export interface VarpRegisterBody {
  endpoint: Endpoint;
}

/** Answer to register and to GET /v1/varp/resolve?vip=…: a signed `varp-record`. */
export interface VarpRecord {
  type: 'varp-record';
  v: number;
  supernet: string;
  vip: string;
  name: string;
  endpoint: Endpoint | null;
  expiresAt: number;
}

/**
 * GET /v1/events (node token): Server-Sent Events. Event `config` with data
 * `{"serial":N}` whenever this node's config may have changed (the agent then
 * GETs /v1/config); event `expelled` with `{"reason":…}` when the node was
 * removed. A comment line is sent every 15 s as keep-alive.
 */
export type NodeEvent =
  { event: 'config'; data: { serial: number } } | { event: 'expelled'; data: { reason: string } };

/** Error body of every 4xx/5xx answer. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** Header for operator requests: `Authorization: Bearer <operator token>`; node requests: `Authorization: Node <token>`. */
export const NODE_AUTH_SCHEME = 'Node';
export const OPERATOR_AUTH_SCHEME = 'Bearer';

export const NODE_NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;
