// Verifies a Civic Data Hub package with independent implementations: the
// JWE is opened with `jose` (panva) and the SD-JWT VC inside is verified
// with @sd-jwt/sd-jwt-vc (OpenWallet Foundation), including its status
// list entry. Input: a JSON file {compact | (jwe, agency_jwk), jwk,
// status_token}. Prints {"ok": true, "claims": {...}} or {"ok": false,
// "error": "..."}.
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc';
import { compactDecrypt, importJWK } from 'jose';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: input.jwk.x }, format: 'jwk' });
const verifier = (data, signature) => verify(null, Buffer.from(data), publicKey, Buffer.from(signature, 'base64url'));
const sdjwt = new SDJwtVcInstance({
  verifier,
  hasher: (data, alg) => {
    if (alg !== 'sha-256') throw new Error(`unexpected hash ${alg}`);
    return new Uint8Array(createHash('sha256').update(data).digest());
  },
  hashAlg: 'sha-256',
  statusListFetcher: async () => input.status_token,
});
try {
  let compact = input.compact;
  if (input.jwe) {
    const key = await importJWK(input.agency_jwk, 'ECDH-ES');
    const { plaintext, protectedHeader } = await compactDecrypt(input.jwe, key);
    if (protectedHeader.cty !== 'dc+sd-jwt') throw new Error(`unexpected content ${protectedHeader.cty}`);
    compact = new TextDecoder().decode(plaintext);
  }
  const { payload } = await sdjwt.verify(compact);
  const claims = await sdjwt.getClaims(compact);
  console.log(JSON.stringify({ ok: true, claims, iss: payload.iss }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: e.message }));
}
