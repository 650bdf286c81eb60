//! `VERIFY <token> <method> <path> <client-ip> [HEADER <name> <value>]…`: the access question
//! `/auth` answers over HTTP, asked over RESP. Answers `[status, reason, user_id, role, tier,
//! remaining, retry_after]`.
//!
//! `HEADER` pairs are the request headers `/auth` would read from nginx's subrequest besides
//! the credentials and the client address: those a CORS preflight is recognised by (`Origin`,
//! `Access-Control-Request-Method`) and those key templates name (`header=…`). Without them
//! the request has no headers: an `OPTIONS` is then judged by its rule, never passed as a
//! preflight, and `header=` key parts read as absent.
//!
//! The arguments are checked and the client address resolved at once ([`apply`]); the
//! decision may wait for a key-set refetch (a token naming an unknown key id), so the
//! connection loop [`settle`]s it and [`reply`] writes the answer in its place.

use std::net::IpAddr;

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{err, wrong_arity, Flow, Settled, Work};
use crate::auth::AuthInput;
use crate::gate::{grammar, AccessDecision, AccessQuery, CheckError};
use crate::policy::RequestHeaders;
use crate::resp::frame::{self, Protocol};
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::door::DoorShared;
use crate::server::resp::stats::BatchCounts;

/// The arguments of a `VERIFY`, parsed.
pub(in crate::server::resp) struct VerifyArgs<'a> {
    /// The credentials: the token argument as received.
    credentials: AuthInput<'a>,
    method: &'a str,
    uri: &'a [u8],
    /// The client address the decision is made for (see [`parse`]).
    client_ip: Option<IpAddr>,
    /// The `HEADER` pairs; `None` when there are none.
    headers: Option<HeaderMap>,
}

/// Most `HEADER` pairs one `VERIFY` takes.
pub(in crate::server::resp) const MAX_VERIFY_HEADERS: usize = 8;

/// `VERIFY`: checks its arguments and hands the decision to the loop as [`Work::Verify`].
pub(super) fn apply<'a>(
    conn: &Conn,
    args: &Args<'a>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) -> Flow<'a> {
    match parse(conn, args, door, out, counts) {
        Some(v) => Flow::Await(Work::Verify(v)),
        None => Flow::Continue,
    }
}

/// `VERIFY <token> <method> <path> <client-ip> [HEADER <name> <value>]…`: checks the
/// arguments and resolves the client address; the decision itself is [`settle`]d by the
/// loop.
///
/// The client-IP argument is believed only when this connection's peer is a trusted
/// proxy (`[policy]` trusted proxies; loopback and the Unix socket by default): the
/// gate's rule ([`crate::gate::Gate::claimed_client_ip`]), the one that believes
/// `X-Forwarded-For` only from one over HTTP. From any other peer the peer's own address
/// is used, so a client cannot pick the IP its limits are counted by. The argument must
/// be an IP address either way, so a caller's mistake shows wherever it connects from.
fn parse<'a>(
    conn: &Conn,
    args: &Args<'a>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) -> Option<VerifyArgs<'a>> {
    let pairs = args.len().saturating_sub(5) / 3;
    if args.len() < 5 || (args.len() - 5) % 3 != 0 || pairs > MAX_VERIFY_HEADERS {
        wrong_arity(out, "verify", counts);
        return None;
    }
    let (token, method, uri, ip) = (args[1], args[2], args[3], args[4]);
    let Some(method) = grammar::method(method) else {
        err(
            out,
            "ERR the method must be an HTTP method token (GET, POST…)",
            counts,
        );
        return None;
    };
    let Some(claimed) = std::str::from_utf8(ip)
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok())
    else {
        err(
            out,
            "ERR the client-ip must be an IPv4 or IPv6 address",
            counts,
        );
        return None;
    };
    let headers = if pairs == 0 {
        None
    } else {
        let mut map = HeaderMap::with_capacity(pairs);
        for pair in (5..args.len()).step_by(3) {
            if !args[pair].eq_ignore_ascii_case(b"HEADER") {
                err(
                    out,
                    "ERR syntax error: after the client-ip, only HEADER <name> <value> pairs",
                    counts,
                );
                return None;
            }
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(args[pair + 1]),
                HeaderValue::from_bytes(args[pair + 2]),
            ) else {
                err(
                    out,
                    "ERR a HEADER needs a header name (an HTTP token) and a value without \
                     control characters",
                    counts,
                );
                return None;
            };
            map.append(name, value);
        }
        Some(map)
    };
    // An unknown peer is trusted with nothing, not even an address of its own.
    let client_ip = conn
        .peer
        .and_then(|peer| door.gate.claimed_client_ip(peer, claimed));
    Some(VerifyArgs {
        credentials: AuthInput::token_or_authorization(token),
        method,
        uri,
        client_ip,
        headers,
    })
}

/// The access decision for a `VERIFY`; waits only for a key-set refetch.
pub(super) async fn settle(v: VerifyArgs<'_>, door: &DoorShared) -> Settled {
    let query = AccessQuery {
        method: v.method,
        uri: v.uri,
        credentials: v.credentials,
        client_ip: v.client_ip,
        headers: v.headers.as_ref().map(|h| h as &dyn RequestHeaders),
    };
    Settled::Verify(door.gate.authorize(&query).await)
}

/// Writes the answer of a settled `VERIFY`.
pub(super) fn reply(
    conn: &Conn,
    result: Result<AccessDecision, CheckError>,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    match result {
        Ok(d) => {
            if d.is_allowed() {
                counts.verifies_allowed += 1;
            } else {
                counts.verifies_refused += 1;
            }
            put_verify_reply(out, &d, conn.protocol);
        }
        // A configuration that names a tier or limit the gate does not know: the
        // gate's message, as CHECK shows it.
        Err(e) => err(out, &format!("ERR {e}"), counts),
    }
}

/// `VERIFY`'s reply: `[status, reason, user_id, role, tier, remaining, retry_after]`.
/// Absent strings are null and absent integers -1, as in `CHECK`'s reply.
fn put_verify_reply(out: &mut BytesMut, d: &AccessDecision, protocol: Protocol) {
    let put_opt = |out: &mut BytesMut, v: Option<&[u8]>| match v {
        Some(b) => frame::put_bulk(out, b),
        None => frame::put_null(out, protocol),
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let identity = d.identity.as_deref();
    frame::put_array_header(out, 7);
    frame::put_integer(out, i64::from(d.status()));
    put_opt(out, d.reason().map(str::as_bytes));
    put_opt(
        out,
        identity
            .and_then(|i| i.user_id.as_deref())
            .map(str::as_bytes),
    );
    match identity.filter(|i| !i.roles.is_empty()) {
        Some(i) => frame::put_bulk(out, i.roles.join(",").as_bytes()),
        None => frame::put_null(out, protocol),
    }
    put_opt(out, (!d.tier.is_empty()).then_some(d.tier.as_bytes()));
    let deciding = d.limits.as_ref().map(|l| l.deciding());
    frame::put_integer(out, deciding.map_or(-1, |o| clamp(o.remaining)));
    frame::put_integer(out, d.retry_after().map_or(-1, clamp));
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::policy::Peer;
    use crate::resp::frame::Protocol;
    use crate::server::resp::testing::{
        auth_door, conn, conn_from, run, run_args, some, token, verdict, verify,
    };

    #[test]
    fn verify_answers_the_access_decision() {
        let d = auth_door(None);
        let mut c = conn(false);
        let ip = "198.51.100.7";
        // No token: anonymous, counted per IP.
        assert_eq!(
            verdict(&verify(&mut c, &d, "", "/api/items", ip)),
            (200, None, None, None, some("anonymous"), 1, -1)
        );
        // A valid token, bare or as a whole Authorization value.
        let t = token("eddsa_better_auth");
        assert_eq!(
            verdict(&verify(&mut c, &d, &t, "/api/items", ip)),
            (
                200,
                None,
                some("user_1"),
                some("user"),
                some("basic"),
                2,
                -1
            )
        );
        let bearer = format!("Bearer {t}");
        let v = verdict(&verify(&mut c, &d, &bearer, "/api/me", ip));
        assert_eq!((v.0, v.2, v.5), (200, some("user_1"), 1));
        // A comma-separated role claim, one role mapped to a tier.
        let p = token("eddsa_premium_roles");
        assert_eq!(
            verdict(&verify(&mut c, &d, &p, "/api/items", ip)),
            (
                200,
                None,
                some("user_premium"),
                some("user,premium"),
                some("premium"),
                9,
                -1
            )
        );
        // Refusals: nothing counted, so no tier or remaining.
        let refused = |reason: &str| (401, some(reason), None, None, None, -1, -1);
        assert_eq!(
            verdict(&verify(&mut c, &d, &token("expired"), "/api/items", ip)),
            refused("expired")
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, "not-a-jwt", "/api/items", ip)),
            refused("invalid_token")
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &token("alg_none"), "/api/items", ip)),
            refused("invalid_token")
        );
        // Bytes that are not UTF-8 are an invalid token, not an error of the protocol.
        let r = run_args(
            &mut c,
            &d,
            &[
                b"VERIFY",
                b"\xff\xfe.x.y",
                b"GET",
                b"/api/items",
                ip.as_bytes(),
            ],
        );
        assert_eq!(verdict(&r), refused("invalid_token"));
        assert_eq!(
            verdict(&verify(&mut c, &d, "", "/api/me", ip)),
            refused("missing_token")
        );
        // The policy refuses a known user: 403 with who it was.
        let v = verdict(&verify(&mut c, &d, &t, "/api/users/user_2/files", ip));
        assert_eq!(
            v,
            (
                403,
                some("not_owner"),
                some("user_1"),
                some("user"),
                None,
                -1,
                -1
            )
        );
        let v = verdict(&verify(&mut c, &d, &t, "/api/users/user_1/files", ip));
        assert_eq!((v.0, v.5), (200, 0));
        // basic is 3 an hour per user: the fourth is rate limited (403, as /auth answers).
        let v = verdict(&verify(&mut c, &d, &t, "/api/items", ip));
        assert_eq!(
            (v.0, v.1, v.2, v.4, v.5),
            (403, some("rate_limited"), some("user_1"), some("basic"), 0)
        );
        assert!(v.6 > 0 && v.6 <= 3600, "retry-after {}", v.6);
        // A path that cannot be judged.
        assert_eq!(
            verdict(&verify(&mut c, &d, "", "/../etc/passwd", ip)).1,
            some("bad_path")
        );
        // RESP3: absent strings are RESP3 nulls.
        c.protocol = Protocol::Resp3;
        let r = verify(&mut c, &d, "bogus", "/api/items", ip);
        assert_eq!(
            r,
            "*7\r\n:401\r\n$13\r\ninvalid_token\r\n_\r\n_\r\n_\r\n:-1\r\n:-1\r\n"
        );
        let info = run(&mut c, &d, "INFO stats");
        assert!(info.contains("verifies_allowed:5\r\n"), "{info}");
        assert!(info.contains("verifies_refused:9\r\n"), "{info}");
    }

    #[test]
    fn verify_argument_errors() {
        let d = auth_door(None);
        let mut c = conn(false);
        assert_eq!(
            run(&mut c, &d, "VERIFY t GET /"),
            "-ERR wrong number of arguments for 'verify' command\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "VERIFY t GET / 1.2.3.4 x"),
            "-ERR wrong number of arguments for 'verify' command\r\n"
        );
        for ip in [
            "nope",
            "",
            "300.1.1.1",
            "10.0.0.1:80",
            "[::1]",
            "fe80::1%eth0",
        ] {
            let r = run_args(&mut c, &d, &[b"VERIFY", b"", b"GET", b"/", ip.as_bytes()]);
            assert_eq!(
                r, "-ERR the client-ip must be an IPv4 or IPv6 address\r\n",
                "{ip:?}"
            );
        }
        for method in [&b""[..], b"GE T", b"G\xffT", &[b'A'; 33]] {
            let r = run_args(&mut c, &d, &[b"VERIFY", b"", method, b"/", b"10.0.0.1"]);
            assert!(r.starts_with("-ERR the method must be"), "{r}");
        }
        // Lower-case methods and IPv6 clients are fine.
        let v = verdict(&verify(&mut c, &d, "", "/x", "2001:db8::1"));
        assert_eq!(v.0, 200);
        let r = run_args(
            &mut c,
            &d,
            &[b"verify", b"", b"patch", b"/x", b"::ffff:10.0.0.9"],
        );
        assert_eq!(verdict(&r).0, 200);
    }

    #[test]
    fn the_client_ip_is_believed_only_from_a_trusted_proxy() {
        // anonymous: 2 an hour per client IP.
        let d = auth_door(None);
        // Loopback is a trusted proxy by default: each claimed IP has its own counter.
        let mut proxy = conn(false);
        for ip in ["10.0.0.1", "10.0.0.1", "10.0.0.2"] {
            let v = verdict(&verify(&mut proxy, &d, "", "/x", ip));
            assert_eq!(v.0, 200, "{ip}");
        }
        assert_eq!(
            verdict(&verify(&mut proxy, &d, "", "/x", "10.0.0.1")).1,
            some("rate_limited")
        );
        // So is the Unix socket (the same IP's counter: the claim is believed).
        let mut unix = conn(true);
        assert_eq!(verdict(&verify(&mut unix, &d, "", "/x", "10.0.0.2")).5, 0);
        // Another peer's claims are ignored: its own address is counted, whatever it says.
        let mut outsider = conn_from(Some(Peer::Ip(IpAddr::from([203, 0, 113, 9]))));
        assert_eq!(
            verdict(&verify(&mut outsider, &d, "", "/x", "10.0.0.3")).5,
            1
        );
        assert_eq!(
            verdict(&verify(&mut outsider, &d, "", "/x", "10.0.0.4")).5,
            0
        );
        assert_eq!(
            verdict(&verify(&mut outsider, &d, "", "/x", "10.0.0.5")).1,
            some("rate_limited")
        );
        // It must still send an address.
        assert!(verify(&mut outsider, &d, "", "/x", "me").starts_with("-ERR the client-ip"));
    }

    #[test]
    fn header_pairs_make_a_cors_preflight_and_are_checked() {
        let d = auth_door(None);
        let mut c = conn(false);
        let ip = b"198.51.100.7";
        let preflight: [&[u8]; 11] = [
            b"VERIFY",
            b"",
            b"OPTIONS",
            b"/api/users/bob/files",
            ip,
            b"HEADER",
            b"Origin",
            b"https://app.example",
            b"header",
            b"access-control-request-method",
            b"DELETE",
        ];
        // Passed unjudged: anonymous, no tier, nothing counted.
        let passed = (200, None, None, None, None, -1, -1);
        assert_eq!(verdict(&run_args(&mut c, &d, &preflight)), passed);
        assert_eq!(verdict(&run_args(&mut c, &d, &preflight)), passed);
        // Without the headers it is an OPTIONS like any other, judged by its rule.
        assert_eq!(
            verdict(&run_args(&mut c, &d, &preflight[..5])).1,
            some("missing_token")
        );
        assert_eq!(
            verdict(&run_args(&mut c, &d, &preflight[..8])).1,
            some("missing_token")
        );
        let info = run(&mut c, &d, "INFO stats");
        assert!(info.contains("verifies_allowed:2\r\n"), "{info}");
        // Mistakes in the pairs.
        let mut bad = preflight;
        bad[5] = b"HEADERS";
        assert!(run_args(&mut c, &d, &bad).starts_with("-ERR syntax error"));
        let mut bad = preflight;
        bad[6] = b"Ori gin";
        assert!(run_args(&mut c, &d, &bad).starts_with("-ERR a HEADER needs"));
        let mut bad = preflight;
        bad[7] = b"a\r\nb";
        assert!(run_args(&mut c, &d, &bad).starts_with("-ERR a HEADER needs"));
        let mut many: Vec<&[u8]> = preflight[..5].to_vec();
        for _ in 0..=super::MAX_VERIFY_HEADERS {
            many.extend([&b"HEADER"[..], b"x-a", b"1"]);
        }
        assert_eq!(
            run_args(&mut c, &d, &many),
            "-ERR wrong number of arguments for 'verify' command\r\n"
        );
    }
}
