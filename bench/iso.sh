#!/usr/bin/env bash
# slipway ISO benchmark: `slipway iso build` against `xorriso -as mkisofs -R -J` on the same
# Debian root, in one run. One command:
#
#   sudo bench/iso.sh [--runs N] [--quick]
#
#   --runs N   timed runs per tool (default 3); the report shows medians
#   --quick    smoke test: 1 run; the result goes to target/bench-cache/iso-quick.json
#              instead of bench/results/iso-<UTC time>.json
#
# What it does, in order:
#   1. Installs missing tools (scripts/install-deps.sh) and builds slipway
#      (cargo build --release).
#   2. Takes the debootstrap minbase bookworm root of bench/run.sh: target/cache/minbase-bookworm
#      when complete, else builds and caches target/bench-cache/roots/minbase-bookworm with
#      scripts/minbase-root.sh.
#   3. Makes a fresh journaled ext4 filesystem in a 4 GiB sparse file
#      (target/bench-cache/iso-scratch-ext4.img), loop-mounts it at target/bench-cache/iso-mnt
#      and writes every ISO there (bench/run.sh explains why: research/baseline.md §0). The root
#      stays where it is. Unmounted and deleted on exit (trap).
#   4. Reads the root once (warm page cache), then in each run builds the ISO with each tool
#      (slipway first in odd runs, xorriso first in even runs), each under
#      `/usr/bin/time -f '%e %M %U %S'` after a `sync`, records the ISO's size and deletes it.
#      In run 1, untimed, each ISO is checked: `xorriso -check_media` and the number of
#      entries bsdtar lists.
#   5. bench/bench.py iso-report: medians, sizes, ratios slipway / xorriso and the target
#      "slipway is at least as fast and its ISO no larger" with PASS/FAIL; JSON to
#      bench/results/iso-<UTC time>.json.
#
# If `slipway iso build` fails (for instance before the command exists), the xorriso half
# still runs and is reported; slipway's error is in the log and the JSON.
# Exit status: 0 done (whatever the target says), 1 slipway or a step failed, 2 usage / not root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
NAME=bench/iso.sh
USAGE_LINES=2,10p
NEEDS="loop-mounted scratch filesystem, debootstrap"
source "$HERE/args.sh" "$@"

bench_paths iso
say() { printf 'bench-iso: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- 1. tools and build
"$REPO/scripts/install-deps.sh"
for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
  [ -d "$d" ] && PATH=$PATH:$d
done
command -v cargo >/dev/null || { say "cargo not found"; exit 1; }
say "building slipway (cargo build --release)"
(cd "$REPO" && cargo build --release)
SLIPWAY=$REPO/target/release/slipway

# ---------------------------------------------------------------- 2. the root
if [ -f "$REPO/target/cache/minbase-bookworm.complete" ]; then
  ROOT=$REPO/target/cache/minbase-bookworm
else
  ROOT=$("$REPO/scripts/minbase-root.sh" "$CACHE/roots/minbase-bookworm")
fi
ROOT=$(cd "$ROOT" && pwd)
read -r rootf roota rootn < <(python3 "$HERE/bench.py" size "$ROOT")
rootentries=$(find "$ROOT" -mindepth 1 | wc -l)
say "root: $ROOT ($rootf bytes in $rootn regular files, $rootentries entries)"

# ---------------------------------------------------------------- 3. scratch filesystem
bench_scratch 4G
say "scratch filesystem: journaled ext4, $IMG on $MNT"

# ---------------------------------------------------------------- helpers
RUN=0
SLIPWAY_OK=1
json_str() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }
json_load() { # json_load WHEN
  printf '{"kind":"load","when":"%s","uptime":"%s"}\n' "$1" "$(uptime | sed 's/^ *//')" >>"$RAW"
}

# timed TOOL CMD... : sync, then CMD under GNU time; appends a record to $RAW. Returns CMD's status.
timed() {
  local tool=$1 log="$LOGDIR/r$RUN-$1.log" load1 wall rss usr sys rc=0
  shift
  sync
  load1=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %M %U %S' -o "$TIMEF" "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "$tool failed with status $rc (run $RUN); last lines of $log:"
    tail -n 5 "$log" >&2
    printf '{"kind":"error","run":%d,"tool":"%s","status":%d,"log":%s,"tail":%s}\n' "$RUN" "$tool" "$rc" \
      "$(json_str "$log")" "$(json_str "$(tail -n 5 "$log")")" >>"$RAW"
    return 1
  fi
  read -r wall rss usr sys < <(tail -n 1 "$TIMEF")
  printf '{"kind":"time","run":%d,"tool":"%s","step":"build","wall_s":%s,"rss_kib":%s,"user_s":%s,"sys_s":%s,"load1":%s}\n' \
    "$RUN" "$tool" "$wall" "$rss" "$usr" "$sys" "$load1" >>"$RAW"
  printf 'bench-iso: run %d  %-8s %7.2f s  %8.1f MiB  (load %s)\n' \
    "$RUN" "$tool" "$wall" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$load1" >&2
}

# measure TOOL ISO: size records; in run 1 also the untimed checks.
measure() {
  local tool=$1 iso=$2 bytes alloc entries media report
  bytes=$(stat -c %s "$iso")
  alloc=$(($(stat -c '%b * %B' "$iso")))
  printf '{"kind":"size","run":%d,"tool":"%s","key":"iso","bytes":%s,"alloc_bytes":%s}\n' \
    "$RUN" "$tool" "$bytes" "$alloc" >>"$RAW"
  [ "$RUN" -eq 1 ] || return 0
  entries=$(bsdtar -tf "$iso" 2>/dev/null | grep -cv '^\.\{0,1\}/\{0,1\}$' || true)
  # good: xorriso read every block; blocks past the filesystem may stay "untested"
  media=false
  if report=$(xorriso -indev "$iso" -check_media -- 2>&1) &&
    grep -q '^Media region.*+ good' <<<"$report" &&
    ! grep '^Media region' <<<"$report" | grep -qv '+ good\|0 untested'; then
    media=true
  fi
  printf '{"kind":"check","tool":"%s","bsdtar_entries":%s,"check_media_good":%s}\n' \
    "$tool" "$entries" "$media" >>"$RAW"
}

bench_slipway() {
  local iso=$O/slipway.iso
  rm -f "$iso"
  [ "$SLIPWAY_OK" -eq 1 ] || return 0
  if timed slipway "$SLIPWAY" -q iso build "$ROOT" -o "$iso"; then
    measure slipway "$iso"
  else
    SLIPWAY_OK=0
    say "slipway iso build failed: reporting xorriso alone"
  fi
  rm -f "$iso"
}

bench_xorriso() {
  local iso=$O/xorriso.iso
  rm -f "$iso"
  timed xorriso xorriso -as mkisofs -R -J -o "$iso" "$ROOT" || exit 1
  measure xorriso "$iso"
  rm -f "$iso"
}

# ---------------------------------------------------------------- meta and warm-up
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' ':(exclude)docs' 2>/dev/null | grep -q . && echo true || echo false)
cat >"$META" <<EOF
{"mode":"$MODE","runs_requested":$RUNS,"started_utc":"$STAMP","slipway_bin":"$SLIPWAY",
 "git_rev":"$GIT_REV","git_dirty":$GIT_DIRTY,
 "root":{"path":"$ROOT","file_bytes":$rootf,"alloc_bytes":$roota,"files":$rootn,"entries":$rootentries},
 "commands":{"slipway":"slipway -q iso build ROOT -o \$O/slipway.iso",
             "xorriso":"xorriso -as mkisofs -R -J -o \$O/xorriso.iso ROOT"},
 "scratch_fs":{"image":"$IMG","mount":"$MNT","size":"4G sparse","fs":"ext4 (mkfs.ext4 -q defaults, journaled)"},
 "size_method":"st_size of the ISO file (alloc: st_blocks * 512)",
 "time_method":"/usr/bin/time -f '%e %M %U %S' after sync; warm page cache; slipway fsyncs its output, xorriso does not"}
EOF

say "warming the page cache with the root"
tar -C "$ROOT" -cf - . | cat >/dev/null

# ---------------------------------------------------------------- 4. runs
json_load start
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  json_load "before run $RUN"
  if ((RUN % 2)); then bench_slipway; bench_xorriso; else bench_xorriso; bench_slipway; fi
done
json_load end

# ---------------------------------------------------------------- 5. report
bench_report iso
if [ "$SLIPWAY_OK" -ne 1 ]; then
  say "slipway iso build failed (see $LOGDIR/r*-slipway.log)"
  exit 1
fi
