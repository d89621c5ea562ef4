# Argument handling shared by the bench scripts (sourced, with "$@"):
# --runs N, --quick (one run), -h/--help, and a root check.
# Set before sourcing: NAME (bench/x.sh for messages), USAGE_LINES (the sed
# range of the script's header comment that is its usage), NEEDS (why root
# is needed). A script with options of its own defines bench_extra_arg: it
# gets the remaining arguments, handles the first one if it is its own
# (setting BENCH_SHIFT to how many it used) and returns 0, else returns 1.
# Sets RUNS, MODE (full or quick) and ARGS. Defines bench_paths, bench_unmount,
# bench_scratch and bench_report.
RUNS=3
MODE=full
ARGS="$*"
usage() { sed -n "$USAGE_LINES" "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) [ $# -ge 2 ] || { usage >&2; exit 2; }; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --quick) MODE=quick; shift ;;
    -h|--help) usage; exit 0 ;;
    *)
      BENCH_SHIFT=0
      if declare -F bench_extra_arg >/dev/null && bench_extra_arg "$@"; then
        shift "$BENCH_SHIFT"
      else
        echo "$NAME: unknown argument '$1'" >&2; usage >&2; exit 2
      fi ;;
  esac
done
[ "$MODE" = quick ] && RUNS=1
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "$NAME: --runs needs a positive integer" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
  echo "$NAME: needs root ($NEEDS); run: sudo $0 $ARGS" >&2
  exit 2
fi

# bench_report KIND: bench.py KIND-report over $RAW and $META, into
# $CACHE/KIND-quick.json for --quick, else bench/results/KIND-$STAMP.json;
# sets OUT. Uses the script's HERE, CACHE, STAMP, RAW, META, LOGDIR and say.
bench_report() {
  if [ "$MODE" = quick ]; then
    OUT=$CACHE/$1-quick.json
  else
    mkdir -p "$HERE/results"
    OUT=$HERE/results/$1-$STAMP.json
  fi
  python3 "$HERE/bench.py" "$1-report" --raw "$RAW" --meta "$META" --out "$OUT"
  say "wrote $OUT; raw logs: $LOGDIR"
}

# bench_paths KIND: the cache, scratch and log paths of one run (KIND "" for
# bench/run.sh's historical names): CACHE, MNT, IMG, STAMP, LOGDIR, RAW,
# META, TIMEF; makes LOGDIR and an empty RAW.
bench_paths() {
  local p=${1:+$1-}
  CACHE=$REPO/target/bench-cache
  MNT=$CACHE/${p}mnt
  IMG=$CACHE/${p}scratch-ext4.img
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  LOGDIR=$CACHE/logs/${p}$STAMP
  RAW=$LOGDIR/raw.jsonl
  META=$LOGDIR/meta.json
  TIMEF=$LOGDIR/time.out
  mkdir -p "$CACHE/roots" "$LOGDIR"
  : >"$RAW"
}

# bench_unmount DIR: unmounts DIR if it is a mount point (a second try after
# 2 s, then a message).
bench_unmount() {
  if mountpoint -q "$1" 2>/dev/null; then
    umount "$1" || { sleep 2; umount "$1"; } || say "could not unmount $1"
  fi
}

# bench_scratch SIZE: a fresh journaled ext4 in a sparse IMG of SIZE,
# loop-mounted at MNT (the bench machine's root filesystem has no journal);
# unmounted and deleted on exit. Sets O=$MNT.
bench_scratch() {
  trap 'cd /; bench_unmount "$MNT"; rm -f "$IMG"' EXIT
  trap 'exit 130' INT TERM
  bench_unmount "$MNT" # left by a killed run
  rm -f "$IMG"
  truncate -s "$1" "$IMG"
  mkfs.ext4 -q -F "$IMG"
  mkdir -p "$MNT"
  mount -o loop "$IMG" "$MNT"
  dumpe2fs -h "$IMG" 2>/dev/null | grep -q has_journal || { say "scratch ext4 has no journal?"; exit 1; }
  O=$MNT
}
