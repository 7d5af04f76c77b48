"""Writes N users for the load benchmark: a `tokens import` file and one tool JWT per user.

usage: gen_users.py N PUBLIC_URL TOOL_SECRET TOKENS_JSONL JWTS_TXT
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: str, claims: dict) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def main() -> None:
    n, public_url, secret, tokens_path, jwts_path = sys.argv[1:6]
    now = int(time.time())
    with open(tokens_path, "w") as tokens, open(jwts_path, "w") as jwts:
        for i in range(int(n)):
            user = f"user-{i}"
            tokens.write(json.dumps({
                "user": user,
                "access_token": "bench~" + b64(os.urandom(48)),
                "refresh_token": "bench-refresh~" + b64(os.urandom(48)),
                "expires_in": 86400,
                "lms_user_id": 100000 + i,
            }) + "\n")
            jwts.write(jwt(secret, {"iss": "bench", "sub": user, "aud": public_url, "iat": now, "exp": now + 80000}) + "\n")


main()
