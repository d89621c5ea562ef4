#!/usr/bin/env bash
# Builds (once) a Debian bookworm minbase root with debootstrap and prints its path.
# The mirror is read from this machine's apt sources at run time; no host is
# hard-coded. The root is cached: a finished build leaves DEST.complete beside the root
# and later calls return at once.
#
# usage: scripts/minbase-root.sh DEST [EXTRA_PACKAGES_COMMA_SEPARATED]
set -euo pipefail
dest=${1:?usage: minbase-root.sh DEST [EXTRA,PACKAGES]}
include=${2:-}

if [ -f "$dest.complete" ]; then
  echo "$dest"
  exit 0
fi

mirror() {
  local m=""
  # deb822 sources first (Debian 12 default), then one-line sources.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk '/^URIs:/ {print $2; exit}' "$f")
    if [ -n "$m" ] && ! grep -q 'security' <<<"$m"; then echo "$m"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit} }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  return 1
}

command -v debootstrap >/dev/null || { echo "minbase-root: debootstrap is not installed (run scripts/install-deps.sh)" >&2; exit 2; }
url=$(mirror) || { echo "minbase-root: no Debian mirror found in /etc/apt/sources*" >&2; exit 2; }
echo "minbase-root: debootstrap minbase bookworm from $url into $dest" >&2
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
args=(--variant=minbase)
[ -n "$include" ] && args+=("--include=$include")
debootstrap "${args[@]}" bookworm "$dest" "$url" >"$dest.log" 2>&1 || {
  echo "minbase-root: debootstrap failed; last lines of $dest.log:" >&2
  tail -5 "$dest.log" >&2
  exit 1
}
# Look like a master image: no cached .debs.
rm -f "$dest"/var/cache/apt/archives/*.deb
touch "$dest.complete"
echo "$dest"
