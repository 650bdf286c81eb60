#!/usr/bin/env python3
"""Writes tollgate's JWT test fixtures with an implementation that is not tollgate's.

Tokens are signed by PyJWT + cryptography, so the Rust tests check tollgate against an
independent JOSE implementation rather than against itself.

Install the dependencies and regenerate (from the repository root):

    python3 -m venv /tmp/tollgate-gen-venv
    /tmp/tollgate-gen-venv/bin/pip install 'pyjwt[crypto]==2.15.1'
    /tmp/tollgate-gen-venv/bin/python tests/tokens/gen.py

Outputs, all in tests/tokens/ (commit them; private keys are not written, so regenerating
replaces every key and token together):
  jwks.json          the issuer's public keys, Better Auth's shape (no "use"; "alg" and "kid")
  jwks_rotated.json  jwks.json plus a second Ed25519 key, as after a key rotation
  hs256_secret.txt   the HS256 test secret (test-only, 43 bytes)
  tokens.json        every token with the outcome tollgate must give it
  tls_ca.pem, tls_server.pem, tls_server.key
                     a test CA and a certificate for 127.0.0.1/localhost it signed, for the
                     HTTPS key-set test (test-only key material, never used elsewhere)

Valid tokens expire on 2100-01-01 so the committed fixtures stay valid.
"""

import base64
import hashlib
import hmac
import json
import secrets
import string
import time
from pathlib import Path

import datetime
import ipaddress

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

OUT = Path(__file__).resolve().parent
ISSUER = "http://localhost:3000"  # Better Auth: iss = aud = the app's origin
AUDIENCE = "http://localhost:3000"
FAR_FUTURE = 4102444800  # 2100-01-01T00:00:00Z
HS256_SECRET = "tollgate-test-hs256-secret-0123456789abcdef"  # 43 bytes, test-only


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_uint(n: int, length: int | None = None) -> str:
    if length is None:
        length = (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(length, "big"))


def kid() -> str:
    # Better Auth's kid is a database id: 32 random letters and digits.
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


def ed_jwk(key, k):
    x = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(x), "kid": k, "alg": "EdDSA"}


def ec_jwk(key, k, crv, alg, size):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "x": b64url_uint(n.x, size), "y": b64url_uint(n.y, size),
            "kid": k, "alg": alg}


def rsa_jwk(key, k, alg):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "n": b64url_uint(n.n), "e": b64url_uint(n.e), "kid": k, "alg": alg}


def sign(claims, key, alg, header):
    # typ=None: Better Auth's header is {alg, kid} with no typ.
    return jwt.encode(claims, key, algorithm=alg, headers={**header, "typ": None})


def hs256_raw(header: dict, claims: dict, secret: bytes) -> str:
    """HS256 by hand, for secrets PyJWT rightly refuses (a PEM public key)."""
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


def tls_fixtures() -> None:
    """A CA and a server certificate for 127.0.0.1 and localhost, valid until 2100."""
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    end = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "tollgate test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (OUT / "tls_ca.pem").write_bytes(ca.public_bytes(pem))
    (OUT / "tls_server.pem").write_bytes(cert.public_bytes(pem))
    (OUT / "tls_server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def main() -> None:
    tls_fixtures()
    now = int(time.time())
    keys = {
        "ed25519": (ed25519.Ed25519PrivateKey.generate(), kid()),
        "ed25519_new": (ed25519.Ed25519PrivateKey.generate(), kid()),
        "p256": (ec.generate_private_key(ec.SECP256R1()), kid()),
        "p521": (ec.generate_private_key(ec.SECP521R1()), kid()),
        "rsa": (rsa.generate_private_key(public_exponent=65537, key_size=2048), kid()),
        "rsa_pss": (rsa.generate_private_key(public_exponent=65537, key_size=2048), kid()),
        "attacker": (ed25519.Ed25519PrivateKey.generate(), kid()),
    }
    jwk = {
        "ed25519": ed_jwk(*keys["ed25519"]),
        "ed25519_new": ed_jwk(*keys["ed25519_new"]),
        "p256": ec_jwk(*keys["p256"], "P-256", "ES256", 32),
        "p521": ec_jwk(*keys["p521"], "P-521", "ES512", 66),
        "rsa": rsa_jwk(*keys["rsa"], "RS256"),
        "rsa_pss": rsa_jwk(*keys["rsa_pss"], "PS256"),
        "attacker": ed_jwk(*keys["attacker"]),
    }
    base_keys = [jwk[n] for n in ("ed25519", "p256", "p521", "rsa", "rsa_pss")]
    (OUT / "jwks.json").write_text(json.dumps({"keys": base_keys}, indent=1) + "\n")
    (OUT / "jwks_rotated.json").write_text(
        json.dumps({"keys": base_keys + [jwk["ed25519_new"]]}, indent=1) + "\n")
    (OUT / "hs256_secret.txt").write_text(HS256_SECRET)

    def user(sub="user_1", **extra):
        # Better Auth's claims: sub, iss, aud (one string), exp, iat, and the user object.
        name = sub or extra.get("userId") or "anonymous"
        c = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": FAR_FUTURE, "iat": now,
             "id": sub, "email": f"{name}@example.com", "name": name.title(), "role": "user"}
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def by(name, claims, alg=None, header=None):
        key, k = keys[name]
        alg = alg or {"ed25519": "EdDSA", "ed25519_new": "EdDSA", "attacker": "EdDSA",
                      "p256": "ES256", "p521": "ES512", "rsa": "RS256", "rsa_pss": "PS256"}[name]
        return sign(claims, key, alg, {"kid": k, **(header or {})})

    tokens = []

    def add(name, token, expect, detail=None, sub=None, note=""):
        tokens.append({"name": name, "token": token, "expect": expect,
                       "detail": detail or expect, "sub": sub, "note": note})

    # --- valid ---------------------------------------------------------------------------
    add("eddsa_better_auth", by("ed25519", user()), "ok", sub="user_1",
        note="Better Auth's default: EdDSA, header {alg, kid}, no typ, no jti, no nbf")
    add("es256", by("p256", user("user_es256")), "ok", sub="user_es256")
    add("es512", by("p521", user("user_es512")), "ok", sub="user_es512")
    add("rs256", by("rsa", user("user_rs256")), "ok", sub="user_rs256")
    add("ps256", by("rsa_pss", user("user_ps256")), "ok", sub="user_ps256")
    add("hs256", jwt.encode({"sub": "user_hs", "iat": now, "exp": FAR_FUTURE},
                            HS256_SECRET, algorithm="HS256"), "ok", sub="user_hs",
        note="the FastAPI JWT_SECRET shape: sub, iat, exp; header {alg, typ}")
    add("eddsa_premium_roles", by("ed25519", user("user_premium", role="user,premium")), "ok",
        sub="user_premium", note="comma-separated role, one of them mapped to a tier")
    add("eddsa_with_jti", by("ed25519", user("user_jti", jti="jti-0001")), "ok", sub="user_jti")
    add("eddsa_no_iat", by("ed25519", user("user_no_iat", iat=None)), "ok", sub="user_no_iat")
    add("eddsa_aud_array", by("ed25519", user("user_aud", aud=["https://other", AUDIENCE])),
        "ok", sub="user_aud")
    add("eddsa_userid_only", by("ed25519", user(None, id=None, userId="user_uid")), "ok",
        sub="user_uid", note="no sub: the user id falls back to userId")
    add("eddsa_no_kid", sign(user("user_nokid"), keys["ed25519"][0], "EdDSA", {}), "ok",
        sub="user_nokid", note="no kid: keys of the right type are tried")
    add("eddsa_rotated_key", by("ed25519_new", user("user_rotated")), "ok", sub="user_rotated",
        note="kid only in jwks_rotated.json: unknown to jwks.json")

    # --- refused ---------------------------------------------------------------------------
    add("alg_none", jwt.encode(user(), None, algorithm="none"), "invalid_token", "alg_none")
    rsa_pub_pem = keys["rsa"][0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    add("hs256_signed_with_rsa_public_key",
        hs256_raw({"alg": "HS256", "kid": keys["rsa"][1]}, user(), rsa_pub_pem),
        "invalid_token", "alg_not_allowed", note="the RS256→HS256 key-confusion attack")
    ed_pub_raw = keys["ed25519"][0].public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    add("hs256_signed_with_ed25519_public_key",
        hs256_raw({"alg": "HS256", "kid": keys["ed25519"][1]}, user(), ed_pub_raw),
        "invalid_token", "alg_not_allowed")
    add("unknown_kid", by("attacker", user()), "invalid_token", "unknown_kid")
    add("embedded_jwk", sign(user(), keys["attacker"][0], "EdDSA",
                             {"kid": keys["ed25519"][1], "jwk": jwk["attacker"],
                              "jku": "http://127.0.0.1:9/jwks"}),
        "invalid_token", "bad_signature",
        note="attacker key in the header's jwk/jku is never used")
    add("expired", by("ed25519", user(exp=1600000900, iat=1600000000)), "expired", "expired")
    add("not_yet_valid", by("ed25519", user(nbf=FAR_FUTURE - 86400)), "invalid_token",
        "not_yet_valid")
    add("iat_in_future", by("ed25519", user(iat=FAR_FUTURE - 86400)), "invalid_token",
        "issued_in_future")
    add("wrong_iss", by("ed25519", user(iss="https://evil.example")), "invalid_token",
        "unknown_issuer")
    add("wrong_aud", by("ed25519", user(aud="https://other.example")), "invalid_token",
        "wrong_audience")
    good = by("ed25519", user())
    h, p, s = good.split(".")
    forged = b64url(json.dumps(user("admin", role="admin"), separators=(",", ":")).encode())
    add("tampered_payload", f"{h}.{forged}.{s}", "invalid_token", "bad_signature")
    flipped = ("B" if s[0] != "B" else "C") + s[1:]
    add("tampered_signature", f"{h}.{p}.{flipped}", "invalid_token", "bad_signature")
    add("truncated", good[:-12], "invalid_token", "bad_signature")
    add("truncated_to_two_parts", f"{h}.{p}", "invalid_token", "malformed")
    add("three_dots", "...", "invalid_token", "malformed")
    add("four_parts", good + ".x", "invalid_token", "malformed")
    add("huge_100k", by("ed25519", user(pad="x" * 100 * 1024)), "invalid_token", "too_large")
    add("crit_header", by("ed25519", user(), header={"crit": ["exp"], "exp": FAR_FUTURE}),
        "invalid_token", "crit_header")
    add("exp_as_string", by("ed25519", user(exp=str(FAR_FUTURE))), "invalid_token",
        "invalid_claim", note="NumericDate claims must be JSON numbers")
    add("iat_as_string", by("ed25519", user(iat=str(now))), "invalid_token", "invalid_claim")
    add("missing_exp", by("ed25519", user(exp=None)), "invalid_token", "missing_claim")
    add("es256_with_eddsa_kid", sign(user(), keys["p256"][0], "ES256",
                                     {"kid": keys["ed25519"][1]}),
        "invalid_token", "alg_not_allowed", note="algorithm pinned to the key type")
    add("ps256_on_rs256_key", by("rsa", user(), alg="PS256"), "invalid_token",
        "alg_not_allowed", note="the JWK's alg pins RS256")
    add("hs256_wrong_secret", jwt.encode({"sub": "user_hs", "iat": now, "exp": FAR_FUTURE},
                                         "another-secret-that-is-long-enough-0123456789",
                                         algorithm="HS256"),
        "invalid_token", "bad_signature")
    add("hs256_expired", jwt.encode({"sub": "user_hs", "iat": 1600000000, "exp": 1600000900},
                                    HS256_SECRET, algorithm="HS256"), "expired", "expired")

    manifest = {
        "generator": "tests/tokens/gen.py (PyJWT %s)" % jwt.__version__,
        "generated_at": now,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "kids": {n: k for n, (_, k) in keys.items()},
        "tokens": tokens,
    }
    (OUT / "tokens.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(tokens)} tokens to {OUT}")


if __name__ == "__main__":
    main()
