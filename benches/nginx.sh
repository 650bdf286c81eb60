#!/usr/bin/env bash
# benches/nginx.sh — tollgate behind nginx auth_request, against the same nginx in front of
# nginx (the ceiling for any auth server) and in front of a FastAPI backend with PyJWT and
# slowapi (the hand-written Python verifier tollgate replaces), in one run.
#
# Everything it runs is in benches/support/: nginx_peers.sh starts the peers and measures,
# fastapi_auth.py is the FastAPI backend, mint_token.py mints the tokens and the key set,
# wrk_status.lua counts the answers that are not 2xx, requirements.txt pins the Python side. It
#   1. checks for wrk, nginx (with auth_request), curl and python3-venv, and names the
#      `apt-get install` that adds whichever is missing; makes (once) a virtualenv in
#      ${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-bench/venv and `pip install -r`s
#      benches/support/requirements.txt into it whenever that file changed;
#   2. builds the release binary;
#   3. makes an Ed25519 key and its JWKS (mint_token.py eddsa) and an EdDSA token shaped like
#      Better Auth's; starts tollgate with that key set as a file, a route rule on /api/**
#      (auth required) and a tier limit no run reaches, so every request is a real admitted
#      decision (verified token from the cache, route matched, limit counted);
#   4. starts nginx `return 204`, nginx auth_request → that nginx (the ceiling), nginx
#      auth_request → tollgate /auth, the FastAPI backend (uvicorn, 2 workers) and nginx
#      auth_request → FastAPI /auth, with an HS256 token for FastAPI (mint_token.py hs256,
#      signed with a secret drawn for this run);
#   5. checks each path answers once as expected, then runs wrk -t2 -c64 (a 2 s warm-up, then
#      10 s) against ceiling, tollgate, FastAPI (each through nginx), then tollgate and FastAPI
#      asked directly, in turn, ROUNDS times, and takes medians.
# Prints one line per run, a line with CPU figures, and as its last line:
#
#   {"tollgate_rps":…, "nginx_auth_rps":…, "ratio":…, "vs_fastapi":…}
#
# ratio = tollgate through nginx ÷ nginx through nginx. vs_fastapi compares the two verifiers
# as a FastAPI backend is usually asked — directly, each judging a bearer token per request:
# tollgate's /auth (EdDSA token, X-Original-URI) ÷ FastAPI's /auth (HS256 token, PyJWT,
# slowapi). The same comparison behind nginx is vs_fastapi_through_nginx, on the line before;
# it cannot exceed ceiling_vs_fastapi, since the nginx in front is the bottleneck of both
# (nginx's auth_request caps any auth server at about 45–60k req/s on a 2-core machine;
# docs/benchmarks.md). Any non-2xx answer or socket error in a measured run stops the script: the
# number would not be of admitted requests.
#
# CPU per request (from /proc, user + system, measured run only) is per component: the
# front nginx, and the auth server behind it (nginx 204's, tollgate's, uvicorn's workers). On a
# 2-core machine wrk, nginx and the auth server share the cores, so req/s through nginx can
# never exceed the ceiling: vs_fastapi is bounded by ceiling_vs_fastapi (printed), and the
# auth servers' own cost is compared by auth_cpu_fastapi_vs_tollgate.
#
# Needs: cargo, wrk, nginx with auth_request, curl, python3 and python3-venv (Debian: apt-get
# install wrk nginx-light curl python3-venv), and PyPI (or a pip index) on the first run.
#
# Settings (environment): ROUNDS (3), WRK_DURATION (10), WRK_WARMUP (2), each run at most
# 15 s; TOLLGATE_BIN=<path> to measure another build (no build then; how before/after figures are taken), SKIP_BUILD=1 to reuse target/release/tollgate; TOLLGATE_BENCH_VENV to put the
# virtualenv elsewhere. Everything runs on 127.0.0.1; everything started is stopped by PID on
# exit.
set -euo pipefail
# `die` in a function run inside $(…) must stop that function too, not only its subshell.
shopt -s inherit_errexit

ROUNDS=${ROUNDS:-3}
DURATION=${WRK_DURATION:-10}
WARMUP=${WRK_WARMUP:-2}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=support/common.sh
source "$root/benches/support/common.sh"
# shellcheck source=support/nginx_peers.sh
source "$root/benches/support/nginx_peers.sh"

die() { echo "benches/nginx.sh: $*" >&2; exit 1; }
for v in "$ROUNDS" "$DURATION" "$WARMUP"; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "settings must be whole numbers"
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
[ "$DURATION" -ge 1 ] || die "WRK_DURATION must be at least 1"
if [ "$DURATION" -gt 15 ] || [ "$WARMUP" -gt 15 ]; then die "runs are limited to 15 s each"; fi
check_nginx_bench_tools
bench_python=""   # the virtualenv's interpreter, set by prepare_bench_venv
prepare_bench_venv

if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${TOLLGATE_BIN:-}" ]; then
    cargo build --release --locked --bin tollgate >&2
fi
bin="${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/tollgate}"
[ -x "$bin" ] || die "no $bin"

work=$(mktemp -d /tmp/tollgate-nginx-bench.XXXXXX)
pids=()
trap stop_started EXIT
trap 'exit 130' INT TERM

# --- tokens: EdDSA (Better Auth's shape) for tollgate, HS256 for FastAPI with a secret of this
# run's own, given (in the environment) to the minter and the FastAPI peer only.
hs_secret=$("$bench_python" -c 'import secrets; print(secrets.token_hex(32))')
mint() { PYTHONDONTWRITEBYTECODE=1 "$bench_python" "$root/benches/support/mint_token.py" "$@"; }
ed_token=$(mint eddsa "$work/keys" --sub bench-user --ttl 3600)
hs_token=$(TOLLGATE_BENCH_HS256_SECRET=$hs_secret mint hs256 --sub bench-user --ttl 3600)
[ -s "$work/keys/jwks.json" ] || die "mint_token.py wrote no $work/keys/jwks.json"

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
pids+=("$tg_pid")
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tg_port/readyz" || true)" = 200 ] && break
    kill -0 "$tg_pid" 2>/dev/null || { cat "$work/tollgate.log" >&2; die "tollgate exited"; }
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tg_port/readyz")" = 200 ] ||
    die "tollgate is not ready on port $tg_port"

# --- peers (benches/support/nginx_peers.sh); the start_* functions set the PID variables.
n204_pid="" ceil_pid="" front_pid="" fa_pid="" fafront_pid=""
n204_port=$(free_port)
start_nginx n204_pid nginx204 "$n204_port"
ceil_port=$(free_port)
start_nginx ceil_pid nginx-to-nginx204 "$ceil_port" "$n204_port" /auth
front_port=$(free_port)
start_nginx front_pid nginx-to-tollgate "$front_port" "$tg_port" /auth
fa_port=$(free_port)
TOLLGATE_BENCH_HS256_SECRET=$hs_secret start_fastapi_auth fa_pid "$fa_port" 2
fafront_port=$(free_port)
start_nginx fafront_pid nginx-to-fastapi "$fafront_port" "$fa_port" /auth

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

# CPU time (user + system, clock ticks) of a process and its descendants; of none, 0. (An empty
# PID must be skipped before /proc is read: /proc//stat is the kernel's /proc/stat.)
ticks() {
    local total=0 pid
    for pid in "$@"; do
        if ! [[ "$pid" =~ ^[0-9]+$ ]] || [ ! -r /proc/"$pid"/stat ]; then continue; fi
        total=$((total + $(sed 's/^.*) //' /proc/"$pid"/stat | awk '{print $12 + $13}')))
        # shellcheck disable=SC2046
        total=$((total + $(ticks $(cat /proc/"$pid"/task/*/children 2>/dev/null))))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

# measure NAME URL TOKEN FRONT_PID BACK_PID [HEADER] -- a warm-up run (its answers are not
# counted), then the measured run with the CPU of the front nginx (none: 0) and of the server
# behind it. Prints "rps p99 front_us back_us".
measure() {
    local name=$1 url=$2 token=$3 front=$4 back=$5 out f0 f1 b0 b1 rps p99 n non2xx errors
    local -a h=("Authorization: Bearer $token")
    [ -n "${6:-}" ] && h+=("$6")
    if [ "$WARMUP" -gt 0 ]; then
        wrk_run "$WARMUP" "$url" "${h[@]}" >/dev/null
    fi
    f0=$(ticks "$front"); b0=$(ticks "$back")
    out=$(wrk_run "$DURATION" "$url" "${h[@]}")
    f1=$(ticks "$front"); b1=$(ticks "$back")
    echo "$name $out" >>"$work/runs.txt"
    read -r rps p99 n non2xx errors <<<"$out"
    [ "$non2xx" = 0 ] || die "$name: $non2xx non-2xx answers in $n (rps p99 requests non2xx errors: $out)"
    [ "$errors" = 0 ] || die "$name: $errors socket errors (rps p99 requests non2xx errors: $out)"
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
