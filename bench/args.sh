# Argument handling shared by the bench scripts (sourced, with "$@"):
# --runs N, --quick (one run), -h/--help, and a root check.
# Set before sourcing: NAME (bench/x.sh for messages), USAGE_LINES (the sed
# range of the script's header comment that is its usage), NEEDS (why root
# is needed). A script with options of its own defines bench_extra_arg: it
# gets the remaining arguments, handles the first one if it is its own
# (setting BENCH_SHIFT to how many it used) and returns 0, else returns 1.
# Sets RUNS, MODE (full or quick) and ARGS. Defines bench_report KIND.
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
