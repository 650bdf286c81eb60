//! `CHECK <key> <tier> [HITS n] [LIMIT name] [WITHNAME]`: the rate-limit question, the hot
//! path of the protocol. Answers `[allowed, limit, remaining, reset_s, retry_after_s]`, with
//! the deciding limit's name when `WITHNAME` is given.
//!
//! Who may ask is the gate's decision ([`CheckAccess`](crate::gate::CheckAccess)): the
//! connection's peer (asked once per connection) or a caller's `AUTH <name> <secret>`. A
//! refused caller gets `NOPERM` (its address is not trusted and no caller could prove
//! itself) or `NOAUTH` (a caller's secret is needed).

use bytes::BytesMut;

use super::{err, is, wrong_arity};
use crate::gate::{
    grammar, retry_after, CheckCaller, CheckCredential, CheckError, CheckQuery, CheckRefusal,
};
use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::door::DoorShared;
use crate::server::resp::stats::BatchCounts;

const ERR_SYNTAX: &str = "ERR syntax error";

/// `CHECK <key> <tier> [HITS n] [LIMIT name] [WITHNAME]` →
/// `[allowed, limit, remaining, reset_s, retry_after_s]` (+ the deciding limit's name).
pub(super) fn apply(
    conn: &mut Conn,
    args: &Args<'_>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    if args.len() < 3 {
        return wrong_arity(out, "check", counts);
    }
    let Ok(key) = std::str::from_utf8(args[1]) else {
        return err(out, "ERR the key must be UTF-8 text", counts);
    };
    let Ok(tier) = std::str::from_utf8(args[2]) else {
        return err(out, "ERR the tier must be UTF-8 text", counts);
    };
    let mut hits: Option<u64> = None;
    let mut limit: Option<&str> = None;
    let mut with_name = false;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i];
        let value = args.get(i + 1).copied();
        if is(opt, "HITS") && hits.is_none() {
            let Some(v) = value else {
                return err(out, ERR_SYNTAX, counts);
            };
            match grammar::hits(v) {
                Some(n) => hits = Some(n),
                None => return err(out, "ERR HITS must be an integer of at least 0", counts),
            }
            i += 2;
        } else if is(opt, "LIMIT") && limit.is_none() {
            let Some(v) = value else {
                return err(out, ERR_SYNTAX, counts);
            };
            match std::str::from_utf8(v) {
                Ok(name) => limit = Some(name),
                Err(_) => return err(out, "ERR the limit must be UTF-8 text", counts),
            }
            i += 2;
        } else if is(opt, "WITHNAME") && !with_name {
            with_name = true;
            i += 1;
        } else {
            return err(out, ERR_SYNTAX, counts);
        }
    }
    let query = CheckQuery {
        key,
        tier,
        hits: hits.unwrap_or(1),
        limit,
    };
    let peer = conn.peer;
    let caller = CheckCaller {
        standing: *conn
            .check
            .get_or_insert_with(|| door.gate.check_standing(peer)),
        credential: conn
            .check_proof
            .map_or(CheckCredential::None, CheckCredential::Proven),
    };
    match door.gate.check(&caller, &query) {
        Ok(decision) => {
            let o = decision.deciding();
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let retry = retry_after(&decision).map_or(-1, clamp);
            if decision.allowed {
                counts.checks_allowed += 1;
            } else {
                counts.checks_denied += 1;
            }
            frame::put_array_header(out, if with_name { 6 } else { 5 });
            frame::put_integer(out, i64::from(decision.allowed));
            frame::put_integer(out, clamp(o.limit));
            frame::put_integer(out, clamp(o.remaining));
            frame::put_integer(out, clamp(o.reset_secs));
            frame::put_integer(out, retry);
            if with_name {
                frame::put_bulk(out, o.name.as_bytes());
            }
        }
        Err(e) => {
            let msg = match &e {
                // The gate's messages, with Redis's error code in front.
                CheckError::MissingKey
                | CheckError::KeyTooLong(_)
                | CheckError::UnknownTier(_)
                | CheckError::UnknownLimit(_)
                | CheckError::HitsOutOfRange { .. } => format!("ERR {e}"),
                CheckError::NotAllowed(CheckRefusal::UntrustedPeer) => format!("NOPERM {e}"),
                CheckError::NotAllowed(CheckRefusal::SecretRequired | CheckRefusal::SecretInvalid) => {
                    "NOAUTH CHECK from this address needs a caller's secret: AUTH <caller> <secret> \
                     ([[check.callers]])"
                        .to_string()
                }
            };
            err(out, &msg, counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn check_replies_and_errors() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        // The integers of an all-integer array reply.
        let ints = |reply: &str| -> Vec<i64> {
            reply
                .split("\r\n")
                .filter_map(|l| l.strip_prefix(':'))
                .map(|n| n.parse().unwrap())
                .collect()
        };
        let first = run(&mut c, &d, "CHECK k basic");
        assert!(first.starts_with("*5\r\n"), "{first}");
        let v = ints(&first);
        assert_eq!((v[0], v[1], v[2], v[4]), (1, 3, 2, -1), "{first}");
        // Reset: the time until both windows of the sliding window have passed.
        assert!(v[3] > 0 && v[3] <= 3600, "{first}");
        let named = run(&mut c, &d, "check k basic hits 2 WITHNAME");
        assert!(named.starts_with("*6\r\n") && named.ends_with("$5\r\nbasic\r\n"));
        assert_eq!(ints(&named)[..3], [1, 3, 0], "{named}");
        let denied = run(&mut c, &d, "CHECK k basic");
        let v = ints(&denied);
        assert_eq!((v[0], v[1], v[2]), (0, 3, 0), "{denied}");
        assert!(v[4] > 0, "retry-after is set on a denial: {denied}");
        for (line, want) in [
            (
                "CHECK k",
                "-ERR wrong number of arguments for 'check' command\r\n",
            ),
            ("CHECK k gold", "-ERR unknown tier \"gold\"\r\n"),
            ("CHECK k basic HITS", "-ERR syntax error\r\n"),
            (
                "CHECK k basic HITS -1",
                "-ERR HITS must be an integer of at least 0\r\n",
            ),
            ("CHECK k basic HITS 1 HITS 1", "-ERR syntax error\r\n"),
            (
                "CHECK k basic LIMIT nope",
                "-ERR unknown limit \"nope\"\r\n",
            ),
            ("CHECK k basic BOGUS", "-ERR syntax error\r\n"),
        ] {
            assert_eq!(run(&mut c, &d, line), want, "{line}");
        }
    }

    /// Who may ask: the Unix socket and loopback by default; elsewhere NOPERM, or NOAUTH
    /// until `AUTH <caller> <secret>`, which RESET forgets.
    #[test]
    fn only_admitted_callers_may_check() {
        use crate::config::CheckCallerConfig;
        use crate::policy::Peer;
        use crate::server::resp::testing::{conn_from, door_with, CALLER_SECRET};
        let outside = || conn_from(Some(Peer::Ip([10, 0, 0, 5].into())));

        let d = door(Admin::Disabled);
        assert!(run(&mut conn(true), &d, "CHECK k basic").starts_with("*5\r\n"));
        assert!(run(&mut conn(false), &d, "CHECK k basic").starts_with("*5\r\n"));
        let refused = run(&mut outside(), &d, "CHECK k basic");
        assert!(
            refused.starts_with("-NOPERM ") && refused.contains("[check] networks"),
            "{refused}"
        );
        assert!(run(&mut conn_from(None), &d, "CHECK k basic").starts_with("-NOPERM "));

        let with_caller = door_with(Admin::Disabled, |c| {
            c.check.networks = vec!["192.0.2.0/24".into()];
            c.check.unix_socket = false;
            c.check.callers = vec![CheckCallerConfig {
                name: "api".into(),
                secret_env: "API".into(),
            }];
        });
        let mut unix = conn(true);
        assert!(run(&mut unix, &with_caller, "CHECK k basic").starts_with("-NOAUTH "));
        let mut c = outside();
        let noauth = run(&mut c, &with_caller, "CHECK k basic");
        assert!(
            noauth.starts_with("-NOAUTH ") && noauth.contains("AUTH <caller> <secret>"),
            "{noauth}"
        );
        assert!(run(&mut c, &with_caller, "AUTH api wrong-secret").starts_with("-WRONGPASS"));
        assert!(run(
            &mut c,
            &with_caller,
            &format!("AUTH nobody {CALLER_SECRET}")
        )
        .starts_with("-WRONGPASS"));
        assert!(run(&mut c, &with_caller, "CHECK k basic").starts_with("-NOAUTH "));
        assert_eq!(
            run(&mut c, &with_caller, &format!("AUTH api {CALLER_SECRET}")),
            "+OK\r\n"
        );
        assert!(run(&mut c, &with_caller, "CHECK k basic").starts_with("*5\r\n"));
        // A caller's secret is not the admin's.
        assert!(c.admin.is_none());
        assert_eq!(run(&mut c, &with_caller, "RESET"), "+RESET\r\n");
        assert!(run(&mut c, &with_caller, "CHECK k basic").starts_with("-NOAUTH "));
        // HELLO … AUTH proves a caller too.
        let hello = run(
            &mut c,
            &with_caller,
            &format!("HELLO 2 AUTH api {CALLER_SECRET}"),
        );
        assert!(hello.starts_with('*'), "{hello}");
        assert!(run(&mut c, &with_caller, "CHECK k basic").starts_with("*5\r\n"));
        let text = String::from_utf8(with_caller.0.gate.render_metrics()).unwrap();
        assert!(
            text.contains("tollgate_check_refusals_total{reason=\"secret_required\"} 4"),
            "{text}"
        );
        let text = String::from_utf8(d.0.gate.render_metrics()).unwrap();
        assert!(text.contains("tollgate_check_refusals_total{reason=\"untrusted_peer\"} 2"));
    }
}
