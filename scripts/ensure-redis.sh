#!/usr/bin/env bash
# Makes sure redis-server is installed: the tests start their own throwaway servers with it.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is missing; installing Debian's package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  exit 0
fi
cat >&2 <<'MSG'
redis-server is missing, and the tests need it. Install it, then run make test again:
  Debian/Ubuntu:  sudo apt-get install -y redis-server
  macOS:          brew install redis
MSG
exit 1
