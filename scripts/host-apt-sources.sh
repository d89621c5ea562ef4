# Sourced by the scripts that run apt in a chroot (servicing-roots.sh,
# sysprep-root.sh): use_host_apt_sources ROOT gives the chroot this
# machine's own apt sources (deb822 and one-line) and resolv.conf, so it
# reaches the same mirror and the security archive; no host is hard-coded.
use_host_apt_sources() {
  local root=$1
  rm -f "$root/etc/apt/sources.list"
  mkdir -p "$root/etc/apt/sources.list.d"
  cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
  [ -f /etc/apt/sources.list ] && grep -v '^#' /etc/apt/sources.list > "$root/etc/apt/sources.list" || true
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}
