#!/usr/bin/env bash
# slipway sysprep benchmark: slipway generalize against virt-sysprep (libguestfs) on the same
# Debian disk image, and the time of slipway specialize. One command:
#
#   sudo bench/sysprep.sh [--runs N] [--quick]
#
#   --runs N   timed runs (default 3); the report shows medians
#   --quick    smoke test: 1 run; the result goes to target/bench-cache/sysprep-quick.json
#              instead of bench/results/sysprep-<UTC time>.json
#
# What it does, in order:
#   1. Installs missing tools (scripts/install-deps.sh; libguestfs-tools with apt-get when
#      virt-sysprep is missing) and builds slipway (cargo build --release -p slipway).
#   2. Builds and caches the root with scripts/sysprep-root.sh target/cache/sysprep-bookworm
#      (debootstrap minbase bookworm + systemd, openssh-server, sudo, linux-image-amd64; it has
#      a machine-id, SSH host keys, /var/lib/dbus/machine-id and logs).
#   3. Makes a fresh journaled ext4 filesystem in an 8 GiB sparse file
#      (target/bench-cache/sysprep-scratch-ext4.img, loop device, mounted at
#      target/bench-cache/sysprep-mnt) and writes everything there: a `cp -a` of the root with
#      more identity added by add_identity (root's bash history, a DHCP lease, systemd's
#      random-seed and credential.secret, a cloud-init instance i-123, live and rotated logs,
#      a journal directory named after the machine-id; the same bytes every time), and one
#      2 GiB ext4 disk image of it (mkfs.ext4 -q -F -d PREPARED master.img). Unmounted,
#      detached and deleted on exit (trap), with /usr/lib/modules if this script made it.
#   4. Runs, every step under `/usr/bin/time -f '%e %M %U %S'` after a `sync` (wall time from
#      date +%s%N around it), followed by a separately timed `sync`; copies are made (and
#      synced) before the clock starts:
#        virt_sysprep_cold        once, before the runs: virt-sysprep --format raw -a COPY.img
#                                 with an empty appliance cache (supermin builds the appliance)
#        virt_sysprep             the same with the cached appliance, on a fresh COPY.img
#        slipway_generalize_img   slipway generalize MOUNT --json, MOUNT = COPY.img on a loop
#                                 device (attached, untimed; mount_img times the mount), then
#        umount_img               sync + umount MOUNT, with no sync before its clock (the
#                                 report adds it to generalize)
#        slipway_generalize_dir   slipway generalize DIR --json, DIR = cp -a of the prepared root
#        slipway_specialize_dir   slipway specialize DIR -a answer.toml --fact serial=BENCH1
#                                 --json on the generalized DIR (copies the slipway binary in)
#      virt-sysprep and the image generalize alternate in order per run. virt-sysprep runs
#      with LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg (no KVM), the
#      root's own kernel for the appliance (SUPERMIN_KERNEL, SUPERMIN_MODULES), the appliance
#      cache on the scratch filesystem (LIBGUESTFS_CACHEDIR), and, in its own mount namespace
#      (unshare -m), the root's lib/modules bound on /usr/lib/modules, which supermin reads.
#      generalize exits 0 or 3 (findings); both count as done. virt-sysprep's own progress
#      stamps split its time into appliance launch + inspection (until the first operation)
#      and the operations.
#   5. Checks, not timed: after each tool the image (e2fsck -fn, then mounted read-only) or the
#      directory is read by bench/bench.py sysprep-check: machine-id, D-Bus machine-id, SSH
#      host keys and what makes new ones at first boot, random-seed, credential.secret,
#      cloud-init instances, bash history, DHCP lease, logs, journal (and hostname, utmp
#      files, /root/.ssh). slipway generalize must remove every planted item; virt-sysprep is
#      only reported. After specialize, bench.py specialize-check wants the answer file's host
#      name, user, hash, key, network, time zone, host keys and first-boot unit.
#   6. bench/bench.py sysprep-report: medians, ratios, the time and correctness tables, JSON
#      to bench/results/sysprep-<UTC time>.json.
#
# Needs root: loop devices and mounts, mount namespaces, trees with their owners.
# Exit status: 0 done, 1 a step failed or slipway left identity behind, 2 usage / not root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
NAME=bench/sysprep.sh
USAGE_LINES=2,9p
NEEDS="loop devices, mounts, mount namespaces, owners"
source "$HERE/args.sh" "$@"

bench_paths sysprep
IMG_SIZE=2G
say() { printf 'bench-sysprep: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- 1. tools and build
"$REPO/scripts/install-deps.sh"
if ! command -v virt-sysprep >/dev/null; then
  say "installing libguestfs-tools (virt-sysprep)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libguestfs-tools ||
    die "apt-get install libguestfs-tools failed"
fi
for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
  [ -d "$d" ] && PATH=$PATH:$d
done
command -v cargo >/dev/null || die "cargo not found"
for t in virt-sysprep unshare losetup mkfs.ext4 e2fsck openssl ssh-keygen gzip /usr/bin/time; do
  command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh installs it)"
done
say "building slipway (cargo build --release -p slipway)"
(cd "$REPO" && cargo build --release -p slipway)
SLIPWAY=$REPO/target/release/slipway

# ---------------------------------------------------------------- 2. root
ROOT=$("$REPO/scripts/sysprep-root.sh" "$REPO/target/cache/sysprep-bookworm")
ROOT=$(cd "$ROOT" && pwd)
kernels=("$ROOT"/boot/vmlinuz-*)
[ ${#kernels[@]} -eq 1 ] && [ -f "${kernels[0]}" ] || die "want exactly one kernel in $ROOT/boot, found: ${kernels[*]}"
KVER=${kernels[0]##*/vmlinuz-}
KERNEL=${kernels[0]}
MODULES=$ROOT/usr/lib/modules # the root's /lib is a symlink to usr/lib
[ -d "$MODULES/$KVER" ] || die "no $MODULES/$KVER for the appliance kernel"
say "root: $ROOT (kernel $KVER)"

# ---------------------------------------------------------------- 3. scratch filesystem
LOOPS=() # loop devices attached by this script and not yet detached
attach() { # attach [losetup options] FILE: sets LOOPDEV
  LOOPDEV=$(losetup --find --show "$@")
  LOOPS+=("$LOOPDEV")
}
detach() { # detach DEV
  losetup -d "$1"
  local keep=() d
  for d in "${LOOPS[@]}"; do [ "$d" = "$1" ] || keep+=("$d"); done
  LOOPS=("${keep[@]}")
}
O=$MNT
M=$CACHE/sysprep-img-mnt   # COPY.img mounted for slipway generalize
CHK=$CACHE/sysprep-chk-mnt # an image mounted read-only for the checks
MODDIR_MADE=false
SCRATCH_DEV=""
cleanup() {
  local m d
  cd /
  for m in "$CHK" "$M"; do
    bench_unmount "$m"
    rmdir "$m" 2>/dev/null || true
  done
  for d in "${LOOPS[@]}"; do
    [ "$d" = "$SCRATCH_DEV" ] || losetup -d "$d" 2>/dev/null || say "could not detach $d"
  done
  bench_unmount "$MNT"
  if [ -n "$SCRATCH_DEV" ]; then losetup -d "$SCRATCH_DEV" 2>/dev/null || say "could not detach $SCRATCH_DEV"; fi
  rm -f "$IMG"
  if $MODDIR_MADE; then rmdir /usr/lib/modules 2>/dev/null || say "could not remove /usr/lib/modules"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for m in "$CHK" "$M" "$MNT"; do # left by a killed run
  if mountpoint -q "$m" 2>/dev/null; then umount "$m"; fi
done
rm -f "$IMG"
truncate -s 8G "$IMG"
mkfs.ext4 -q -F "$IMG"
mkdir -p "$MNT" "$M" "$CHK"
attach "$IMG"
SCRATCH_DEV=$LOOPDEV
mount "$SCRATCH_DEV" "$MNT"
dumpe2fs -h "$IMG" 2>/dev/null | grep -q has_journal || die "scratch ext4 has no journal?"
say "scratch filesystem: journaled ext4, $IMG on $MNT"
if [ ! -e /usr/lib/modules ] && [ ! -L /usr/lib/modules ]; then
  mkdir -p /usr/lib/modules
  MODDIR_MADE=true
fi

# ---------------------------------------------------------------- the data
T0='2026-01-01 00:00:00 UTC'
# add_identity ROOT: the machine identity both tools are expected to remove, on top of what
# the root already has (machine-id, D-Bus machine-id, host keys, logs). The same bytes and
# times on every call.
add_identity() {
  local r=$1 mid jgid i
  mid=$(tr -d '\n' <"$r/etc/machine-id")
  [[ $mid =~ ^[0-9a-f]{32}$ ]] || die "$r/etc/machine-id holds no machine ID"
  printf '%s\n' 'ip -br addr' 'ssh admin@db1.example.internal' 'mysql -u root -pS3cret app' \
    'journalctl -b' 'history' >"$r/root/.bash_history"
  chmod 0600 "$r/root/.bash_history"
  install -d -m 0755 "$r/var/lib/dhcp"
  cat >"$r/var/lib/dhcp/dhclient.eth0.leases" <<'EOF'
lease {
  interface "eth0";
  fixed-address 192.0.2.57;
  option subnet-mask 255.255.255.0;
  option routers 192.0.2.1;
  option dhcp-lease-time 86400;
  option dhcp-server-identifier 192.0.2.1;
  option domain-name-servers 192.0.2.1;
  option host-name "vm";
  renew 4 2026/01/01 12:00:00;
  rebind 4 2026/01/01 21:00:00;
  expire 5 2026/01/02 00:00:00;
}
EOF
  python3 "$HERE/bench.py" randfile 1 512 "$r/var/lib/systemd/random-seed"
  chmod 0600 "$r/var/lib/systemd/random-seed"
  python3 "$HERE/bench.py" randfile 2 4096 "$r/var/lib/systemd/credential.secret"
  chmod 0400 "$r/var/lib/systemd/credential.secret"
  install -d -m 0755 "$r/var/lib/cloud/instances/i-123/sem" "$r/var/lib/cloud/data"
  printf 'i-123\n' >"$r/var/lib/cloud/data/instance-id"
  printf 'i-123\n' >"$r/var/lib/cloud/data/previous-instance-id"
  printf '#cloud-config\nhostname: vm\n' >"$r/var/lib/cloud/instances/i-123/user-data.txt"
  printf 'DataSourceNoCloud [seed=/dev/vdb][dsmode=net]\n' >"$r/var/lib/cloud/instances/i-123/datasource"
  printf '1767225600.0\n' >"$r/var/lib/cloud/instances/i-123/sem/config_ssh"
  ln -sfn /var/lib/cloud/instances/i-123 "$r/var/lib/cloud/instance"
  # live logs that name this machine, and rotated ones (slipway's rule: .N, .gz, ...)
  for i in $(seq 1 200); do
    printf 'Jan  1 00:%02d:%02d vm sshd[%d]: Accepted publickey for root from 192.0.2.10 port %d ssh2\n' \
      $((i / 60)) $((i % 60)) $((400 + i)) $((50000 + i))
  done >"$r/var/log/auth.log"
  for i in $(seq 1 200); do
    printf 'Jan  1 00:%02d:%02d vm dhclient[%d]: DHCPACK of 192.0.2.57 from 192.0.2.1\n' \
      $((i / 60)) $((i % 60)) $((300 + i))
  done >"$r/var/log/syslog"
  cp "$r/var/log/syslog" "$r/var/log/syslog.1"
  gzip -n -c "$r/var/log/syslog" >"$r/var/log/syslog.2.gz"
  cp "$r/var/log/auth.log" "$r/var/log/auth.log.1"
  gzip -n -c "$r/var/log/apt/history.log" >"$r/var/log/apt/history.log.1.gz"
  chmod 0640 "$r/var/log/auth.log" "$r/var/log/auth.log.1" "$r/var/log/syslog" "$r/var/log/syslog.1" \
    "$r/var/log/syslog.2.gz"
  jgid=$(awk -F: '$1 == "systemd-journal" { print $3 }' "$r/etc/group")
  install -d -m 2755 -g "${jgid:-0}" "$r/var/log/journal/$mid"
  python3 "$HERE/bench.py" randfile 3 65536 "$r/var/log/journal/$mid/system.journal"
  chgrp "${jgid:-0}" "$r/var/log/journal/$mid/system.journal"
  chmod 0640 "$r/var/log/journal/$mid/system.journal"
  find "$r/root/.bash_history" "$r/var/lib/dhcp" "$r/var/lib/systemd/random-seed" \
    "$r/var/lib/systemd/credential.secret" "$r/var/lib/cloud" "$r/var/log/auth.log"* \
    "$r/var/log/syslog"* "$r/var/log/apt/history.log.1.gz" "$r/var/log/journal/$mid" \
    -exec touch -h -d "$T0" {} +
}

PREP=$O/prepared
MASTER=$O/master.img
say "preparing the data: cp -a $ROOT, add_identity, mkfs.ext4 -d ($IMG_SIZE image)"
cp -a "$ROOT" "$PREP"
add_identity "$PREP"
truncate -s "$IMG_SIZE" "$MASTER"
mkfs.ext4 -q -F -d "$PREP" "$MASTER"
read -r prepf prepa prepn < <(python3 "$HERE/bench.py" size "$PREP")

KEY=$O/benchkey
ssh-keygen -q -t ed25519 -N '' -C bench@slipway -f "$KEY"
HASH=$(openssl passwd -6 -salt benchsalt pw)
ANSWER=$O/answer.toml
cat >"$ANSWER" <<EOF
version = 1

[computer]
name = "bench-{serial}"

[[users]]
name = "admin"
password_hash = "$HASH"
sudo = "password"
ssh_authorized_keys = ["$(cat "$KEY.pub")"]

[ssh]
host_keys = "specialize"

[network]
renderer = "networkd"

[[network.interfaces]]
match = { name = "en*" }
mode = "dhcp"

[time]
timezone = "Europe/Berlin"
EOF
cp "$ANSWER" "$LOGDIR/answer.toml"
"$SLIPWAY" answer check "$ANSWER" --root "$PREP" >"$LOGDIR/answer-check.log" 2>&1 ||
  die "slipway answer check refused the bench's answer file; see $LOGDIR/answer-check.log"

# ---------------------------------------------------------------- helpers
RUN=0
json_load() { # json_load WHEN
  printf '{"kind":"load","when":"%s","uptime":"%s"}\n' "$1" "$(uptime | sed 's/^ *//')" >>"$RAW"
}

HZ=$(getconf CLK_TCK)
steal() { awk '$1 == "cpu" { print $9; exit }' /proc/stat; } # ticks the hypervisor took, all CPUs

# timed STEP CMD... : sync (unless PRESYNC=false), then CMD under GNU time, stdout to
# $LOGDIR/rRUN-STEP.out, stderr to .err; one record in $RAW. The wall time is taken with
# date +%s%N around GNU time (its %e has 10 ms steps; slipway generalize takes a few of them),
# CPU and peak RSS from GNU time. Exit statuses in OK_RC (default "0") count as done, others
# stop the run.
OK_RC="0"
PRESYNC=true
timed() {
  local step=$1 log="$LOGDIR/r$RUN-$1" load1 wall gwall rss usr sys st0 st1 t0 t1 rc=0
  shift
  if $PRESYNC; then sync; fi
  load1=$(cut -d' ' -f1 /proc/loadavg)
  st0=$(steal)
  t0=$(date +%s%N)
  /usr/bin/time -f '%e %M %U %S' -o "$TIMEF" "$@" >"$log.out" 2>"$log.err" || rc=$?
  t1=$(date +%s%N)
  st1=$(steal)
  if [[ " $OK_RC " != *" $rc "* ]]; then
    say "$step failed with status $rc (run $RUN); last lines of $log.err and $log.out:"
    tail -n 5 "$log.err" "$log.out" >&2
    exit 1
  fi
  read -r gwall rss usr sys < <(tail -n 1 "$TIMEF")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
  printf '{"kind":"time","run":%d,"step":"%s","rc":%d,"wall_s":%s,"gnu_time_wall_s":%s,"rss_kib":%s,"user_s":%s,"sys_s":%s,"load1":%s,"steal_s":%s}\n' \
    "$RUN" "$step" "$rc" "$wall" "$gwall" "$rss" "$usr" "$sys" "$load1" \
    "$(awk -v a="$st0" -v b="$st1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" >>"$RAW"
  printf 'bench-sysprep: run %d  %-24s %8.3f s  %8.1f MiB  exit %d  (load %s)\n' \
    "$RUN" "$step" "$wall" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$rc" "$load1" >&2
}

# synced STEP : the time of a `sync` right after STEP (what writing its data back still costs).
synced() {
  local s0 s1
  s0=$(date +%s.%N)
  sync
  s1=$(date +%s.%N)
  printf '{"kind":"sync","run":%d,"step":"%s","wall_s":%s}\n' "$RUN" "$1" \
    "$(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.3f", b-a}')" >>"$RAW"
}

# gen_report STEP : the totals of slipway generalize's --json report of STEP into $RAW.
gen_report() {
  python3 - "$LOGDIR/r$RUN-$1.out" "$RUN" "$1" >>"$RAW" <<'EOF' || die "$1: no JSON report in $LOGDIR/r$RUN-$1.out"
import json, sys
r = json.load(open(sys.argv[1]))["report"]
print(json.dumps({"kind": "report", "run": int(sys.argv[2]), "step": sys.argv[3],
                  "removed_entries": r["removed_entries"], "removed_bytes": r["removed_bytes"],
                  "findings": [f.get("path") for f in r["findings"]]}, sort_keys=True))
EOF
}

# check_dir STEP DIR [--expect] : what is left of the identity in DIR (bench.py sysprep-check).
check_dir() {
  local step=$1 dir=$2 rec rc=0
  shift 2
  rec=$(python3 "$HERE/bench.py" sysprep-check "$dir" --before "$PREP" --step "$step" --run "$RUN" \
    "$@" 2>"$LOGDIR/r$RUN-$step.check.err") || rc=$?
  [ -n "$rec" ] && printf '%s\n' "$rec" >>"$RAW"
  if [ "$rc" -ne 0 ]; then
    say "IDENTITY LEFT: after $step (run $RUN):"
    cat "$LOGDIR/r$RUN-$step.check.err" >&2
    exit 1
  fi
}

# check_image STEP FILE [--expect] : e2fsck -fn, then check_dir on FILE mounted read-only.
check_image() {
  local step=$1 file=$2 fsck dev
  shift 2
  if e2fsck -fn "$file" >"$LOGDIR/r$RUN-$step.fsck" 2>&1; then fsck=clean; else fsck="errors (exit $?)"; fi
  attach -r "$file"
  dev=$LOOPDEV
  mount -o ro,noload "$dev" "$CHK"
  check_dir "$step" "$CHK" --fsck "$fsck" "$@"
  umount "$CHK"
  detach "$dev"
}

COPY=$O/copy.img
fresh_image() {
  rm -f "$COPY"
  cp --sparse=always "$MASTER" "$COPY"
  sync
}
C=$O/root
fresh_dir() {
  rm -rf "$C"
  cp -a "$PREP" "$C"
  sync
}

GCACHE=$O/guestfs-cache
VIRT=(env LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg LIBGUESTFS_CACHEDIR="$GCACHE"
  SUPERMIN_KERNEL="$KERNEL" SUPERMIN_MODULES="$MODULES/$KVER"
  unshare -m sh -c 'mount --bind "$1" /usr/lib/modules && exec virt-sysprep --format raw -a "$2"'
  virt-sysprep "$MODULES" "$COPY")

bench_virt() { # bench_virt STEP
  fresh_image
  timed "$1" "${VIRT[@]}"
  synced "$1"
  # virt-sysprep's own progress stamps: the appliance launch and guest inspection end at the
  # first "Performing", the operations at the last stamp
  awk -v run="$RUN" -v step="$1" '
    match($0, /^\[ *[0-9.]+\]/) { t = substr($0, 2, RLENGTH - 2) + 0; if (first == "" && /Performing/) first = t; last = t }
    END { printf "{\"kind\":\"phases\",\"run\":%d,\"step\":\"%s\",\"first_op_s\":%s,\"last_stamp_s\":%s}\n", run, step, first + 0, last + 0 }' \
    "$LOGDIR/r$RUN-$1.out" >>"$RAW"
  check_image "$1" "$COPY"
}

bench_generalize_img() {
  local dev
  fresh_image
  attach "$COPY"
  dev=$LOOPDEV
  timed mount_img mount "$dev" "$M"
  OK_RC="0 3" timed slipway_generalize_img "$SLIPWAY" generalize "$M" --json
  gen_report slipway_generalize_img
  # no sync before the clock: the sync inside is what generalize left to write back
  PRESYNC=false timed umount_img sh -c 'sync && umount "$1"' umount_img "$M"
  detach "$dev"
  check_image slipway_generalize_img "$COPY" --expect
}

bench_dir() {
  fresh_dir
  OK_RC="0 3" timed slipway_generalize_dir "$SLIPWAY" generalize "$C" --json
  synced slipway_generalize_dir
  gen_report slipway_generalize_dir
  check_dir slipway_generalize_dir "$C" --expect
  timed slipway_specialize_dir "$SLIPWAY" specialize "$C" -a "$ANSWER" --fact serial=BENCH1 --json
  synced slipway_specialize_dir
  local rec rc=0
  rec=$(python3 "$HERE/bench.py" specialize-check "$C" --step slipway_specialize_dir --run "$RUN" \
    --hostname bench-bench1 --user admin --hash "$HASH" --pubkey "$KEY.pub" --timezone Europe/Berlin \
    --binary "$SLIPWAY" 2>"$LOGDIR/r$RUN-specialize.check.err") || rc=$?
  [ -n "$rec" ] && printf '%s\n' "$rec" >>"$RAW"
  if [ "$rc" -ne 0 ]; then
    say "WRONG ROOT after slipway specialize (run $RUN):"
    cat "$LOGDIR/r$RUN-specialize.check.err" >&2
    exit 1
  fi
  rm -rf "$C"
}

# ---------------------------------------------------------------- meta
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
# dirty = changes outside bench/ and docs/ (which do not go into the binary)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' ':(exclude)docs' 2>/dev/null | grep -q . && echo true || echo false)
python3 - "$META" <<EOF
import json, sys
meta = {
 "mode": "$MODE", "runs_requested": $RUNS, "started_utc": "$STAMP", "slipway_bin": "$SLIPWAY",
 "slipway_bin_bytes": $(stat -c %s "$SLIPWAY"), "git_rev": "$GIT_REV", "git_dirty": $( [ "$GIT_DIRTY" = true ] && echo True || echo False),
 "root": {"path": "$ROOT", "recipe": "scripts/sysprep-root.sh target/cache/sysprep-bookworm",
          "prepared": "cp -a of the root + add_identity (bench/sysprep.sh)",
          "file_bytes": $prepf, "alloc_bytes": $prepa, "files": $prepn, "kernel": "$KVER"},
 "image": {"size": "$IMG_SIZE", "bytes": $(stat -c %s "$MASTER"), "allocated_bytes": $(($(stat -c %b "$MASTER") * 512)),
           "recipe": "truncate -s $IMG_SIZE master.img; mkfs.ext4 -q -F -d PREPARED master.img",
           "copy": "cp --sparse=always master.img copy.img (untimed, synced)"},
 "scratch_fs": {"image": "$IMG", "mount": "$MNT", "size": "8G sparse", "fs": "ext4 (mkfs.ext4 -q defaults, journaled)",
                "mount_opts": "$(findmnt -no OPTIONS "$MNT")"},
 "guestfs": {"accel": "TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg)", "backend": "direct",
             "kernel": "$KERNEL", "modules": "$MODULES/$KVER", "cachedir": "$GCACHE",
             "host_lib_modules": "bind-mounted from the root in a private mount namespace (unshare -m)"},
 "answer_file": open("$ANSWER").read(),
 "commands": {
  "virt_sysprep": "virt-sysprep --format raw -a copy.img (default operations; env and unshare as in guestfs)",
  "virt_sysprep_cold": "the same, once, with an empty LIBGUESTFS_CACHEDIR",
  "mount_img": "mount LOOPDEV MOUNT (losetup --find --show copy.img before, untimed)",
  "slipway_generalize_img": "slipway generalize MOUNT --json (exit 0 or 3)",
  "umount_img": "sync && umount MOUNT",
  "slipway_generalize_dir": "slipway generalize DIR --json (DIR = cp -a PREPARED, untimed)",
  "slipway_specialize_dir": "slipway specialize DIR -a answer.toml --fact serial=BENCH1 --json (DIR generalized)"},
 "check_method": "bench.py sysprep-check on the image (e2fsck -fn, mounted ro,noload) or directory after each tool; slipway must remove every planted item; bench.py specialize-check after specialize",
 "time_method": "wall: date +%s%N around /usr/bin/time -f '%e %M %U %S' (CPU, peak RSS), after a sync (none before umount_img, whose own sync is what generalize left); warm page cache; copies made and synced before the clock starts; a separately timed sync after each step",
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
# the prepared root as both tools get it, for the table's first column
RUN=0
check_dir before "$PREP"

# ---------------------------------------------------------------- 4. runs
json_load start
say "virt-sysprep, cold: empty appliance cache $GCACHE"
rm -rf "$GCACHE"
mkdir -p "$GCACHE"
bench_virt virt_sysprep_cold
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  json_load "before run $RUN"
  if ((RUN % 2)); then
    bench_virt virt_sysprep
    bench_generalize_img
  else
    bench_generalize_img
    bench_virt virt_sysprep
  fi
  bench_dir
done
rm -f "$COPY"
json_load end

# ---------------------------------------------------------------- 6. report
bench_report sysprep
