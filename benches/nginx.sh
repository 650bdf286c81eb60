#!/usr/bin/env bash
# benches/nginx.sh — tollgate behind nginx auth_request, against the same nginx in front of
# nginx (the ceiling for any auth server) and in front of FastAPI (the Python backend tollgate
# replaces), in one run.
#
# Uses the benchmark kit in ../shared/bench/ (relative to the repository root): peer.sh for
# the peers, token.sh for the tokens, wrk.sh for every measurement. It
#   1. builds the release binary;
#   2. makes an Ed25519 key and JWKS (token.sh --alg EdDSA --key-out) and an EdDSA token shaped
#      like Better Auth's; starts tollgate with that key set as a file, a route rule on /api/**
#      (auth required) and a tier limit no run reaches, so every request is a real admitted
#      decision (verified token from the cache, route matched, limit counted);
#   3. starts nginx204, nginx-auth-request → nginx204 (the ceiling), nginx-auth-request →
#      tollgate /auth, fastapi-auth (2 workers) and nginx-auth-request → fastapi-auth /auth,
#      with an HS256 token for FastAPI (token.sh);
#   4. checks each path answers 2xx once, then runs wrk -t2 -c64 (a 2 s warm-up, then 10 s)
#      against ceiling, tollgate, FastAPI (each through nginx), then tollgate and FastAPI
#      asked directly, in turn, ROUNDS times, and takes medians.
# Prints one line per run, a line with CPU figures, and as its last line:
#
#   {"tollgate_rps":…, "nginx_auth_rps":…, "ratio":…, "vs_fastapi":…}
#
# ratio = tollgate through nginx ÷ nginx through nginx. vs_fastapi compares the two verifiers
# as the seeds' backend is used — asked directly, each judging a bearer token per request:
# tollgate's /auth (EdDSA token, X-Original-URI) ÷ FastAPI's /auth (HS256 token, PyJWT,
# slowapi). The same comparison behind nginx is vs_fastapi_through_nginx, on the line before;
# it cannot exceed ceiling_vs_fastapi, since the nginx in front is the bottleneck of both
# (DESIGN.md: ≈60k req/s at best against ≈9k for FastAPI). Any non-2xx answer or socket error
# in a measured run stops the script: the number would not be of admitted requests.
#
# CPU per request (from /proc, user + system, measured run only) is per component: the
# front nginx, and the auth server behind it (nginx204's, tollgate's, uvicorn's workers). On a
# 2-core machine wrk, nginx and the auth server share the cores, so req/s through nginx can
# never exceed the ceiling: vs_fastapi is bounded by ceiling_vs_fastapi (printed), and the
# auth servers' own cost is compared by auth_cpu_fastapi_vs_tollgate.
#
# Settings (environment): ROUNDS (3), WRK_DURATION (10), WRK_WARMUP (2), SKIP_BUILD=1 to reuse
# target/release/tollgate, BENCH_KIT (../shared/bench) for the kit elsewhere. Everything runs on 127.0.0.1; everything started is stopped by PID
# on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${WRK_DURATION:-10}
WARMUP=${WRK_WARMUP:-2}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=support/common.sh
source "$root/benches/support/common.sh"
bench="${BENCH_KIT:-$root/../shared/bench}"

die() { echo "benches/nginx.sh: $*" >&2; exit 1; }
[ -x "$bench/peer.sh" ] || die "no benchmark kit at $bench (../shared/bench from the repository root)"
for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (run $bench/install.sh)"
done
for v in "$ROUNDS" "$DURATION" "$WARMUP"; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "settings must be whole numbers"
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --locked --bin tollgate >&2
fi
bin="${CARGO_TARGET_DIR:-$root/target}/release/tollgate"
[ -x "$bin" ] || die "no $bin"

work=$(mktemp -d /tmp/tollgate-nginx-bench.XXXXXX)
# The kit keeps its peers' configs, logs and pidfiles here: ours alone.
export BENCH_WORK="$work/kit"
mkdir -p "$BENCH_WORK"

peers=()   # "NAME PORT" of each peer started
tg_pid=""
cleanup() {
    local p
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086  # "NAME PORT" is two arguments
        "$bench/peer.sh" stop $p 2>/dev/null || true
    done
    if [ -n "$tg_pid" ]; then
        kill -TERM "$tg_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$tg_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$tg_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_peer VAR NAME PORT [ARGS...] -- starts a peer and sets VAR to its PID. (Not in a
# command substitution: that subshell would lose the record of what to stop.)
start_peer() {
    local var=$1
    shift
    peers+=("$1 $2")   # recorded first: stopping a peer that never started is harmless
    "$bench/peer.sh" start "$@" >"$work/pid.out"
    printf -v "$var" '%s' "$(cat "$work/pid.out")"
}

# --- tokens: EdDSA (Better Auth's shape) for tollgate, HS256 for FastAPI
ed_token=$("$bench/token.sh" --alg EdDSA --key-out "$work/keys" --sub bench-user --exp-seconds 3600)
hs_token=$("$bench/token.sh" --sub bench-user --exp-seconds 3600)
[ -s "$work/keys/jwks.json" ] || die "token.sh wrote no $work/keys/jwks.json"

# --- tollgate
tg_port=$(free_port)
cat >"$work/tollgate.toml" <<EOF
[server]
http = "127.0.0.1:$tg_port"

[log]
level = "warn"

[tiers.anonymous]
limit = 100
window = "1h"
key = "ip"

# The tier of a signed-in user; never reached in a run, so every request is admitted and
# counted.
[tiers.basic]
limit = 4000000000
window = "1h"
key = "user"

[[routes]]
path = "/api/**"
auth = "required"

[[auth.issuers]]
name = "better-auth"
issuer = "http://localhost:3000"
audiences = ["http://localhost:3000"]
jwks_file = "$work/keys/jwks.json"
algorithms = ["EdDSA"]
EOF
"$bin" check-config "$work/tollgate.toml" >/dev/null
"$bin" serve --config "$work/tollgate.toml" >"$work/tollgate.log" 2>&1 &
tg_pid=$!
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tg_port/readyz" || true)" = 200 ] && break
    kill -0 "$tg_pid" 2>/dev/null || { cat "$work/tollgate.log" >&2; die "tollgate exited"; }
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tg_port/readyz")" = 200 ] ||
    die "tollgate is not ready on port $tg_port"

# --- peers
n204_port=$(free_port)
start_peer n204_pid nginx204 "$n204_port"
ceil_port=$(free_port)
start_peer ceil_pid nginx-auth-request "$ceil_port" "127.0.0.1:$n204_port"
front_port=$(free_port)
start_peer front_pid nginx-auth-request "$front_port" "127.0.0.1:$tg_port" /auth
fa_port=$(free_port)
start_peer fa_pid fastapi-auth "$fa_port" 2
fafront_port=$(free_port)
start_peer fafront_pid nginx-auth-request "$fafront_port" "127.0.0.1:$fa_port" /auth

ceil_url="http://127.0.0.1:$ceil_port/api/x"
tg_url="http://127.0.0.1:$front_port/api/x"
fa_url="http://127.0.0.1:$fafront_port/api/x"
tgd_url="http://127.0.0.1:$tg_port/auth"
fad_url="http://127.0.0.1:$fa_port/auth"

# Each path admits its token once before anything is measured (and tollgate really decides:
# no token is a 401).
expect() {  # CODE URL [TOKEN]
    local code
    if [ -n "${3:-}" ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $3" "$2")
    else
        code=$(curl -s -o /dev/null -w '%{http_code}' "$2")
    fi
    [ "$code" = "$1" ] || die "$2 answered $code, expected $1"
}
expect 204 "$ceil_url" "$ed_token"
expect 204 "$tg_url" "$ed_token"
expect 401 "$tg_url"
expect 204 "$fa_url" "$hs_token"
expect 401 "$fa_url"
expect 204 "$fad_url" "$hs_token"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ed_token" -H 'X-Original-URI: /api/x' "$tgd_url")
[ "$code" = 200 ] || die "$tgd_url answered $code, expected 200"

# CPU time (user + system, clock ticks) of a process and its descendants.
ticks() {
    local total=0 pid
    for pid in "$@"; do
        [ -r /proc/"$pid"/stat ] || continue
        total=$((total + $(sed 's/^.*) //' /proc/"$pid"/stat | awk '{print $12 + $13}')))
        # shellcheck disable=SC2046
        total=$((total + $(ticks $(cat /proc/"$pid"/task/*/children 2>/dev/null))))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

field() {  # JSON-LINE FIELD
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}

# measure NAME URL TOKEN FRONT_PID BACK_PID [HEADER] -- a warm-up run, then the measured run
# with the CPU of the front nginx (none: 0) and of the server behind it. Prints
# "rps p99 front_us back_us".
measure() {
    local name=$1 url=$2 token=$3 front=$4 back=$5 out f0 f1 b0 b1 rps p99 n non2xx errors
    local -a h=(-H "Authorization: Bearer $token")
    [ -n "${6:-}" ] && h+=(-H "$6")
    if [ "$WARMUP" -gt 0 ]; then
        WRK_DURATION=$WARMUP WRK_WARMUP=0 "$bench/wrk.sh" "$url" "${h[@]}" >/dev/null
    fi
    f0=$(ticks "$front"); b0=$(ticks "$back")
    out=$(WRK_DURATION=$DURATION WRK_WARMUP=0 "$bench/wrk.sh" "$url" "${h[@]}")
    f1=$(ticks "$front"); b1=$(ticks "$back")
    echo "$name $out" >>"$work/runs.txt"
    rps=$(field "$out" rps); p99=$(field "$out" p99_ms); n=$(field "$out" requests)
    non2xx=$(field "$out" non2xx); errors=$(field "$out" socket_errors)
    [ "$non2xx" = 0 ] || die "$name: $non2xx non-2xx answers: $out"
    [ "$errors" = 0 ] || die "$name: $errors socket errors: $out"
    awk -v rps="$rps" -v p99="$p99" -v n="$n" -v f=$((f1 - f0)) -v b=$((b1 - b0)) -v hz="$hz" \
        'BEGIN { printf "%s %s %.1f %.1f\n", rps, p99, f / hz * 1e6 / n, b / hz * 1e6 / n }'
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; wrk -t2 -c64 -d${DURATION}s (+${WARMUP}s warm-up); $ROUNDS rounds" >&2
: >"$work/ceil.txt"; : >"$work/tg.txt"; : >"$work/fa.txt"; : >"$work/tgd.txt"; : >"$work/fad.txt"
for round in $(seq "$ROUNDS"); do
    for target in ceil tg fa tgd fad; do
        case $target in
            ceil) res=$(measure "nginx->nginx204" "$ceil_url" "$ed_token" "$ceil_pid" "$n204_pid") ;;
            tg) res=$(measure "nginx->tollgate" "$tg_url" "$ed_token" "$front_pid" "$tg_pid") ;;
            fa) res=$(measure "nginx->fastapi" "$fa_url" "$hs_token" "$fafront_pid" "$fa_pid") ;;
            tgd) res=$(measure "tollgate" "$tgd_url" "$ed_token" "" "$tg_pid" "X-Original-URI: /api/x") ;;
            fad) res=$(measure "fastapi" "$fad_url" "$hs_token" "" "$fa_pid") ;;
        esac
        echo "$res" >>"$work/$target.txt"
        read -r rps p99 fcpu bcpu <<<"$res"
        printf 'round %s %-8s rps=%s p99_ms=%s nginx_cpu_us_per_req=%s auth_server_cpu_us_per_req=%s\n' \
            "$round" "$target" "$rps" "$p99" "$fcpu" "$bcpu"
    done
done

echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

tg_rps=$(col tg 1); ceil_rps=$(col ceil 1); fa_rps=$(col fa 1)
ratio=$(awk -v a="$tg_rps" -v b="$ceil_rps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
vs_fastapi_nginx=$(awk -v a="$tg_rps" -v b="$fa_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
tgd_rps=$(col tgd 1); fad_rps=$(col fad 1)
vs_fastapi=$(awk -v a="$tgd_rps" -v b="$fad_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
# CPU per request: FastAPI's ÷ tollgate's (the auth servers alone), and the same with the
# nginx in front of each (the whole auth_request path, the load generator excepted).
cpu_ratio=$(awk -v f="$(col fa 4)" -v t="$(col tg 4)" 'BEGIN { printf "%.1f", (t > 0 ? f / t : 0) }')
path_ratio=$(awk -v fn="$(col fa 3)" -v f="$(col fa 4)" -v tn="$(col tg 3)" -v t="$(col tg 4)" \
    'BEGIN { printf "%.1f", (tn + t > 0 ? (fn + f) / (tn + t) : 0) }')
# The most any auth server behind this nginx could reach against FastAPI in this run.
ceiling_vs_fastapi=$(awk -v a="$ceil_rps" -v b="$fa_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
printf '{"tollgate_direct_rps":%s,"fastapi_direct_rps":%s,"tollgate_direct_p99_ms":%s,"fastapi_direct_p99_ms":%s,"vs_fastapi_through_nginx":%s,"tollgate_p99_ms":%s,"nginx_auth_p99_ms":%s,"fastapi_rps":%s,"fastapi_p99_ms":%s,"ceiling_vs_fastapi":%s,"cpu_us_per_req":{"nginx_in_front_of_tollgate":%s,"tollgate":%s,"nginx_in_front_of_nginx204":%s,"nginx204":%s,"nginx_in_front_of_fastapi":%s,"fastapi":%s},"auth_cpu_fastapi_vs_tollgate":%s,"path_cpu_fastapi_vs_tollgate":%s,"rounds":%s}\n' \
    "$tgd_rps" "$fad_rps" "$(col tgd 2)" "$(col fad 2)" "$vs_fastapi_nginx" \
    "$(col tg 2)" "$(col ceil 2)" "$fa_rps" "$(col fa 2)" "$ceiling_vs_fastapi" \
    "$(col tg 3)" "$(col tg 4)" "$(col ceil 3)" "$(col ceil 4)" "$(col fa 3)" "$(col fa 4)" \
    "$cpu_ratio" "$path_ratio" "$ROUNDS"
printf '{"tollgate_rps":%s,"nginx_auth_rps":%s,"ratio":%s,"vs_fastapi":%s}\n' \
    "$tg_rps" "$ceil_rps" "$ratio" "$vs_fastapi"
