#!/usr/bin/env bash
# Installs the Node peer's packages from the npm registry into node_modules beside this
# script, exactly as package-lock.json pins them (npm ci). When they are installed already
# from the current lock, it does nothing, so the benchmark can call it before every run.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null; then
  echo "node not found: the Node peer needs Node 20 or newer" >&2
  exit 1
fi
if (( $(node -p 'process.versions.node.split(".")[0]') < 20 )); then
  echo "node $(node --version) is too old: the Node peer needs Node 20 or newer" >&2
  exit 1
fi
# npm ci leaves node_modules/.package-lock.json behind; newer than the lock, nothing changed.
if [[ node_modules/.package-lock.json -nt package-lock.json ]]; then
  exit 0
fi
npm ci --no-audit --no-fund
