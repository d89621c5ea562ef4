#!/usr/bin/env bash
# Builds (once) the master root for the generalize/specialize tests: the
# bookworm minbase root (scripts/minbase-root.sh) plus systemd as init,
# openssh-server, sudo and the Debian kernel with its initramfs, installed
# with apt in a chroot against this machine's own apt sources (copied in at
# run time; no host is hard-coded). The root boots in QEMU with its own
# kernel (DEST/boot/vmlinuz, DEST/boot/initrd.img).
# Cached: DEST.complete marks a finished build.
#
# usage: scripts/sysprep-root.sh DEST
set -euo pipefail
dest=${1:?usage: sysprep-root.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$dest.complete" ]; then
  echo "$dest"
  exit 0
fi
base=$("$here/minbase-root.sh" "$(dirname "$dest")/minbase-bookworm")
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -a "$base" "$dest"
saved_sources=$(mktemp -d)
cp -a "$dest/etc/apt/." "$saved_sources/"
# shellcheck source=scripts/host-apt-sources.sh
. "$here/host-apt-sources.sh"
use_host_apt_sources "$dest"
mount -t proc proc "$dest/proc"
trap 'umount "$dest/proc" 2>/dev/null || true' EXIT
echo "sysprep-root: installing systemd, openssh-server, sudo and linux-image-amd64 into $dest" >&2
{
  chroot "$dest" apt-get update
  DEBIAN_FRONTEND=noninteractive chroot "$dest" apt-get -y --no-install-recommends install \
    systemd-sysv openssh-server sudo linux-image-amd64 initramfs-tools udev dbus
  chroot "$dest" apt-get clean
} >"$dest.log" 2>&1 || {
  echo "sysprep-root: apt in the chroot failed; last lines of $dest.log:" >&2
  tail -5 "$dest.log" >&2
  exit 1
}
umount "$dest/proc"
trap - EXIT
# Back to the root's own apt configuration; no resolv.conf from this host.
rm -rf "$dest/etc/apt"
mkdir -p "$dest/etc/apt"
cp -a "$saved_sources/." "$dest/etc/apt/"
rm -rf "$saved_sources"
rm -f "$dest/etc/resolv.conf"
touch "$dest.complete"
echo "$dest"
