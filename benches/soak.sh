#!/usr/bin/env bash
# benches/soak.sh — a three-node tollgate cluster under mixed load for ten minutes.
#
# Builds the release binary and the load client (benches/soak.rs, with the release profile),
# then runs it: three `tollgate serve` processes on 127.0.0.2 … 127.0.0.4 gossiping over
# loopback, each also answering RESP, under HTTP `/check`, `/auth` with valid, garbage,
# forged and revoked tokens (one more revoked through the admin API every few seconds), and
# pipelined RESP `CHECK`s; a SIGHUP reload with a changed file at 40 % of the run and a
# restart of one node (SIGTERM, start again) at 55 %. Counts requests and unexpected errors
# (an expected 401 or 429 is not one; a connection error, a 5xx or a wrong answer is),
# samples every node's VmRSS, and prints as its last line:
#
#   {"requests":…,"errors":…,"rss_growth_pct_after_warmup":…,"p99_ms":…}
#
# Exits non-zero when errors > 0 or RSS grew more than 5 % after warm-up.
#
# Needs: cargo. Uses only loopback addresses; stops exactly the processes it started (each by
# its PID, also when interrupted), and the run is bounded in time.
#
# Settings (environment): SOAK_SECONDS (600; 60 is a quick smoke run), WARMUP_SECS (60, at
# most a quarter of the run), HTTP_RATE (2000 requests/s), HTTP_THREADS (4), RESP_RATE (2000
# commands/s), RESP_PIPELINE (20), RSS_EVERY (5 s), REVOKE_EVERY (2 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "benches/soak.sh: $*" >&2; exit 1; }
SOAK_SECONDS=${SOAK_SECONDS:-600}
if ! [[ "$SOAK_SECONDS" =~ ^[0-9]+$ ]] || [ "$SOAK_SECONDS" -lt 20 ]; then
    die "SOAK_SECONDS must be a whole number ≥ 20"
fi
export SOAK_SECONDS

# The load client is a bench target built with the release profile, so its tollgate
# (CARGO_BIN_EXE_tollgate) is target/release/tollgate.
client=$(cargo build --release --locked --bin tollgate --bench soak --message-format=json-render-diagnostics |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "soak" and m.get("executable"):
        print(m["executable"])')
[ -x "$client" ] || die "the load client did not build"

work=$(mktemp -d /tmp/tollgate-soak.XXXXXX)
export SOAK_PID_FILE="$work/pids"
client_pid=""
# Stops the load client, then every node it recorded that is still a tollgate (SIGTERM, a
# bounded wait, SIGKILL), each by its PID.
# shellcheck disable=SC2317  # run by the trap
stop() {
    local pid
    if [ -n "$client_pid" ]; then kill -TERM "$client_pid" 2>/dev/null || true; fi
    if [ -f "$SOAK_PID_FILE" ]; then
        while read -r pid; do
            grep -q tollgate "/proc/$pid/cmdline" 2>/dev/null || continue
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        done <"$SOAK_PID_FILE"
    fi
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores" >&2
# Bounded: the run, plus start-up, the restart and the summary.
timeout --signal=TERM $((SOAK_SECONDS + 120)) "$client" &
client_pid=$!
status=0
wait "$client_pid" || status=$?
client_pid=""
exit "$status"
