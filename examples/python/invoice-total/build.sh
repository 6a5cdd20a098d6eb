#!/usr/bin/env bash
# Builds the invoice-total Python capability into a WebAssembly component.
#
#   examples/python/invoice-total/build.sh [out-dir]     (default: <repo>/target/polyglot)
#
# Installs the pinned componentize-py (requirements.txt) into a project-local
# venv, <out-dir>/venv, never globally. Writes <out-dir>/invoice_total.wasm.
# Skips the build when app.py, wit/, requirements.txt and this script are
# unchanged since the last successful build (stamp file beside the output).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out_dir="${1:-$repo/target/polyglot}"
name=invoice_total
out="$out_dir/$name.wasm"
stamp="$out_dir/$name.stamp"
venv="$out_dir/venv"

die() { echo "error: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is not installed (needed to create the venv for componentize-py)"
mkdir -p "$out_dir"

cd "$here"
inputs_hash="$( (find app.py requirements.txt build.sh wit -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)"
if [[ -f "$out" && -f "$stamp" && "$(cat "$stamp")" == "$inputs_hash" ]]; then
    echo "$name: up to date ($out)"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || die "python3 -m venv failed: install the python3-venv package"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt \
    || die "pip could not install $(echo $(< requirements.txt)) from PyPI into $venv"
[[ -x "$venv/bin/componentize-py" ]] || die "componentize-py is missing from $venv after pip install"

rm -f "$stamp"
"$venv/bin/componentize-py" -d wit -w invoice-total componentize app --stub-wasi -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$inputs_hash" > "$stamp"
echo "$name: built $out ($(stat -c %s "$out") bytes) with $("$venv/bin/componentize-py" --version)"
