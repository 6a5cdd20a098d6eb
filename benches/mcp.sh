#!/usr/bin/env bash
# MCP benchmark (BENCHMARKS.md section 11): `tools/call` of echo over
# streamable HTTP (`/mcp`) against the same request over `POST /v1/requests`,
# both on one `warden serve`, loaded alternately by benches/mcp.py (python3
# standard library: the same client for both sides).
#
#   benches/mcp.sh                       # builds target/release/warden
#   WARDEN_BIN=target/debug/warden benches/mcp.sh   # measure another binary
#
# Knobs (benches/mcp.py): ROUNDS (3), N (requests per latency run, 2000),
# DURATION (seconds per throughput run, 5), CONC (16). Figures are measured,
# never fixed; nothing asserts timing. The load average is printed with them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/warden-mcp-bench.XXXXXX")
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

WARDEN=${WARDEN_BIN:-$ROOT/target/release/warden}
if [[ -z ${WARDEN_BIN:-} ]]; then
    echo "building warden (release)..." >&2
    cargo build --release -q -p warden-host --bin warden
fi
(cd capabilities && CARGO_TARGET_DIR=$ROOT/target/guests cargo build -q --release --target wasm32-wasip2)
ECHO=$ROOT/target/guests/wasm32-wasip2/release/echo.wasm

mkdir -p "$WORK/components" "$WORK/policies"
"$WARDEN" key generate --name bench --out "$WORK/keys" >/dev/null
"$WARDEN" sign --key "$WORK/keys/bench.key" "$ECHO" -o "$WORK/components/echo.wasm" >/dev/null
cat >"$WORK/trust.toml" <<T
[[key]]
name = "bench"
public_key = "$(cat "$WORK/keys/bench.pub")"
capabilities = ["echo"]
T
printf '[capability]\nname = "echo"\ncomponent = "echo.wasm"\n\n[imports]\n' >"$WORK/policies/echo.toml"
printf '[[route]]\nid = "greet"\nmatch = { kind = "greet" }\ncapability = "echo"\nfunction = "echo"\n' >"$WORK/routes.toml"
TOKEN=bench-token
cat >"$WORK/warden.toml" <<T
listen = "127.0.0.1:0"
trust = "trust.toml"

[[principal]]
name = "bench"
token_sha256 = "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"
roles = ["submit"]

[mcp]
[[mcp.tool]]
name = "greet"
kind = "greet"
description = "Echo a message back."
T
"$WARDEN" serve --config "$WORK/warden.toml" --ready-file "$WORK/ready" 2>"$WORK/serve.log" &
PID=$!
for _ in $(seq 1 600); do [[ -s $WORK/ready ]] && break; sleep 0.1; done
[[ -s $WORK/ready ]] || { cat "$WORK/serve.log" >&2; exit 1; }
echo "warden: $WARDEN ($("$WARDEN" --version)), $(nproc) cpus"
python3 "$ROOT/benches/mcp.py" "$WARDEN" "$WORK/warden.toml" "$TOKEN" "$(cat "$WORK/ready")"
