// Verifies a Civic Data Hub credential with an independent SD-JWT VC
// implementation (@sd-jwt/sd-jwt-vc, OpenWallet Foundation), including its
// status list entry. Input: a JSON file {compact, jwk, status_token}.
// Prints {"ok": true, "claims": {...}} or {"ok": false, "error": "..."}.
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc';
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
  const { payload } = await sdjwt.verify(input.compact);
  const claims = await sdjwt.getClaims(input.compact);
  console.log(JSON.stringify({ ok: true, claims, iss: payload.iss }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: e.message }));
}
