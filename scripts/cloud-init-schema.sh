#!/usr/bin/env bash
# Checks cloud-init NoCloud seed files (from `slipway answer export
# --nocloud`) with cloud-init itself.
#
#   scripts/cloud-init-schema.sh FILE...
#
# What each FILE is checked with:
#   user-data       (first line `#cloud-config`): `cloud-init schema --config-file`;
#                   deprecated keys count as errors
#   network-config  (name contains `network-config`): `cloud-init schema
#                   --schema-type network-config` when this cloud-init has it, and
#                   always `cloud-init devel net-convert` to systemd-networkd and
#                   ifupdown (eni) files, which must render at least one interface
#   meta-data       (name contains `meta-data`): YAML mapping with an instance-id
#
# cloud-init is not installed on this machine (that would enable its services
# here): Debian's package is fetched with `apt-get download cloud-init`,
# unpacked with `dpkg -x` under target/cache/cloud-init (CLOUD_INIT_CACHE
# overrides), and run from there with /usr/bin/python3. Its Python
# dependencies are Debian packages that scripts/install-deps.sh installs.
#
# Exit status: 0 every file is valid; 1 a file is refused; 2 usage;
# 77 cloud-init cannot be set up here (the message says what is missing).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CLOUD_INIT_CACHE:-$root/target/cache/cloud-init}"
py=/usr/bin/python3

unavailable() {
    echo "cloud-init-schema: cloud-init is not available: $*" >&2
    exit 77
}

if [ "$#" -eq 0 ]; then
    echo "usage: scripts/cloud-init-schema.sh FILE..." >&2
    exit 2
fi

[ -x "$py" ] || unavailable "no $py (install python3)"
# Python module -> Debian package, as cloud-init's package depends on them.
missing=()
for pair in yaml:python3-yaml jsonschema:python3-jsonschema jinja2:python3-jinja2 \
    configobj:python3-configobj requests:python3-requests netifaces:python3-netifaces \
    jsonpatch:python3-jsonpatch oauthlib:python3-oauthlib serial:python3-serial; do
    "$py" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    unavailable "missing ${missing[*]}; run scripts/install-deps.sh (or apt-get install ${missing[*]})"
fi

pkgdir="$cache/root/usr/lib/python3/dist-packages"
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [ ! -f "$cache/complete" ]; then
    rm -rf "$cache"
    mkdir -p "$cache/download"
    fetch() { (cd "$cache/download" && apt-get download -q cloud-init) >"$cache/download.log" 2>&1; }
    if ! fetch; then
        # No package lists yet (a fresh machine): read them once, as root.
        if [ "$(id -u)" -eq 0 ] && apt-get update -qq >>"$cache/download.log" 2>&1 && fetch; then
            :
        else
            tail -n 5 "$cache/download.log" >&2
            unavailable "apt-get download cloud-init failed (log: $cache/download.log)"
        fi
    fi
    deb=("$cache"/download/cloud-init_*.deb)
    dpkg -x "${deb[0]}" "$cache/root" || unavailable "dpkg -x ${deb[0]} failed"
    dpkg-deb -f "${deb[0]}" Version >"$cache/complete"
fi
flock -u 9
[ -d "$pkgdir/cloudinit" ] || unavailable "$pkgdir/cloudinit is missing; remove $cache and try again"

ci() { PYTHONPATH="$pkgdir" "$py" -m cloudinit.cmd.main "$@"; }
echo "cloud-init-schema: cloud-init $(cat "$cache/complete") (Debian package, from $cache)"
has_network_schema=0
ci schema --help 2>/dev/null | grep -q -- '--schema-type' && has_network_schema=1

failed=0
refuse() {
    echo "REFUSED $1: $2" >&2
    failed=1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for f in "$@"; do
    if [ ! -f "$f" ]; then
        refuse "$f" "no such file"
        continue
    fi
    name="$(basename "$f")"
    if [ "$(head -n 1 "$f")" = "#cloud-config" ]; then
        out="$(ci schema --config-file "$f" 2>&1)"
        rc=$?
        echo "$out"
        if [ "$rc" -ne 0 ]; then
            refuse "$f" "cloud-init schema failed (exit $rc)"
        elif echo "$out" | grep -Eq 'deprecations: *[^ ]'; then
            refuse "$f" "it uses deprecated keys"
        fi
    elif [[ "$name" == *network-config* ]]; then
        if [ "$has_network_schema" -eq 1 ]; then
            ci schema --schema-type network-config --config-file "$f" || refuse "$f" "cloud-init schema --schema-type network-config failed"
        fi
        for kind in networkd eni; do
            d="$work/$kind-$RANDOM"
            if ! ci devel net-convert -p "$f" -k yaml -d "$d" -D debian -O "$kind" >"$work/log" 2>&1; then
                tail -n 3 "$work/log" >&2
                refuse "$f" "cloud-init could not render it for $kind"
                continue
            fi
            n="$(find "$d" -type f \( -name '*.network' -o -name '50-cloud-init' \) | wc -l)"
            if [ "$n" -eq 0 ]; then
                refuse "$f" "cloud-init rendered no interface for $kind"
            else
                echo "Valid network-config: $f (rendered for $kind)"
            fi
        done
    elif [[ "$name" == *meta-data* ]]; then
        if "$py" -c 'import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
sys.exit(0 if isinstance(d, dict) and d.get("instance-id") else 1)' "$f"; then
            echo "Valid meta-data: $f"
        else
            refuse "$f" "not a YAML mapping with an instance-id"
        fi
    else
        refuse "$f" "neither #cloud-config user-data nor a file named *network-config* or *meta-data*"
    fi
done
exit "$failed"
