#!/usr/bin/env bash
# slipway benchmark harness: slipway against wimlib (WIM, LZX), tar | zstd -3 and casync,
# on the same two Debian roots, in one run. One command:
#
#   sudo bench/run.sh [--runs N] [--quick]
#
#   --runs N   timed runs per tool (default 3); the report shows medians
#   --quick    smoke test: 1 run, every step still runs; results go to
#              target/bench-cache/quick.json and target/bench-cache/benchmarks-quick.md
#              instead of bench/results/ and docs/benchmarks.md
#
# What it does, in order:
#   1. Installs missing tools (scripts/install-deps.sh) and builds slipway
#      (cargo build --release).
#   2. Builds and caches two roots with scripts/minbase-root.sh (debootstrap):
#        v1 = minbase bookworm (reuses target/cache/minbase-bookworm when complete,
#             else target/bench-cache/roots/minbase-bookworm)
#        v2 = an independent minbase bookworm run with --include=less,nano,curl,ca-certificates
#             (target/bench-cache/roots/minbase-bookworm-less-nano-curl-ca)
#   2b. Builds and caches the 2 GB tree for the memory target of issue 3
#      (target/bench-cache/tree-2g, with tree-2g.complete beside it holding the recipe;
#      rebuilt when the recipe changes): os1..os4 = 4 copies (cp -a) of the v1 root,
#      big/huge1.bin (300,000,000 B) and big/huge2.bin (262,144,000 B), and data/dNN/fNNN
#      files of 1.00-1.10 MB, 100 per directory, added until the tree holds >= 2.05e9 bytes of
#      regular-file data. File data is deterministic pseudo-random (incompressible, no
#      duplicates): AES-128-CTR keystream of /dev/zero with key = the file's seed
#      (`openssl enc`), or, without openssl, Python's seeded Mersenne Twister
#      (bench.py randfile); never /dev/urandom. Generated files get a fixed mtime.
#   3. Makes a fresh journaled ext4 filesystem in a 20 GiB sparse file
#      (target/bench-cache/scratch-ext4.img), loop-mounts it at target/bench-cache/mnt and
#      puts EVERY output of EVERY tool there (stores, WIMs, archives, apply targets). The
#      source trees stay where they are. Unmounted and deleted on exit (trap).
#   4. Reads both roots once (warm page cache; nothing is ever dropped), then for each run
#      and each tool (the order rotates per run): capture v1, apply v1 into a directory that
#      does not exist yet, capture v2 as a second version / delta. Each step runs under
#      `/usr/bin/time -f '%e %M %U %S'` (wall s, max RSS KiB, user s, sys s) after a `sync`.
#      Sizes are sums of regular-file bytes (bench/bench.py size), not `du -sb`.
#      In run 1 the applied tree is compared with the source (bench/bench.py compare) and
#      `slipway verify` checks the store; neither is timed.
#      Then, in every run (about 20 s; gives medians and a spread like every other figure),
#      the memory step: `slipway capture` of the 2 GB tree into a fresh store, and
#      `tar | zstd -3 -T0` of it for comparison (order alternating per run), both timed
#      the same way (wall s, peak RSS); outputs are deleted right after.
#   5. bench/bench.py report: medians, the table, ratios peer/slipway, the targets of
#      issue 3 with PASS/FAIL, JSON (bench/results/latest.json and <UTC time>.json);
#      bench/bench.py markdown: docs/benchmarks.md.
#
# Needs root: loop mount, debootstrap, and applying images with their owners.
# Exit status: 0 done (whatever the targets say), 1 a step failed, 2 usage / not root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
NAME=bench/run.sh
USAGE_LINES=2,10p
NEEDS="loop-mounted scratch filesystem, debootstrap, owners on apply"
source "$HERE/args.sh" "$@"

bench_paths ""
say() { printf 'bench: %s\n' "$*" >&2; }
# measure PATH... -> "FILE_BYTES ALLOC_BYTES FILES" (regular files, each inode once)
measure() { python3 "$HERE/bench.py" size "$@"; }

# ---------------------------------------------------------------- 1. tools and build
"$REPO/scripts/install-deps.sh"
for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
  [ -d "$d" ] && PATH=$PATH:$d
done
command -v cargo >/dev/null || { say "cargo not found"; exit 1; }
say "building slipway (cargo build --release)"
(cd "$REPO" && cargo build --release)
SLIPWAY=$REPO/target/release/slipway

# ---------------------------------------------------------------- 2. roots
if [ -f "$REPO/target/cache/minbase-bookworm.complete" ]; then
  V1=$REPO/target/cache/minbase-bookworm
else
  V1=$("$REPO/scripts/minbase-root.sh" "$CACHE/roots/minbase-bookworm")
fi
V2=$("$REPO/scripts/minbase-root.sh" "$CACHE/roots/minbase-bookworm-less-nano-curl-ca" \
  less,nano,curl,ca-certificates)
V1=$(cd "$V1" && pwd)
V2=$(cd "$V2" && pwd)
say "v1 root: $V1"
say "v2 root: $V2"

# ---------------------------------------------------------------- 2b. the 2 GB tree
TREE2G=$CACHE/tree-2g
TREE2G_MIN=2000000000  # the target's "2 GB tree": at least this many bytes of regular files
TREE2G_FILL=2050000000 # the build adds 1 MB files until the tree holds this many
BIG1=300000000
BIG2=262144000
if command -v openssl >/dev/null; then GEN=openssl-aes-128-ctr; else GEN=python-mt19937; fi

# randdata SEED SIZE PATH: SIZE deterministic pseudo-random bytes (never /dev/urandom)
randdata() {
  if [ "$GEN" = openssl-aes-128-ctr ]; then
    # AES-128-CTR keystream: key = SEED as 128-bit hex, IV 0; openssl dies of SIGPIPE at SIZE.
    { openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$1")" \
        -iv 00000000000000000000000000000000 </dev/zero 2>/dev/null || true; } |
      head -c "$2" >"$3"
  else
    python3 "$HERE/bench.py" randfile "$1" "$2" "$3"
  fi
  [ "$(stat -c %s "$3")" -eq "$2" ] || { say "could not write $2 bytes to $3"; exit 1; }
}

read -r v1f v1a v1n < <(measure "$V1")
TREE2G_RECIPE="tree-2g recipe 1; os1..os4 = cp -a $V1 ($v1f bytes, $v1n files); data: $GEN; big $BIG1 + $BIG2; 1 MB files up to $TREE2G_FILL"
if [ -f "$TREE2G.complete" ] && [ "$(cat "$TREE2G.complete")" = "$TREE2G_RECIPE" ] && [ -d "$TREE2G" ]; then
  say "2 GB tree: cached at $TREE2G"
else
  say "2 GB tree: building $TREE2G ($GEN; takes a minute or so, once)"
  rm -f "$TREE2G.complete"
  rm -rf "$TREE2G" "$TREE2G.partial"
  mkdir -p "$TREE2G.partial/big" "$TREE2G.partial/data"
  for i in 1 2 3 4; do cp -a "$V1" "$TREE2G.partial/os$i"; done
  randdata 1 "$BIG1" "$TREE2G.partial/big/huge1.bin"
  randdata 2 "$BIG2" "$TREE2G.partial/big/huge2.bin"
  total=$((4 * v1f + BIG1 + BIG2))
  i=0
  while [ "$total" -lt "$TREE2G_FILL" ]; do
    d=$TREE2G.partial/data/d$(printf '%02d' $((i / 100 + 1)))
    mkdir -p "$d"
    sz=$((1000000 + (i * 4099) % 100000))
    randdata $((1000 + i)) "$sz" "$d/f$(printf '%03d' $((i % 100 + 1)))"
    total=$((total + sz))
    i=$((i + 1))
  done
  chmod -R u=rwX,go=rX "$TREE2G.partial/big" "$TREE2G.partial/data"
  find "$TREE2G.partial/big" "$TREE2G.partial/data" -exec touch -h -d @1700000000 {} +
  touch -h -d @1700000000 "$TREE2G.partial"
  mv "$TREE2G.partial" "$TREE2G"
  printf '%s\n' "$TREE2G_RECIPE" >"$TREE2G.complete"
fi
read -r t2f t2a t2n < <(measure "$TREE2G")
say "2 GB tree: $TREE2G: $t2f bytes of regular-file data ($(awk -v b="$t2f" 'BEGIN{printf "%.3f", b/1e9}') GB) in $t2n files"
[ "$t2f" -ge "$TREE2G_MIN" ] || { say "2 GB tree holds only $t2f bytes (< $TREE2G_MIN); delete $TREE2G.complete and rerun"; exit 1; }

# ---------------------------------------------------------------- 3. scratch filesystem
bench_scratch 20G
say "scratch filesystem: journaled ext4, $IMG on $MNT"

# ---------------------------------------------------------------- helpers
RUN=0
json_load() { # json_load WHEN
  printf '{"kind":"load","when":"%s","uptime":"%s"}\n' "$1" "$(uptime | sed 's/^ *//')" >>"$RAW"
}

# timed TOOL STEP CMD... : sync, then run CMD under GNU time; appends one record to $RAW.
timed() {
  local tool=$1 step=$2; shift 2
  local log="$LOGDIR/r$RUN-$tool-$step.log" load1 wall rss usr sys
  sync
  load1=$(cut -d' ' -f1 /proc/loadavg)
  if ! /usr/bin/time -f '%e %M %U %S' -o "$TIMEF" "$@" >"$log" 2>&1; then
    say "$tool $step failed (run $RUN); last lines of $log:"
    tail -n 5 "$log" >&2
    exit 1
  fi
  read -r wall rss usr sys < <(tail -n 1 "$TIMEF")
  printf '{"kind":"time","run":%d,"tool":"%s","step":"%s","wall_s":%s,"rss_kib":%s,"user_s":%s,"sys_s":%s,"load1":%s}\n' \
    "$RUN" "$tool" "$step" "$wall" "$rss" "$usr" "$sys" "$load1" >>"$RAW"
  printf 'bench: run %d  %-9s %-11s %7.2f s  %8.1f MiB  (load %s)\n' \
    "$RUN" "$tool" "$step" "$wall" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$load1" >&2
}

size_rec() { # size_rec TOOL KEY BYTES ALLOC_BYTES
  printf '{"kind":"size","run":%d,"tool":"%s","key":"%s","bytes":%s,"alloc_bytes":%s}\n' \
    "$RUN" "$1" "$2" "$3" "$4" >>"$RAW"
}
value_rec() { # value_rec TOOL KEY VALUE
  printf '{"kind":"value","run":%d,"tool":"%s","key":"%s","value":%s}\n' "$RUN" "$1" "$2" "$3" >>"$RAW"
}
fidelity() { # fidelity TOOL SRC DST (run 1 only, untimed)
  [ "$RUN" -eq 1 ] || return 0
  local r
  r=$(python3 "$HERE/bench.py" compare "$2" "$3")
  printf '{"kind":"fidelity","tool":"%s","result":%s}\n' "$1" "$r" >>"$RAW"
}

T=$O/apply # every apply/extract target; never exists before the step

bench_slipway() {
  local S=$O/slipway-store f a n f2 a2 n2
  rm -rf "$S" "$T"
  "$SLIPWAY" --store "$S" -q store init >/dev/null
  timed slipway capture_v1 "$SLIPWAY" --store "$S" -q capture "$V1" --name bench
  read -r f a n < <(measure "$S")
  size_rec slipway v1 "$f" "$a"
  timed slipway apply_v1 "$SLIPWAY" --store "$S" -q apply bench@1 "$T"
  fidelity slipway "$V1" "$T"
  rm -rf "$T"
  timed slipway capture_v2 "$SLIPWAY" --store "$S" -q capture "$V2" --name bench
  read -r f2 a2 n2 < <(measure "$S")
  size_rec slipway v2_new $((f2 - f)) $((a2 - a))
  "$SLIPWAY" --store "$S" images --json >"$LOGDIR/r$RUN-slipway-images.json"
  value_rec slipway images_new_bytes_v2 "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([i for i in d["images"] if i["version"]==2][0]["new_bytes"])' "$LOGDIR/r$RUN-slipway-images.json")"
  value_rec slipway images_stored_bytes_v1 "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([i for i in d["images"] if i["version"]==1][0]["stored_bytes"])' "$LOGDIR/r$RUN-slipway-images.json")"
  if [ "$RUN" -eq 1 ]; then
    "$SLIPWAY" --store "$S" -q verify >"$LOGDIR/r1-slipway-verify.log" 2>&1 ||
      { say "slipway verify failed; see $LOGDIR/r1-slipway-verify.log"; exit 1; }
  fi
  rm -rf "$S"
}

bench_wimlib() {
  local W1=$O/v1.wim WD=$O/delta.wim f a n
  rm -rf "$W1" "$WD" "$T"
  timed wimlib capture_v1 wimlib-imagex capture "$V1" "$W1" bench --unix-data
  read -r f a n < <(measure "$W1")
  size_rec wimlib v1 "$f" "$a"
  timed wimlib apply_v1 wimlib-imagex apply "$W1" 1 "$T" --unix-data
  fidelity wimlib "$V1" "$T"
  rm -rf "$T"
  timed wimlib capture_v2 wimlib-imagex capture "$V2" "$WD" bench2 --unix-data --delta-from "$W1"
  read -r f a n < <(measure "$WD")
  size_rec wimlib v2_new "$f" "$a"
  rm -f "$W1" "$WD"
}

TAR_C='set -o pipefail; tar --numeric-owner --xattrs --xattrs-include="*" --acls -C "$1" -cf - . | zstd -3 -T0 -q -c > "$2"'
TAR_X='set -o pipefail; zstd -dc "$1" | tar --numeric-owner --xattrs --xattrs-include="*" --acls -xpf - -C "$2"'
bench_tar() {
  local Z1=$O/v1.tar.zst Z2=$O/v2.tar.zst f a n
  rm -rf "$Z1" "$Z2" "$T"
  timed tar+zstd capture_v1 bash -c "$TAR_C" _ "$V1" "$Z1"
  read -r f a n < <(measure "$Z1")
  size_rec tar+zstd v1 "$f" "$a"
  mkdir "$T" # tar needs an existing (empty) directory
  timed tar+zstd apply_v1 bash -c "$TAR_X" _ "$Z1" "$T"
  fidelity tar+zstd "$V1" "$T"
  rm -rf "$T"
  timed tar+zstd capture_v2 bash -c "$TAR_C" _ "$V2" "$Z2"
  read -r f a n < <(measure "$Z2")
  size_rec tar+zstd v2_new "$f" "$a" # no dedup: the whole v2 archive
  rm -f "$Z1" "$Z2"
}

bench_casync() {
  local CS=$O/castr I1=$O/v1.caidx I2=$O/v2.caidx f a n f1 a1 f2 a2 fi ai
  rm -rf "$CS" "$I1" "$I2" "$T"
  timed casync capture_v1 casync make --store="$CS" "$I1" "$V1/"
  read -r f a n < <(measure "$CS" "$I1")
  size_rec casync v1 "$f" "$a"
  timed casync apply_v1 casync extract --store="$CS" "$I1" "$T/"
  fidelity casync "$V1" "$T"
  rm -rf "$T"
  read -r f1 a1 n < <(measure "$CS")
  timed casync capture_v2 casync make --store="$CS" "$I2" "$V2/"
  read -r f2 a2 n < <(measure "$CS")
  read -r fi ai n < <(measure "$I2")
  size_rec casync v2_new $((f2 - f1 + fi)) $((a2 - a1 + ai)) # new chunks + the new index
  rm -rf "$CS" "$I1" "$I2"
}

# The memory step: capture the 2 GB tree into a fresh store; tar | zstd of it for comparison.
bench_mem_slipway() {
  local S=$O/mem-store f a n
  rm -rf "$S"
  "$SLIPWAY" --store "$S" -q store init >/dev/null
  timed slipway capture_2g "$SLIPWAY" --store "$S" -q capture "$TREE2G" --name big
  read -r f a n < <(measure "$S")
  size_rec slipway 2g "$f" "$a"
  rm -rf "$S"
}
bench_mem_tar() {
  local Z=$O/tree-2g.tar.zst f a n
  rm -f "$Z"
  timed tar+zstd capture_2g bash -c "$TAR_C" _ "$TREE2G" "$Z"
  read -r f a n < <(measure "$Z")
  size_rec tar+zstd 2g "$f" "$a"
  rm -f "$Z"
}

# ---------------------------------------------------------------- meta and warm-up
read -r v2f v2a v2n < <(measure "$V2") # v1: measured before the 2 GB tree
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
# dirty = changes (tracked or untracked, not ignored) outside bench/ and docs/, which do not go
# into the binary; this harness and the page it writes must not mark the build as dirty.
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' ':(exclude)docs' 2>/dev/null | grep -q . && echo true || echo false)
RECIPE_JSON=$(python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read().strip()))' "$TREE2G.complete")
cat >"$META" <<EOF
{"mode":"$MODE","runs_requested":$RUNS,"started_utc":"$STAMP","slipway_bin":"$SLIPWAY",
 "git_rev":"$GIT_REV","git_dirty":$GIT_DIRTY,
 "roots":{"v1":{"path":"$V1","file_bytes":$v1f,"alloc_bytes":$v1a,"files":$v1n},
          "v2":{"path":"$V2","file_bytes":$v2f,"alloc_bytes":$v2a,"files":$v2n}},
 "tree_2g":{"path":"$TREE2G","file_bytes":$t2f,"alloc_bytes":$t2a,"files":$t2n,"min_bytes":$TREE2G_MIN,
            "generator":"$GEN","recipe":$RECIPE_JSON},
 "scratch_fs":{"image":"$IMG","mount":"$MNT","size":"20G sparse","fs":"ext4 (mkfs.ext4 -q defaults, journaled)","mount_opts":"$(findmnt -no OPTIONS "$MNT")"},
 "size_method":"sum of st_size of regular files, each inode once (bench.py size)",
 "time_method":"/usr/bin/time -f '%e %M %U %S' after sync; warm page cache; pipelines under bash -c"}
EOF

say "warming the page cache with both roots and the 2 GB tree"
for r in "$V1" "$V2" "$TREE2G"; do tar -C "$r" -cf - . | cat >/dev/null; done

# ---------------------------------------------------------------- 4. runs
TOOLS=(slipway wimlib tar casync)
json_load start
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  json_load "before run $RUN"
  for ((k = 0; k < ${#TOOLS[@]}; k++)); do
    tool=${TOOLS[$(((k + RUN - 1) % ${#TOOLS[@]}))]}
    "bench_$tool"
  done
  if ((RUN % 2)); then bench_mem_slipway; bench_mem_tar; else bench_mem_tar; bench_mem_slipway; fi
done
json_load end

# ---------------------------------------------------------------- 5. report
if [ "$MODE" = quick ]; then
  python3 "$HERE/bench.py" report --raw "$RAW" --meta "$META" --out "$CACHE/quick.json"
  python3 "$HERE/bench.py" markdown "$CACHE/quick.json" "$CACHE/benchmarks-quick.md"
  say "quick mode: wrote $CACHE/quick.json and $CACHE/benchmarks-quick.md (bench/results and docs untouched)"
else
  mkdir -p "$HERE/results"
  python3 "$HERE/bench.py" report --raw "$RAW" --meta "$META" --out "$HERE/results/latest.json" \
    --json-copy "$HERE/results/$STAMP.json"
  python3 "$HERE/bench.py" markdown "$HERE/results/latest.json" "$REPO/docs/benchmarks.md"
  say "wrote bench/results/latest.json, bench/results/$STAMP.json and docs/benchmarks.md"
fi
say "raw logs: $LOGDIR"
