#!/usr/bin/env bash
# Builds the word-stats JavaScript capability into a WebAssembly component.
#
#   examples/javascript/word-stats/build.sh [out-dir]     (default: <repo>/target/polyglot)
#
# Installs the exact tool versions of package-lock.json into this
# directory's node_modules (never globally), then runs componentize-js.
# Writes <out-dir>/word_stats.wasm. Skips the build when word-stats.js, wit/,
# package.json, package-lock.json and this script are unchanged since the
# last successful build (stamp file beside the output).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out_dir="${1:-$repo/target/polyglot}"
name=word_stats
out="$out_dir/$name.wasm"
stamp="$out_dir/$name.stamp"

die() { echo "error: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is not installed (componentize-js needs Node.js >= 18)"
command -v npm >/dev/null || die "npm is not installed (needed to install componentize-js into node_modules)"
mkdir -p "$out_dir"

cd "$here"
inputs_hash="$( (find word-stats.js package.json package-lock.json build.sh wit -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)"
if [[ -f "$out" && -f "$stamp" && "$(cat "$stamp")" == "$inputs_hash" ]]; then
    echo "$name: up to date ($out)"
    exit 0
fi

# Install exactly what package-lock.json pins. Not `npm ci`: the registry
# this project builds against lacks some *other* platforms' optional native
# packages (e.g. @rolldown/binding-darwin-x64), so the lockfile cannot list
# them and `npm ci` refuses it as "out of sync". `npm install --no-save`
# installs the locked versions and never rewrites package.json or the lock.
# Only run it when the lockfile changed since the last install.
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f node_modules/.warden-lock-hash || "$(cat node_modules/.warden-lock-hash)" != "$lock_hash" ]]; then
    npm install --no-save --no-audit --no-fund --loglevel=error \
        || die "npm could not install @bytecodealliance/componentize-js (pinned in package-lock.json) into $here/node_modules"
    echo "$lock_hash" > node_modules/.warden-lock-hash
fi
componentize="$here/node_modules/.bin/componentize-js"
[[ -x "$componentize" ]] || die "componentize-js is missing from $here/node_modules after npm ci"

rm -f "$stamp"
# http and fetch-event: StarlingMonkey's fetch() and incoming-handler pull in
# wasi:http/*, which warden does not grant.
"$componentize" word-stats.js --wit wit --world-name word-stats --disable http fetch-event -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$inputs_hash" > "$stamp"
echo "$name: built $out ($(stat -c %s "$out") bytes) with componentize-js $("$componentize" --version)"
