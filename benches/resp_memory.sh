#!/usr/bin/env bash
# benches/resp_memory.sh — the memory of every RESP connection together, before, during and
# after a flood of clients that pipeline `INFO all` and never read the replies.
#
# Starts the release binary with RESP on a free port, records its resident memory (VmRSS from
# /proc/<pid>/status), then opens CONNS connections that each send COMMANDS `INFO all` and
# read nothing, holds them for HOLD seconds while sampling VmRSS every 100 ms, closes them all,
# samples SETTLE seconds more (the server still executes what it read), and records VmRSS again. Bounded in time (about HOLD + SETTLE + 10 s);
# stops by itself. Prints the figures and, as its last line:
#
#   {"rss_before_mib":…, "rss_peak_mib":…, "rss_after_mib":…, "budget_mib":…}
#
# Exits non-zero when the peak passes before + the budget + the connections' base buffers
# (48 KiB each) + PEAK_SLACK_MIB (the runtime, the kernel's accounting), or when the memory
# after is not back within AFTER_MARGIN_MIB of before.
#
# Environment: CONNS (2000), COMMANDS (2000), HOLD (10), SETTLE (15), BUDGET (bytes; unset: the
# default, 256 MiB; "none" writes no key, for a binary from before the budget existed),
# PEAK_SLACK_MIB (64), AFTER_MARGIN_MIB (32), CHECK (1; 0 prints the figures without
# judging them), TOLLGATE_BIN (unset: builds and uses target/release/tollgate).
# Needs: cargo, python3, redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=support/common.sh
. "$root/benches/support/common.sh"
die() { echo "benches/resp_memory.sh: $*" >&2; exit 1; }

CONNS=${CONNS:-2000}
COMMANDS=${COMMANDS:-2000}
HOLD=${HOLD:-10}
SETTLE=${SETTLE:-15}
BUDGET=${BUDGET:-268435456}
PEAK_SLACK_MIB=${PEAK_SLACK_MIB:-64}
AFTER_MARGIN_MIB=${AFTER_MARGIN_MIB:-32}
CHECK=${CHECK:-1}

for tool in python3 redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done
ulimit -n $((CONNS * 2 + 256)) 2>/dev/null || die "cannot raise the open-file limit to $((CONNS * 2 + 256))"
if [ -z "${TOLLGATE_BIN:-}" ]; then
    (cd "$root" && cargo build --release --locked --bin tollgate >&2)
fi
bin="${TOLLGATE_BIN:-$root/target/release/tollgate}"
work=$(mktemp -d /tmp/tollgate-resp-memory.XXXXXX)
pids=()
trap stop_started EXIT

extra=("max_connections = $((CONNS + 100))")
start_resp_tollgate tollgate "${extra[@]}"
if [ "$BUDGET" != none ]; then
    # The key is [server]'s: restart with it (start_resp_tollgate writes only [resp] lines).
    conf=$(cat "$work/tollgate.toml")
    saved_port=$(cat "$work/tollgate.port")
    stop_started
    pids=()
    mkdir -p "$work"
    printf '%s\n' "$conf" >"$work/tollgate.toml"
    echo "$saved_port" >"$work/tollgate.port"
    sed -i "s/^\[server\]$/[server]\nmax_connection_buffer_bytes = $BUDGET/" "$work/tollgate.toml"
    "$bin" check-config "$work/tollgate.toml" >/dev/null
    "$bin" serve --config "$work/tollgate.toml" >"$work/tollgate.log" 2>&1 &
    pids+=("$!")
    echo "$!" >"$work/tollgate.pid"
    wait_pong "$(cat "$work/tollgate.port")"
fi
port=$(cat "$work/tollgate.port")
pid=$(cat "$work/tollgate.pid")

timeout $((HOLD + SETTLE + 60)) python3 - "$pid" "$port" "$CONNS" "$COMMANDS" "$HOLD" "$SETTLE" "$BUDGET" \
    "$PEAK_SLACK_MIB" "$AFTER_MARGIN_MIB" "$CHECK" <<'PY'
import json, socket, sys, time

pid, port, conns, commands, hold, settle = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:7])
budget = None if sys.argv[7] == "none" else int(sys.argv[7])
slack, margin, check = int(sys.argv[8]), int(sys.argv[9]), sys.argv[10] == "1"

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("tollgate exited")

before = rss_kib()
payload = b"INFO all\r\n" * commands
socks = []
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    socks.append([s, 0])
peak = before
end = time.monotonic() + hold
while time.monotonic() < end:
    # Send what each socket takes; never read.
    for entry in socks:
        s, sent = entry
        if sent < len(payload):
            try:
                entry[1] += s.send(payload[sent:sent + 65536])
            except BlockingIOError:
                pass
    peak = max(peak, rss_kib())
    time.sleep(0.1)
peak = max(peak, rss_kib())
sent_all = sum(1 for _, sent in socks if sent == len(payload))
for s, _ in socks:
    s.close()
# The server still executes what it had read when the clients closed: the peak may come now.
deadline = time.monotonic() + settle
while time.monotonic() < deadline:
    peak = max(peak, rss_kib())
    time.sleep(0.1)
after = rss_kib()

mib = lambda kib: round(kib / 1024, 1)
print(f"connections {conns}, each sent {commands} x INFO all ({sent_all} sent everything); "
      f"held {hold} s, settled {settle} s", file=sys.stderr)
print(f"VmRSS before {mib(before)} MiB, peak during {mib(peak)} MiB, after {mib(after)} MiB",
      file=sys.stderr)
failed = []
if check and budget is not None:
    limit = before + budget // 1024 + conns * 48 + slack * 1024
    if peak > limit:
        failed.append(f"the peak {mib(peak)} MiB passed before + budget + {conns} x 48 KiB + {slack} MiB = {mib(limit)} MiB")
    if after > before + margin * 1024:
        failed.append(f"after {mib(after)} MiB is not within {margin} MiB of before ({mib(before)} MiB)")
print(json.dumps({"rss_before_mib": mib(before), "rss_peak_mib": mib(peak),
                  "rss_after_mib": mib(after),
                  "budget_mib": None if budget is None else budget / 1048576}))
for f in failed:
    print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if failed else 0)
PY
