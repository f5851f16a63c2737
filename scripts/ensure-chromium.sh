#!/bin/sh
# ensure-chromium.sh makes sure Debian's Chromium is installed at /usr/bin/chromium, which the
# browser end-to-end tests drive through playwright-core. It never downloads a browser build of
# its own: as root it installs Debian's package, otherwise it says what to run and fails.
set -eu

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	echo "ensure-chromium: $CHROMIUM is missing; installing Debian's chromium package" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y chromium
	if [ -x "$CHROMIUM" ]; then
		exit 0
	fi
	echo "ensure-chromium: the chromium package installed, but $CHROMIUM is still missing" >&2
	exit 1
fi

echo "ensure-chromium: $CHROMIUM is missing. Install it with:" >&2
echo "    sudo apt-get update && sudo apt-get install -y chromium" >&2
exit 1
