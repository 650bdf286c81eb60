# shellcheck shell=bash disable=SC2154  # `root`, `work` and `pids` come from the sourcing script
# benches/support/nginx_peers.sh — the peers benches/nginx.sh measures tollgate against, what
# they need, and the one wrk measurement every target gets; sourced, not run.
#
# The peers, each on its own free loopback port:
#   - nginx `return 204` on every path: the cheapest answer an HTTP server can give;
#   - nginx `auth_request` to an upstream (keep-alive, bodies off), then 204: in front of the
#     nginx above it is the ceiling of any auth server behind nginx, in front of tollgate or
#     FastAPI it is the deployment tollgate is made for (docs/nginx.md);
#   - a FastAPI backend with PyJWT and slowapi (benches/support/fastapi_auth.py) on uvicorn.
#
# Like common.sh it expects the sourcing script to have set `root` (the repository), `work` (its
# temporary directory), `pids` (what it started, stopped by `stop_started`) and `die`.

# The Debian packages benches/nginx.sh runs on, checked (never installed) with a message that
# names the command to install what is missing.
check_nginx_bench_tools() {
    local missing=() tool
    for tool in wrk nginx curl python3; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            case $tool in
                nginx) missing+=(nginx-light) ;;
                *) missing+=("$tool") ;;
            esac
        fi
    done
    # Debian ships `python3 -m venv`'s pip bootstrap (ensurepip) apart, in python3-venv.
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    [ ${#missing[@]} -eq 0 ] ||
        die "needs ${missing[*]}; on Debian: apt-get install ${missing[*]} (nginx-light or nginx)"
    nginx -V 2>&1 | grep -q -- '--with-http_auth_request_module' ||
        die "this nginx has no auth_request module; on Debian: apt-get install nginx-light (or nginx)"
}

# Makes (once) the virtualenv the Python peer and the token minter run in, and installs
# benches/support/requirements.txt into it whenever that file differs from what was installed
# last. It lives in a cache directory, outside the repository and outside `work`, so later runs
# skip the install. Sets `bench_python` to its interpreter.
prepare_bench_venv() {
    local venv=${TOLLGATE_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-bench/venv}
    local requirements=$root/benches/support/requirements.txt
    local installed=$venv/tollgate-bench-requirements.txt
    if [ ! -x "$venv/bin/python" ]; then
        echo "creating the Python virtualenv $venv" >&2
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv" >&2 ||
            die "could not create the virtualenv $venv (on Debian: apt-get install python3-venv)"
    fi
    if ! cmp -s "$requirements" "$installed"; then
        echo "installing benches/support/requirements.txt into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2 ||
            die "pip could not install $requirements into $venv (is PyPI reachable?)"
        cp "$requirements" "$installed"
    fi
    bench_python=$venv/bin/python
}

# True when something accepts TCP connections on 127.0.0.1:PORT. Checked before an nginx
# starts: with `reuseport`, a second nginx on a busy port would share it without an error.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# write_nginx_conf DIR PORT [UPSTREAM_PORT UPSTREAM_PATH]: DIR/nginx.conf for an nginx on
# 127.0.0.1:PORT. Without an upstream it answers `return 204` on every path. With one, every
# request first goes through `auth_request` to http://127.0.0.1:UPSTREAM_PORT UPSTREAM_PATH,
# as docs/nginx.md configures nginx in front of tollgate, and the allowed ones get a 204.
# Both: a worker per core, `reuseport`, no access log, keep-alive that outlasts any run.
write_nginx_conf() {
    local dir=$1 port=$2 up_port=${3:-} up_path=${4:-}
    mkdir -p "$dir/temp" "$dir/html"
    {
        cat <<CONF
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
CONF
        if [ -z "$up_port" ]; then
            cat <<CONF
    server {
        listen 127.0.0.1:$port reuseport;
        location / { return 204; }
    }
}
CONF
        else
            # `return` belongs to the rewrite phase, which runs before auth_request's access
            # phase: `auth_request …; return 204;` would answer without asking the upstream.
            # The 204 therefore comes from the content phase: try_files on a file that does
            # not exist, falling back to =204 (the miss cached, so it costs no syscall).
            cat <<CONF
    root $dir/html;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;
    upstream auth_server {
        server 127.0.0.1:$up_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port reuseport;
        location / {
            auth_request /_auth;
            try_files /no-such-file =204;
        }
        location = /_auth {
            internal;
            proxy_pass http://auth_server$up_path;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
            proxy_set_header X-Original-Method \$request_method;
            proxy_set_header X-Real-IP \$remote_addr;
        }
    }
}
CONF
        fi
    } >"$dir/nginx.conf"
}

# start_nginx VAR NAME PORT [UPSTREAM_PORT UPSTREAM_PATH]: starts an nginx configured by
# write_nginx_conf in $work/NAME, adds its master's PID to `pids` and sets VAR to it, and
# returns once it answers. (Not in a command substitution: that subshell would lose `pids`.)
start_nginx() {
    local var=$1 name=$2 port=$3 dir="$work/$2"
    shift 2
    port_in_use "$port" && die "127.0.0.1:$port is already in use ($name)"
    write_nginx_conf "$dir" "$@"
    nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" ||
        die "nginx rejects $dir/nginx.conf ($name)"
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" </dev/null >"$dir/out.log" 2>&1 &
    pids+=("$!")
    printf -v "$var" '%s' "$!"
    wait_http "http://127.0.0.1:$port/"
}

# start_fastapi_auth VAR PORT WORKERS: starts benches/support/fastapi_auth.py on uvicorn (on
# 127.0.0.1:PORT, WORKERS processes, uvloop, httptools, no access log) with the HS256 secret in
# TOLLGATE_BENCH_HS256_SECRET, adds uvicorn's PID to `pids` and sets VAR to it. Returns once
# every worker has started and a request without a token gets 401 (bounded: 30 s).
start_fastapi_auth() {
    local var=$1 port=$2 workers=$3 log="$work/fastapi.log" pid
    [ -n "${TOLLGATE_BENCH_HS256_SECRET:-}" ] || die "start_fastapi_auth: no TOLLGATE_BENCH_HS256_SECRET"
    port_in_use "$port" && die "127.0.0.1:$port is already in use (fastapi)"
    PYTHONDONTWRITEBYTECODE=1 "$bench_python" -m uvicorn fastapi_auth:app \
        --app-dir "$root/benches/support" --host 127.0.0.1 --port "$port" \
        --workers "$workers" --loop uvloop --http httptools --no-access-log --log-level info \
        </dev/null >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    printf -v "$var" '%s' "$pid"
    for _ in $(seq 300); do
        if [ "$(grep -c 'Application startup complete' "$log")" -ge "$workers" ] &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/auth" || true)" = 401 ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "the FastAPI peer did not come up on 127.0.0.1:$port"
}

# wrk_run SECONDS URL [HEADER…]: one `wrk -t2 -c64 --latency` run of SECONDS (bounded by
# `timeout`) with benches/support/wrk_status.lua, each HEADER sent on every request. Prints
# "rps p99_ms requests non2xx socket_errors"; wrk's whole output goes to $work/wrk.txt.
wrk_run() {
    local seconds=$1 url=$2 out h
    shift 2
    local -a args=(-t2 -c64 --latency -s "$root/benches/support/wrk_status.lua" -d "${seconds}s")
    for h in "$@"; do args+=(-H "$h"); done
    [[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+/ ]] || die "wrk only targets 127.0.0.1: $url"
    out=$(timeout $((seconds + 20)) wrk "${args[@]}" "$url") ||
        die "wrk against $url failed or overran (exit $?)"
    echo "$out" >>"$work/wrk.txt"
    awk '
        $1 == "tollgate-bench" {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            found = 1
        }
        END {
            if (!found || v["duration_us"] <= 0) exit 1
            printf "%.1f %.3f %d %d %d\n", v["requests"] / (v["duration_us"] / 1e6),
                v["p99_us"] / 1000, v["requests"], v["non2xx"], v["socket_errors"]
        }
    ' <<<"$out" || die "no summary line from wrk against $url (see $work/wrk.txt)"
}
