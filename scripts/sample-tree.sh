#!/usr/bin/env bash
# Generates a sample master tree when debootstrap cannot be used (no root, or
# no mirror): real files from this machine (/usr/share/doc, zoneinfo, /usr/bin)
# plus one of each special kind slipway keeps. Prints the tree's path.
#
# usage: scripts/sample-tree.sh DEST
set -euo pipefail
dest=${1:?usage: sample-tree.sh DEST}
rm -rf "$dest"
mkdir -p "$dest/usr/share" "$dest/usr/bin" "$dest/etc" "$dest/var/empty" "$dest/var/lib" "$dest/var/log" "$dest/tmp"
cp -a /usr/share/doc /usr/share/zoneinfo "$dest/usr/share/" 2>/dev/null || true
cp -a /usr/bin/. "$dest/usr/bin/" 2>/dev/null || true
printf 'sample\n' >"$dest/etc/hostname"
chmod 1777 "$dest/tmp"
ln -sf ../usr/share/zoneinfo/UTC "$dest/etc/localtime"
ln "$dest/etc/hostname" "$dest/etc/hostname.hardlink"
mkfifo "$dest/var/fifo"
truncate -s 64M "$dest/var/sparse"
printf 'data in a hole' | dd of="$dest/var/sparse" bs=1 seek=32000000 conv=notrunc status=none
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$dest/dev"
  mknod "$dest/dev/null" c 1 3
  chown 12345:54321 "$dest/etc/hostname"
fi
echo "$dest"
