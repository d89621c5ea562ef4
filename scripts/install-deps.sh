#!/usr/bin/env bash
# Installs the Debian packages slipway's tests, quick start and benchmarks use.
# Idempotent: packages already present are skipped. Needs root (or sudo).
set -euo pipefail

PKGS=(
  libarchive-tools   # bsdtar: independent mtree check of applied trees
  attr acl           # getfattr/setfattr, setfacl: xattr and ACL checks
  minisign           # independent check of package signatures
  debootstrap        # real Debian roots for round-trip tests
  xorriso genisoimage isolinux syslinux-common mtools dosfstools
  wimtools casync zstd hyperfine time   # peers for benchmarks
  rsync xz-utils                        # references for bench/servicing.sh
  e2fsprogs          # mkfs.ext4 for the journaled bench filesystem
  qemu-system-x86 ovmf                       # ISO boot tests: SeaBIOS and UEFI (TCG)
  grub-efi-amd64-bin grub-pc-bin grub-common # GRUB for the UEFI boot fixture
  debian-installer-12-netboot-amd64          # kernel + initrd the boot fixture starts
  ipxe memtest86+ grub-rescue-pc             # vendor ISOs for the `iso edit` tests
  openssh-client passwd                      # ssh-keygen/ssh-keyscan, pwck/grpck: sysprep tests
  postgresql curl                            # the server's PostgreSQL tests (started on loopback by the tests)
  chromium                                   # headless checks of the web console
  nginx                                      # bench/server.sh serves the same bytes with it
  python3-yaml python3-jsonschema python3-jinja2 python3-configobj python3-requests python3-netifaces python3-jsonpatch python3-oauthlib python3-serial   # cloud-init (unpacked, not installed) for scripts/cloud-init-schema.sh
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
