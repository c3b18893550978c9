import base64, hashlib, json, sys, urllib.request, zlib
from jwcrypto import jwe, jwk, jws

pkg = json.load(open(sys.argv[1]))
box = jwe.JWE()
box.deserialize(pkg['credential'], key=jwk.JWK(**json.load(open(sys.argv[2]))))
issued, *disclosures = box.payload.decode().split('~')
keys = jwk.JWKSet.from_json(urllib.request.urlopen(pkg['jwks_uri']).read())
unb64 = lambda s: base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))

def verified(token):
    check = jws.JWS()
    check.deserialize(token)
    check.verify(keys.get_key(check.jose_header['kid']))  # EdDSA, the holder's key
    return json.loads(check.payload)

claims = verified(issued)
for d in filter(None, disclosures):  # each item, bound to the signed digests
    assert base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b'=').decode() in claims['_sd']
    print('item', json.loads(unb64(d))[1:])
status = verified(urllib.request.urlopen(pkg['status_uri']).read().decode())
bits = zlib.decompress(unb64(status['status_list']['lst']))
idx = claims['status']['status_list']['idx']
print('revoked' if bits[idx // 8] >> (idx % 8) & 1 else 'valid', 'until', claims['exp'])
