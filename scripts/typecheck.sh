#!/usr/bin/env bash
# Strict mypy over the installed layout: agentrt, agentrt.engine (engine/) and agentrt.tools
# (tools/) are mapped by setuptools' package-dir, which mypy cannot follow, so check a copy
# laid out the way Python imports it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/agentrt" "$tmp/agentrt"
cp -r "$root/engine" "$tmp/agentrt/engine"
cp -r "$root/tools" "$tmp/agentrt/tools"
cp "$root/pyproject.toml" "$tmp/"
cd "$tmp"
"${PYTHON:-$root/.venv/bin/python}" -m mypy agentrt
