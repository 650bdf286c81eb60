//! Prometheus metrics: one registry per [`crate::gate::Gate`], the counters and histograms
//! tollgate exports on `GET /metrics`.
//!
//! The decision path records into pre-resolved handles ([`DecisionCounters`], the latency
//! [`Histogram`]) rather than looking label values up per request: a label lookup hashes the
//! label strings and takes a read lock, which would cost more than the decision itself.
//! Values the limiter and the authenticator already keep (tracked states, evictions, auth
//! outcomes, token-cache and key-set figures) are copied in at scrape time
//! instead of being counted twice.

use parking_lot::Mutex;

use crate::auth::AuthSnapshot;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Bucket bounds of the decision-latency histogram, in seconds: a decision normally takes
/// well under a microsecond, so the buckets start at 250 ns; the upper ones catch lock
/// contention and preemption.
const DECISION_BUCKETS: [f64; 12] = [
    0.000_000_25,
    0.000_000_5,
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_5,
    0.001,
    0.01,
];

/// Every result of an access decision: `allowed`, `preflight` (a CORS preflight passed
/// unjudged) and each `X-Tollgate-Reason`.
const ACCESS_RESULTS: [&str; 12] = [
    "allowed",
    "preflight",
    "rate_limited",
    "forbidden",
    "not_owner",
    "bad_path",
    "missing_token",
    "invalid_token",
    "expired",
    "revoked",
    "invalid_api_key",
    "keys_unavailable",
];

/// Every reason a caller may be refused the rate-limit question (`gate::CheckRefusal`).
pub const CHECK_REFUSALS: [&str; 3] = ["untrusted_peer", "secret_required", "secret_invalid"];

/// Which front door a connection came through (`listener` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    HttpTcp,
    HttpUnix,
    /// The listener of `/metrics`, `/healthz` and `/readyz` only (`server.metrics`).
    HttpMetrics,
    RespTcp,
    RespUnix,
}

impl Listener {
    pub fn label(self) -> &'static str {
        match self {
            Listener::HttpTcp => "http_tcp",
            Listener::HttpUnix => "http_unix",
            Listener::HttpMetrics => "http_metrics",
            Listener::RespTcp => "resp_tcp",
            Listener::RespUnix => "resp_unix",
        }
    }
}

/// Pre-resolved `tollgate_decisions_total{tier, outcome}` counters of one tier.
#[derive(Clone)]
pub struct DecisionCounters {
    pub allowed: IntCounter,
    pub denied: IntCounter,
}

/// Pre-resolved connection metrics of one listener.
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections accepted since start.
    pub accepted: IntCounter,
    /// Connections closed at once because `max_connections` were open and none was idle.
    pub rejected: IntCounter,
    /// Idle connections closed to make room for a new one at `max_connections`.
    pub evicted: IntCounter,
}

/// Every metric tollgate exports.
pub struct Metrics {
    registry: Registry,
    decisions: IntCounterVec,
    denials: IntCounterVec,
    check_errors: IntCounterVec,
    check_refusals: IntCounterVec,
    decision_seconds: Histogram,
    tracked_states: IntGauge,
    evictions: IntCounter,
    config_reloads: IntCounterVec,
    snapshot_writes: IntCounterVec,
    snapshot_states: IntCounterVec,
    abuse_signals: IntCounterVec,
    connections_open: IntGaugeVec,
    connections_accepted: IntCounterVec,
    connections_rejected: IntCounterVec,
    connections_evicted: IntCounterVec,
    http_problems: IntCounterVec,
    access: IntCounterVec,
    /// `access` resolved for each of [`ACCESS_RESULTS`], so the request path skips the
    /// label lookup (and every series exists from the start, for alerts).
    access_by_result: [IntCounter; ACCESS_RESULTS.len()],
    auth: AuthMetrics,
    resp_loop_sleeps: IntCounter,
    resp_loop_idle_polls: IntCounter,
    connection_budget: crate::server::budget::BudgetMetrics,
    /// Serialises scrapes so that copying the limiter's eviction count in is race-free.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    registry
        .register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

impl Metrics {
    /// A fresh registry holding tollgate's metrics. Each [`crate::gate::Gate`] owns one, so
    /// that tests running several servers in one process do not share counts.
    pub fn new() -> Self {
        let registry = Registry::new();
        // The standard process_* series (process_cpu_seconds_total,
        // process_resident_memory_bytes, process_open_fds, process_start_time_seconds…),
        // read from /proc at each scrape. Registering a fresh collector cannot collide.
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let decisions = counter_vec(
            &registry,
            "tollgate_decisions_total",
            "Rate-limit decisions by tier and outcome (allowed, denied).",
            &["tier", "outcome"],
        );
        let denials = counter_vec(
            &registry,
            "tollgate_denials_total",
            "Denied requests by the limit that denied them.",
            &["limit"],
        );
        let check_errors = counter_vec(
            &registry,
            "tollgate_check_errors_total",
            "Checks refused as malformed, by reason.",
            &["reason"],
        );
        let check_refusals = counter_vec(
            &registry,
            "tollgate_check_refusals_total",
            "Rate-limit questions (/check, CHECK) refused because the caller may not ask ([check]), by reason.",
            &["reason"],
        );
        // Every series exists from the start, so that an alert on them sees a 0.
        for r in CHECK_REFUSALS {
            check_refusals.with_label_values(&[r]);
        }
        let decision_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_decision_seconds",
                "Time the decision core took per decision (limiter included, I/O excluded).",
            )
            .buckets(DECISION_BUCKETS.to_vec()),
        )
        .expect("static histogram definition");
        registry
            .register(Box::new(decision_seconds.clone()))
            .expect("registered once");
        let tracked_states = IntGauge::new(
            "tollgate_tracked_states",
            "(limit, key) states the limiter holds now.",
        )
        .expect("static gauge definition");
        registry
            .register(Box::new(tracked_states.clone()))
            .expect("registered once");
        let evictions = IntCounter::new(
            "tollgate_evictions_total",
            "States evicted because the limiter reached max_states.",
        )
        .expect("static counter definition");
        registry
            .register(Box::new(evictions.clone()))
            .expect("registered once");
        let build_info = gauge_vec(
            &registry,
            "tollgate_build_info",
            "Always 1; the labels say which build runs.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let config_reloads = counter_vec(
            &registry,
            "tollgate_config_reloads_total",
            "Configuration reloads by result (ok, failed).",
            &["result"],
        );
        // Both series exist from the start so that alerts on `failed` see a 0, not an absence.
        for r in ["ok", "failed"] {
            config_reloads.with_label_values(&[r]);
        }
        let snapshot_writes = counter_vec(
            &registry,
            "tollgate_limiter_snapshot_writes_total",
            "Snapshots of the limiter's counts written (limiter.snapshot_path), by result (ok, failed).",
            &["result"],
        );
        for r in ["ok", "failed"] {
            snapshot_writes.with_label_values(&[r]);
        }
        let snapshot_states = counter_vec(
            &registry,
            "tollgate_limiter_snapshot_states_total",
            "States read from the limiter's snapshot at start, by outcome: restored, ended (their \
             windows had passed), lost (corrupt, cut off, another hash key, over the cap).",
            &["outcome"],
        );
        for o in ["restored", "ended", "lost"] {
            snapshot_states.with_label_values(&[o]);
        }
        let abuse_signals = counter_vec(
            &registry,
            "tollgate_abuse_signals_total",
            "Keys denied after asking for more than twice their limit, once per key and window.",
            &["limit"],
        );
        let connections_open = gauge_vec(
            &registry,
            "tollgate_connections_open",
            "Client connections open now, by listener.",
            &["listener"],
        );
        let connections_accepted = counter_vec(
            &registry,
            "tollgate_connections_accepted_total",
            "Client connections accepted, by listener.",
            &["listener"],
        );
        let connections_rejected = counter_vec(
            &registry,
            "tollgate_connections_rejected_total",
            "Connections closed at once because max_connections were open and none was idle, by listener.",
            &["listener"],
        );
        let connections_evicted = counter_vec(
            &registry,
            "tollgate_connections_evicted_total",
            "Idle connections closed to make room for a new one at max_connections, by listener.",
            &["listener"],
        );
        let http_problems = counter_vec(
            &registry,
            "tollgate_http_problems_total",
            "HTTP requests answered with a problem (RFC 9457), by problem type.",
            &["type"],
        );
        let access = counter_vec(
            &registry,
            "tollgate_access_total",
            "Access decisions (/auth, VERIFY) by result: allowed, preflight (a CORS preflight passed unjudged), or the X-Tollgate-Reason of the denial.",
            &["result"],
        );
        let access_by_result = ACCESS_RESULTS.map(|r| access.with_label_values(&[r]));
        let auth = AuthMetrics::new(&registry);
        let resp_loop_sleeps = counter(
            &registry,
            "tollgate_resp_event_loop_sleeps_total",
            "Times a RESP event loop blocked waiting for events.",
        );
        let resp_loop_idle_polls = counter(
            &registry,
            "tollgate_resp_event_loop_idle_polls_total",
            "Times a RESP event loop polled for events again instead of blocking (resp.idle_poll_us).",
        );
        let connection_budget = crate::server::budget::BudgetMetrics {
            held: gauge(
                &registry,
                "tollgate_connection_buffer_bytes",
                "Bytes held by the buffers of every client connection together (server.max_connection_buffer_bytes bounds their growth).",
            ),
            peak: gauge(
                &registry,
                "tollgate_connection_buffer_peak_bytes",
                "The most bytes the buffers of every client connection together have held at once.",
            ),
            limit: gauge(
                &registry,
                "tollgate_connection_buffer_budget_bytes",
                "server.max_connection_buffer_bytes: the budget of every connection's buffers together.",
            ),
            backpressure: counter(
                &registry,
                "tollgate_connection_buffer_backpressure_total",
                "Times a connection wrote its pending replies before reading more because the connection buffer budget was exhausted.",
            ),
            closed: counter(
                &registry,
                "tollgate_connection_buffer_closed_total",
                "Connections closed because the connection buffer budget was exhausted and they did not read their replies, or needed a larger input buffer.",
            ),
            trims: counter(
                &registry,
                "tollgate_memory_trims_total",
                "Times the allocator was asked to return freed memory to the system after connection buffers were released.",
            ),
        };
        Self {
            registry,
            connection_budget,
            access,
            access_by_result,
            auth,
            resp_loop_sleeps,
            resp_loop_idle_polls,
            decisions,
            denials,
            check_errors,
            check_refusals,
            decision_seconds,
            tracked_states,
            evictions,
            config_reloads,
            snapshot_writes,
            snapshot_states,
            abuse_signals,
            connections_open,
            connections_accepted,
            connections_rejected,
            connections_evicted,
            http_problems,
            scrape: Mutex::new(()),
        }
    }

    /// The registry, for components that add metrics of their own (auth, cluster).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The decision counters of one tier, resolved once (at configuration load).
    pub fn decision_counters(&self, tier: &str) -> DecisionCounters {
        DecisionCounters {
            allowed: self.decisions.with_label_values(&[tier, "allowed"]),
            denied: self.decisions.with_label_values(&[tier, "denied"]),
        }
    }

    /// The denial counter of one limit, resolved once.
    pub fn denial_counter(&self, limit: &str) -> IntCounter {
        self.denials.with_label_values(&[limit])
    }

    /// The decision-latency histogram.
    pub fn decision_seconds(&self) -> &Histogram {
        &self.decision_seconds
    }

    /// Counts a malformed check (cold path).
    pub fn check_error(&self, reason: &str) {
        self.check_errors.with_label_values(&[reason]).inc();
    }

    /// Counts a caller refused by `[check]` (cold path).
    pub fn check_refusal(&self, reason: &str) {
        self.check_refusals.with_label_values(&[reason]).inc();
    }

    /// The abuse-signal counter of one limit, resolved once (so that every configured limit
    /// exports a 0 from the start, which alerts can rely on).
    pub fn abuse_counter(&self, limit: &str) -> IntCounter {
        self.abuse_signals.with_label_values(&[limit])
    }

    /// Counts a configuration reload.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// Counts one snapshot write of the limiter's counts.
    pub fn snapshot_written(&self, ok: bool) {
        self.snapshot_writes
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// Counts the states a snapshot read at start gave back and did not.
    pub fn snapshot_restored(&self, restored: u64, ended: u64, lost: u64) {
        for (outcome, n) in [("restored", restored), ("ended", ended), ("lost", lost)] {
            self.snapshot_states.with_label_values(&[outcome]).inc_by(n);
        }
    }

    /// Counts an access decision by its result (`allowed` or the denial reason) on a
    /// pre-resolved counter; a result outside `ACCESS_RESULTS` takes the label lookup.
    pub fn access(&self, result: &str) {
        match ACCESS_RESULTS.iter().position(|r| *r == result) {
            Some(i) => self.access_by_result[i].inc(),
            None => self.access.with_label_values(&[result]).inc(),
        }
    }

    /// Counts an HTTP problem answer (cold path).
    pub fn http_problem(&self, slug: &str) {
        self.http_problems.with_label_values(&[slug]).inc();
    }

    /// The connection metrics of one listener, resolved once per listener.
    pub fn connections(&self, listener: Listener) -> ConnectionMetrics {
        let l = [listener.label()];
        ConnectionMetrics {
            open: self.connections_open.with_label_values(&l),
            accepted: self.connections_accepted.with_label_values(&l),
            rejected: self.connections_rejected.with_label_values(&l),
            evicted: self.connections_evicted.with_label_values(&l),
        }
    }

    /// The series of the connection buffer budget ([`crate::server::budget`]).
    pub fn connection_budget(&self) -> crate::server::budget::BudgetMetrics {
        self.connection_budget.clone()
    }

    /// The counters the RESP event loops keep (they count into these directly).
    pub fn event_loop_stats(&self) -> crate::server::resp::idle_poll::LoopStats {
        crate::server::resp::idle_poll::LoopStats {
            sleeps: self.resp_loop_sleeps.clone(),
            idle_polls: self.resp_loop_idle_polls.clone(),
        }
    }

    /// Renders every metric in the Prometheus text format, after copying in the limiter's
    /// own figures.
    pub fn render(
        &self,
        tracked_states: usize,
        evictions_total: u64,
        auth: Option<&AuthSnapshot>,
    ) -> Vec<u8> {
        let _one_scrape_at_a_time = self.scrape.lock();
        if let Some(a) = auth {
            self.auth.copy_in(a);
        }
        self.tracked_states
            .set(i64::try_from(tracked_states).unwrap_or(i64::MAX));
        copy_counter(&self.evictions, evictions_total);
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail on I/O; an error would mean a malformed metric
        // family, which the static definitions above rule out. Answer what was written.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Raises a counter that mirrors a count kept elsewhere to that count (never lowers it).
fn copy_counter(c: &IntCounter, total: u64) {
    let seen = c.get();
    if total > seen {
        c.inc_by(total - seen);
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static counter definition");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static gauge definition");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

/// The authentication metrics. The authenticator counts in plain atomics on the request
/// path; these families are filled from its [`AuthSnapshot`] at scrape time.
struct AuthMetrics {
    outcomes: IntCounterVec,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_evictions: IntCounter,
    cache_entries: IntGauge,
    cache_hit_ratio: Gauge,
    keyset_ready: IntGaugeVec,
    keyset_keys: IntGaugeVec,
    keyset_fetches: IntCounterVec,
    keyset_failures: IntCounterVec,
    kid_refetches: IntCounterVec,
    kid_refetches_suppressed: IntCounterVec,
    revocations: IntGauge,
    revocations_recorded: IntCounter,
    revoked_refusals: IntCounter,
    revocation_log_records: IntGaugeVec,
}

impl AuthMetrics {
    fn new(r: &Registry) -> Self {
        let cache_hit_ratio = Gauge::new(
            "tollgate_token_cache_hit_ratio",
            "Share of token verifications answered from the verified-token cache since start.",
        )
        .expect("static gauge definition");
        r.register(Box::new(cache_hit_ratio.clone()))
            .expect("registered once");
        Self {
            outcomes: counter_vec(
                r,
                "tollgate_auth_outcomes_total",
                "Credential checks by outcome: ok, or the reason of the refusal.",
                &["reason"],
            ),
            cache_hits: counter(
                r,
                "tollgate_token_cache_hits_total",
                "Tokens answered from the verified-token cache.",
            ),
            cache_misses: counter(
                r,
                "tollgate_token_cache_misses_total",
                "Tokens not in the verified-token cache (verified in full).",
            ),
            cache_evictions: counter(
                r,
                "tollgate_token_cache_evictions_total",
                "Verified tokens evicted because the cache was full.",
            ),
            cache_entries: gauge(
                r,
                "tollgate_token_cache_entries",
                "Verified tokens held in the cache now.",
            ),
            cache_hit_ratio,
            keyset_ready: gauge_vec(
                r,
                "tollgate_keyset_ready",
                "1 when the issuer has a key set, by issuer.",
                &["issuer"],
            ),
            keyset_keys: gauge_vec(
                r,
                "tollgate_keyset_keys",
                "Keys in the issuer's current key set, by issuer.",
                &["issuer"],
            ),
            keyset_fetches: counter_vec(
                r,
                "tollgate_keyset_fetches_total",
                "Key-set fetches, by issuer.",
                &["issuer"],
            ),
            keyset_failures: counter_vec(
                r,
                "tollgate_keyset_fetch_failures_total",
                "Key-set fetches that failed (the last good set stays in use), by issuer.",
                &["issuer"],
            ),
            kid_refetches: counter_vec(
                r,
                "tollgate_keyset_unknown_kid_refetches_total",
                "Refetches triggered by a token with an unknown key id, by issuer.",
                &["issuer"],
            ),
            kid_refetches_suppressed: counter_vec(
                r,
                "tollgate_keyset_unknown_kid_suppressed_total",
                "Unknown key ids not refetched (cooldown or negative cache), by issuer.",
                &["issuer"],
            ),
            revocations: gauge(
                r,
                "tollgate_revocations",
                "Revocations held now (by jti and by subject).",
            ),
            revocations_recorded: counter(
                r,
                "tollgate_revocations_recorded_total",
                "Revocations recorded since start.",
            ),
            revoked_refusals: counter(
                r,
                "tollgate_revoked_tokens_refused_total",
                "Tokens refused because they were revoked.",
            ),
            revocation_log_records: gauge_vec(
                r,
                "tollgate_revocation_log_records",
                "Lines of the revocation log as the last start read them, by state: verified \
                 (checksum matched), unverified (earlier format, no checksum), corrupt \
                 (skipped: revocations may be missing), torn (an incomplete last line cut off).",
                &["state"],
            ),
        }
    }

    fn copy_in(&self, a: &AuthSnapshot) {
        for (reason, n) in &a.outcomes {
            copy_counter(&self.outcomes.with_label_values(&[reason]), *n);
        }
        copy_counter(&self.cache_hits, a.cache_hits);
        copy_counter(&self.cache_misses, a.cache_misses);
        copy_counter(&self.cache_evictions, a.cache_evictions);
        self.cache_entries
            .set(i64::try_from(a.cache_entries).unwrap_or(i64::MAX));
        let looked_up = a.cache_hits + a.cache_misses;
        self.cache_hit_ratio.set(if looked_up == 0 {
            0.0
        } else {
            a.cache_hits as f64 / looked_up as f64
        });
        for i in &a.issuers {
            let l = [i.name.as_str()];
            self.keyset_ready
                .with_label_values(&l)
                .set(i64::from(i.ready));
            self.keyset_keys
                .with_label_values(&l)
                .set(i64::try_from(i.keys).unwrap_or(i64::MAX));
            copy_counter(&self.keyset_fetches.with_label_values(&l), i.fetches);
            copy_counter(
                &self.keyset_failures.with_label_values(&l),
                i.fetch_failures,
            );
            copy_counter(&self.kid_refetches.with_label_values(&l), i.kid_refetches);
            copy_counter(
                &self.kid_refetches_suppressed.with_label_values(&l),
                i.kid_refetches_suppressed,
            );
        }
        self.revocations
            .set(i64::try_from(a.revocations).unwrap_or(i64::MAX));
        copy_counter(&self.revocations_recorded, a.revocations_recorded);
        copy_counter(&self.revoked_refusals, a.revocations_refused);
        if let Some(log) = &a.revocation_log {
            for (state, n) in [
                ("verified", log.verified),
                ("unverified", log.unverified),
                ("corrupt", log.corrupt),
                ("torn", usize::from(log.torn_tail.is_some())),
            ] {
                self.revocation_log_records
                    .with_label_values(&[state])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_contains_every_family_and_limiter_figures() {
        let m = Metrics::new();
        let c = m.decision_counters("basic");
        c.allowed.inc();
        c.denied.inc_by(2);
        m.denial_counter("basic").inc();
        m.decision_seconds().observe(0.000_001);
        m.abuse_counter("basic").inc();
        m.config_reload(true);
        m.snapshot_written(true);
        m.snapshot_restored(4, 2, 1);
        m.connections(Listener::HttpTcp).open.inc();
        let loops = m.event_loop_stats();
        loops.sleeps.inc_by(5);
        loops.idle_polls.inc_by(11);
        let text = String::from_utf8(m.render(7, 3, None)).unwrap();
        for needle in [
            "tollgate_resp_event_loop_sleeps_total 5",
            "tollgate_resp_event_loop_idle_polls_total 11",
            "tollgate_decisions_total{outcome=\"allowed\",tier=\"basic\"} 1",
            "tollgate_decisions_total{outcome=\"denied\",tier=\"basic\"} 2",
            "tollgate_denials_total{limit=\"basic\"} 1",
            "tollgate_decision_seconds_count 1",
            "tollgate_tracked_states 7",
            "tollgate_evictions_total 3",
            "tollgate_abuse_signals_total{limit=\"basic\"} 1",
            "tollgate_config_reloads_total{result=\"ok\"} 1",
            "tollgate_config_reloads_total{result=\"failed\"} 0",
            "tollgate_limiter_snapshot_writes_total{result=\"ok\"} 1",
            "tollgate_limiter_snapshot_writes_total{result=\"failed\"} 0",
            "tollgate_limiter_snapshot_states_total{outcome=\"restored\"} 4",
            "tollgate_limiter_snapshot_states_total{outcome=\"ended\"} 2",
            "tollgate_limiter_snapshot_states_total{outcome=\"lost\"} 1",
            "tollgate_connections_open{listener=\"http_tcp\"} 1",
            concat!(
                "tollgate_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Evictions copy in as a counter: a later scrape adds only the difference.
        let text = String::from_utf8(m.render(0, 5, None)).unwrap();
        assert!(text.contains("tollgate_evictions_total 5"));
    }

    /// The standard process series, read from /proc: a resident size and a start time are
    /// never zero for a running process, and this one has open descriptors.
    #[cfg(target_os = "linux")]
    #[test]
    fn render_has_the_process_series() {
        let text = String::from_utf8(Metrics::new().render(0, 0, None)).unwrap();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
                .trim()
                .parse()
                .unwrap()
        };
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(value("process_open_fds") >= 1.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_start_time_seconds") > 1.0e9);
    }
}
