"""Mints the bearer tokens benches/nginx.sh sends, and the Ed25519 key set tollgate verifies.

    mint_token.py eddsa KEY_DIR [--sub S] [--ttl SECONDS] [--issuer URL] [--audience URL]
    mint_token.py hs256 [--sub S] [--ttl SECONDS]

eddsa: a token shaped like the ones Better Auth's JWT plugin issues, which tollgate is
configured for in the benchmark. Header {"alg": "EdDSA", "kid": …} (no "typ"); claims sub,
iss, aud (one string), iat, exp, and the user fields Better Auth copies into the token (id,
email, name, role). The first call makes an Ed25519 key in KEY_DIR/ed25519.pem (mode 600) and
its public half as a JWKS in KEY_DIR/jwks.json, which tollgate reads as its key set; later
calls sign with the same key.

hs256: a token with sub, iat and exp, signed with the secret in TOLLGATE_BENCH_HS256_SECRET,
for the FastAPI peer (benches/support/fastapi_auth.py), which verifies with the same secret.

The token is printed on standard output, nothing else; nothing secret is printed.
"""

import argparse
import base64
import json
import os
import secrets
import string
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE_KEY = "ed25519.pem"
KEY_SET = "jwks.json"


def unpadded_base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_key_id() -> str:
    # Better Auth names a key by its database id: 32 letters and digits.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def signing_key(key_dir: Path) -> tuple[Ed25519PrivateKey, str]:
    """The Ed25519 key in KEY_DIR and its key id, made (with the JWKS) when absent."""
    pem_path, jwks_path = key_dir / PRIVATE_KEY, key_dir / KEY_SET
    if pem_path.is_file() and jwks_path.is_file():
        key = serialization.load_pem_private_key(pem_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            sys.exit(f"mint_token.py: {pem_path} is not an Ed25519 key")
        return key, json.loads(jwks_path.read_text())["keys"][0]["kid"]

    key_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    kid = new_key_id()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created with mode 600 from the start: the private key is never readable by others.
    fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    # The public key as Better Auth publishes it: an OKP JWK with its kid and alg, no "use".
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": unpadded_base64url(public), "kid": kid, "alg": "EdDSA"}
    jwks_path.write_text(json.dumps({"keys": [jwk]}) + "\n")
    return key, kid


def eddsa_token(args: argparse.Namespace, now: int) -> str:
    key, kid = signing_key(args.key_dir)
    claims = {
        "sub": args.sub,
        "iss": args.issuer,
        "aud": args.audience,
        "iat": now,
        "exp": now + args.ttl,
        "id": args.sub,
        "email": f"{args.sub}@example.com",
        "name": args.sub,
        "role": "user",
    }
    # typ=None: PyJWT would otherwise add "typ": "JWT", which Better Auth's header has not.
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": None})


def hs256_token(args: argparse.Namespace, now: int) -> str:
    secret = os.environ.get("TOLLGATE_BENCH_HS256_SECRET")
    if not secret:
        sys.exit("mint_token.py: hs256 needs the secret in TOLLGATE_BENCH_HS256_SECRET")
    claims = {"sub": args.sub, "iat": now, "exp": now + args.ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def main() -> None:
    parser = argparse.ArgumentParser(prog="mint_token.py", description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    eddsa = kinds.add_parser("eddsa", help="EdDSA token; makes KEY_DIR's key and JWKS if absent")
    eddsa.add_argument("key_dir", type=Path, metavar="KEY_DIR")
    eddsa.add_argument("--issuer", default="http://localhost:3000")
    eddsa.add_argument("--audience", default="http://localhost:3000")
    hs256 = kinds.add_parser("hs256", help="HS256 token; secret in TOLLGATE_BENCH_HS256_SECRET")
    for kind in (eddsa, hs256):
        kind.add_argument("--sub", default="bench-user")
        kind.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args()
    if args.ttl <= 0:
        sys.exit("mint_token.py: --ttl must be positive")
    now = int(time.time())
    print(eddsa_token(args, now) if args.kind == "eddsa" else hs256_token(args, now))


if __name__ == "__main__":
    main()
