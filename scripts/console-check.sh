#!/usr/bin/env bash
# Renders the server's web console in headless Chromium: each view's DOM
# (after its scripts ran) to OUTDIR/VIEW.html and a 1280x900 screenshot to
# OUTDIR/VIEW.png, for tests to assert on (data-ready, data-view,
# data-state, data-machine; see the comment at the top of
# crates/server/console/app.js) and for people to look at.
#
# Usage: scripts/console-check.sh URL TOKEN OUTDIR [ROUTE...]
#   URL    the server, e.g. http://127.0.0.1:8080 (no trailing /console)
#   TOKEN  an admin token (slw_admin_...)
#   ROUTE  extra console routes to render, e.g. /deployments/d-123 or
#          /machines/m-456; each becomes OUTDIR/deployments_d-123.html/.png
#
# Always rendered: login (no token), overview, overview-narrow (420 px wide,
# screenshot only), machines, collections, deployments; Chromium's messages
# go to OUTDIR/VIEW.log. Each page is opened as
# URL/console/#token=TOKEN&route=ROUTE in a fresh profile, so the token
# arrives in the fragment (never sent to the server) and the console moves
# it to localStorage. Certificate errors are ignored (the server's default
# certificate is self-signed). Prints the files it wrote, one per line.
# Exits 1 if the server does not answer, a view did not finish loading (no
# data-ready="1") or Chromium failed; 2 if Chromium is missing; 64 on bad
# usage. CHROMIUM=path picks the browser; CONSOLE_CHECK_BUDGET is the
# virtual time each page gets, in ms (default 5000).
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '8,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
fi
url=${1%/}
token=$2
out=$3
shift 3

chrome=${CHROMIUM:-}
if [ -z "$chrome" ]; then
    for c in chromium chromium-browser google-chrome-stable google-chrome; do
        if command -v "$c" >/dev/null 2>&1; then
            chrome=$(command -v "$c")
            break
        fi
    done
fi
if [ -z "$chrome" ] || ! [ -x "$chrome" ]; then
    echo "console-check: no Chromium found (install it: apt-get install -y chromium, or set CHROMIUM=/path/to/chrome)" >&2
    exit 2
fi

if command -v curl >/dev/null 2>&1 && ! curl -ksf -o /dev/null --max-time 10 "$url/console/"; then
    echo "console-check: cannot load $url/console/ (is the server running there?)" >&2
    exit 1
fi

budget=${CONSOLE_CHECK_BUDGET:-5000}
mkdir -p "$out"
profiles=$(mktemp -d)
trap 'rm -rf "$profiles"' EXIT

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --disable-extensions --hide-scrollbars --mute-audio --ignore-certificate-errors
    "--virtual-time-budget=$budget")

n=0
# run_chrome ARGS...: one bounded Chromium run in a fresh profile.
run_chrome() {
    n=$((n + 1))
    timeout 60 "$chrome" "${flags[@]}" "--user-data-dir=$profiles/$n" "$@"
}

# Percent-encodes a fragment parameter value.
urlencode() {
    local s=$1 i c o=""
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9._~/-]) o+=$c ;;
            *) o+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$o"
}

status=0
# render NAME PAGE_URL [WIDTH]: NAME.html (the DOM) and NAME.png.
render() {
    local name=$1 page=$2 width=${3:-1280} log="$out/$1.log"
    : >"$log"
    if [ "$width" = 1280 ]; then
        if ! run_chrome --dump-dom "$page" >"$out/$name.html" 2>>"$log"; then
            echo "console-check: $name: Chromium failed dumping the DOM (see $log)" >&2
            status=1
        elif ! grep -q 'data-ready="1"' "$out/$name.html"; then
            echo "console-check: $name: the view did not finish loading (no data-ready=\"1\" in $out/$name.html)" >&2
            status=1
        elif grep -q '<body[^>]*data-error="1"' "$out/$name.html"; then
            echo "console-check: $name: the view shows an error (see #error in $out/$name.html)" >&2
        fi
        echo "$out/$name.html"
    fi
    if ! run_chrome "--window-size=$width,900" "--screenshot=$out/$name.png" "$page" >>"$log" 2>&1; then
        echo "console-check: $name: Chromium failed taking the screenshot (see $log)" >&2
        status=1
    fi
    echo "$out/$name.png"
}

console="$url/console/"
with_token() {
    printf '%s#token=%s&route=%s' "$console" "$(urlencode "$token")" "$(urlencode "$1")"
}

render login "$console"
render overview "$(with_token /)"
render overview-narrow "$(with_token /)" 420
render machines "$(with_token /machines)"
render collections "$(with_token /collections)"
render deployments "$(with_token /deployments)"
for route in "$@"; do
    case $route in /*) ;; *) route=/$route ;; esac
    name=${route#/}
    name=${name//[^A-Za-z0-9._-]/_}
    render "${name:-overview}" "$(with_token "$route")"
done
exit $status
