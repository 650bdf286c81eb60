#!/usr/bin/env bash
# benches/cluster.sh — five tollgate processes sharing one limit, under load.
#
# Runs benches/cluster_load.rs (built by cargo with the bench profile, as the rest of the
# benchmarks): five `tollgate serve` processes on 127.0.0.2 … 127.0.0.6 gossiping over
# loopback, one key with a limit of 1,000 per 60 s, traffic spread evenly over the five at
# 200 requests/s for DURATION seconds, then at 2,000 requests/s; then how fast a count and a
# revocation reach every node, the gossip traffic at 10,000 active keys of which 100 are hot,
# and (with wrk installed) /check throughput on a node of the cluster against a node alone.
# Prints one line per scenario and, as its last line:
#
#   {"nodes":5,"limit":1000,"admitted_max_window":…,"over_admission_pct":…,"bound_pct":…,
#    "convergence_ms_p99":…,"revocation_ms_p99":…,"gossip_bytes_per_s_per_node":…}
#
# Needs: cargo; wrk for the throughput line (Debian: apt-get install wrk). Uses only loopback
# addresses, stops exactly the processes it started (each by its PID, also on failure), and
# every phase is bounded in time.
#
# Settings (environment): DURATION (120 s per rate), RATES ("200,2000"), PROBES (100),
# TRAFFIC_SECS (20), WRK_SECS (10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v wrk >/dev/null 2>&1 || echo "benches/cluster.sh: wrk is not installed; the throughput line is skipped (apt-get install wrk)" >&2
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores" >&2
exec cargo bench --locked --bench cluster_load
