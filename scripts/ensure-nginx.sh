#!/bin/sh
# ensure-nginx.sh makes sure an nginx binary is installed: the nginx tests in deploy/ start
# their own nginx on loopback, with a config and prefix in a temporary directory, to prove
# that live progress survives a real proxy. As root it installs Debian's nginx-light (or
# nginx where nginx-light is not available); otherwise it says what to run and fails.
set -eu

# Debian installs nginx in /usr/sbin, which is not on every user's PATH.
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-nginx: nginx is missing; installing Debian's nginx-light package" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if apt-cache show nginx-light >/dev/null 2>&1; then
		apt-get install -y -qq nginx-light >/dev/null
	else
		echo "ensure-nginx: nginx-light is not available here; installing nginx" >&2
		apt-get install -y -qq nginx >/dev/null
	fi
	if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
		exit 0
	fi
	echo "ensure-nginx: the package installed, but no nginx binary was found" >&2
	exit 1
fi

cat >&2 <<'MSG'
ensure-nginx: nginx is missing, and the nginx tests (deploy/) need it. Install it, then
run make test again:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y nginx-light
                  (or nginx, where nginx-light is not available)
  macOS:          brew install nginx
MSG
exit 1
