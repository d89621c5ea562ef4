#!/usr/bin/env bash
# Builds (once) the boot fixtures of the ISO tests and prints OUTDIR.
#
#   OUTDIR/netboot-tree/   a tree that boots Debian's netboot kernel both ways:
#     isolinux/isolinux.bin, isolinux/ldlinux.c32, isolinux/isolinux.cfg  (BIOS, serial console)
#     linux, initrd.gz                         (debian-installer-12-netboot-amd64)
#     EFI/BOOT/BOOTX64.EFI                     (grub-mkstandalone -O x86_64-efi, serial console)
#     boot/efi.img                             (FAT ESP holding the same BOOTX64.EFI)
#   OUTDIR/efi.img          the same ESP image, outside the tree
#
# Both boot loaders print to the first serial port and start the kernel with
# console=ttyS0, so a test sees "Linux version" on QEMU's serial log whichever
# firmware booted it. The result is cached: OUTDIR/.complete holds the recipe
# and a later call returns at once unless the recipe changed; concurrent calls
# wait for one another (flock on OUTDIR/.lock).
#
# usage: scripts/iso-fixtures.sh OUTDIR
# Needs (scripts/install-deps.sh): isolinux syslinux-common grub-efi-amd64-bin grub-common
# debian-installer-12-netboot-amd64 mtools dosfstools. Does not need root.
set -euo pipefail
out=${1:?usage: iso-fixtures.sh OUTDIR}

ISOLINUX=/usr/lib/ISOLINUX/isolinux.bin
LDLINUX=/usr/lib/syslinux/modules/bios/ldlinux.c32
DI=/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64
GRUB_EFI=/usr/lib/grub/x86_64-efi
# Modules preloaded into the standalone GRUB, and the only ones it carries: no
# fs.lst, so `search` probes no other filesystem and prints no "zfs.mod not
# found"-style errors.
GRUB_MODULES="part_gpt part_msdos iso9660 fat search search_fs_file linux gzio normal echo serial terminal boot efi_gop"
RECIPE="iso-fixtures recipe 1; modules: $GRUB_MODULES"

# Tests run in parallel and may all ask at once: one builds, the others wait.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$RECIPE" ]; then
  echo "$out"
  exit 0
fi

missing=()
for f in "$ISOLINUX" "$LDLINUX" "$DI/linux" "$DI/initrd.gz" "$GRUB_EFI/linux.mod"; do
  [ -e "$f" ] || missing+=("$f")
done
for t in grub-mkstandalone mkfs.vfat mmd mcopy; do
  command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "iso-fixtures: missing ${missing[*]} (run scripts/install-deps.sh)" >&2
  exit 2
fi

echo "iso-fixtures: building $out" >&2
rm -f "$out/.complete"
work=$out/.partial
rm -rf "$work"
tree=$work/netboot-tree
mkdir -p "$tree/isolinux" "$tree/EFI/BOOT" "$tree/boot"

# ---------------------------------------------------------------- BIOS: isolinux
cp "$ISOLINUX" "$LDLINUX" "$tree/isolinux/"
cat >"$tree/isolinux/isolinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /linux
  APPEND initrd=/initrd.gz console=ttyS0,115200n8 earlyprintk=serial,ttyS0,115200
EOF
cp "$DI/linux" "$DI/initrd.gz" "$tree/"

# ---------------------------------------------------------------- UEFI: standalone GRUB
cat >"$work/grub.cfg" <<'EOF'
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
echo 'slipway fixture: GRUB (x86_64-efi) looking for /linux'
search --no-floppy --file --set=root /linux
linux /linux console=ttyS0,115200n8
initrd /initrd.gz
boot
EOF
# shellcheck disable=SC2086 # the module lists are word lists
grub-mkstandalone -O x86_64-efi -o "$tree/EFI/BOOT/BOOTX64.EFI" \
  --modules="$GRUB_MODULES" --install-modules="$GRUB_MODULES" \
  --locales= --fonts= --themes= --compress=xz \
  "boot/grub/grub.cfg=$work/grub.cfg" >"$work/grub-mkstandalone.log" 2>&1 || {
  echo "iso-fixtures: grub-mkstandalone failed:" >&2
  cat "$work/grub-mkstandalone.log" >&2
  exit 1
}
rm -f "$work/grub.cfg" "$work/grub-mkstandalone.log"

# ---------------------------------------------------------------- the ESP image
# Room for the loader plus 512 KiB, rounded up to whole MiB (FAT12/16 floor: 1 MiB).
efi_bytes=$(stat -c %s "$tree/EFI/BOOT/BOOTX64.EFI")
mib=$(((efi_bytes + 512 * 1024 + 1048575) / 1048576))
[ "$mib" -ge 1 ] || mib=1
export MTOOLS_SKIP_CHECK=1
mkfs.vfat -C -n ESP --invariant "$work/efi.img" $((mib * 1024)) >/dev/null
mmd -i "$work/efi.img" ::/EFI ::/EFI/BOOT
mcopy -m -i "$work/efi.img" "$tree/EFI/BOOT/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
cp "$work/efi.img" "$tree/boot/efi.img"

# Fixed times, so ISOs built from the tree can be compared across machines.
find "$tree" -exec touch -h -d @1700000000 {} +
chmod -R u=rwX,go=rX "$tree"

rm -rf "$out/netboot-tree" "$out/efi.img"
mv "$tree" "$out/netboot-tree"
mv "$work/efi.img" "$out/efi.img"
rmdir "$work"
printf '%s\n' "$RECIPE" >"$out/.complete"
echo "$out"
