#!/usr/bin/env bash
# HTTP benchmarks of `warden serve` (BENCHMARKS.md sections 5 and 7).
#
#   benches/http.sh            # both parts
#   benches/http.sh http       # 5. req/s and latency, c=16 and c=64, warden vs `wasmtime serve`
#   benches/http.sh memory     # 7. peak RSS with 1000 in-flight invocations
#
# Everything runs on loopback. Tools, found or installed under target/tools:
#   - load tool: oha (`cargo install oha --locked --root target/tools`) or
#     wrk (`apt-get install wrk`); LOAD_TOOL=oha|wrk picks one, otherwise
#     the first found is used, and oha is installed when neither is there;
#   - the peer: `wasmtime` 48.x on PATH or in target/tools/bin
#     (`cargo install wasmtime-cli --version '^48' --locked --root target/tools`);
#     when absent the warden figures are printed alone;
#   - warden: target/release/warden (built here with `cargo build --release`);
#   - python3 (standard library) for the slow loopback server and the
#     1000-request burst of part 7.
#
# Knobs: DURATION (seconds per load run, default 10), CONCURRENCY
# ("16 64"), ROUNDS (3: warden and the peer are loaded alternately this many
# times per concurrency and the medians compared), MEMORY_INIT_COW ("true
# false": section 5 once per engine setting, both servers set alike), INFLIGHT (1000), SLOW_DELAY (seconds the slow server holds each
# request, default 5), PEER=0 (skip `wasmtime serve`), WARDEN_BIN (a warden
# binary to measure instead of building target/release/warden). Figures are measured, never fixed; nothing here asserts
# timing. The machine load (uptime) is printed with every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PART=${1:-all}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-16 64}
INFLIGHT=${INFLIGHT:-1000}
ROUNDS=${ROUNDS:-3}
MEMORY_INIT_COW=${MEMORY_INIT_COW:-true false}
SLOW_DELAY=${SLOW_DELAY:-5}
TOOLS=$ROOT/target/tools
GUESTS=$ROOT/target/guests/wasm32-wasip2/release
export PATH="$TOOLS/bin:$PATH"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/warden-http-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

load() { uptime | sed 's/.*load average: /load /'; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() { # url: wait until something answers (any status)
    for _ in $(seq 1 600); do
        if python3 - "$1" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
EOF
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}

# --- tools -----------------------------------------------------------------
build_warden() {
    WARDEN=${WARDEN_BIN:-$ROOT/target/release/warden}
    if [[ ! -x $WARDEN || -z ${WARDEN_BIN:-} ]]; then
        echo "building warden (release)..." >&2
        cargo build --release -q -p warden-host --bin warden
    fi
    for ws in capabilities tests/guests; do
        (cd "$ws" && CARGO_TARGET_DIR=$ROOT/target/guests cargo build -q --release --target wasm32-wasip2)
    done
}

pick_load_tool() {
    local want=${LOAD_TOOL:-}
    if [[ -z $want ]]; then
        if command -v oha >/dev/null; then want=oha
        elif command -v wrk >/dev/null; then want=wrk
        else want=oha; fi
    fi
    if [[ $want == oha ]] && ! command -v oha >/dev/null; then
        echo "installing oha into target/tools (cargo install oha --locked)..." >&2
        cargo install oha --locked --root "$TOOLS" -q
    fi
    if [[ $want == wrk ]] && ! command -v wrk >/dev/null; then
        echo "wrk not found: apt-get install wrk (Debian), or LOAD_TOOL=oha" >&2
        exit 1
    fi
    LOAD=$want
}

# run_load URL C BODY_FILE TOKEN -> prints "rps p50_ms p99_ms ok total"
run_load() {
    local url=$1 c=$2 body=$3 token=$4 out=$WORK/load.out
    local threads=$(( $(nproc) < c ? $(nproc) : c ))
    if [[ $LOAD == oha ]]; then
        local auth=()
        [[ -n $token ]] && auth=(-H "authorization: Bearer $token")
        oha --no-tui --output-format json -z "${DURATION}s" -c "$c" -m POST \
            -T application/json -D "$body" "${auth[@]}" "$url" >"$out" 2>&1
        python3 - "$out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
print(f'{s["requestsPerSec"]:.0f} {p["p50"]*1e3:.3f} {p["p99"]*1e3:.3f} {codes.get("200", 0)} {total}')
EOF
    else
        cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = io.open("$body"):read("*a")
wrk.headers["content-type"] = "application/json"
EOF
        if [[ -n $token ]]; then
            echo "wrk.headers[\"authorization\"] = \"Bearer $token\"" >>"$WORK/post.lua"
        fi
        wrk -t "$threads" -c "$c" -d "${DURATION}s" --latency --timeout 10s \
            -s "$WORK/post.lua" "$url" >"$out" 2>&1
        python3 - "$out" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
total = int(re.search(r"(\d+) requests in", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
nerr = sum(map(int, errs.groups())) if errs else 0
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {total - (int(bad.group(1)) if bad else 0) - nerr} {total}")
EOF
    fi
}

# --- a warden deployment ------------------------------------------------------
TOKEN=bench-token
# deploy DIR CONFIG_EXTRA CAP GUEST FUNCTION KIND IMPORTS BUDGET
deploy() {
    local dir=$1 extra=$2 cap=$3 guest=$4 fn=$5 kind=$6 imports=$7 budget=$8
    mkdir -p "$dir/components" "$dir/policies" "$dir/keys"
    "$WARDEN" key generate --name bench --out "$dir/keys" >/dev/null
    "$WARDEN" sign --key "$dir/keys/bench.key" "$GUESTS/$guest.wasm" -o "$dir/components/$guest.wasm" >/dev/null
    cat >"$dir/trust.toml" <<EOF
[[key]]
name = "bench"
public_key = "$(cat "$dir/keys/bench.pub")"
capabilities = ["$cap"]
EOF
    cat >"$dir/policies/$cap.toml" <<EOF
[capability]
name = "$cap"
component = "$guest.wasm"
signers = ["bench"]

[imports]
$imports

[budget]
$budget
EOF
    cat >"$dir/routes.toml" <<EOF
[[route]]
id = "$kind"
match = { kind = "$kind" }
capability = "$cap"
function = "$fn"
EOF
    cat >"$dir/warden.toml" <<EOF
listen = "127.0.0.1:0"
trust = "trust.toml"
$extra

[[principal]]
name = "bench"
token_sha256 = "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"
roles = ["submit"]
EOF
}

# start_warden DIR -> sets WARDEN_PID, WARDEN_ADDR
start_warden() {
    local dir=$1
    rm -f "$dir/ready"
    "$WARDEN" serve --config "$dir/warden.toml" --ready-file "$dir/ready" \
        >"$dir/serve.out" 2>"$dir/serve.err" &
    WARDEN_PID=$!
    PIDS+=("$WARDEN_PID")
    for _ in $(seq 1 1200); do
        if [[ -s $dir/ready ]]; then WARDEN_ADDR=$(cat "$dir/ready"); return 0; fi
        if ! kill -0 "$WARDEN_PID" 2>/dev/null; then cat "$dir/serve.err" >&2; exit 1; fi
        sleep 0.1
    done
    echo "warden serve did not start" >&2
    exit 1
}

stop() { # pid: SIGTERM and wait
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # pid field -> kB

# --- 5. HTTP: warden serve + echo vs wasmtime serve + hello --------------------
http_part() {
    pick_load_tool
    echo "5. HTTP daemon: POST echo over loopback; tool: $LOAD ($($LOAD --version 2>&1 | head -n1)); ${DURATION}s per run"
    for cow in $MEMORY_INIT_COW; do http_engine "$cow"; done
}

# http_engine true|false: section 5 with both servers' engines set alike
# (warden `[engine] memory_init_cow`, wasmtime `-O memory-init-cow`).
http_engine() {
    local cow=$1 flag=y
    [[ $cow == false ]] && flag=n
    echo "-- engine: memory_init_cow = $cow (wasmtime serve -O memory-init-cow=$flag)"
    local dir=$WORK/echo-$cow
    deploy "$dir" "[engine]
memory_init_cow = $cow

[limits]
max_in_flight = 128
concurrency = 128
queue_timeout = \"10s\"" echo echo echo echo "" 'fuel = 100_000_000
memory = "16MiB"
wall_time = "1s"'
    start_warden "$dir"
    local url="http://$WARDEN_ADDR/v1/requests"
    printf '{"kind":"echo","input":{"message":"hello"}}' >"$WORK/echo.json"

    # The peer runs beside warden (an idle server costs nothing); the two are
    # loaded alternately, ROUNDS times per concurrency, so both see the same
    # machine conditions; the medians are compared.
    local wt; wt=$(command -v wasmtime || true)
    local peer="(not run: no wasmtime 48.x CLI; cargo install wasmtime-cli --version '^48' --locked --root target/tools)"
    local purl="" wpid=""
    if [[ ${PEER:-1} == 0 ]]; then
        peer="(skipped: PEER=0)"
    elif [[ -n $wt ]] && "$wt" --version | grep -q '^wasmtime 48\.'; then
        peer="$("$wt" --version | head -n1) serve -Scli -O memory-init-cow=$flag $GUESTS/http_hello.wasm"
        local port; port=$(free_port)
        "$wt" serve -Scli -O "memory-init-cow=$flag" --addr "127.0.0.1:$port" "$GUESTS/http_hello.wasm" \
            >"$WORK/wasmtime.out" 2>"$WORK/wasmtime.err" &
        wpid=$!
        PIDS+=("$wpid")
        wait_http "http://127.0.0.1:$port/"
        purl="http://127.0.0.1:$port/"
    fi
    DURATION=2 run_load "$url" 16 "$WORK/echo.json" "$TOKEN" >/dev/null # warm-up
    if [[ -n $purl ]]; then DURATION=2 run_load "$purl" 16 "$WORK/echo.json" "" >/dev/null; fi
    echo "   peer: $peer"
    echo "   $ROUNDS rounds per concurrency, warden and the peer alternately"
    local results=$WORK/results.txt
    : >"$results"
    for c in $CONCURRENCY; do
        for r in $(seq 1 "$ROUNDS"); do
            local l; l=$(load)
            echo "warden $c $(run_load "$url" "$c" "$WORK/echo.json" "$TOKEN") $l" >>"$results"
            if [[ -n $purl ]]; then
                l=$(load)
                echo "peer $c $(run_load "$purl" "$c" "$WORK/echo.json" "") $l" >>"$results"
            fi
        done
    done
    echo "   warden serve peak RSS (VmHWM) after the runs: $(( $(vm "$WARDEN_PID" VmHWM) / 1024 )) MiB"
    stop "$WARDEN_PID"
    if [[ -n $wpid ]]; then
        echo "   wasmtime serve peak RSS (VmHWM) after the runs: $(( $(vm "$wpid" VmHWM) / 1024 )) MiB"
        stop "$wpid"
    fi
    python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    who, c, rps, p50, p99, ok, total, *load = line.split()
    rows.setdefault((int(c), who), []).append((float(rps), p50, p99, ok, total, " ".join(load)))
for c in sorted({c for c, _ in rows}):
    for who, name in (("warden", "warden serve + echo"), ("peer", "wasmtime serve + hello")):
        for rps, p50, p99, ok, total, load in rows.get((c, who), []):
            print(f"   c={c:<3} {name:<24} {rps:>6.0f}/s  p50 {p50} ms  p99 {p99} ms  ok {ok}/{total}  ({load})")
    w = [r[0] for r in rows.get((c, "warden"), [])]
    p = [r[0] for r in rows.get((c, "peer"), [])]
    if w and p:
        per = ", ".join(f"{a / b:.2f}" for a, b in zip(w, p))
        print(f"   c={c:<3} median: warden {statistics.median(w):.0f}/s vs wasmtime serve {statistics.median(p):.0f}/s"
              f" = {statistics.median(w) / statistics.median(p):.2f}x   (per round: {per})")
    elif w:
        print(f"   c={c:<3} median: warden {statistics.median(w):.0f}/s")
EOF
}

# --- 7. memory: 1000 invocations in flight on a slow loopback server ------------
memory_part() {
    echo "7. memory: warden serve with $INFLIGHT concurrent invocations, each waiting ${SLOW_DELAY}s on a slow loopback HTTP server"
    local sport; sport=$(free_port)
    python3 "$ROOT/benches/loopback.py" slow-server "$sport" "$SLOW_DELAY" >"$WORK/slow.out" 2>&1 &
    local spid=$!
    PIDS+=("$spid")
    for _ in $(seq 1 100); do grep -q ready "$WORK/slow.out" && break; sleep 0.1; done
    local dir=$WORK/mem
    local wall=$(( SLOW_DELAY * 4 + 10 ))
    deploy "$dir" "[limits]
max_in_flight = $INFLIGHT
concurrency = $INFLIGHT
queue_timeout = \"30s\"" http-fetch http_fetch fetch fetch '"wasi:http/types" = {}
"wasi:http/outgoing-handler" = { allow = ["http://127.0.0.1:'"$sport"'"], max_requests = 1, timeout = "'"$wall"'s" }
"wasi:clocks/monotonic-clock" = {}
"wasi:io/poll" = {}
"wasi:io/error" = {}
"wasi:io/streams" = {}
"wasi:cli/environment" = {}
"wasi:cli/exit" = {}
"wasi:cli/stdin" = {}
"wasi:cli/stdout" = {}
"wasi:cli/stderr" = {}
"wasi:cli/terminal-input" = {}
"wasi:cli/terminal-output" = {}
"wasi:cli/terminal-stdin" = {}
"wasi:cli/terminal-stdout" = {}
"wasi:cli/terminal-stderr" = {}' 'fuel = 100_000_000
memory = "16MiB"
wall_time = "'"$wall"'s"'
    start_warden "$dir"
    local url="http://$WARDEN_ADDR/v1/requests"
    local body='{"kind":"fetch","input":{"method":"GET","url":"http://127.0.0.1:'"$sport"'/rate","body":null}}'
    # One request first: the capability works and the process is warm.
    python3 "$ROOT/benches/loopback.py" burst "$url" "$TOKEN" 1 "$body" "$wall" >"$WORK/one.out"
    local idle; idle=$(vm "$WARDEN_PID" VmRSS)
    local hwm0; hwm0=$(vm "$WARDEN_PID" VmHWM)
    local l; l=$(load)
    python3 "$ROOT/benches/loopback.py" burst "$url" "$TOKEN" "$INFLIGHT" "$body" "$(( wall * 2 ))" >"$WORK/burst.out" &
    local bpid=$!
    # Sample while the burst is held by the slow server.
    local peak_rss=0
    while kill -0 "$bpid" 2>/dev/null; do
        local r; r=$(vm "$WARDEN_PID" VmRSS || echo 0)
        (( r > peak_rss )) && peak_rss=$r
        sleep 0.2
    done
    wait "$bpid"
    local hwm; hwm=$(vm "$WARDEN_PID" VmHWM)
    stop "$WARDEN_PID"
    kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
    echo "   one request first: $(cat "$WORK/one.out")"
    echo "   burst: $(cat "$WORK/burst.out")"
    echo "   $(grep peak "$WORK/slow.out")"
    echo "   RSS before the burst: $(( idle / 1024 )) MiB (VmHWM $(( hwm0 / 1024 )) MiB)"
    echo "   peak RSS during the burst: VmHWM $(( hwm / 1024 )) MiB (sampled VmRSS max $(( peak_rss / 1024 )) MiB)"
    echo "   per in-flight invocation: $(( (hwm - idle) / INFLIGHT )) KiB above the pre-burst RSS   ($l)"
}

echo "warden HTTP benchmarks: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(load)"
build_warden
case $PART in
    http) http_part ;;
    memory) memory_part ;;
    all) http_part; memory_part ;;
    *) echo "usage: benches/http.sh [all|http|memory]" >&2; exit 1 ;;
esac
