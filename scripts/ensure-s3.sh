#!/usr/bin/env bash
# Makes sure moto_server is there: the tests of S3 storage start their own throwaway S3
# server with it (internal/devbin StartS3), in memory, on a free loopback port.
set -euo pipefail
command -v moto_server >/dev/null 2>&1 && exit 0
cat >&2 <<'MSG'
moto_server is missing, and the tests of S3 storage need it (an S3 server that speaks
conditional writes, uploads in parts and presigned URLs). Install moto's server into a
Python 3 on the PATH, then run make test again:
  pip install 'moto[server]==5.2.1'
  (or: pipx install 'moto[server]==5.2.1')
MSG
exit 1
