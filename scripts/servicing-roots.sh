#!/usr/bin/env bash
# Builds (once) two real Debian roots for the servicing tests and benchmark:
#   DEST/old: the bookworm minbase root (scripts/minbase-root.sh)
#   DEST/new: the same root after `apt-get upgrade` against this machine's
#             bookworm, bookworm-updates and bookworm-security sources, and
#             `apt-get install less`: real updated ELF files, new files,
#             changed configuration, and files apt removed.
# EXTRA (optional, comma-separated Debian packages) are installed in NEW
# together with less, for a bigger change: bench/servicing.sh passes
# perl,python3 (about 5,700 changed paths instead of about 2,500).
# The apt sources are this machine's own (copied in at run time); no host is
# hard-coded. Cached: DEST.complete marks a finished build (empty without
# EXTRA; "extra=EXTRA" with it, and a different EXTRA rebuilds DEST).
#
# usage: scripts/servicing-roots.sh DEST [EXTRA,PACKAGES]
set -euo pipefail
dest=${1:?usage: servicing-roots.sh DEST [EXTRA,PACKAGES]}
extra=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$dest.complete" ]; then
  if [ -z "$extra" ] || [ "$(cat "$dest.complete")" = "extra=$extra" ]; then
    echo "$dest"
    exit 0
  fi
  rm -f "$dest.complete"
fi
extra_pkgs=()
[ -n "$extra" ] && IFS=, read -r -a extra_pkgs <<<"$extra"
base=$("$here/minbase-root.sh" "$(dirname "$dest")/minbase-bookworm")
rm -rf "$dest"
mkdir -p "$dest"
cp -a "$base" "$dest/old"
cp -a "$base" "$dest/new"
new="$dest/new"
# This machine's sources, so the chroot sees the same mirror and the
# security archive.
# shellcheck source=scripts/host-apt-sources.sh
. "$here/host-apt-sources.sh"
use_host_apt_sources "$new"
mount -t proc proc "$new/proc"
trap 'umount "$new/proc" 2>/dev/null || true' EXIT
{
  chroot "$new" apt-get update
  DEBIAN_FRONTEND=noninteractive chroot "$new" apt-get -y -o Dpkg::Options::=--force-confold upgrade
  DEBIAN_FRONTEND=noninteractive chroot "$new" apt-get -y --no-install-recommends install less "${extra_pkgs[@]}"
  chroot "$new" apt-get clean
} >"$dest.log" 2>&1 || {
  echo "servicing-roots: apt in the chroot failed; last lines of $dest.log:" >&2
  tail -5 "$dest.log" >&2
  exit 1
}
umount "$new/proc"
trap - EXIT
cp "$dest/old/etc/resolv.conf" "$new/etc/resolv.conf" 2>/dev/null || rm -f "$new/etc/resolv.conf"
if [ -n "$extra" ]; then
  printf 'extra=%s\n' "$extra" >"$dest.complete"
else
  touch "$dest.complete"
fi
echo "$dest"
