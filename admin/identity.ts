/**
 * Long-term identities (design brief §5): every node, every host agent and the
 * admin service hold an Ed25519 key for signatures and an X25519 key for
 * sealing. Key material to a recipient is always sealed to its X25519 key and
 * every membership/rekey/VARP message is signed, so the admin HTTP transport
 * need not be trusted for confidentiality or integrity.
 *
 * Everything here uses node:crypto; keys travel as raw 32-byte values in
 * base64url.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  hkdfSync,
  sign as edSign,
  verify as edVerify,
  createCipheriv,
  createDecipheriv,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export const KEY_LEN = 32;
export const SIG_LEN = 64;
const SEAL_TAG_LEN = 16;
/** Sealed box: ephemeral X25519 public key ‖ ciphertext ‖ Poly1305 tag. */
export const SEAL_OVERHEAD = KEY_LEN + SEAL_TAG_LEN;
const SEAL_NONCE = Buffer.alloc(12); // the key is fresh per box, so a fixed nonce is safe
const SEAL_INFO = 'supernet seal v1';

export const IDENTITY_FILE_VERSION = 1;

/** The public half of an identity, as it is sent to and stored by the admin service. */
export interface PublicIdentity {
  /** Ed25519 public key, base64url. */
  sign: string;
  /** X25519 public key, base64url. */
  seal: string;
}

/** Raised for malformed keys, files and envelopes. */
export class IdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityError';
  }
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** Decodes base64url and checks the length (`what` names the field in errors). */
export function fromB64(s: unknown, len: number | null, what: string): Buffer {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) {
    throw new IdentityError(`${what}: expected base64url text`);
  }
  const b = Buffer.from(s, 'base64url');
  if (len !== null && b.length !== len)
    throw new IdentityError(`${what}: expected ${len} bytes, got ${b.length}`);
  return b;
}

function okpPublic(crv: 'Ed25519' | 'X25519', raw: Buffer): KeyObject {
  if (raw.every((x) => x === 0)) throw new IdentityError(`${crv} public key is all zero`);
  return createPublicKey({ key: { kty: 'OKP', crv, x: b64(raw) }, format: 'jwk' });
}

/*
 * Keys are made from 32 random bytes imported as PKCS#8 (RFC 8410), and raw
 * values are read back from DER, never through generateKeyPairSync() and
 * JWK export: on Node 20 a GC that runs inside KeyObject.export({format:
 * 'jwk'}) can finalise the KeyGenJob that made the same key, whose
 * destructor takes the key's mutex that the export already holds — the
 * process hangs in futex_wait (seen in a CI unit run: gdb showed
 * ~KeyGenJob under ExportJWKEdKey).
 */
const PKCS8_PREFIX = {
  // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 / .110 }, OCTET STRING { OCTET STRING (32) } }
  Ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
  X25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
} as const;
const SPKI_LEN = 12 + KEY_LEN;
const PKCS8_LEN = 16 + KEY_LEN;

/** A private key from its raw 32 bytes (Ed25519 seed or X25519 scalar). */
function okpPrivate(crv: 'Ed25519' | 'X25519', raw: Buffer): KeyObject {
  if (raw.length !== KEY_LEN)
    throw new IdentityError(`${crv} private key: expected ${KEY_LEN} bytes`);
  const der = Buffer.concat([PKCS8_PREFIX[crv], raw]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

function freshPrivate(crv: 'Ed25519' | 'X25519'): KeyObject {
  const raw = randomBytes(KEY_LEN);
  try {
    return okpPrivate(crv, raw);
  } finally {
    raw.fill(0);
  }
}

function rawPublic(k: KeyObject): Buffer {
  const der = k.export({ format: 'der', type: 'spki' });
  if (der.length !== SPKI_LEN) throw new IdentityError('unexpected public key encoding');
  return Buffer.from(der.subarray(SPKI_LEN - KEY_LEN));
}

/** The raw private bytes (for the identity file only); the caller wipes them. */
function rawPrivate(k: KeyObject): Buffer {
  const der = k.export({ format: 'der', type: 'pkcs8' });
  try {
    if (der.length !== PKCS8_LEN) throw new IdentityError('unexpected private key encoding');
    return Buffer.from(der.subarray(PKCS8_LEN - KEY_LEN));
  } finally {
    der.fill(0);
  }
}

/** Short stable fingerprint of a public identity: first 16 bytes of SHA-256 over both keys, hex. */
export function fingerprint(pub: PublicIdentity): string {
  const h = createHash('sha256');
  h.update('supernet id v1');
  h.update(fromB64(pub.sign, KEY_LEN, 'sign'));
  h.update(fromB64(pub.seal, KEY_LEN, 'seal'));
  return h.digest('hex').slice(0, 32);
}

/** Checks that `pub` holds two valid 32-byte public keys. */
export function validatePublicIdentity(pub: unknown, what = 'identity'): PublicIdentity {
  if (typeof pub !== 'object' || pub === null)
    throw new IdentityError(`${what}: expected an object`);
  const p = pub as Record<string, unknown>;
  okpPublic('Ed25519', fromB64(p.sign, KEY_LEN, `${what}.sign`));
  okpPublic('X25519', fromB64(p.seal, KEY_LEN, `${what}.seal`));
  return { sign: p.sign as string, seal: p.seal as string };
}

/** A full identity (both private keys). The object owns its keys; nothing exports them but {@link save}. */
export class Identity {
  readonly pub: PublicIdentity;
  readonly id: string;

  private constructor(
    private readonly signKey: KeyObject,
    private readonly sealKey: KeyObject,
    readonly label: string,
  ) {
    this.pub = {
      sign: b64(rawPublic(createPublicKey(signKey))),
      seal: b64(rawPublic(createPublicKey(sealKey))),
    };
    this.id = fingerprint(this.pub);
  }

  static generate(label = ''): Identity {
    return new Identity(freshPrivate('Ed25519'), freshPrivate('X25519'), label);
  }

  /** Parses the JSON text of an identity file. */
  static parse(text: string, what = 'identity file'): Identity {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new IdentityError(`${what}: not JSON`);
    }
    if (j.kind !== 'supernet-identity' || j.v !== IDENTITY_FILE_VERSION) {
      throw new IdentityError(
        `${what}: not a Supernet identity (version ${IDENTITY_FILE_VERSION})`,
      );
    }
    // x is checked against the key derived from d below.
    const priv = (crv: 'Ed25519' | 'X25519', d: unknown, x: unknown): KeyObject => {
      fromB64(x, KEY_LEN, `${what}: ${crv} public key`);
      const raw = fromB64(d, KEY_LEN, `${what}: ${crv} private key`);
      try {
        return okpPrivate(crv, raw);
      } finally {
        raw.fill(0);
      }
    };
    const s = j.sign as Record<string, unknown> | undefined;
    const e = j.seal as Record<string, unknown> | undefined;
    if (!s || !e) throw new IdentityError(`${what}: missing keys`);
    let id: Identity;
    try {
      id = new Identity(priv('Ed25519', s.d, s.x), priv('X25519', e.d, e.x), String(j.label ?? ''));
    } catch (err) {
      if (err instanceof IdentityError) throw err;
      throw new IdentityError(`${what}: invalid key material`);
    }
    if (id.pub.sign !== s.x || id.pub.seal !== e.x) {
      throw new IdentityError(`${what}: public keys do not match private keys`);
    }
    return id;
  }

  static load(path: string): Identity {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new IdentityError(
        `cannot read identity ${path}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
    return Identity.parse(text, path);
  }

  /** The identity file's JSON text (holds private keys; written with mode 0600). */
  serialize(): string {
    const sd = rawPrivate(this.signKey);
    const ed = rawPrivate(this.sealKey);
    const s = { x: this.pub.sign, d: b64(sd) };
    const e = { x: this.pub.seal, d: b64(ed) };
    sd.fill(0);
    ed.fill(0);
    return (
      JSON.stringify(
        {
          kind: 'supernet-identity',
          v: IDENTITY_FILE_VERSION,
          label: this.label,
          id: this.id,
          sign: { x: s.x, d: s.d },
          seal: { x: e.x, d: e.d },
        },
        null,
        2,
      ) + '\n'
    );
  }

  /** Writes the identity atomically with mode 0600. */
  save(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, this.serialize(), { mode: 0o600 });
    renameSync(tmp, path);
  }

  sign(msg: Uint8Array): Buffer {
    return edSign(null, msg, this.signKey);
  }

  /** Opens a box made by {@link seal} for this identity; throws one uninformative error on any failure. */
  open(box: Uint8Array, context: string): Buffer {
    return openWith(this.sealKey, this.pub.seal, box, context);
  }
}

/** Verifies an Ed25519 signature by `pub.sign` (base64url). Never throws for bad input. */
export function verify(signPub: string, msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    if (sig.length !== SIG_LEN) return false;
    return edVerify(null, msg, okpPublic('Ed25519', fromB64(signPub, KEY_LEN, 'sign')), sig);
  } catch {
    return false;
  }
}

function sealKeyFor(shared: Buffer, ephPub: Buffer, recipientPub: Buffer, context: string): Buffer {
  const salt = Buffer.concat([ephPub, recipientPub]);
  return Buffer.from(hkdfSync('sha256', shared, salt, `${SEAL_INFO}\0${context}`, KEY_LEN));
}

/**
 * Seals `plain` to the X25519 key `recipientSeal` (base64url) — an ECIES box
 * like HPKE's base mode: fresh ephemeral key, HKDF-SHA256, ChaCha20-Poly1305.
 * `context` is bound into the key so a box cannot be replayed for another purpose.
 */
export function seal(recipientSeal: string, plain: Uint8Array, context: string): Buffer {
  const rpub = fromB64(recipientSeal, KEY_LEN, 'seal');
  const ephPriv = freshPrivate('X25519');
  const ephPub = rawPublic(createPublicKey(ephPriv));
  const shared = diffieHellman({
    privateKey: ephPriv,
    publicKey: okpPublic('X25519', rpub),
  });
  const key = sealKeyFor(shared, ephPub, rpub, context);
  const c = createCipheriv('chacha20-poly1305', key, SEAL_NONCE, { authTagLength: SEAL_TAG_LEN });
  const ct = Buffer.concat([c.update(plain), c.final()]);
  key.fill(0);
  return Buffer.concat([ephPub, ct, c.getAuthTag()]);
}

function openWith(priv: KeyObject, selfPub: string, box: Uint8Array, context: string): Buffer {
  const fail = new IdentityError('sealed box does not open');
  if (box.length < SEAL_OVERHEAD) throw fail;
  const b = Buffer.from(box.buffer, box.byteOffset, box.length);
  const ephPub = b.subarray(0, KEY_LEN);
  let key: Buffer;
  try {
    const shared = diffieHellman({
      privateKey: priv,
      publicKey: okpPublic('X25519', Buffer.from(ephPub)),
    });
    key = sealKeyFor(shared, Buffer.from(ephPub), fromB64(selfPub, KEY_LEN, 'seal'), context);
  } catch {
    throw fail;
  }
  const d = createDecipheriv('chacha20-poly1305', key, SEAL_NONCE, { authTagLength: SEAL_TAG_LEN });
  d.setAuthTag(b.subarray(b.length - SEAL_TAG_LEN));
  try {
    const out = Buffer.concat([d.update(b.subarray(KEY_LEN, b.length - SEAL_TAG_LEN)), d.final()]);
    return out;
  } catch {
    throw fail;
  } finally {
    key.fill(0);
  }
}

/** Constant-time equality of two byte strings (lengths may differ). */
export function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
