#!/usr/bin/env bash
# Installs the pinned MCP Python SDK (requirements.txt) into a project-local
# venv, never globally:
#
#   tests/mcp/setup.sh [venv-dir]     (default: <repo>/target/mcp-client/venv)
#
# Run by the e2e tests (tests/e2e/mcp.rs) before they start a client; skips
# pip when the requirements are unchanged since the last successful install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${1:-$repo/target/mcp-client/venv}"
stamp="$venv/.requirements.sha256"

die() { echo "error: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is not installed (needed for the MCP client tests)"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
mkdir -p "$(dirname "$venv")"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || die "python3 -m venv failed: install the python3-venv package"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || die "pip could not install $(grep -v '^#' "$here/requirements.txt") from PyPI into $venv"
"$venv/bin/python" -c "import mcp" || die "the mcp package is missing from $venv after pip install"
echo "$want" > "$stamp"
echo "mcp client: installed $(grep -v '^#' "$here/requirements.txt") into $venv"
