#!/usr/bin/env bash
# poll.sh follows a longhaul download job by polling its status, the fallback that always
# works: GET /v1/download/status/{job_id} every poll_after_ms with If-None-Match, so an
# unchanged job costs a 304 and no body.
#
#   scripts/poll.sh dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB
#   scripts/poll.sh --start 70000,70007,70014
#   BASE_URL=http://longhaul.internal:3000 scripts/poll.sh dl_...
#
# It prints one line whenever the job changes, then the final line and every file:
#
#   dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB processing 62.5% (2/4 files: 1 ready, 1 unavailable, 0 failed)
#
# Exit status: 0 when the job completed, 1 when it failed or was canceled, 2 on a usage
# error, an unknown job or any other error answer (its code and message are printed).
#
# Needs bash, curl, grep and awk; no jq.
set -euo pipefail
export LC_ALL=C

prog=${0##*/}
base_url=${BASE_URL:-http://localhost:3000}
base_url=${base_url%/}
# Consecutive failed polls (connection lost, 502, 503, 504, 429) tolerated once the job was
# seen, e.g. while the API restarts.
max_retries=${POLL_RETRIES:-30}

usage() {
	cat <<EOF
Usage: $prog JOB_ID
       $prog --start FILE_ID[,FILE_ID...]

Follows a longhaul download job until it ends, printing a line whenever it changes.
With --start, first starts a job for the given file ids.

Environment:
  BASE_URL      the longhaul API (default http://localhost:3000)
  POLL_RETRIES  failed polls in a row tolerated while the API is away (default 30)

Exit status: 0 completed, 1 failed or canceled, 2 usage or request error.
EOF
}

usage_error() {
	printf '%s: %s\n' "$prog" "$1" >&2
	usage >&2
	exit 2
}

die() {
	printf '%s: %s\n' "$prog" "$1" >&2
	exit 2
}

command -v curl >/dev/null 2>&1 ||
	die "curl is required: install it with your package manager (apt-get install curl, brew install curl)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/longhaul-poll.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# json_flat FILE prints one line per scalar of the JSON document in FILE: its path, a tab,
# its value, e.g. "progress.percent<TAB>62.5" or "files.0.status<TAB>ready". Strings are
# unescaped; escaped control characters become spaces, so every value stays on one line.
json_flat() {
	grep -oE '"([^"\\]|\\.)*"|-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null|[][{}:,]' "$1" |
		awk '
		function push(t) { depth++; type[depth] = t; idx[depth] = 0; key[depth] = ""; wantkey[depth] = (t == "o") }
		function path(   p, i, seg) {
			p = ""
			for (i = 1; i <= depth; i++) {
				seg = (type[i] == "a") ? idx[i] : key[i]
				p = (i == 1) ? seg : p "." seg
			}
			return p
		}
		function hexval(h,   i, v) {
			v = 0
			for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
			return v
		}
		function unquote(s,   out, i, n, ch, code) {
			s = substr(s, 2, length(s) - 2)
			if (index(s, "\\") == 0) return s
			out = ""; n = length(s)
			for (i = 1; i <= n; i++) {
				ch = substr(s, i, 1)
				if (ch == "\\") {
					ch = substr(s, ++i, 1)
					if (ch == "u") {
						code = hexval(substr(s, i + 1, 4)); i += 4
						ch = (code >= 32 && code < 127) ? sprintf("%c", code) : (code < 32 ? " " : "?")
					} else if (ch == "n" || ch == "r" || ch == "t" || ch == "b" || ch == "f") {
						ch = " "
					}
				}
				out = out ch
			}
			return out
		}
		$0 == "{" { push("o"); next }
		$0 == "[" { push("a"); next }
		$0 == "}" || $0 == "]" { depth--; next }
		$0 == ":" { next }
		$0 == "," { if (type[depth] == "a") idx[depth]++; else wantkey[depth] = 1; next }
		type[depth] == "o" && wantkey[depth] { key[depth] = unquote($0); wantkey[depth] = 0; next }
		{ print path() "\t" (substr($0, 1, 1) == "\"" ? unquote($0) : $0) }
		'
}

# field FLAT NAME prints the value of NAME in the flattened document FLAT.
field() {
	awk -F '\t' -v k="$2" '$1 == k { print $2; exit }' "$1"
}

# summary FLAT prints the one-line state of a job from its flattened status body.
summary() {
	awk -F '\t' '
		{ v[$1] = $2 }
		END {
			pct = sprintf("%.1f", v["progress.percent"] + 0); sub(/\.0$/, "", pct)
			printf "%s %s %s%% (%d/%d files: %d ready, %d unavailable, %d failed)\n",
				v["job_id"], v["status"], pct, v["progress.files_done"], v["progress.files_total"],
				v["progress.files_ready"], v["progress.files_unavailable"], v["progress.files_failed"]
		}' "$1"
}

# details FLAT prints the job's error, if any, and one line per file.
details() {
	awk -F '\t' -v base="$base_url" '
		$1 == "error.code" { jcode = $2 }
		$1 == "error.message" { jmsg = $2 }
		$1 ~ /^files\.[0-9]+\./ {
			split($1, p, ".")
			v[p[2], p[3]] = $2
			if (p[2] + 1 > n) n = p[2] + 1
		}
		END {
			if (jcode != "") printf "  error %s: %s\n", jcode, jmsg
			for (i = 0; i < n; i++) {
				line = "  " v[i, "file_id"] " " v[i, "status"]
				if (v[i, "size"] != "") line = line " " v[i, "size"] " bytes"
				if (v[i, "download_url"] != "") line = line " " base v[i, "download_url"]
				if (v[i, "error"] != "") line = line ": " v[i, "error"]
				print line
			}
		}' "$1"
}

# request METHOD PATH [BODY] sends one request and prints the HTTP status; the body is in
# $tmp/body, the headers in $tmp/headers. It fails when no answer came.
request() {
	local method=$1 path=$2 body=${3:-}
	local -a args=(-sS --connect-timeout 5 --max-time 30 -X "$method" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}')
	if [[ -n $body ]]; then
		args+=(-H 'Content-Type: application/json' --data-binary "$body")
	fi
	if [[ -n ${etag:-} ]]; then
		args+=(-H "If-None-Match: $etag")
	fi
	: >"$tmp/body"
	curl "${args[@]}" "$base_url$path"
}

# header NAME prints the value of the last answer's header NAME.
header() {
	awk -v name="$1" '
		BEGIN { name = tolower(name) }
		{
			i = index($0, ":")
			if (i > 0 && tolower(substr($0, 1, i - 1)) == name) {
				v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t\r]+$/, "", v)
			}
		}
		END { print v }' "$tmp/headers"
}

# answer_error CODE prints the contract's error from the last answer and exits 2.
answer_error() {
	json_flat "$tmp/body" >"$tmp/error" || true
	local code message
	code=$(field "$tmp/error" error.code)
	message=$(field "$tmp/error" error.message)
	if [[ -n $code ]]; then
		die "$code: $message (HTTP $1)"
	fi
	die "unexpected answer HTTP $1 from $base_url"
}

start_job() {
	local ids=$1 code
	[[ $ids =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "--start wants file ids like 70000,70007, got '$ids'"
	code=$(request POST /v1/download/initiate "{\"file_ids\":[$ids]}") || die "cannot reach longhaul at $base_url"
	[[ $code == 202 || $code == 200 ]] || answer_error "$code"
	json_flat "$tmp/body" >"$tmp/started"
	job=$(field "$tmp/started" job_id)
	[[ -n $job ]] || die "the answer to POST /v1/download/initiate has no job_id"
	printf 'started %s with %s file(s): %s/jobs/%s\n' "$job" "$(field "$tmp/started" total_files)" "$base_url" "$job"
}

job=
case ${1:-} in
-h | --help)
	usage
	exit 0
	;;
--start)
	[[ $# -eq 2 ]] || usage_error "--start takes one list of file ids"
	start_job "$2"
	;;
--start=*)
	[[ $# -eq 1 ]] || usage_error "too many arguments"
	start_job "${1#--start=}"
	;;
'')
	usage_error "a job id is required"
	;;
-*)
	usage_error "unknown option $1"
	;;
*)
	[[ $# -eq 1 ]] || usage_error "too many arguments"
	# The server judges the id; this only keeps it from changing the URL.
	[[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || usage_error "'$1' is not a job id (they look like dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB)"
	job=$1
	;;
esac

etag=
last=
seen=false
failures=0
while :; do
	delay=1
	if code=$(request GET "/v1/download/status/$job"); then
		case $code in
		200)
			seen=true failures=0
			etag=$(header ETag)
			json_flat "$tmp/body" >"$tmp/status"
			line=$(summary "$tmp/status")
			if [[ $line != "$last" ]]; then
				printf '%s\n' "$line"
				last=$line
			fi
			case $(field "$tmp/status" status) in
			completed)
				details "$tmp/status"
				exit 0
				;;
			failed | canceled)
				details "$tmp/status"
				exit 1
				;;
			esac
			ms=$(field "$tmp/status" poll_after_ms)
			if [[ $ms =~ ^[0-9]+$ && $ms -gt 0 ]]; then
				delay=$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')
			fi
			;;
		304)
			seen=true failures=0
			;;
		429 | 502 | 503 | 504)
			failures=$((failures + 1))
			((failures <= max_retries)) || answer_error "$code"
			retry=$(header Retry-After)
			if [[ $retry =~ ^[0-9]+$ ]]; then
				delay=$retry
			fi
			printf '%s: HTTP %s, trying again in %ss\n' "$prog" "$code" "$delay" >&2
			;;
		*)
			answer_error "$code"
			;;
		esac
	else
		# No answer at all: a wrong BASE_URL at first, a restarting API later.
		$seen || die "cannot reach longhaul at $base_url"
		failures=$((failures + 1))
		((failures <= max_retries)) || die "lost longhaul at $base_url"
		printf '%s: no answer from %s, trying again in %ss\n' "$prog" "$base_url" "$delay" >&2
	fi
	sleep "$delay"
done
