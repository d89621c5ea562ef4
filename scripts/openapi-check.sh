#!/usr/bin/env bash
# Checks a running server's OpenAPI document (URL/v1/openapi.json) against
# the OpenAPI specification and against the server itself.
#
#   scripts/openapi-check.sh URL TOKEN
#     URL    the server, e.g. http://127.0.0.1:8080 (`slipway serve --json`
#            prints it as started.url)
#     TOKEN  an admin token (slw_admin_...), sent with every request
#
# 1. openapi-spec-validator validates the document and lists every error.
# 2. schemathesis sends generated requests (valid and invalid ones) to every
#    operation and checks each answer: no 5xx or dropped connection
#    (not_a_server_error), a documented status code, a documented
#    Content-Type, a body that matches the documented schema.
#
# The server's data changes: schemathesis creates, changes and deletes
# collections, deployments and tokens and enrolls, approves and rejects
# machines. Run it against a throwaway server (a fresh `--store`).
#
# Both tools come from PyPI, at the versions pinned below, into a venv under
# target/cache/openapi-venv (OPENAPI_VENV overrides), made once and reused.
# schemathesis runs in target/openapi-check (OPENAPI_OUT overrides), where it
# keeps its example database (.hypothesis, .schemathesis: failing inputs are
# tried again first next time) and writes junit.xml.
#
# Environment:
#   OPENAPI_EXAMPLES  test cases per operation and phase (default 30; the
#                     whole run takes well under a minute)
#   OPENAPI_SEED      schemathesis' seed (default: random, printed at the end)
#
# Exit status: 0 both pass; 1 the document is invalid or schemathesis found
# a failure; 2 usage; 77 the tools cannot be installed here.
set -uo pipefail

if [ "$#" -ne 2 ]; then
    sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
url="${1%/}"
token="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OPENAPI_VENV:-$root/target/cache/openapi-venv}"
out="${OPENAPI_OUT:-$root/target/openapi-check}"
tools="openapi-spec-validator==0.9.0 schemathesis==4.32.5"

# The venv, once per pinned tool set (the `complete` marker names it).
mkdir -p "$(dirname "$venv")" "$out"
exec 9>"$venv.lock"
flock 9
if [ "$(cat "$venv/complete" 2>/dev/null)" != "$tools" ]; then
    echo "openapi-check: installing $tools into $venv"
    rm -rf "$venv"
    # shellcheck disable=SC2086 # $tools is a list of requirements
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q $tools; } >"$venv.log" 2>&1; then
        tail -n 5 "$venv.log" >&2
        echo "openapi-check: could not install the tools (log: $venv.log)" >&2
        exit 77
    fi
    echo "$tools" >"$venv/complete"
fi
flock -u 9

# A self-signed certificate (the server's default) is not checked.
tls=()
case "$url" in https:*) tls=(--tls-verify false) ;; esac

# 1. The document itself.
doc="$out/openapi.json"
if ! curl -fsS -k -o "$doc" "$url/v1/openapi.json"; then
    echo "openapi-check: no OpenAPI document at $url/v1/openapi.json" >&2
    exit 1
fi
failed=0
if "$venv/bin/openapi-spec-validator" --validation-errors all "$doc"; then
    echo "openapi-check: validator: the document is valid"
else
    echo "openapi-check: validator: the document is invalid (above)"
    failed=1
fi

# 2. The server against the document, every operation and test phase.
seed=()
[ -n "${OPENAPI_SEED:-}" ] && seed=(--seed "$OPENAPI_SEED")
(
    cd "$out" || exit 2
    "$venv/bin/schemathesis" --no-color run "$url/v1/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples "${OPENAPI_EXAMPLES:-30}" \
        --request-timeout 20 \
        --report junit --report-junit-path "$out/junit.xml" \
        "${seed[@]}" "${tls[@]}"
) || { echo "openapi-check: schemathesis found failures (above; $out/junit.xml)"; failed=1; }

[ "$failed" -eq 0 ] && echo "openapi-check: passed"
exit "$failed"
