#!/usr/bin/env bash
# Makes sure tmux is installed: the command line's tests draw its progress bars in a real
# terminal, a tmux pane, and read the screen back.
set -euo pipefail
command -v tmux >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "tmux is missing; installing Debian's package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
  exit 0
fi
cat >&2 <<'MSG'
tmux is missing, and the command line's terminal tests need it. Install it, then run make test again:
  Debian/Ubuntu:  sudo apt-get install -y tmux
  macOS:          brew install tmux
MSG
exit 1
