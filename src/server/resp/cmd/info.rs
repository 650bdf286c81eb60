//! `INFO [section…]`: the door's state in Redis's INFO format — server, clients, the door's
//! counters (commands, checks, verifies, revocations, errors, event-loop sleeps), the
//! limiter, and the configuration it runs with; and, asked for by name (`INFO cluster`), the
//! cluster's peers (`cluster::status`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::door::DoorShared;

/// `INFO [section…]`: a bulk string in Redis's INFO format.
pub(super) fn apply(args: &Args<'_>, door: &DoorShared, out: &mut BytesMut) {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let s = &door.stats;
    let mut text = String::with_capacity(1024);
    let mut section = |title: &str, body: &dyn Fn(&mut String)| {
        if want(&title.to_ascii_lowercase()) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let _ = write!(text, "# {title}\r\n");
            body(&mut text);
        }
    };
    section("Server", &|t| {
        let _ = write!(
            t,
            "tollgate_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\nlisteners:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            door.started.elapsed().as_secs(),
            door.listening.lock().join(","),
        );
    });
    section("Clients", &|t| {
        let _ = write!(
            t,
            "connected_clients:{}\r\nmaxclients:{}\r\n",
            door.slots.open(),
            door.options.max_connections,
        );
    });
    section("Stats", &|t| {
        let _ = write!(
            t,
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nchecks_allowed:{}\r\nchecks_denied:{}\r\nverifies_allowed:{}\r\nverifies_refused:{}\r\nrevocations:{}\r\ncommand_errors:{}\r\nprotocol_errors:{}\r\nauth_failures:{}\r\nevent_loop_sleeps:{}\r\nevent_loop_idle_polls:{}\r\n",
            s.connections.load(Ordering::Relaxed),
            s.total(|x| &x.commands),
            s.total(|x| &x.checks_allowed),
            s.total(|x| &x.checks_denied),
            s.total(|x| &x.verifies_allowed),
            s.total(|x| &x.verifies_refused),
            s.total(|x| &x.revocations),
            s.total(|x| &x.command_errors),
            s.total(|x| &x.protocol_errors),
            s.total(|x| &x.auth_failures),
            door.loops.sleeps.get(),
            door.loops.idle_polls.get(),
        );
    });
    section("Limiter", &|t| {
        let l = door.gate.limiter();
        let _ = write!(
            t,
            "tracked_states:{}\r\nevictions:{}\r\n",
            l.tracked_states(),
            l.evictions(),
        );
    });
    section("Config", &|t| {
        let o = &door.options;
        let _ = write!(t, "summary:{}\r\n", door.gate.config().summary());
        let tiers: Vec<String> = door
            .gate
            .tiers()
            .iter()
            .map(|spec| format!("{}={}/{}s", spec.name, spec.limit, spec.window.as_secs()))
            .collect();
        let limits: Vec<String> = door
            .gate
            .limits()
            .iter()
            .map(|spec| format!("{}={}/{}s", spec.name, spec.limit, spec.window.as_secs()))
            .collect();
        let _ = write!(
            t,
            "tiers:{}\r\nlimits:{}\r\nmax_bulk_bytes:{}\r\nmax_args:{}\r\nmax_inline_bytes:{}\r\nmax_command_bytes:{}\r\nmax_pending_reply_bytes:{}\r\nidle_timeout_seconds:{}\r\nthreads:{}\r\nidle_poll_us:{}\r\nadmin:{}\r\n",
            tiers.join(","),
            limits.join(","),
            o.limits.max_bulk_bytes,
            o.limits.max_args,
            o.limits.max_inline_bytes,
            o.limits.max_command_bytes,
            o.max_pending_reply_bytes,
            o.idle_timeout.as_secs(),
            o.threads,
            // Polling applies to the door's own event loops only.
            if o.threads == 0 { 0 } else { o.idle_poll.as_micros() },
            door.gate.admin().describe(),
        );
    });
    // Asked for by name only: a peer list is long, and Redis's own sections come first.
    if wanted.iter().any(|w| w == "cluster") {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str("# Cluster\r\n");
        match &door.options.cluster {
            Some(status) => status.report().info_lines(&mut text),
            None => text.push_str(crate::cluster::status::INFO_DISABLED),
        }
    }
    frame::put_bulk(out, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn info_reports_sections() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        let info = run(&mut c, &d, "INFO");
        assert!(info.contains("tiers:basic=3/3600s"), "{info}");
        assert!(info.contains("# Stats"), "{info}");
        let server_only = run(&mut c, &d, "INFO server");
        assert!(server_only.contains("tollgate_version:") && !server_only.contains("# Stats"));
    }
}
