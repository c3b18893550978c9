#!/usr/bin/env python3
"""Signs in as demo users and prints one bearer token per line.

Usage: tokens.py HUB_URL CREDENTIALS_JSON USERNAME...

The demo's logins (demo-credentials.json) carry each user's password and
TOTP secret; the code is computed here (RFC 6238, SHA-1, 6 digits, 30 s)
with nothing but the standard library. Each user signs in once: a TOTP
code is accepted once per step.
"""
import base64
import hashlib
import hmac
import json
import struct
import sys
import time
import urllib.request


def totp(secret_b32: str, at: float) -> str:
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = struct.pack(">Q", int(at) // 30)
    digest = hmac.new(secret, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{code % 1_000_000:06d}"


def sign_in(hub: str, login: dict) -> str:
    body = {"username": login["username"], "password": login["password"]}
    if login.get("totp_secret"):
        body["totp"] = totp(login["totp_secret"], time.time())
    request = urllib.request.Request(
        f"{hub}/api/v1/auth/login",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["token"]


def main() -> None:
    hub, credentials, *names = sys.argv[1:]
    logins = {l["username"]: l for l in json.load(open(credentials))}
    for name in names:
        print(sign_in(hub.rstrip("/"), logins[name]))


if __name__ == "__main__":
    main()
