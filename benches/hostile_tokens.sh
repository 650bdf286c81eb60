#!/usr/bin/env bash
# benches/hostile_tokens.sh — valid users' /auth latency, alone and under a flood of garbage
# and forged tokens at full speed.
#
# Builds the release binary, starts tollgate (its own configuration, a free loopback port, one
# HS256 issuer, a route that requires a token, a tier never reached) and mints, with a secret
# made for the run, VALID valid tokens and HOSTILE hostile ones: random bytes, wrong shapes
# (one, two and four segments), headers that are not JSON, `alg: none`, unknown `kid`s, and
# well-formed tokens with a bad signature. Then:
#   1. valid users alone: `wrk -t1 -c$CONNS --latency` on /auth with the valid tokens;
#   2. the same while a second wrk (-t1 -c$FLOOD_CONNS) sends the hostile tokens as fast as
#      tollgate answers, started before and stopped after the measurement.
# Every valid request must get 200 and every hostile one 401. Prints one line per run, then
# as its last line:
#
#   {"alone_p50_ms":…,"alone_p99_ms":…,"flood_p50_ms":…,"flood_p99_ms":…,"flood_rps":…,"p50_ratio":…}
#
# (p50_ratio = flood_p50_ms / alone_p50_ms; the target is at most 2). Medians over ROUNDS.
#
# Needs: cargo, wrk, curl, python3. Uses only loopback, stops exactly the processes it started
# (by PID), and every wrk run is bounded in time.
#
# Settings (environment): ROUNDS (3), DURATION (10 s), CONNS (4), FLOOD_CONNS (64), VALID
# (100), HOSTILE (2000), SKIP_BUILD=1 to reuse target/release/tollgate.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-4}
FLOOD_CONNS=${FLOOD_CONNS:-64}
VALID=${VALID:-100}
HOSTILE=${HOSTILE:-2000}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=support/common.sh
source "$root/benches/support/common.sh"

die() { echo "benches/hostile_tokens.sh: $*" >&2; exit 1; }
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (apt-get install wrk curl python3)"
done
for v in "$ROUNDS" "$DURATION" "$CONNS" "$FLOOD_CONNS" "$VALID" "$HOSTILE"; do
    if ! [[ "$v" =~ ^[0-9]+$ ]] || [ "$v" -lt 1 ]; then die "settings must be whole numbers ≥ 1"; fi
done
[ "$DURATION" -le 30 ] || die "runs are limited to 30 s each"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --locked --bin tollgate >&2
fi
bin="$root/target/release/tollgate"
[ -x "$bin" ] || die "no $bin"

work=$(mktemp -d /tmp/tollgate-hostile-tokens.XXXXXX)
pids=()
trap stop_started EXIT

TOLLGATE_BENCH_HS256=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export TOLLGATE_BENCH_HS256
port=$(free_port)
cat >"$work/tollgate.toml" <<CONF
[server]
http = "127.0.0.1:$port"

[log]
level = "warn"

[tiers.anonymous]
limit = 100
window = "1h"

# Never reached in a run: every valid request is admitted.
[tiers.bench]
limit = 4000000000
window = "1h"
key = "user"

[[routes]]
path = "/api/**"
auth = "required"

[auth]
anonymous_tier = "anonymous"
default_tier = "bench"

[[auth.issuers]]
name = "backend"
hs256_secret_env = "TOLLGATE_BENCH_HS256"
CONF
"$bin" check-config "$work/tollgate.toml" >/dev/null
"$bin" serve --config "$work/tollgate.toml" >"$work/tollgate.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$port/healthz"

# The tokens, one a line. Valid: HS256 with the run's secret. Hostile: as described above.
python3 - "$work" "$VALID" "$HOSTILE" <<'PY'
import base64, hashlib, hmac, json, os, random, sys, time
work, valid, hostile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
secret = os.environ["TOLLGATE_BENCH_HS256"].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
def signed(header, claims, key=secret):
    si = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return si + "." + b64(hmac.new(key, si.encode(), hashlib.sha256).digest())
with open(f"{work}/valid.txt", "w") as f:
    for i in range(valid):
        f.write(signed({"alg": "HS256", "typ": "JWT"}, {"sub": f"u{i}", "iat": now, "exp": now + 7200}) + "\n")
rnd = random.Random(7)
rb = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))
with open(f"{work}/hostile.txt", "w") as f:
    for i in range(hostile):
        claims = {"sub": f"u{i}", "iat": now, "exp": now + 7200}
        k = i % 8
        if k == 0: t = b64(rb(16 + i % 300))
        elif k == 1: t = b64(rb(12)) + "." + b64(rb(40))
        elif k == 2: t = b64(rb(20)) + "." + b64(rb(40)) + "." + b64(rb(32)) + "." + b64(rb(8))
        elif k == 3: t = b64(rb(30)) + "." + b64(json.dumps(claims).encode()) + "." + b64(rb(32))
        elif k == 4: t = b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims).encode()) + "."
        elif k == 5: t = signed({"alg": "HS256", "kid": rb(8).hex()}, claims, key=rb(32))
        else: t = signed({"alg": "HS256", "typ": "JWT"}, claims, key=rb(32))
        f.write(t + "\n")
PY
url="http://127.0.0.1:$port/auth"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Original-URI: /api/x' \
    -H "Authorization: Bearer $(head -1 "$work/valid.txt")" "$url")" = 200 ] ||
    die "tollgate does not admit a valid token"

# wrk latency lines ("50%  1.23ms") in ms.
ms() {
    awk -v q="$1" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v
        }
        $1 == q { print ms($2) }'
}
check_counts() { # the wrk output; dies on an unexpected status or a socket error
    local line
    line=$(grep '^tollgate-tokens' <<<"$1")
    grep -q 'unexpected=0 socket_errors=0' <<<"$line" || die "$2: $line"
}
valid_run() {
    TOKENS="$work/valid.txt" EXPECT=200 timeout $((DURATION + 20)) \
        wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s benches/support/wrk_tokens.lua "$url"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; valid: wrk -t1 -c$CONNS -d${DURATION}s; flood: wrk -t1 -c$FLOOD_CONNS" >&2
: >"$work/rounds.txt"
for round in $(seq "$ROUNDS"); do
    out=$(valid_run)
    check_counts "$out" "valid users alone"
    a50=$(ms 50% <<<"$out"); a99=$(ms 99% <<<"$out")
    TOKENS="$work/hostile.txt" EXPECT=401 timeout $((DURATION + 30)) \
        wrk -t1 -c"$FLOOD_CONNS" -d"$((DURATION + 4))s" -s benches/support/wrk_tokens.lua "$url" \
        >"$work/flood.txt" &
    flood=$!
    pids+=("$flood")
    sleep 2 # the flood at full speed before the measurement starts
    out=$(valid_run)
    wait "$flood"
    check_counts "$out" "valid users under the flood"
    check_counts "$(cat "$work/flood.txt")" "the flood"
    f50=$(ms 50% <<<"$out"); f99=$(ms 99% <<<"$out")
    frps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/flood.txt")
    echo "$a50 $a99 $f50 $f99 $frps" >>"$work/rounds.txt"
    echo "round $round alone p50_ms=$a50 p99_ms=$a99; under the flood ($frps hostile req/s) p50_ms=$f50 p99_ms=$f99"
done
a50=$(col rounds 1); a99=$(col rounds 2); f50=$(col rounds 3); f99=$(col rounds 4); frps=$(col rounds 5)
printf '{"alone_p50_ms":%s,"alone_p99_ms":%s,"flood_p50_ms":%s,"flood_p99_ms":%s,"flood_rps":%s,"p50_ratio":%s}\n' \
    "$a50" "$a99" "$f50" "$f99" "$frps" "$(awk -v a="$a50" -v b="$f50" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')"
