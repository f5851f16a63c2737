#!/usr/bin/env bash
# demo.sh runs the demo's three scenarios against a running longhaul, with the same curl
# commands as the original demo, and follows each job with poll.sh:
#
#   available    70000,70007,70014,70021  every file ready          job completed
#   unavailable  70001,70002,70003,70004  every file unavailable    job failed
#   mixed        70000,70001,70007,70008  two ready, two unavailable  job completed
#
#   longhaul serve &            # or: docker compose up -d
#   scripts/demo.sh             # all three; or name one: scripts/demo.sh mixed
#
# Files take 10-30 s each by default; LONGHAUL_FILE_TIME_MIN/MAX on the server shorten that.
# Exit status: 0 when every scenario ended as expected, 1 when one did not, 2 on a usage
# error or when longhaul does not answer.
set -euo pipefail
export LC_ALL=C

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
base_url=${BASE_URL:-http://localhost:3000}
base_url=${base_url%/}
export BASE_URL=$base_url

usage() {
	cat <<EOF
Usage: $prog [available|unavailable|mixed|all]

Runs the demo's scenarios (default all) against longhaul at BASE_URL
(default http://localhost:3000) and checks how each job ends.
EOF
}

die() {
	printf '%s: %s\n' "$prog" "$1" >&2
	exit 2
}

command -v curl >/dev/null 2>&1 ||
	die "curl is required: install it with your package manager (apt-get install curl, brew install curl)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/longhaul-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# scenario NAME FILE_IDS STATUS COUNTS starts a job for FILE_IDS, follows it, and checks
# that it ends with STATUS and the file COUNTS of poll.sh's summary line.
scenario() {
	local name=$1 ids=$2 want_status=$3 want_counts=$4
	local body="{\"file_ids\": [${ids//,/, }]}"
	local answer code job rc want_rc final

	printf '\n== %s: %s (expect %s, %s)\n' "$name" "$ids" "$want_status" "$want_counts"
	printf '$ curl -X POST %s/v1/download/initiate \\\n    -H "Content-Type: application/json" \\\n    -d '\''%s'\''\n' \
		"$base_url" "$body"
	answer=$(curl -sS --max-time 30 -X POST "$base_url/v1/download/initiate" \
		-H "Content-Type: application/json" -d "$body" -w '\n%{http_code}') ||
		die "cannot reach longhaul at $base_url"
	code=${answer##*$'\n'}
	answer=${answer%$'\n'*}
	printf '%s\n' "$answer"
	if [[ $code != 202 ]]; then
		printf '%s: %s: expected HTTP 202, got %s\n' "$prog" "$name" "$code" >&2
		return 1
	fi
	job=$(printf '%s' "$answer" | grep -oE '"job_id": *"dl_[0-9A-Z]{26}"' | grep -oE 'dl_[0-9A-Z]{26}') || {
		printf '%s: %s: no job_id in the answer\n' "$prog" "$name" >&2
		return 1
	}

	printf '$ scripts/poll.sh %s\n' "$job"
	set +e
	"$here/poll.sh" "$job" | tee "$tmp/$name.out"
	rc=${PIPESTATUS[0]}
	set -e

	want_rc=1
	[[ $want_status == completed ]] && want_rc=0
	final=$(grep "^$job " "$tmp/$name.out" | tail -n 1 || true)
	if [[ $rc -ne $want_rc || $final != "$job $want_status 100% ($want_counts)" ]]; then
		printf '%s: %s: expected "%s 100%% (%s)", poll.sh exiting %d; got "%s", exiting %d\n' \
			"$prog" "$name" "$want_status" "$want_counts" "$want_rc" "${final#"$job "}" "$rc" >&2
		return 1
	fi
	printf 'ok: %s ended %s\n' "$name" "$want_status"
}

run() {
	case $1 in
	available) scenario available 70000,70007,70014,70021 completed "4/4 files: 4 ready, 0 unavailable, 0 failed" ;;
	unavailable) scenario unavailable 70001,70002,70003,70004 failed "4/4 files: 0 ready, 4 unavailable, 0 failed" ;;
	mixed) scenario mixed 70000,70001,70007,70008 completed "4/4 files: 2 ready, 2 unavailable, 0 failed" ;;
	esac
}

[[ $# -le 1 ]] || {
	usage >&2
	exit 2
}
case ${1:-all} in
-h | --help)
	usage
	exit 0
	;;
all) scenarios=(available unavailable mixed) ;;
available | unavailable | mixed) scenarios=("$1") ;;
*)
	printf '%s: unknown scenario %s\n' "$prog" "$1" >&2
	usage >&2
	exit 2
	;;
esac

curl -fsS --max-time 5 -o /dev/null "$base_url/readyz" ||
	die "longhaul is not ready at $base_url: start it (longhaul serve, or docker compose up -d) or set BASE_URL"

failed=0
for s in "${scenarios[@]}"; do
	run "$s" || failed=$((failed + 1))
done
printf '\n%d of %d scenario(s) ended as expected\n' $((${#scenarios[@]} - failed)) "${#scenarios[@]}"
[[ $failed -eq 0 ]]
