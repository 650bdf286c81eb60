//! The same facts through any door give the same decision.
//!
//! One table of cases — access questions (`/auth` over HTTP, `VERIFY` over RESP), rate-limit
//! questions (`GET /check`, `CHECK`, and who may ask them: `[check]`'s refusals and a named
//! caller's secret) and admin calls (`POST /admin/revoke`, `REVOKE`) — is
//! run, in order, through three doors:
//!
//! 1. HTTP answered by the hand-written fast path (the default server),
//! 2. HTTP answered by hyper only (the fast path off),
//! 3. RESP.
//!
//! Each door has its own server and gate, built by [`ServerBuilder`] from the same
//! configuration and the same injected environment, on its own [`ManualClock`] at the same
//! instant. Running the whole table through each door makes state (quota spent, revocations)
//! evolve alike, so case *n* must get the same normalised [`Answer`] on every door: status,
//! reason, identity, tier and the deciding limit's fields for an access question; allowed,
//! limit, remaining, reset and retry-after for a rate-limit question; a refusal on every door
//! (with the same gate reason, when the gate gave one) for bad input; and admitted or the same
//! refusal for an admin call. Every case also names what the answer must be, so three doors
//! agreeing on a wrong answer fail too.
//!
//! Clock steps are rows of the table (each door advances its own clock), never sleeps.
//!
//! What is not asked: an API key (`VERIFY` takes no API key, so there are no equal facts to
//! give the RESP door; `tests/http_auth.rs` covers the header on both HTTP paths), and
//! framing-level refusals (a 100 KiB token is a 431 over HTTP and a protocol error over RESP:
//! bounds of each wire format, not decisions).

mod auth_support;
mod http_support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::resp::frame::{Frame, Protocol};
use tollgate::resp::parse::{parse_frame, FrameLimits};
use tollgate::server::{ServerBuilder, ServerHandle};

use auth_support::{token, HS256_ENV};
use http_support::{RawClient, RawResponse, WAIT};

/// The variable `[auth.admin] secret_env` names, and its value (≥ 32 bytes).
const ADMIN_ENV: &str = "TOLLGATE_DOORS_ADMIN_SECRET";
const ADMIN_SECRET: &str = "door-equivalence-admin-secret-0123456789";

/// The variable of the `[[check.callers]]` entry `api`, and its secret.
const CALLER_ENV: &str = "TOLLGATE_DOORS_CHECK_SECRET";
const CALLER_SECRET: &str = "door-equivalence-check-caller-0123456789";

/// The client address every access question names (`X-Forwarded-For` / `VERIFY`'s argument;
/// the test's loopback peer is a trusted proxy by default, so both doors believe it).
const CLIENT: &str = "203.0.113.7";

/// The environment every server of this test sees (never the process's).
fn env(var: &str) -> Option<String> {
    match var {
        HS256_ENV => Some(auth_support::hs256_secret()),
        ADMIN_ENV => Some(ADMIN_SECRET.to_string()),
        CALLER_ENV => Some(CALLER_SECRET.to_string()),
        _ => None,
    }
}

/// How the admin operations are configured.
#[derive(Debug, Clone, Copy)]
enum AdminSetup {
    Secret,
    Disabled,
    UnixSocketOnly,
}

/// How `[check]` (who may ask `/check` and `CHECK`) is configured.
#[derive(Debug, Clone, Copy)]
enum CheckSetup {
    /// The default: the Unix socket and loopback, where the test's connections come from.
    Default,
    /// Only `10.0.0.0/8`, so the test's loopback connections are outsiders, and the named
    /// caller `api` (when `with_caller`).
    Outsider { with_caller: bool },
}

/// The one configuration every door's server is built from. Routes:
///
/// | path | rule |
/// |---|---|
/// | `/api/**` | a token is required |
/// | `/api/users/{user_id}/**` | the owner only |
/// | `/api/admin/**` | role `admin` |
/// | `/api/upload**` | a token, and `upload` (2 per hour per user) |
/// | `/api/tick**` | a token, and `second` (1 per second per user) |
/// | `/public/**` | credentials are not looked at |
/// | `DELETE /api/reports/**` | role `admin` |
/// | `/health` | credentials are not looked at, and no tier quota is spent |
/// | anything else | optional (the default) |
///
/// CORS preflights pass unjudged (the default).
///
/// Issuers: the fixtures' EdDSA/ECDSA/RSA key set from a file, the HS256 secret, and
/// `offline`, whose key set is never fetched (a refused port), for `keys_unavailable`.
fn config(admin: AdminSetup, check: CheckSetup) -> Config {
    let m = auth_support::manifest();
    let jwks = auth_support::dir().join("jwks.json");
    let admin = match admin {
        AdminSetup::Secret => format!("enabled = true\nsecret_env = \"{ADMIN_ENV}\""),
        AdminSetup::Disabled => "enabled = false".to_string(),
        AdminSetup::UnixSocketOnly => "enabled = true\nunix_socket_only = true".to_string(),
    };
    let check = match check {
        CheckSetup::Default => String::new(),
        CheckSetup::Outsider { with_caller } => {
            let mut t = "[check]\nnetworks = [\"10.0.0.0/8\"]\n".to_string();
            if with_caller {
                t.push_str(&format!(
                    "[[check.callers]]\nname = \"api\"\nsecret_env = \"{CALLER_ENV}\"\n"
                ));
            }
            t
        }
    };
    let text = format!(
        r#"
[server]
http = "127.0.0.1:0"

[resp]
enabled = true
tcp = "127.0.0.1:0"

[tiers.anonymous]
limit = 3
window = "1h"
key = "ip"

[tiers.basic]
limit = 100
window = "1h"
key = "user"

[tiers.premium]
limit = 1000
window = "1h"
key = "user"

[tiers.burst]
limit = 2
window = "1s"

[tiers.exact]
limit = 1
window = "1s"
algorithm = "sliding_log"

[limits.upload]
limit = 2
window = "1h"
key = "user"

[limits.second]
limit = 1
window = "1s"
key = "user"

[[routes]]
path = "/api/**"
auth = "required"

[[routes]]
path = "/api/users/{{user_id}}/**"
owner = "user_id"

[[routes]]
path = "/api/admin/**"
roles = ["admin"]

[[routes]]
path = "/api/upload**"
auth = "required"
limits = ["upload"]

[[routes]]
path = "/api/tick**"
auth = "required"
limits = ["second"]

[[routes]]
path = "/public/**"
auth = "none"

[[routes]]
path = "/api/reports/**"
methods = ["DELETE"]
roles = ["admin"]

[[routes]]
path = "/health"
auth = "none"
tier_limit = false

[auth]
anonymous_tier = "anonymous"
default_tier = "basic"
role_tiers = [{{ role = "premium", tier = "premium" }}]

[[auth.issuers]]
name = "better-auth"
issuer = "{iss}"
audiences = ["{aud}"]
jwks_file = "{jwks}"

[[auth.issuers]]
name = "fastapi"
hs256_secret_env = "{hs}"

[[auth.issuers]]
name = "offline"
issuer = "https://offline.example"
jwks_url = "http://127.0.0.1:9/jwks.json"

[auth.admin]
{admin}

{check}
"#,
        iss = m.issuer,
        aud = m.audience,
        jwks = jwks.display(),
        hs = HS256_ENV,
    );
    Config::from_toml_str(&text, "door-equivalence").unwrap_or_else(|e| panic!("config: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The table

/// The credentials of an access question.
#[derive(Debug, Clone)]
enum Cred {
    /// No `Authorization` header; `VERIFY ""`.
    None,
    /// `Authorization: <value>`; `VERIFY` gets the same whole value (it takes one).
    Header(Vec<u8>),
    /// `Authorization: Bearer <token>`; `VERIFY` gets the bare token.
    Bare(Vec<u8>),
}

/// A revocation, as `POST /admin/revoke`'s JSON and `REVOKE`'s arguments.
#[derive(Debug, Clone)]
enum Revocation {
    Jti(&'static str, i64),
    Sub(&'static str, i64),
}

#[derive(Debug, Clone)]
enum Ask {
    /// `/auth` with `X-Original-URI`, `X-Original-Method`, `X-Forwarded-For`, the
    /// credentials and `headers`; `VERIFY <token> <method> <path> <client-ip>` and a
    /// `HEADER <name> <value>` pair for each of `headers`.
    Access {
        cred: Cred,
        method: Vec<u8>,
        uri: Vec<u8>,
        ip: &'static str,
        headers: Vec<(&'static str, &'static str)>,
    },
    /// `GET /check?key=&tier=[&hits=][&limit=]` (each value percent-encoded);
    /// `CHECK key tier [HITS n] [LIMIT name]`. Values as the gate should see them.
    Check {
        key: Vec<u8>,
        tier: &'static str,
        hits: Option<&'static [u8]>,
        limit: Option<&'static str>,
    },
    /// `POST /admin/revoke` over TCP, with `Authorization: Bearer <secret>` when given;
    /// `AUTH <secret>` (when given) then `REVOKE` on one RESP connection.
    Revoke {
        secret: Option<&'static str>,
        what: Revocation,
    },
    /// `GET /check?key=&tier=` with `Authorization: Bearer <secret>` when given;
    /// `AUTH api <secret>` (when given) then `CHECK key tier` on one RESP connection.
    CheckAs {
        secret: Option<&'static str>,
        key: &'static str,
        tier: &'static str,
    },
    /// Not a question: every door's clock moves on by this many milliseconds.
    Advance(u64),
}

struct Case {
    name: &'static str,
    ask: Ask,
    /// Words the normalised answer must contain ([`Answer::words`]).
    expect: &'static str,
}

fn access(name: &'static str, cred: Cred, method: &str, uri: &[u8], expect: &'static str) -> Case {
    access_from(name, cred, method.as_bytes(), uri, CLIENT, expect)
}

fn access_from(
    name: &'static str,
    cred: Cred,
    method: &[u8],
    uri: &[u8],
    ip: &'static str,
    expect: &'static str,
) -> Case {
    Case {
        name,
        ask: Ask::Access {
            cred,
            method: method.to_vec(),
            uri: uri.to_vec(),
            ip,
            headers: Vec::new(),
        },
        expect,
    }
}

/// [`access`] with request headers besides the credentials and the client address.
fn access_with(
    name: &'static str,
    method: &str,
    uri: &[u8],
    headers: &[(&'static str, &'static str)],
    expect: &'static str,
) -> Case {
    let mut case = access(name, Cred::None, method, uri, expect);
    if let Ask::Access { headers: h, .. } = &mut case.ask {
        *h = headers.to_vec();
    }
    case
}

/// The two headers a CORS preflight is recognised by.
const PREFLIGHT: &[(&str, &str)] = &[
    ("Origin", "https://app.example"),
    ("Access-Control-Request-Method", "DELETE"),
];

fn check(
    name: &'static str,
    key: &str,
    tier: &'static str,
    hits: Option<&'static [u8]>,
    limit: Option<&'static str>,
    expect: &'static str,
) -> Case {
    Case {
        name,
        ask: Ask::Check {
            key: key.as_bytes().to_vec(),
            tier,
            hits,
            limit,
        },
        expect,
    }
}

fn revoke(
    name: &'static str,
    secret: Option<&'static str>,
    what: Revocation,
    expect: &'static str,
) -> Case {
    Case {
        name,
        ask: Ask::Revoke { secret, what },
        expect,
    }
}

fn advance(name: &'static str, millis: u64) -> Case {
    Case {
        name,
        ask: Ask::Advance(millis),
        expect: "",
    }
}

fn bare(name: &str) -> Cred {
    Cred::Bare(token(name).into_bytes())
}

fn header(value: impl Into<Vec<u8>>) -> Cred {
    Cred::Header(value.into())
}

/// A well-formed EdDSA token of the `offline` issuer, whose key set never arrives: refused as
/// `keys_unavailable` before its (made-up) signature could be looked at.
fn offline_token() -> String {
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let head = b64(&serde_json::json!({ "alg": "EdDSA", "kid": "offline-1" }));
    let claims = b64(&serde_json::json!({
        "iss": "https://offline.example",
        "sub": "user_offline",
        "exp": 4_102_444_800u64,
    }));
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 64]);
    format!("{head}.{claims}.{sig}")
}

/// The main table: at least 40 questions, in the order every door gets them.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let m = auth_support::manifest();
    let user_1 = || bare("eddsa_better_auth");
    let before_now = i64::try_from(m.generated_at + 1).unwrap();
    let oversize = format!("a.{}.b", "a".repeat(9000));
    let long_key = "k".repeat(600);
    let long_method = "M".repeat(33);
    vec![
        // --- no credentials, and credentials that are not there -------------------------
        access("anonymous on an auth=none route", Cred::None, "GET", b"/public/x",
            "200 user=- tier=anonymous rem=2 retry=-"),
        access("anonymous on an optional route", Cred::None, "GET", b"/other",
            "200 user=- tier=anonymous rem=1"),
        access("no token on a required route", Cred::None, "GET", b"/api/me",
            "401 missing_token tier=- rem=-"),
        access("empty Authorization header", header(""), "GET", b"/api/me",
            "401 missing_token"),
        access("Bearer without a token", header("Bearer"), "GET", b"/api/me",
            "401 missing_token"),
        access("Bearer and a space, no token", header("Bearer "), "GET", b"/api/me",
            "401 missing_token"),
        access("another scheme counts as no token", header("Basic dXNlcjpwYXNz"), "GET",
            b"/api/me", "401 missing_token"),
        // --- the anonymous tier, keyed by the client address both doors believe ----------
        access("anonymous: the last hit of this address", Cred::None, "GET", b"/other",
            "200 tier=anonymous rem=0"),
        access("anonymous: this address is rate limited", Cred::None, "GET", b"/other",
            "403 rate_limited tier=anonymous rem=0"),
        access_from("anonymous: another address has its own quota", Cred::None, b"GET",
            b"/other", "198.51.100.9", "200 tier=anonymous rem=2"),
        access_from("anonymous: an IPv4-mapped IPv6 address is the IPv4 address", Cred::None,
            b"GET", b"/other", "::ffff:198.51.100.9", "200 tier=anonymous rem=1"),
        // --- valid tokens ----------------------------------------------------------------
        access("EdDSA token, bare", user_1(), "GET", b"/api/me",
            "200 user=user_1 role=user tier=basic rem=99"),
        access("EdDSA token, whole Authorization value",
            header(format!("Bearer {}", token("eddsa_better_auth"))), "GET", b"/api/me",
            "200 user=user_1 tier=basic rem=98"),
        access("lowercase bearer scheme",
            header(format!("bearer {}", token("eddsa_better_auth"))), "GET", b"/api/me",
            "200 user=user_1 rem=97"),
        access("HS256 token", bare("hs256"), "GET", b"/api/me",
            "200 user=user_hs role=- tier=basic rem=99"),
        access("a role mapped to a tier", bare("eddsa_premium_roles"), "GET", b"/api/me",
            "200 user=user_premium role=user,premium tier=premium rem=999"),
        // --- tokens that are not valid ---------------------------------------------------
        access("a token that is not UTF-8", Cred::Bare(vec![0xff]), "GET", b"/api/me",
            "401 invalid_token"),
        access("not UTF-8 on an optional route is still refused",
            Cred::Bare(b"ey\xff\xfe.x.y".to_vec()), "GET", b"/other", "401 invalid_token"),
        access_from("not UTF-8 on an auth=none route is not looked at", Cred::Bare(vec![0xff]),
            b"GET", b"/public/x", "192.0.2.1", "200 user=- tier=anonymous rem=2"),
        access("an oversize token", Cred::Bare(oversize.into_bytes()), "GET", b"/api/me",
            "401 invalid_token"),
        access("garbage", header("Bearer not-a-jwt"), "GET", b"/api/me", "401 invalid_token"),
        access("three dots", bare("three_dots"), "GET", b"/api/me", "401 invalid_token"),
        access("tampered signature", bare("tampered_signature"), "GET", b"/api/me",
            "401 invalid_token"),
        access("alg none", bare("alg_none"), "GET", b"/api/me", "401 invalid_token"),
        access("HS256 with the wrong secret", bare("hs256_wrong_secret"), "GET", b"/api/me",
            "401 invalid_token"),
        access("wrong audience", bare("wrong_aud"), "GET", b"/api/me", "401 invalid_token"),
        access("unknown key id", bare("unknown_kid"), "GET", b"/api/me", "401 invalid_token"),
        access("expired", bare("expired"), "GET", b"/api/me", "401 expired"),
        access("HS256 expired", bare("hs256_expired"), "GET", b"/api/me", "401 expired"),
        access("issuer without keys yet", Cred::Bare(offline_token().into_bytes()), "GET",
            b"/api/me", "401 keys_unavailable"),
        // --- roles, owners and paths -----------------------------------------------------
        access("a role is missing", user_1(), "GET", b"/api/admin/stats", "403 forbidden tier=-"),
        access("own path", user_1(), "GET", b"/api/users/user_1/tasks?page=2",
            "200 user=user_1 rem=96"),
        access("another user's path", user_1(), "GET", b"/api/users/bob/tasks",
            "403 not_owner tier=- rem=-"),
        access("dot-dot into another user's path (backends disagree on ..)", user_1(), "GET",
            b"/api/users/user_1/../bob/tasks", "403 bad_path"),
        access("dot-dot above the root", user_1(), "GET", b"/../etc/passwd", "403 bad_path"),
        access("an encoded slash", user_1(), "GET", b"/api/users/user_1%2Fx", "403 bad_path"),
        access("a bad percent escape", user_1(), "GET", b"/api/%zz", "403 bad_path"),
        access("a path that is not UTF-8, raw", user_1(), "GET", b"/api/\xff", "403 bad_path"),
        access("a path that does not start with /", user_1(), "GET", b"api/me", "403 bad_path"),
        // --- methods ---------------------------------------------------------------------
        access("a method-specific rule: GET passes", user_1(), "GET", b"/api/reports/1",
            "200 user=user_1 rem=95"),
        access("a method-specific rule: DELETE needs the role", user_1(), "DELETE",
            b"/api/reports/1", "403 forbidden"),
        access("a lowercase method is the same method", user_1(), "delete", b"/api/reports/1",
            "403 forbidden"),
        access("POST", user_1(), "POST", b"/api/me", "200 rem=94"),
        access("a method that is not a token is refused", user_1(), "GE T", b"/api/me",
            "refused gate_reason=-"),
        access("a method longer than 32 bytes is refused", user_1(), &long_method, b"/api/me",
            "refused"),
        access_from("a method that is not UTF-8, raw, is refused", user_1(), b"G\xffT",
            b"/api/me", CLIENT, "refused gate_reason=-"),
        // --- a route's own limit ---------------------------------------------------------
        access("upload 1 of 2", user_1(), "POST", b"/api/upload", "200 rem=1"),
        access("upload 2 of 2", user_1(), "POST", b"/api/upload", "200 rem=0"),
        access("upload 3 of 2 is rate limited", user_1(), "POST", b"/api/upload",
            "403 rate_limited tier=basic rem=0"),
        // --- Retry-After on a 1 s window -------------------------------------------------
        access("1 s limit: the one hit", bare("hs256"), "GET", b"/api/tick", "200 rem=0"),
        // The sliding-window counter lets a hit go one window after it was admitted.
        access("1 s limit: denied, retry after one window", bare("hs256"), "GET",
            b"/api/tick", "403 rate_limited tier=basic rem=0 retry=1"),
        advance("one window later", 1_000),
        access("1 s limit: admitted again", bare("hs256"), "GET", b"/api/tick", "200 rem=0"),
        // --- rate-limit questions: the hits grammar ----------------------------------------
        check("check: one hit", "k1", "basic", None, None,
            "allowed limit=100 remaining=99 retry=-"),
        check("check: hits=0 peeks", "k1", "basic", Some(b"0"), None, "allowed remaining=99"),
        check("check: hits=5", "k1", "basic", Some(b"5"), None, "allowed remaining=94"),
        check("check: leading zeros", "k1", "basic", Some(b"007"), None, "allowed remaining=87"),
        check("check: a key with a space, a plus and UTF-8", "user 4+2 ü", "basic", None, None,
            "allowed remaining=99"),
        check("check: the same key again", "user 4+2 ü", "basic", None, None,
            "allowed remaining=98"),
        check("check: hits=+5 is refused", "k1", "basic", Some(b"+5"), None,
            "refused gate_reason=-"),
        check("check: hits with a space is refused", "k1", "basic", Some(b" 5"), None,
            "refused gate_reason=-"),
        check("check: hits=-1 is refused", "k1", "basic", Some(b"-1"), None, "refused"),
        check("check: hits=abc is refused", "k1", "basic", Some(b"abc"), None, "refused"),
        check("check: empty hits is refused", "k1", "basic", Some(b""), None, "refused"),
        check("check: hits beyond 64 bits is refused", "k1", "basic",
            Some(b"99999999999999999999"), None, "refused gate_reason=-"),
        check("check: hits beyond max_hits is the gate's refusal", "k1", "basic",
            Some(b"1000001"), None, "refused gate_reason=hits_out_of_range"),
        check("check: nothing was counted by the refusals", "k1", "basic", Some(b"0"), None,
            "allowed remaining=87"),
        check("check: more hits than the limit is denied", "k1", "basic", Some(b"200"), None,
            "denied limit=100 remaining=87"),
        // --- unknown names and bad keys ----------------------------------------------------
        check("check: unknown tier", "k1", "gold", None, None, "refused gate_reason=unknown_tier"),
        check("check: unknown limit", "k1", "basic", None, Some("nope"),
            "refused gate_reason=unknown_limit"),
        check("check: empty key", "", "basic", None, None, "refused gate_reason=missing_key"),
        check("check: key too long", &long_key, "basic", None, None,
            "refused gate_reason=key_too_long"),
        Case {
            name: "check: a key that is not UTF-8",
            ask: Ask::Check { key: vec![b'k', 0xff], tier: "basic", hits: None, limit: None },
            expect: "refused gate_reason=-",
        },
        check("check: a named limit denies", "k2", "basic", Some(b"3"), Some("upload"),
            "denied limit=2 remaining=2"),
        // --- Retry-After on a 1 s window, rate-limit questions ------------------------------
        check("check 1 s: both hits", "b1", "burst", Some(b"2"), None,
            "allowed limit=2 remaining=0 retry=-"),
        check("check 1 s: denied, retry after one window", "b1", "burst", None, None,
            "denied limit=2 remaining=0 retry=1"),
        advance("one window later, again", 1_000),
        check("check 1 s: admitted again", "b1", "burst", None, None, "allowed remaining=1"),
        // An exact log frees the hit 1 ms later: Retry-After is still one whole second.
        check("check 1 s log: the one hit", "x1", "exact", None, None, "allowed remaining=0"),
        advance("999 ms later", 999),
        check("check 1 s log: denied 1 ms before the hit frees, retry after 1 s", "x1", "exact",
            None, None, "denied limit=1 remaining=0 retry=1"),
        // --- admin calls, and the revocation taking effect -----------------------------------
        access("before revocation: a token with a jti", bare("eddsa_with_jti"), "GET",
            b"/api/me", "200 user=user_jti"),
        revoke("revoke without the secret", None, Revocation::Jti("jti-0001", 4_102_444_800),
            "admin=secret_required"),
        revoke("revoke with a wrong secret", Some("not-the-admin-secret-0123456789abcdef"),
            Revocation::Jti("jti-0001", 4_102_444_800), "admin=secret_invalid"),
        access("a refused revocation changes nothing", bare("eddsa_with_jti"), "GET",
            b"/api/me", "200 user=user_jti"),
        revoke("revoke a jti with the secret", Some(ADMIN_SECRET),
            Revocation::Jti("jti-0001", 4_102_444_800), "admin=ok"),
        access("the revoked token, from the cache", bare("eddsa_with_jti"), "GET", b"/api/me",
            "401 revoked user=-"),
        access("the revoked token on an optional route", bare("eddsa_with_jti"), "GET",
            b"/other", "401 revoked"),
        revoke("revoke an empty jti: the gate's error", Some(ADMIN_SECRET),
            Revocation::Jti("", 4_102_444_800),
            "admin=failed:the_jti_must_be_1_to_256_bytes"),
        revoke("revoke a subject with the secret", Some(ADMIN_SECRET),
            Revocation::Sub("user_hs", before_now), "admin=ok"),
        access("a token of the revoked subject", bare("hs256"), "GET", b"/api/me",
            "401 revoked"),
        access("another subject still passes", user_1(), "GET", b"/api/me", "200 user=user_1"),
        // --- no tier quota: CORS preflights and tier_limit = false --------------------------
        // CLIENT's anonymous quota was spent above; neither of these needs it.
        access("no tier limit: the anonymous tier is spent, yet it passes", Cred::None, "GET",
            b"/health", "200 user=- tier=anonymous rem=- retry=-"),
        access("no tier limit: and again", Cred::None, "GET", b"/health",
            "200 tier=anonymous rem=-"),
        access_with("a preflight passes a required route, anonymous, no tier", "OPTIONS",
            b"/api/me", PREFLIGHT, "200 user=- role=- tier=- rem=- retry=-"),
        access_with("a preflight passes another user's owner path", "OPTIONS",
            b"/api/users/bob/tasks", PREFLIGHT, "200 user=- tier=- rem=-"),
        access_with("a preflight passes where the anonymous tier is spent", "OPTIONS",
            b"/other", PREFLIGHT, "200 tier=- rem=-"),
        access_with("OPTIONS with an Origin only is judged", "OPTIONS", b"/api/me",
            &PREFLIGHT[..1], "401 missing_token"),
        access_with("a lowercase options is judged", "options", b"/api/me", PREFLIGHT,
            "401 missing_token"),
        access_with("the real request after the preflight is judged", "DELETE", b"/api/me",
            PREFLIGHT, "401 missing_token"),
        access_with("a preflight to a path that cannot be judged is refused", "OPTIONS",
            b"/api/users/a%2Fb", PREFLIGHT, "403 bad_path"),
        // --- one key vocabulary: /auth and VERIFY count a user under `user:<id>` and an
        // address under `ip:<address>`, the keys /check and CHECK callers name ---------------
        check("one key: /auth's hit shows on user:<id>", "user:user_premium", "premium",
            Some(b"0"), None, "allowed limit=1000 remaining=999"),
        check("one key: /check spends on the same bucket", "user:user_premium", "premium",
            Some(b"9"), None, "allowed remaining=990"),
        access("one key: /auth sees /check's hits", bare("eddsa_premium_roles"), "GET",
            b"/api/me", "200 user=user_premium tier=premium rem=989"),
        check("one key: an address's hits show on ip:<address>", "ip:198.51.100.9",
            "anonymous", Some(b"0"), None, "allowed limit=3 remaining=1"),
        check("one key: /check spends the address's last hit", "ip:198.51.100.9", "anonymous",
            None, None, "allowed remaining=0"),
        access_from("one key: /auth sees it", Cred::None, b"GET", b"/other", "198.51.100.9",
            "403 rate_limited tier=anonymous rem=0"),
        // --- paths a backend reads otherwise (default reading: strict) -------------------
        access("a backslash, which URL parsers read as /", Cred::None, "GET",
            b"/api\\admin\\x", "403 bad_path"),
        access("an encoded backslash", Cred::None, "GET", b"/api%5Cadmin%5Cx", "403 bad_path"),
        access("dot-dot-backslash into another user's path", user_1(), "GET",
            b"/api/users/user_1/..\\bob/tasks", "403 bad_path"),
        access("a leading //, which URL parsers read as a host", user_1(), "GET",
            b"//app.example/api/users/bob/tasks", "403 bad_path"),
        access("upper case that changes the rule", Cred::None, "GET", b"/API/admin/x",
            "403 bad_path"),
        access("upper case that changes nothing", user_1(), "GET", b"/api/users/user_1/Tasks",
            "200 user=user_1"),
        access("; parameters, which servlet containers strip", Cred::None, "GET",
            b"/api;/admin/x", "403 bad_path"),
        access("a fullwidth solidus", Cred::None, "GET", b"/api%EF%BC%8Fadmin", "403 bad_path"),
    ]
}

fn check_as(
    name: &'static str,
    secret: Option<&'static str>,
    key: &'static str,
    expect: &'static str,
) -> Case {
    Case {
        name,
        ask: Ask::CheckAs {
            secret,
            key,
            tier: "basic",
        },
        expect,
    }
}

/// Rate-limit questions from a caller outside `[check] networks`, where the caller `api` is
/// named: refused without its secret or with a wrong one, answered with it; a refusal spends
/// nothing; the access question (nginx's) is not affected.
#[rustfmt::skip]
fn outsider_check_cases() -> Vec<Case> {
    vec![
        check_as("outsider: no secret", None, "victim", "check_refused reason=secret_required"),
        check_as("outsider: a wrong secret", Some("not-the-caller-secret-0123456789abcdef"),
            "victim", "check_refused reason=secret_invalid"),
        check_as("outsider: the admin secret is not a caller's", Some(ADMIN_SECRET), "victim",
            "check_refused reason=secret_invalid"),
        check_as("outsider: the caller's secret; the refusals spent nothing",
            Some(CALLER_SECRET), "victim", "allowed limit=100 remaining=99"),
        check("outsider: the plain question is still refused", "victim", "basic", None, None,
            "check_refused reason=secret_required"),
        access("outsider: the access question is not affected", Cred::None, "GET",
            b"/public/x", "200 tier=anonymous rem=2"),
    ]
}

/// Admin calls where admin access is disabled.
#[rustfmt::skip]
fn disabled_admin_cases() -> Vec<Case> {
    vec![
        revoke("disabled: without the secret", None, Revocation::Jti("j", 4_102_444_800),
            "admin=disabled"),
        revoke("disabled: with a secret", Some(ADMIN_SECRET), Revocation::Jti("j", 4_102_444_800),
            "admin=disabled"),
        access("disabled: nothing was revoked", bare("eddsa_with_jti"), "GET", b"/api/me",
            "200 user=user_jti"),
    ]
}

/// Admin calls over TCP where admin access is for Unix-socket callers only.
#[rustfmt::skip]
fn unix_only_admin_cases() -> Vec<Case> {
    vec![
        revoke("unix only: over TCP", None, Revocation::Jti("j", 4_102_444_800),
            "admin=unix_socket_only"),
        revoke("unix only: over TCP with a secret", Some(ADMIN_SECRET),
            Revocation::Jti("j", 4_102_444_800), "admin=unix_socket_only"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Normalised answers

/// How an admin call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AdminAnswer {
    /// Admitted and recorded.
    Ok,
    /// Admitted; the gate refused the revocation with this message.
    Failed(String),
    Disabled,
    SecretRequired,
    SecretInvalid,
    UnixSocketOnly,
}

/// One door's answer to one case, with what the door said rendered away.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// The access decision: `/auth`'s status and headers, `VERIFY`'s seven fields. The
    /// identity is the admitted caller's (`/auth` names it only on a 200).
    Access {
        status: u16,
        reason: Option<String>,
        user: Option<String>,
        role: Option<String>,
        tier: Option<String>,
        remaining: Option<u64>,
        retry_after: Option<u64>,
    },
    /// A rate-limit decision (the deciding limit's fields).
    Check {
        allowed: bool,
        limit: u64,
        remaining: u64,
        reset: u64,
        retry_after: Option<u64>,
    },
    /// Bad input, refused (HTTP 400 problem, RESP `-ERR`), and the reason the gate counted in
    /// `tollgate_check_errors_total`, when the gate was asked at all.
    Refused {
        gate_reason: Option<String>,
    },
    Admin(AdminAnswer),
    /// A rate-limit question from a caller `[check]` does not admit, and why (the gate's
    /// `CheckRefusal` reason, as each door words it).
    CheckRefused {
        reason: String,
    },
    /// Anything else: always a failure.
    Unexpected(String),
}

impl Answer {
    /// The answer as words (`401 invalid_token user=- …`), for the cases' expectations.
    fn words(&self) -> Vec<String> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let num = |v: &Option<u64>| v.map_or("-".into(), |n| n.to_string());
        match self {
            Answer::Access {
                status,
                reason,
                user,
                role,
                tier,
                remaining,
                retry_after,
            } => vec![
                status.to_string(),
                opt(reason),
                format!("user={}", opt(user)),
                format!("role={}", opt(role)),
                format!("tier={}", opt(tier)),
                format!("rem={}", num(remaining)),
                format!("retry={}", num(retry_after)),
            ],
            Answer::Check {
                allowed,
                limit,
                remaining,
                reset,
                retry_after,
            } => vec![
                if *allowed { "allowed" } else { "denied" }.into(),
                format!("limit={limit}"),
                format!("remaining={remaining}"),
                format!("reset={reset}"),
                format!("retry={}", num(retry_after)),
            ],
            Answer::Refused { gate_reason } => {
                vec![
                    "refused".into(),
                    format!("gate_reason={}", opt(gate_reason)),
                ]
            }
            Answer::CheckRefused { reason } => {
                vec!["check_refused".into(), format!("reason={reason}")]
            }
            Answer::Admin(a) => vec![match a {
                AdminAnswer::Ok => "admin=ok".into(),
                AdminAnswer::Failed(m) => format!("admin=failed:{}", m.replace(' ', "_")),
                AdminAnswer::Disabled => "admin=disabled".into(),
                AdminAnswer::SecretRequired => "admin=secret_required".into(),
                AdminAnswer::SecretInvalid => "admin=secret_invalid".into(),
                AdminAnswer::UnixSocketOnly => "admin=unix_socket_only".into(),
            }],
            Answer::Unexpected(s) => vec![format!("unexpected:{s}")],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The doors

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    HttpFastPath,
    HttpHyper,
    Resp,
}

const DOORS: [Door; 3] = [Door::HttpFastPath, Door::HttpHyper, Door::Resp];

/// One door's own server, gate and clock.
struct Running {
    door: Door,
    server: ServerHandle,
    clock: Arc<ManualClock>,
}

impl Running {
    async fn start(door: Door, admin: AdminSetup, check: CheckSetup) -> Self {
        let clock = auth_support::clock();
        let server = ServerBuilder::new(config(admin, check))
            .clock(clock.clone())
            .env(env)
            .http_fast_path(door == Door::HttpFastPath)
            .start()
            .await
            .expect("server starts");
        Running {
            door,
            server,
            clock,
        }
    }

    /// Asks one question; `None` for a clock step. Also returns what went over the wire,
    /// for the failure message.
    async fn ask(&self, ask: &Ask) -> Option<(Answer, String)> {
        if let Ask::Advance(ms) = ask {
            self.clock.advance_millis(*ms);
            return None;
        }
        let errors_before = self.check_errors();
        let (answer, raw) = match self.door {
            Door::HttpFastPath | Door::HttpHyper => self.ask_http(ask).await,
            Door::Resp => self.ask_resp(ask).await,
        };
        // Which gate refusal (if any) this question was counted as.
        let answer = match answer {
            Answer::Refused { .. } => {
                let after = self.check_errors();
                let grown: Vec<&String> = after
                    .iter()
                    .filter(|(reason, n)| {
                        errors_before
                            .iter()
                            .find(|(r, _)| r == reason)
                            .map_or(0, |(_, m)| *m)
                            < *n
                    })
                    .map(|(r, _)| r)
                    .collect();
                Answer::Refused {
                    gate_reason: grown.first().map(|r| r.to_string()),
                }
            }
            other => other,
        };
        Some((answer, raw))
    }

    /// `tollgate_check_errors_total` by reason, from this server's metrics.
    fn check_errors(&self) -> Vec<(String, u64)> {
        let text = self.server.gate().metrics().render(0, 0, None);
        let text = String::from_utf8(text).expect("metrics are text");
        text.lines()
            .filter_map(|l| l.strip_prefix("tollgate_check_errors_total{reason=\""))
            .filter_map(|l| {
                let (reason, rest) = l.split_once("\"}")?;
                Some((reason.to_string(), rest.trim().parse().ok()?))
            })
            .collect()
    }

    async fn ask_http(&self, ask: &Ask) -> (Answer, String) {
        let request = http_request(ask);
        let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(self.server.http_addr()))
            .await
            .expect("connect timed out")
            .expect("connect");
        tokio::time::timeout(WAIT, stream.write_all(&request))
            .await
            .expect("write timed out")
            .expect("write");
        let mut client = RawClient::new(stream);
        let Some(r) = client.read_response().await else {
            return (Answer::Unexpected("closed".into()), "closed".into());
        };
        let raw = format!("{} {:?} {}", r.status, r.headers, r.text());
        let answer = match ask {
            Ask::Access { .. } => http_access(&r),
            Ask::Check { .. } | Ask::CheckAs { .. } => http_check(&r),
            Ask::Revoke { .. } => http_admin(&r),
            Ask::Advance(_) => unreachable!(),
        };
        (answer, raw)
    }

    async fn ask_resp(&self, ask: &Ask) -> (Answer, String) {
        let addr = self.server.resp_addr().expect("a RESP listener");
        let mut conn = RespConn::connect(addr).await;
        match ask {
            Ask::Access {
                cred,
                method,
                uri,
                ip,
                headers,
            } => {
                let token: &[u8] = match cred {
                    Cred::None => b"",
                    Cred::Header(v) | Cred::Bare(v) => v,
                };
                let mut args: Vec<&[u8]> = vec![b"VERIFY", token, method, uri, ip.as_bytes()];
                for (name, value) in headers {
                    args.extend([&b"HEADER"[..], name.as_bytes(), value.as_bytes()]);
                }
                let reply = conn.call(&args).await;
                (resp_access(&reply), format!("{reply:?}"))
            }
            Ask::Check {
                key,
                tier,
                hits,
                limit,
            } => {
                let mut args: Vec<&[u8]> = vec![b"CHECK", key, tier.as_bytes()];
                if let Some(h) = hits {
                    args.extend([&b"HITS"[..], h]);
                }
                if let Some(l) = limit {
                    args.extend([&b"LIMIT"[..], l.as_bytes()]);
                }
                let reply = conn.call(&args).await;
                (resp_check(&reply), format!("{reply:?}"))
            }
            Ask::CheckAs { secret, key, tier } => {
                let auth = match secret {
                    Some(s) => Some(conn.call(&[b"AUTH", b"api", s.as_bytes()]).await),
                    None => None,
                };
                let reply = conn
                    .call(&[b"CHECK", key.as_bytes(), tier.as_bytes()])
                    .await;
                let wrong_secret =
                    matches!(&auth, Some(Frame::Error(e)) if e.starts_with("WRONGPASS"));
                let answer = match resp_check(&reply) {
                    Answer::CheckRefused { reason } if wrong_secret => Answer::CheckRefused {
                        reason: if reason == "secret_required" {
                            "secret_invalid".into()
                        } else {
                            reason
                        },
                    },
                    other => other,
                };
                (answer, format!("AUTH → {auth:?}; CHECK → {reply:?}"))
            }
            Ask::Revoke { secret, what } => {
                let auth = match secret {
                    Some(s) => Some(conn.call(&[b"AUTH", s.as_bytes()]).await),
                    None => None,
                };
                let (kind, id, at): (&[u8], &str, i64) = match what {
                    Revocation::Jti(j, exp) => (b"JTI", j, *exp),
                    Revocation::Sub(s, before) => (b"SUB", s, *before),
                };
                let at = at.to_string();
                let reply = conn
                    .call(&[b"REVOKE", kind, id.as_bytes(), at.as_bytes()])
                    .await;
                (
                    resp_admin(auth.as_ref(), &reply),
                    format!("AUTH → {auth:?}; REVOKE → {reply:?}"),
                )
            }
            Ask::Advance(_) => unreachable!(),
        }
    }
}

/// Percent-encodes every byte but the unreserved ones, so the server decodes exactly `v`.
fn encode(v: &[u8]) -> String {
    v.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The raw HTTP/1.1 request of a question; header values go over the wire as they are, bytes
/// that are not UTF-8 included (obs-text, which both HTTP paths accept).
fn http_request(ask: &Ask) -> Vec<u8> {
    let mut r = Vec::new();
    match ask {
        Ask::Access {
            cred,
            method,
            uri,
            ip,
            headers,
        } => {
            r.extend_from_slice(b"GET /auth HTTP/1.1\r\nHost: tollgate\r\n");
            for (name, value) in headers {
                r.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            r.extend_from_slice(b"X-Original-URI: ");
            r.extend_from_slice(uri);
            r.extend_from_slice(b"\r\nX-Original-Method: ");
            r.extend_from_slice(method);
            r.extend_from_slice(format!("\r\nX-Forwarded-For: {ip}\r\n").as_bytes());
            match cred {
                Cred::None => {}
                Cred::Header(v) => {
                    r.extend_from_slice(b"Authorization: ");
                    r.extend_from_slice(v);
                    r.extend_from_slice(b"\r\n");
                }
                Cred::Bare(t) => {
                    r.extend_from_slice(b"Authorization: Bearer ");
                    r.extend_from_slice(t);
                    r.extend_from_slice(b"\r\n");
                }
            }
            r.extend_from_slice(b"Connection: close\r\n\r\n");
        }
        Ask::Check {
            key,
            tier,
            hits,
            limit,
        } => {
            let mut target = format!(
                "/check?key={}&tier={}",
                encode(key),
                encode(tier.as_bytes())
            );
            if let Some(h) = hits {
                target.push_str(&format!("&hits={}", encode(h)));
            }
            if let Some(l) = limit {
                target.push_str(&format!("&limit={}", encode(l.as_bytes())));
            }
            r.extend_from_slice(
                format!("GET {target} HTTP/1.1\r\nHost: tollgate\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
        Ask::CheckAs { secret, key, tier } => {
            let auth = secret
                .map(|s| format!("Authorization: Bearer {s}\r\n"))
                .unwrap_or_default();
            r.extend_from_slice(
                format!(
                    "GET /check?key={}&tier={} HTTP/1.1\r\nHost: tollgate\r\n{auth}\
                     Connection: close\r\n\r\n",
                    encode(key.as_bytes()),
                    encode(tier.as_bytes())
                )
                .as_bytes(),
            );
        }
        Ask::Revoke { secret, what } => {
            let body = match what {
                Revocation::Jti(jti, exp) => serde_json::json!({ "jti": jti, "exp": exp }),
                Revocation::Sub(sub, before) => serde_json::json!({ "sub": sub, "before": before }),
            }
            .to_string();
            let auth = secret
                .map(|s| format!("Authorization: Bearer {s}\r\n"))
                .unwrap_or_default();
            r.extend_from_slice(
                format!(
                    "POST /admin/revoke HTTP/1.1\r\nHost: tollgate\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\
                     {auth}Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
        Ask::Advance(_) => unreachable!(),
    }
    r
}

fn number(r: &RawResponse, name: &str) -> Option<u64> {
    r.header(name).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
    })
}

fn http_access(r: &RawResponse) -> Answer {
    match r.status {
        200 | 401 | 403 => {
            let text = |name: &str| r.header(name).map(str::to_string);
            Answer::Access {
                status: r.status,
                reason: text("x-tollgate-reason"),
                user: text("x-user-id"),
                role: text("x-user-role"),
                tier: text("x-tier"),
                remaining: number(r, "x-ratelimit-remaining"),
                retry_after: number(r, "retry-after"),
            }
        }
        400 => Answer::Refused { gate_reason: None },
        s => Answer::Unexpected(format!("HTTP {s}")),
    }
}

fn http_check(r: &RawResponse) -> Answer {
    match r.status {
        200 | 429 => {
            let v = r.json();
            let field = |name: &str| v[name].as_u64();
            let allowed = v["allowed"].as_bool() == Some(true);
            let retry_after = field("retry_after");
            // The status and the header must say what the body says.
            if allowed != (r.status == 200) || retry_after != number(r, "retry-after") {
                return Answer::Unexpected(format!("status, body and headers disagree: {v}"));
            }
            Answer::Check {
                allowed,
                limit: field("limit").expect("limit"),
                remaining: field("remaining").expect("remaining"),
                reset: field("reset").expect("reset"),
                retry_after,
            }
        }
        400 => Answer::Refused { gate_reason: None },
        403 if r.json()["type"] == "urn:tollgate:problem:check-forbidden" => {
            let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
            // The gate's CheckRefusal, by the words of its message.
            let reason = if detail.contains("must present") {
                "secret_required"
            } else if detail.contains("not that of any caller") {
                "secret_invalid"
            } else if detail.contains("[check] networks") {
                "untrusted_peer"
            } else {
                return Answer::Unexpected(format!("HTTP 403: {detail}"));
            };
            Answer::CheckRefused {
                reason: reason.into(),
            }
        }
        s => Answer::Unexpected(format!("HTTP {s}")),
    }
}

fn http_admin(r: &RawResponse) -> Answer {
    Answer::Admin(match r.status {
        200 | 201 => AdminAnswer::Ok,
        400 => AdminAnswer::Failed(r.json()["detail"].as_str().unwrap_or("").to_string()),
        404 => AdminAnswer::Disabled,
        403 => AdminAnswer::UnixSocketOnly,
        401 => match r.header("www-authenticate") {
            Some(w) if w.contains("invalid_token") => AdminAnswer::SecretInvalid,
            _ => AdminAnswer::SecretRequired,
        },
        s => return Answer::Unexpected(format!("HTTP {s}")),
    })
}

fn resp_int(f: &Frame) -> Option<u64> {
    f.as_integer().and_then(|n| u64::try_from(n).ok())
}

fn resp_text(f: &Frame) -> Option<String> {
    f.as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn resp_access(f: &Frame) -> Answer {
    match f {
        Frame::Array(v) if v.len() == 7 => {
            let status = v[0].as_integer().expect("status") as u16;
            // `VERIFY` names the identity on a 403 as well; `/auth` only on a 200 (both as
            // documented). The decision is the same: compare the admitted identity.
            let admitted = status == 200;
            Answer::Access {
                status,
                reason: resp_text(&v[1]),
                user: resp_text(&v[2]).filter(|_| admitted),
                role: resp_text(&v[3]).filter(|_| admitted),
                tier: resp_text(&v[4]),
                remaining: resp_int(&v[5]),
                retry_after: resp_int(&v[6]),
            }
        }
        Frame::Error(e) if e.starts_with("ERR ") => Answer::Refused { gate_reason: None },
        other => Answer::Unexpected(format!("{other:?}")),
    }
}

fn resp_check(f: &Frame) -> Answer {
    match f {
        Frame::Array(v) if v.len() == 5 => {
            let n = |i: usize| resp_int(&v[i]).expect("a non-negative integer");
            Answer::Check {
                allowed: n(0) == 1,
                limit: n(1),
                remaining: n(2),
                reset: n(3),
                retry_after: resp_int(&v[4]),
            }
        }
        Frame::Error(e) if e.starts_with("ERR ") => Answer::Refused { gate_reason: None },
        Frame::Error(e) if e.starts_with("NOPERM ") => Answer::CheckRefused {
            reason: "untrusted_peer".into(),
        },
        Frame::Error(e) if e.starts_with("NOAUTH ") => Answer::CheckRefused {
            reason: "secret_required".into(),
        },
        other => Answer::Unexpected(format!("{other:?}")),
    }
}

/// `AUTH` (when sent) and `REVOKE`'s replies as one admin answer: a wrong secret shows at
/// `AUTH` (`WRONGPASS`), and the `REVOKE` after it is then refused like one without `AUTH`.
fn resp_admin(auth: Option<&Frame>, revoke: &Frame) -> Answer {
    let wrong_secret = matches!(auth, Some(Frame::Error(e)) if e.starts_with("WRONGPASS"));
    Answer::Admin(match revoke {
        Frame::Simple(s) if s == "OK" => AdminAnswer::Ok,
        Frame::Error(e) if e.starts_with("NOAUTH") && wrong_secret => AdminAnswer::SecretInvalid,
        Frame::Error(e) if e.starts_with("NOAUTH") => AdminAnswer::SecretRequired,
        Frame::Error(e) if e.starts_with("NOPERM") => AdminAnswer::UnixSocketOnly,
        Frame::Error(e) if e.starts_with("ERR REVOKE is disabled") => AdminAnswer::Disabled,
        Frame::Error(e) if e.starts_with("ERR ") => AdminAnswer::Failed(e[4..].to_string()),
        other => return Answer::Unexpected(format!("{other:?}")),
    })
}

/// One RESP connection, every read bounded by [`WAIT`].
struct RespConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RespConn {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        RespConn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn call(&mut self, args: &[&[u8]]) -> Frame {
        let bytes = Frame::command(args).to_bytes(Protocol::Resp2);
        tokio::time::timeout(WAIT, self.stream.write_all(&bytes))
            .await
            .expect("write timed out")
            .expect("write");
        loop {
            if let Some((frame, used)) =
                parse_frame(&self.buf, &FrameLimits::default()).expect("a well-formed reply")
            {
                self.buf.drain(..used);
                return frame;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("reply timed out")
                .expect("read");
            assert!(n > 0, "the RESP door closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a table

/// Runs `cases` in order through each door's own server and compares, per case, the three
/// normalised answers with each other and with the case's expectation. Every difference is
/// reported, with the three answers, before the test fails.
async fn run_table(admin: AdminSetup, check: CheckSetup, cases: &[Case]) {
    let mut answers: Vec<Vec<Option<(Answer, String)>>> = Vec::new();
    for door in DOORS {
        let running = Running::start(door, admin, check).await;
        let mut mine = Vec::with_capacity(cases.len());
        for case in cases {
            mine.push(running.ask(&case.ask).await);
        }
        answers.push(mine);
        tokio::time::timeout(Duration::from_secs(10), running.server.stop())
            .await
            .expect("the server stops")
            .expect("the server stops cleanly");
    }
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let per_door: Vec<&(Answer, String)> =
            answers.iter().filter_map(|a| a[i].as_ref()).collect();
        let Some(first) = per_door.first() else {
            continue; // a clock step
        };
        let agree = per_door.iter().all(|a| a.0 == first.0);
        let words = first.0.words();
        let missing: Vec<&str> = case
            .expect
            .split_whitespace()
            .filter(|w| !words.iter().any(|have| have == w))
            .collect();
        if !agree || !missing.is_empty() {
            let mut msg = format!("case {i} {:?} (expected: {}):", case.name, case.expect);
            if !agree {
                msg.push_str(" the doors disagree");
            }
            if !missing.is_empty() {
                msg.push_str(&format!(" missing {missing:?}"));
            }
            for (door, (answer, raw)) in DOORS.iter().zip(&per_door) {
                msg.push_str(&format!(
                    "\n    {door:?}: {}\n        wire: {raw}",
                    answer.words().join(" ")
                ));
            }
            failures.push(msg);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_gives_the_same_decision() {
    let cases = cases();
    let questions = cases
        .iter()
        .filter(|c| !matches!(c.ask, Ask::Advance(_)))
        .count();
    assert!(questions >= 40, "the table has {questions} questions");
    run_table(AdminSetup::Secret, CheckSetup::Default, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_refusals_are_the_same_on_every_door() {
    run_table(
        AdminSetup::Disabled,
        CheckSetup::Default,
        &disabled_admin_cases(),
    )
    .await;
    run_table(
        AdminSetup::UnixSocketOnly,
        CheckSetup::Default,
        &unix_only_admin_cases(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refusals_are_the_same_on_every_door() {
    run_table(
        AdminSetup::Secret,
        CheckSetup::Outsider { with_caller: true },
        &outsider_check_cases(),
    )
    .await;
    #[rustfmt::skip]
    let untrusted = [
        check("no caller is named: the outsider is refused", "victim", "basic", None, None,
            "check_refused reason=untrusted_peer"),
        check_as("no caller is named: a secret changes nothing", Some(CALLER_SECRET), "victim",
            "check_refused"),
    ];
    run_table(
        AdminSetup::Secret,
        CheckSetup::Outsider { with_caller: false },
        &untrusted,
    )
    .await;
}
