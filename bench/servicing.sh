#!/usr/bin/env bash
# slipway servicing benchmark: build, install, uninstall and integrate an update package made
# from two real Debian roots, with full-file archives and rsync / tar as references. One command:
#
#   sudo bench/servicing.sh [--runs N] [--quick] [--extra PKGS]
#
#   --runs N      timed runs (default 3); the report shows medians
#   --quick       smoke test: 1 run; the result goes to target/bench-cache/servicing-quick.json
#                 instead of bench/results/servicing-<UTC time>.json
#   --extra PKGS  Debian packages installed in NEW besides less (default perl,python3)
#
# What it does, in order:
#   1. Installs missing tools (scripts/install-deps.sh) and builds slipway
#      (cargo build --release -p slipway).
#   2. Builds and caches the two roots with scripts/servicing-roots.sh DEST PKGS, DEST =
#      target/bench-cache/roots/servicing-<PKGS with , as ->: OLD = debootstrap minbase bookworm,
#      NEW = OLD after `apt-get upgrade` against this machine's sources and
#      `apt-get install less PKGS` (about 5,700 changed paths with perl,python3; the run stops
#      if the package holds fewer than 5,000 operations). bench/bench.py changed lists what
#      differs (new or changed entries of NEW, entries deleted from OLD).
#   3. Makes a fresh journaled ext4 filesystem in an 8 GiB sparse file
#      (target/bench-cache/servicing-scratch-ext4.img), loop-mounts it at
#      target/bench-cache/servicing-mnt and writes every package, archive, copy and store there
#      (the root filesystem of the bench machine is ext4 without a journal, which makes file
#      creation look cheaper than it is). OLD and NEW stay where they are. Unmounted and deleted
#      on exit (trap).
#   4. Reads OLD and NEW once (warm page cache; nothing is ever dropped), makes a signing key,
#      then in each run, every step under `/usr/bin/time -f '%e %M %U %S'` after a `sync`
#      (with the load average before it and the CPU time the hypervisor stole during it, from
#      /proc/stat), followed by a separately timed `sync` for the steps that write a tree:
#        build_deltas / build_nodeltas   slipway package build --diff OLD NEW (--no-deltas);
#                                        order alternates per run; sizes from the files and
#                                        --json
#        tar_zstd19 / tar_xz9            the peer baseline for size: tar of the new and changed
#                                        entries of NEW, `zstd -19 -T1` and `xz -9 -T1`
#        install / uninstall             slipway install (delta package) on a fresh `cp -a` of
#                                        OLD, then slipway uninstall on the same copy
#        install_nodeltas                slipway install of the --no-deltas package, fresh copy
#        integrate_tree                  slipway integrate --tree on a fresh copy
#        integrate_image                 slipway integrate --image into a fresh store holding
#                                        OLD (captured before, not timed)
#        capture_new_ref                 reference: slipway capture NEW as the next version of
#                                        that image (what a store update costs without a package)
#        rsync_ref                       reference: rsync -aHAX --delete NEW/ onto a fresh copy
#        tarx_ref                        reference: rm -rf of the deleted paths, then
#                                        zstd -dc changed.tar.zst | tar -x onto a fresh copy
#      Copies are made before the clock starts. Every resulting tree is checked, untimed:
#      `bsdtar --format=mtree` (type, uid, gid, mode, time, size, sha256, link, device, nlink;
#      without ./var/lib/slipway and ./var/log/slipway) and getfattr must equal NEW's after an
#      install, integrate or reference, and OLD's after the uninstall; the integrated image is
#      applied to a directory and compared the same way. Any difference stops the run (exit 1).
#   5. bench/bench.py servicing-report: medians, min-max, sizes and ratios, the table, JSON to
#      bench/results/servicing-<UTC time>.json.
#
# Needs root: loop mount, debootstrap/chroot, and trees with their owners.
# Exit status: 0 done, 1 a step failed or a tree came out wrong, 2 usage / not root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
EXTRA=perl,python3
MIN_OPS=5000
NAME=bench/servicing.sh
USAGE_LINES=2,11p
NEEDS="loop-mounted scratch filesystem, debootstrap, owners"
bench_extra_arg() {
  case $1 in
    --extra) [ $# -ge 2 ] || return 1; EXTRA=$2; BENCH_SHIFT=2 ;;
    --extra=*) EXTRA=${1#--extra=}; BENCH_SHIFT=1 ;;
    *) return 1 ;;
  esac
}
source "$HERE/args.sh" "$@"
[[ $EXTRA =~ ^[a-z0-9.+-]+(,[a-z0-9.+-]+)*$ ]] || { echo "bench/servicing.sh: --extra needs Debian package names separated by commas" >&2; exit 2; }

bench_paths servicing
say() { printf 'bench-servicing: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- 1. tools and build
"$REPO/scripts/install-deps.sh"
for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
  [ -d "$d" ] && PATH=$PATH:$d
done
command -v cargo >/dev/null || die "cargo not found"
for t in rsync bsdtar getfattr zstd xz; do
  command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh installs it)"
done
say "building slipway (cargo build --release -p slipway)"
(cd "$REPO" && cargo build --release -p slipway)
SLIPWAY=$REPO/target/release/slipway

# ---------------------------------------------------------------- 2. roots
ROOTS=$("$REPO/scripts/servicing-roots.sh" "$CACHE/roots/servicing-${EXTRA//,/-}" "$EXTRA")
ROOTS=$(cd "$ROOTS" && pwd)
OLD=$ROOTS/old
NEW=$ROOTS/new
say "roots: $OLD -> $NEW (NEW has less,$EXTRA)"
CHANGED=$CACHE/servicing-changed-${EXTRA//,/-}
python3 "$HERE/bench.py" changed "$OLD" "$NEW" --list "$CHANGED.list0" --deleted "$CHANGED.deleted0" \
  >"$CHANGED.json"
say "what differs: $(cat "$CHANGED.json")"
read -r oldf olda oldn < <(python3 "$HERE/bench.py" size "$OLD")
read -r newf newa newn < <(python3 "$HERE/bench.py" size "$NEW")

# ---------------------------------------------------------------- 3. scratch filesystem
bench_scratch 8G
say "scratch filesystem: journaled ext4, $IMG on $MNT"

# ---------------------------------------------------------------- helpers
RUN=0
ID=bench-servicing
json_load() { # json_load WHEN
  printf '{"kind":"load","when":"%s","uptime":"%s"}\n' "$1" "$(uptime | sed 's/^ *//')" >>"$RAW"
}

HZ=$(getconf CLK_TCK)
steal() { awk '$1 == "cpu" { print $9; exit }' /proc/stat; } # ticks the hypervisor took, all CPUs

# timed STEP CMD... : sync, then CMD under GNU time; one record in $RAW; stops the run on failure.
timed() {
  local step=$1 log="$LOGDIR/r$RUN-$1.log" load1 wall rss usr sys st0 st1
  shift
  sync
  load1=$(cut -d' ' -f1 /proc/loadavg)
  st0=$(steal)
  if ! /usr/bin/time -f '%e %M %U %S' -o "$TIMEF" "$@" >"$log" 2>&1; then
    say "$step failed (run $RUN); last lines of $log:"
    tail -n 5 "$log" >&2
    exit 1
  fi
  st1=$(steal)
  read -r wall rss usr sys < <(tail -n 1 "$TIMEF")
  printf '{"kind":"time","run":%d,"step":"%s","wall_s":%s,"rss_kib":%s,"user_s":%s,"sys_s":%s,"load1":%s,"steal_s":%s}\n' \
    "$RUN" "$step" "$wall" "$rss" "$usr" "$sys" "$load1" \
    "$(awk -v a="$st0" -v b="$st1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" >>"$RAW"
  printf 'bench-servicing: run %d  %-16s %7.2f s  %8.1f MiB  (load %s)\n' \
    "$RUN" "$step" "$wall" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$load1" >&2
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

size_rec() { # size_rec KEY FILE
  printf '{"kind":"size","run":%d,"key":"%s","bytes":%s}\n' "$RUN" "$1" "$(stat -c %s "$2")" >>"$RAW"
}

# mtree DIR: bsdtar's mtree (the keywords of crates/cli/tests/servicing.rs) and getfattr,
# without slipway's own state and log directories.
mtree() {
  (cd "$1" && bsdtar -cf - --format=mtree \
    --options='!all,type,uid,gid,mode,time,size,sha256,link,device,nlink' \
    --exclude ./var/lib/slipway --exclude ./var/log/slipway .)
  (cd "$1" && getfattr -R -h -d -m - -e hex . 2>/dev/null |
    awk 'BEGIN { RS = ""; ORS = "\n\n" } !/^# file: (\.\/)?var\/(lib|log)\/slipway(\/|\n)/')
}

# check WHAT DIR WANT: DIR's listing must equal the cached listing WANT (old or new); else stop.
check() {
  local what=$1 dir=$2 want=$3 got=$LOGDIR/r$RUN-$1.mtree
  mtree "$dir" >"$got"
  if ! cmp -s "$got" "$LOGDIR/$want.mtree"; then
    say "WRONG TREE: after $what (run $RUN), $dir differs from $want:"
    diff "$LOGDIR/$want.mtree" "$got" | head -n 20 >&2 || true
    say "full listings: $LOGDIR/$want.mtree and $got"
    exit 1
  fi
  printf '{"kind":"check","run":%d,"step":"%s","equals":"%s","ok":true}\n' "$RUN" "$what" "$want" >>"$RAW"
  rm -f "$got"
}

C=$O/root # every copy of OLD; made before the clock starts
fresh_copy() {
  rm -rf "$C"
  cp -a "$OLD" "$C"
  sync
}

PKG_D=$O/delta.slwpkg
PKG_N=$O/full.slwpkg
TARZ=$O/changed.tar.zst
TARX=$O/changed.tar.xz
TARLIST='set -o pipefail; tar --numeric-owner --xattrs --xattrs-include="*" --acls --no-recursion -C "$1" --null -T "$2" -cf -'

build() { # build deltas|nodeltas
  local pkg=$PKG_D extra=()
  [ "$1" = nodeltas ] && { pkg=$PKG_N; extra=(--no-deltas); }
  rm -f "$pkg"
  timed "build_$1" "$SLIPWAY" -q package build --diff "$OLD" "$NEW" --id "$ID" --sign "$O/k.key" \
    -o "$pkg" --json "${extra[@]}"
  size_rec "package_$1" "$pkg"
  printf '{"kind":"report","run":%d,"step":"build_%s","report":%s}\n' "$RUN" "$1" \
    "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["report"]))' \
      "$LOGDIR/r$RUN-build_$1.log")" >>"$RAW"
}

bench_build() {
  if ((RUN % 2)); then build deltas; build nodeltas; else build nodeltas; build deltas; fi
  local ops
  ops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["report"]["ops"])' "$LOGDIR/r$RUN-build_deltas.log")
  [ "$ops" -ge "$MIN_OPS" ] || die "the package holds $ops operations (< $MIN_OPS); pick bigger --extra packages"
}

bench_peer_archives() {
  rm -f "$TARZ" "$TARX"
  timed tar_zstd19 bash -c "$TARLIST"' | zstd -19 -T1 -q -c >"$3"' _ "$NEW" "$CHANGED.list0" "$TARZ"
  size_rec tar_zstd19 "$TARZ"
  timed tar_xz9 bash -c "$TARLIST"' | xz -9 -T1 -c >"$3"' _ "$NEW" "$CHANGED.list0" "$TARX"
  size_rec tar_xz9 "$TARX"
  rm -f "$TARX"
}

bench_install() {
  fresh_copy
  timed install "$SLIPWAY" -q install "$PKG_D" --root "$C" --trust "$O/k.pub" --json
  synced install
  check install "$C" new
  timed uninstall "$SLIPWAY" -q uninstall "$ID" --root "$C" --json
  synced uninstall
  check uninstall "$C" old
  fresh_copy
  timed install_nodeltas "$SLIPWAY" -q install "$PKG_N" --root "$C" --trust "$O/k.pub" --json
  synced install_nodeltas
  check install_nodeltas "$C" new
}

bench_integrate() {
  fresh_copy
  timed integrate_tree "$SLIPWAY" -q integrate "$PKG_D" --tree "$C" --trust "$O/k.pub" --json
  synced integrate_tree
  check integrate_tree "$C" new
  local S=$O/store A=$O/applied
  rm -rf "$S" "$A" "$C"
  "$SLIPWAY" --store "$S" -q store init >/dev/null
  "$SLIPWAY" --store "$S" -q capture "$OLD" --name svc >"$LOGDIR/r$RUN-capture_old.log" 2>&1 ||
    die "capturing OLD failed; see $LOGDIR/r$RUN-capture_old.log"
  timed integrate_image "$SLIPWAY" --store "$S" -q integrate "$PKG_D" --image svc --trust "$O/k.pub" --json
  synced integrate_image
  "$SLIPWAY" --store "$S" -q apply svc@2 "$A" >"$LOGDIR/r$RUN-apply_integrated.log" 2>&1 ||
    die "applying the integrated image failed; see $LOGDIR/r$RUN-apply_integrated.log"
  check integrate_image "$A" new
  rm -rf "$A"
  timed capture_new_ref "$SLIPWAY" --store "$S" -q capture "$NEW" --name svc
  synced capture_new_ref
  rm -rf "$S"
}

bench_refs() {
  fresh_copy
  timed rsync_ref rsync -aHAX --delete "$NEW/" "$C/"
  synced rsync_ref
  check rsync_ref "$C" new
  fresh_copy
  timed tarx_ref bash -c 'set -o pipefail; cd "$1" && xargs -0 -r rm -rf -- <"$2" &&
    zstd -dc "$3" | tar --numeric-owner --xattrs --xattrs-include="*" --acls -xpf -' \
    _ "$C" "$CHANGED.deleted0" "$TARZ"
  synced tarx_ref
  check tarx_ref "$C" new
  rm -rf "$C"
}

# ---------------------------------------------------------------- meta, key and warm-up
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
# dirty = changes outside bench/ and docs/ (which do not go into the binary)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' ':(exclude)docs' 2>/dev/null | grep -q . && echo true || echo false)
cat >"$META" <<EOF
{"mode":"$MODE","runs_requested":$RUNS,"started_utc":"$STAMP","slipway_bin":"$SLIPWAY",
 "git_rev":"$GIT_REV","git_dirty":$GIT_DIRTY,"extra_packages":"$EXTRA","min_ops":$MIN_OPS,
 "roots":{"old":{"path":"$OLD","file_bytes":$oldf,"alloc_bytes":$olda,"files":$oldn},
          "new":{"path":"$NEW","file_bytes":$newf,"alloc_bytes":$newa,"files":$newn},
          "recipe":"scripts/servicing-roots.sh $CACHE/roots/servicing-${EXTRA//,/-} $EXTRA"},
 "changed":$(cat "$CHANGED.json"),
 "scratch_fs":{"image":"$IMG","mount":"$MNT","size":"8G sparse","fs":"ext4 (mkfs.ext4 -q defaults, journaled)","mount_opts":"$(findmnt -no OPTIONS "$MNT")"},
 "commands":{
  "build_deltas":"slipway -q package build --diff OLD NEW --id $ID --sign K.key -o delta.slwpkg --json",
  "build_nodeltas":"slipway -q package build --diff OLD NEW --id $ID --sign K.key -o full.slwpkg --json --no-deltas",
  "tar_zstd19":"tar --numeric-owner --xattrs --xattrs-include='*' --acls --no-recursion -C NEW --null -T CHANGED -cf - | zstd -19 -T1",
  "tar_xz9":"tar ... (as tar_zstd19) | xz -9 -T1",
  "install":"slipway -q install delta.slwpkg --root COPY --trust K.pub --json",
  "uninstall":"slipway -q uninstall $ID --root COPY --json",
  "install_nodeltas":"slipway -q install full.slwpkg --root COPY --trust K.pub --json",
  "integrate_tree":"slipway -q integrate delta.slwpkg --tree COPY --trust K.pub --json",
  "integrate_image":"slipway --store S -q integrate delta.slwpkg --image svc --trust K.pub --json (S holds OLD as svc@1)",
  "capture_new_ref":"slipway --store S -q capture NEW --name svc (S holds svc@1 = OLD and svc@2)",
  "rsync_ref":"rsync -aHAX --delete NEW/ COPY/",
  "tarx_ref":"cd COPY && rm -rf DELETED... && zstd -dc changed.tar.zst | tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf -"},
 "check_method":"bsdtar --format=mtree --options='!all,type,uid,gid,mode,time,size,sha256,link,device,nlink' --exclude ./var/lib/slipway --exclude ./var/log/slipway, plus getfattr -R -h -d -m -; must equal NEW's (OLD's after uninstall)",
 "time_method":"/usr/bin/time -f '%e %M %U %S' after sync; warm page cache; copies of OLD made (and synced) before the clock starts; a separately timed sync after each step that writes a tree"}
EOF

say "warming the page cache with OLD and NEW"
for r in "$OLD" "$NEW"; do tar -C "$r" -cf - . | cat >/dev/null; done
"$SLIPWAY" -q key new "$O/k" >/dev/null
mtree "$OLD" >"$LOGDIR/old.mtree"
mtree "$NEW" >"$LOGDIR/new.mtree"

# ---------------------------------------------------------------- 4. runs
json_load start
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  json_load "before run $RUN"
  bench_build
  bench_peer_archives
  bench_install
  bench_integrate
  bench_refs
  rm -f "$PKG_D" "$PKG_N" "$TARZ"
done
json_load end

# ---------------------------------------------------------------- 5. report
bench_report servicing
