"""Fills a stopped tessera data directory with N sessions and mints N access tokens, for
bench/scale.sh. Sessions go straight into tessera.db (only SHA-256 digests, as the server
stores them); tokens are signed with the server's own Ed25519 key by PyJWT, with the claims
the server issues. Writes sessions.txt (Cookie header values) and tokens.txt (Authorization
header values).

Usage: mint.py DATA_DIR N ISSUER OUT_DIR
"""
import base64, hashlib, json, os, sqlite3, sys, time, uuid

import jwt
from cryptography.hazmat.primitives.serialization import load_der_private_key

data_dir, n, issuer, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
now_ms = int(time.time() * 1000)

db = sqlite3.connect(os.path.join(data_dir, "tessera.db"))
user_id, username = db.execute("SELECT id, username FROM users LIMIT 1").fetchone()

def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

with open(os.path.join(out, "sessions.txt"), "w") as cookies:
    rows = []
    for _ in range(n):
        secret = b64(os.urandom(32))
        rows.append((hashlib.sha256(secret.encode()).digest(), str(uuid.uuid4()), user_id,
                     username, now_ms, now_ms, now_ms + 12 * 3600 * 1000))
        cookies.write(f"tessera_session={secret}\n")
        if len(rows) == 50_000:
            db.executemany("INSERT INTO sessions (token_hash, sid, user_id, username, created_at, "
                           "last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()
    db.executemany("INSERT INTO sessions (token_hash, sid, user_id, username, created_at, "
                   "last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
db.commit()

index = json.load(open(os.path.join(data_dir, "keys", "keys.json")))
entry = next(k for k in index["keys"] if k["retired_at"] is None and k["alg"] == "EdDSA")
key_path = os.path.join(data_dir, "keys", f"ed25519-{entry['kid']}.pk8")
key = load_der_private_key(open(key_path, "rb").read(), password=None)
now = int(time.time())
with open(os.path.join(out, "tokens.txt"), "w") as tokens:
    for _ in range(n):
        claims = {"iss": issuer, "sub": user_id, "aud": "tessera", "exp": now + 3600, "iat": now,
                  "nbf": now, "jti": b64(os.urandom(16)), "sid": str(uuid.uuid4()),
                  "username": username}
        token = jwt.encode(claims, key, algorithm="EdDSA",
                           headers={"kid": entry["kid"], "typ": "at+jwt"})
        tokens.write(f"Bearer {token}\n")
