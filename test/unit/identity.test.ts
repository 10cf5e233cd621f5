/**
 * Identities: keys made from raw bytes via PKCS#8 (not generateKeyPairSync,
 * see admin/identity.ts for the Node 20 hang that avoids) agree with
 * node:crypto's own view of them, survive a save/parse round trip, and the
 * sealed box opens only for its recipient and context.
 */
import { describe, it, expect } from '@jest/globals';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { Identity, IdentityError, seal } from '../../admin/identity.js';

describe('Identity', () => {
  it('public keys match what node:crypto derives from the stored private keys (JWK cross-check)', () => {
    for (let i = 0; i < 20; i++) {
      const id = Identity.generate(`n${i}`);
      const file = JSON.parse(id.serialize()) as {
        sign: { x: string; d: string };
        seal: { x: string; d: string };
      };
      for (const [crv, k, x] of [
        ['Ed25519', file.sign, id.pub.sign],
        ['X25519', file.seal, id.pub.seal],
      ] as const) {
        const priv = createPrivateKey({ key: { kty: 'OKP', crv, d: k.d, x: k.x }, format: 'jwk' });
        expect(createPublicKey(priv).export({ format: 'jwk' }).x).toBe(x);
        expect(k.x).toBe(x);
      }
      const msg = Buffer.from(`message ${i}`);
      const priv = createPrivateKey({
        key: { kty: 'OKP', crv: 'Ed25519', d: file.sign.d, x: file.sign.x },
        format: 'jwk',
      });
      const pub = createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: id.pub.sign },
        format: 'jwk',
      });
      expect(verify(null, msg, pub, sign(null, msg, priv))).toBe(true);
      const back = Identity.parse(id.serialize());
      expect(back.pub).toEqual(id.pub);
      expect(back.id).toBe(id.id);
    }
  });

  it('refuses a file whose public key does not belong to its private key', () => {
    const a = JSON.parse(Identity.generate().serialize()) as Record<string, { x: string }>;
    const b = JSON.parse(Identity.generate().serialize()) as Record<string, { x: string }>;
    a.sign!.x = b.sign!.x;
    expect(() => Identity.parse(JSON.stringify(a))).toThrow(IdentityError);
    expect(() => Identity.parse(JSON.stringify(a))).toThrow(/do not match/);
  });

  it('a sealed box opens for its recipient and context only', () => {
    const r = Identity.generate();
    const other = Identity.generate();
    const box = seal(r.pub.seal, Buffer.from('channel key'), 'ctx a');
    expect(r.open(box, 'ctx a').toString()).toBe('channel key');
    expect(() => r.open(box, 'ctx b')).toThrow(IdentityError);
    expect(() => other.open(box, 'ctx a')).toThrow(IdentityError);
  });
});
