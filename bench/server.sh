#!/usr/bin/env bash
# slipway deployment server benchmark: status events from many machines on SQLite and on
# PostgreSQL, and one image downloaded by 20 agents at once beside nginx serving the same
# bytes. One command:
#
#   sudo bench/server.sh [--runs N] [--quick] [--machines N] [--events N] [--concurrency N]
#                        [--agents K]
#
#   --runs N          timed runs (default 3); the report shows medians
#   --quick           smoke test: 1 run; the result goes to target/bench-cache/server-quick.json
#                     instead of bench/results/server-<UTC time>.json
#   --machines N      simulated machines per load run (default 10000)
#   --events N        status events per machine, one request each (default 10)
#   --concurrency N   requests in flight during the load (default 256)
#   --agents K        agents downloading the image at once (default 20)
#
# What it does, in order:
#   1. Installs missing tools (scripts/install-deps.sh: nginx, PostgreSQL, curl) and builds
#      slipway and slipway-load (cargo build --release -p slipway -p slipway-agent).
#   2. Builds and caches the root with scripts/minbase-root.sh target/cache/minbase-bookworm.
#   3. Makes a fresh journaled ext4 filesystem in an 8 GiB sparse file
#      (target/bench-cache/server-scratch-ext4.img, loop-mounted at
#      target/bench-cache/server-mnt) and keeps everything there: the store (the root captured
#      as minbase@1, untimed), every server's data directory and SQLite database, the
#      PostgreSQL clusters, the agents' caches. Unmounted and deleted on exit.
#   4. Each run, with a fresh database each time:
#        load_sqlite    slipway serve (SQLite in its data directory), then slipway-load:
#                       N machines enroll, report their inventory again with one fact changed,
#                       and post E events each (log and progress, one per request), CONC
#                       requests in flight; then the server's event count and 50 machines'
#                       events and facts history are read back (no event may be lost)
#        load_postgres  the same with --db on a throwaway cluster (scripts/postgres-test.sh)
#        download       one server on SQLite and nginx (TLS with the server's own certificate,
#                       sendfile, the store's directory as its root), in rotating order:
#                         slipway_agent  K agents run the agent's fetch (fetch_image: record,
#                                        manifest, whole packs 8 at a time, every blob
#                                        verified and imported into its own cache store)
#                         slipway_packs  K clients GET every pack of the image from the server
#                                        (/v1/content/packs/ID), 8 at a time, into files
#                         nginx_packs    the same packs, same client, from nginx
#                       Run 1 checks the bytes: slipway verify on one agent's cache, cmp of one
#                       client's files against the store's packs for both web servers.
#      Servers run under GNU time (CPU, peak RSS); each step records the machine's busy CPU
#      share from /proc/stat. A server that dies, a failed request or a lost event is a finding:
#      the report names it and the script exits 1.
#   5. Medians, ratios and the findings, as a table and as JSON in
#      bench/results/server-<UTC time>.json, and as the server section of docs/benchmarks.md
#      (bench/bench.py server-markdown; bench/run.sh keeps that section when it rewrites the page).
#
# Needs root: loop devices and mounts; PostgreSQL runs as the postgres user.
# Exit status: 0 done, 1 a step failed or the server lost work, 2 usage / not root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
NAME=bench/server.sh
USAGE_LINES=2,16p
NEEDS="loop devices and mounts; PostgreSQL runs as the postgres user"
MACHINES=10000
EVENTS=10
CONC=256
AGENTS=20
bench_extra_arg() {
  case $1 in
    --machines | --events | --concurrency | --agents)
      [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$NAME: $1 needs a positive integer" >&2; exit 2; }
      case $1 in
        --machines) MACHINES=$2 ;;
        --events) EVENTS=$2 ;;
        --concurrency) CONC=$2 ;;
        --agents) AGENTS=$2 ;;
      esac
      BENCH_SHIFT=2 ;;
    *) return 1 ;;
  esac
}
source "$HERE/args.sh" "$@"

bench_paths server
say() { printf 'bench-server: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- 1. tools and build
"$REPO/scripts/install-deps.sh"
for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
  [ -d "$d" ] && PATH=$PATH:$d
done
command -v cargo >/dev/null || die "cargo not found"
for t in nginx curl python3 runuser mkfs.ext4 /usr/bin/time; do
  command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh installs it)"
done
say "building slipway and slipway-load (cargo build --release -p slipway -p slipway-agent)"
(cd "$REPO" && cargo build --release -p slipway -p slipway-agent)
SLIPWAY=$REPO/target/release/slipway
LOAD=$REPO/target/release/slipway-load
# two descriptors a connection (client and server side) and then some
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((4 * CONC + 1024)) ] || die "open-file limit $(ulimit -n) is too low for $CONC connections"

# ---------------------------------------------------------------- 2. root
ROOT=$("$REPO/scripts/minbase-root.sh" "$REPO/target/cache/minbase-bookworm")
ROOT=$(cd "$ROOT" && pwd)

# ---------------------------------------------------------------- 3. scratch and store
SPID="" TPID="" NPID="" PGDIRS=()
cleanup() {
  local d
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; fi
  if [ -n "$NPID" ]; then kill "$NPID" 2>/dev/null || true; fi
  for d in "${PGDIRS[@]}"; do "$REPO/scripts/postgres-test.sh" stop "$d" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cd /
  bench_unmount "$MNT"
  rm -f "$IMG"
}
bench_scratch 8G
trap cleanup EXIT
say "scratch filesystem: journaled ext4, $IMG on $MNT"
STORE=$O/store
"$SLIPWAY" --store "$STORE" -q store init
"$SLIPWAY" --store "$STORE" -q capture "$ROOT" --name minbase >"$LOGDIR/capture.log" 2>&1 ||
  die "capturing $ROOT failed; see $LOGDIR/capture.log"
read -r packs_n packs_bytes < <(find "$STORE/packs" -name '*.pack' -printf '%s\n' | awk '{n++; t+=$1} END {print n, t}')
say "store: $ROOT captured as minbase@1, $packs_n packs, $packs_bytes bytes"

# ---------------------------------------------------------------- helpers
RUN=0
json_load() { # json_load WHEN
  printf '{"kind":"load_avg","when":"%s","uptime":"%s"}\n' "$1" "$(uptime | sed 's/^ *//')" >>"$RAW"
}
cpu_ticks() { awk '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8; print busy, busy + $5 + $6; exit }' /proc/stat; }
HZ=$(getconf CLK_TCK)
CPU0=""
cpu_start() { CPU0=$(cpu_ticks); }
cpu_busy() { # "PCT SECONDS": the share of all CPUs busy since cpu_start, and the CPU seconds that is
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$CPU0"
  read -r b1 t1 < <(cpu_ticks)
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v hz="$HZ" 'BEGIN { printf "%.1f %.2f\n", t ? 100 * b / t : 0, b / hz }'
}
# wait_quiet: waits (up to 3 minutes) until less than 15% of the CPUs were busy over 3 s, so
# that other work on the machine does not count in the next step; sets QUIET to that share.
wait_quiet() {
  local i b s
  for ((i = 0; i < 60; i++)); do
    cpu_start
    sleep 3
    read -r b s < <(cpu_busy)
    awk -v b="$b" 'BEGIN { exit !(b < 15) }' && break
  done
  QUIET=$b
  [ "$i" -lt 60 ] || say "the machine stayed busy ($b% of its CPUs over 3 s); measuring anyway"
}

# start_server LOG DATA [ARGS...]: slipway serve under GNU time, on a free loopback port;
# sets TPID (time), SPID (slipway), URL and CA.
start_server() {
  local log=$1 data=$2 i
  shift 2
  mkdir -p "$data"
  /usr/bin/time -f '%e %M %U %S' -o "$log.time" \
    "$SLIPWAY" --store "$STORE" serve --data "$data" --listen 127.0.0.1:0 --json "$@" >"$log.out" 2>"$log.err" &
  TPID=$!
  for ((i = 0; i < 600; i++)); do
    [ -s "$log.out" ] && break
    kill -0 "$TPID" 2>/dev/null || die "slipway serve stopped before it listened; see $log.err"
    sleep 0.1
  done
  [ -s "$log.out" ] || die "slipway serve printed no start line in 60 s; see $log.err"
  SPID=$(pgrep -P "$TPID")
  read -r URL CA < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["started"]; print(s["url"], s["certificate"])' "$log.out")
}

# stop_server LOG STEP: stops the server (SIGTERM) if it still runs; a server that had
# stopped on its own is recorded as a finding. Writes the server's CPU and RSS to $RAW.
stop_server() {
  local log=$1 step=$2 alive=true rc=0 i
  kill -0 "$SPID" 2>/dev/null || alive=false
  if $alive; then kill "$SPID" 2>/dev/null || true; fi
  wait "$TPID" || rc=$?
  SPID="" TPID=""
  for ((i = 0; i < 50; i++)); do # GNU time's figures, once it wrote them
    [ -s "$log.time" ] && break
    sleep 0.1
  done
  python3 - "$log" "$RUN" "$step" "$alive" "$rc" >>"$RAW" <<'EOF'
import json, sys
log, run, step, alive, rc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "true", int(sys.argv[5])
lines = open(log + ".time").read().splitlines()
rec = {"kind": "server", "run": run, "step": step, "alive_at_end": alive, "exit": rc}
try:
    wall, rss, usr, sys_ = lines[-1].split()
    rec.update(wall_s=float(wall), rss_kib=int(rss), cpu_s=float(usr) + float(sys_))
except (IndexError, ValueError):
    rec["time_missing"] = True
rec["time_note"] = " ".join(l for l in lines[:-1] if l.strip())
err = open(log + ".err", errors="replace").read().strip().splitlines()
rec["stderr_tail"] = err[-5:]
print(json.dumps(rec, sort_keys=True))
EOF
  $alive || say "FINDING: slipway serve had stopped during $step (run $RUN), GNU time: $(head -c 200 "$log.time"); see $log.err"
}

client_time() { # client_time FILE: GNU time's figures of slipway-load as JSON
  python3 -c 'import json,sys; w,r,u,s=open(sys.argv[1]).read().split()[-4:]; print(json.dumps({"client_cpu_s": round(float(u)+float(s), 2), "client_rss_kib": int(r)}))' "$1" 2>/dev/null || echo '{}'
}

admin_token() { # admin_token DATA [--db URL]: a new admin token, offline
  local data=$1
  shift
  "$SLIPWAY" --store "$STORE" server token new --data "$data" "$@" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"]["token"])'
}

# record STEP JSONFILE RC BUSY [EXTRA_JSON]: one slipway-load report into $RAW.
record() {
  local extra=${5:-}
  [ -n "$extra" ] || extra='{}'
  python3 - "$RUN" "$1" "$2" "$3" "$4" "$extra" >>"$RAW" <<'EOF'
import json, sys
run, step, path, rc, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[6])
busy, busy_s, quiet = (float(x) for x in sys.argv[5].split())
try:
    rep = json.load(open(path))
except (OSError, ValueError) as e:
    rep = {"error": f"no JSON report from slipway-load ({e.__class__.__name__})"}
rec = {"kind": "step", "run": run, "step": step, "rc": rc, "cpu_busy_pct": busy, "cpu_busy_s": busy_s,
       "busy_before_pct": quiet, "report": rep}
rec.update(extra)
print(json.dumps(rec, sort_keys=True))
EOF
}

# load_run STEP [--db URL]: a fresh server on its own data directory, then slipway-load.
load_run() {
  local step=$1 data="$O/r$RUN-$1" log="$LOGDIR/r$RUN-$1" tok rc=0 busy
  shift
  tok=$(admin_token "$data" "$@")
  start_server "$log-server" "$data" "$@"
  say "run $RUN $step: $MACHINES machines x $EVENTS events, $CONC in flight, server $URL"
  sync
  wait_quiet
  cpu_start
  /usr/bin/time -f '%e %M %U %S' -o "$log.time" \
    "$LOAD" --server "$URL" --ca "$CA" --token "$tok" --machines "$MACHINES" --events "$EVENTS" \
    --concurrency "$CONC" --json >"$log.json" 2>"$log.err" || rc=$?
  busy="$(cpu_busy) $QUIET"
  stop_server "$log-server" "$step"
  local client
  client=$(client_time "$log.time")
  record "$step" "$log.json" "$rc" "$busy" "$client"
  python3 - "$log.json" "$rc" "$busy" <<'EOF' >&2 2>/dev/null || true
import json, sys
r = json.load(open(sys.argv[1])); e = r["events"]["latency"]
print(f"bench-server:   exit {sys.argv[2]}: {r['events_stored']} of {r['events_sent']} events stored, "
      f"{r['failures']} failed requests, {r['events_per_second']:.0f} events/s, event post p50 {e['p50_ms']:.1f} ms "
      f"p99 {e['p99_ms']:.1f} ms, CPU busy {sys.argv[3].split()[0]}% (before: {sys.argv[3].split()[2]}%)")
EOF
  [ "$rc" -eq 0 ] || say "FINDING: slipway-load exited $rc in $step (run $RUN); see $log.json and $log.err"
}

NGINX_CONF=$LOGDIR/nginx.conf
start_nginx() { # start_nginx CERT KEY: nginx on a free loopback port; sets NPID, NGINX_URL
  local port i
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$O/nginx"
  cat >"$NGINX_CONF" <<EOF
daemon off;
worker_processes auto;
pid $O/nginx/nginx.pid;
error_log $O/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $O/nginx/body;
  proxy_temp_path $O/nginx/proxy;
  fastcgi_temp_path $O/nginx/fastcgi;
  uwsgi_temp_path $O/nginx/uwsgi;
  scgi_temp_path $O/nginx/scgi;
  sendfile on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $1;
    ssl_certificate_key $2;
    root $STORE;
    location /packs/ { }
    location / { return 404; }
  }
}
EOF
  nginx -c "$NGINX_CONF" -p "$O/nginx" 2>"$LOGDIR/nginx.err" &
  NPID=$!
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null --cacert "$CA" "https://127.0.0.1:$port/" && break
    kill -0 "$NPID" 2>/dev/null || die "nginx stopped; see $LOGDIR/nginx.err and $O/nginx/error.log"
    sleep 0.1
  done
  NGINX_URL=https://127.0.0.1:$port
}

# dl_step METHOD: one download method into fresh caches under $O/dl.
dl_step() {
  local m=$1 log="$LOGDIR/r$RUN-dl-$1" rc=0 busy args
  case $m in
    slipway_agent) args=(--server "$URL" --token "$DLTOK" --download "$RECORD") ;;
    slipway_packs) args=(--server "$URL" --token "$DLTOK" --download-urls "$LOGDIR/packs-slipway.txt") ;;
    nginx_packs) args=(--server "$NGINX_URL" --download-urls "$LOGDIR/packs-nginx.txt") ;;
  esac
  rm -rf "$O/dl"
  sync
  wait_quiet
  cpu_start
  # the agent retries a server that went away for 10 minutes by default; here that is a finding
  SLIPWAY_AGENT_RETRY_SECS=20 /usr/bin/time -f '%e %M %U %S' -o "$log.time" \
    "$LOAD" "${args[@]}" --ca "$CA" --agents "$AGENTS" --cache-dir "$O/dl" --json >"$log.json" 2>"$log.err" || rc=$?
  busy="$(cpu_busy) $QUIET"
  local client
  client=$(client_time "$log.time")
  record "download_$m" "$log.json" "$rc" "$busy" "$client"
  python3 - "$log.json" "$rc" "$busy" <<'EOF' >&2 2>/dev/null || true
import json, sys
r = json.load(open(sys.argv[1]))
print(f"bench-server:   {r['method']:<11} exit {sys.argv[2]}: {r['agents']} agents, {r['bytes']/1e6:.1f} MB in "
      f"{r['wall_seconds']:.2f} s, {r['aggregate_mb_per_s']:.0f} MB/s, failures {r['failures']}, CPU busy {sys.argv[3].split()[0]}% "
      f"(before: {sys.argv[3].split()[2]}%)")
EOF
  [ "$rc" -eq 0 ] || say "FINDING: $m download failed (exit $rc, run $RUN); see $log.json and $log.err"
  if [ "$RUN" -eq 1 ] && [ "$rc" -eq 0 ]; then check_download "$m"; fi
  rm -rf "$O/dl"
}

# check_download METHOD (run 1): the bytes each method delivered are the store's.
check_download() {
  local ok=true n=0 p
  case $1 in
    slipway_agent)
      "$SLIPWAY" --store "$O/dl/agent-0" verify >"$LOGDIR/dl-verify.log" 2>&1 || ok=false ;;
    *)
      while read -r p; do
        p=${p##*/}
        p=${p%.pack}
        cmp -s "$O/dl/agent-0/$(printf '%05d' "$n")" "$STORE/packs/${p:0:2}/$p.pack" || ok=false
        n=$((n + 1))
      done <"$LOGDIR/packs-slipway.txt" ;;
  esac
  printf '{"kind":"check","run":%d,"step":"download_%s","identical":%s}\n' "$RUN" "$1" "$ok" >>"$RAW"
  $ok || say "FINDING: $1 delivered other bytes than the store holds (run 1, agent 0)"
}

download_run() {
  local data="$O/r$RUN-download" log="$LOGDIR/r$RUN-download" order
  DLTOK=$(admin_token "$data")
  start_server "$log-server" "$data"
  curl -sf --cacert "$CA" -H "Authorization: Bearer $DLTOK" "$URL/v1/images" >"$LOGDIR/images.json"
  RECORD=$(python3 -c 'import json,sys; print(next(i["record"] for i in json.load(open(sys.argv[1])) if i["image"] == "minbase@1"))' "$LOGDIR/images.json")
  curl -sf --cacert "$CA" -H "Authorization: Bearer $DLTOK" "$URL/v1/content/manifests/$RECORD" >"$LOGDIR/manifest.json"
  python3 - "$LOGDIR/manifest.json" "$LOGDIR/packs-slipway.txt" "$LOGDIR/packs-nginx.txt" <<'EOF'
import json, sys
packs = [p["id"] for p in json.load(open(sys.argv[1]))["packs"]]
open(sys.argv[2], "w").write("".join(f"/v1/content/packs/{p}\n" for p in packs))
open(sys.argv[3], "w").write("".join(f"/packs/{p[:2]}/{p}.pack\n" for p in packs))
EOF
  start_nginx "$data/tls/cert.pem" "$data/tls/key.pem"
  say "run $RUN download: $AGENTS agents, image minbase@1 ($RECORD), slipway $URL, nginx $NGINX_URL"
  case $((RUN % 3)) in
    1) order=(slipway_agent slipway_packs nginx_packs) ;;
    2) order=(nginx_packs slipway_agent slipway_packs) ;;
    0) order=(slipway_packs nginx_packs slipway_agent) ;;
  esac
  for m in "${order[@]}"; do dl_step "$m"; done
  kill "$NPID"
  wait "$NPID" || true
  NPID=""
  stop_server "$log-server" download
}

# ---------------------------------------------------------------- meta
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' ':(exclude)docs' 2>/dev/null | grep -q . && echo true || echo false)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
python3 - "$META" <<EOF
import json, sys
meta = {
 "mode": "$MODE", "runs_requested": $RUNS, "started_utc": "$STAMP", "slipway_bin": "$SLIPWAY",
 "load_bin": "$LOAD", "git_rev": "$GIT_REV", "git_dirty": $( [ "$GIT_DIRTY" = true ] && echo True || echo False),
 "machines": $MACHINES, "events": $EVENTS, "concurrency": $CONC, "agents": $AGENTS,
 "open_files_limit": "$(ulimit -n)",
 "root": {"path": "$ROOT", "recipe": "scripts/minbase-root.sh target/cache/minbase-bookworm"},
 "store": {"packs": $packs_n, "pack_bytes": $packs_bytes, "image": "minbase@1"},
 "scratch_fs": {"image": "$IMG", "mount": "$MNT", "size": "8G sparse", "fs": "ext4 (mkfs.ext4 -q defaults, journaled)",
                "mount_opts": "$(findmnt -no OPTIONS "$MNT")"},
 "versions_extra": {"nginx": "$(nginx -v 2>&1 | head -1)", "postgres": "$("$PGBIN/postgres" --version 2>/dev/null || echo unknown)",
                    "slipway-load": "$("$LOAD" --version)"},
 "commands": {
  "server": "slipway --store STORE serve --data DATA --listen 127.0.0.1:0 --json [--db postgres://...] (self-signed TLS)",
  "load": "slipway-load --server URL --ca DATA/tls/cert.pem --token ADMIN --machines $MACHINES --events $EVENTS --concurrency $CONC --json",
  "postgres": "scripts/postgres-test.sh start DIR (fsync=on, max_connections=200, cluster on the scratch filesystem)",
  "slipway_agent": "slipway-load --download RECORD --agents $AGENTS --cache-dir DIR (fetch_image into a new cache store per agent)",
  "slipway_packs": "slipway-load --download-urls LIST --agents $AGENTS (GET /v1/content/packs/ID, 8 at a time per client, into files)",
  "nginx_packs": "the same against nginx (sendfile, TLS with the server's certificate, root = the store)"},
 "time_method": "client-side Instant around each request (send to parsed answer); phases timed from first request to last answer; servers under GNU time; CPU busy share of all CPUs from /proc/stat over each step",
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

# ---------------------------------------------------------------- 4. runs
json_load start
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  json_load "before run $RUN"
  load_run load_sqlite
  PG=$O/r$RUN-pg
  PGDIRS+=("$PG")
  PGURL=$("$REPO/scripts/postgres-test.sh" start "$PG")
  load_run load_postgres --db "$PGURL"
  "$REPO/scripts/postgres-test.sh" stop "$PG"
  PGDIRS=()
  download_run
done
json_load end

# ---------------------------------------------------------------- 5. report
if [ "$MODE" = quick ]; then
  OUT=$CACHE/server-quick.json
else
  mkdir -p "$HERE/results"
  OUT=$HERE/results/server-$STAMP.json
fi
rc=0
python3 - "$HERE" "$RAW" "$META" "$OUT" <<'EOF' || rc=$?
import datetime, json, sys
sys.path.insert(0, sys.argv[1])
import bench
from bench import median, fmt, text_table

recs = bench.load_raw(sys.argv[2])
meta = json.load(open(sys.argv[3]))
steps = [r for r in recs if r["kind"] == "step"]
servers = [r for r in recs if r["kind"] == "server"]
findings = []
for s in servers:
    if not s["alive_at_end"]:
        findings.append(f"run {s['run']} {s['step']}: slipway serve stopped by itself ({s.get('time_note') or 'exit ' + str(s['exit'])}); "
                        f"stderr: {' | '.join(s['stderr_tail']) or 'nothing'}")
for s in steps:
    r = s["report"]
    if s["rc"] != 0 or not r.get("ok", False):
        what = [f"exit {s['rc']}"]
        if "error" in r:
            what.append(r["error"])
        for k in ("failures", "events_lost", "events_duplicate"):
            if r.get(k):
                what.append(f"{k} {r[k]}")
        if r.get("failures_by_status"):
            what.append(f"by status {r['failures_by_status']}")
        if r.get("verify_problems"):
            what.append(f"verify: {r['verify_problems'][:3]}")
        for a in r.get("per_agent", []):
            if a.get("error"):
                what.append(f"agent {a['agent']}: {a['error'][:200]}")
                break
        findings.append(f"run {s['run']} {s['step']}: " + "; ".join(what))
for c in recs:
    if c["kind"] == "check" and not c["identical"]:
        findings.append(f"run {c['run']} {c['step']}: the bytes delivered differ from the store's")

def srv(run, step):
    return next((s for s in servers if s["run"] == run and s["step"] == step), {})

load = {}
for db in ("sqlite", "postgres"):
    ss = [s for s in steps if s["step"] == f"load_{db}" and "events" in s["report"]]
    g = lambda f: median([f(s["report"]) for s in ss])
    load[db] = {
        "runs": len(ss),
        "database": ss[0]["report"]["database"] if ss else None,
        "events_per_second": g(lambda r: r["events_per_second"]),
        "event_p50_ms": g(lambda r: r["events"]["latency"]["p50_ms"]),
        "event_p95_ms": g(lambda r: r["events"]["latency"]["p95_ms"]),
        "event_p99_ms": g(lambda r: r["events"]["latency"]["p99_ms"]),
        "event_max_ms": g(lambda r: r["events"]["latency"]["max_ms"]),
        "event_phase_s": g(lambda r: r["events"]["seconds"]),
        "enroll_p50_ms": g(lambda r: r["enroll"]["latency"]["p50_ms"]),
        "enroll_p99_ms": g(lambda r: r["enroll"]["latency"]["p99_ms"]),
        "enroll_per_second": g(lambda r: r["enroll"]["requests_per_second"]),
        "inventory_p50_ms": g(lambda r: r["inventory"]["latency"]["p50_ms"]),
        "inventory_p99_ms": g(lambda r: r["inventory"]["latency"]["p99_ms"]),
        "wall_s": g(lambda r: r["wall_seconds"]),
        "verify_events_p50_ms": g(lambda r: r["verify_events_latency"]["p50_ms"]),
        "verify_events_max_ms": g(lambda r: r["verify_events_latency"]["max_ms"]),
        "events_sent": sum(s["report"]["events_sent"] for s in ss),
        "events_stored": sum(s["report"]["events_stored"] for s in ss),
        "events_lost": sum(s["report"]["events_lost"] for s in ss),
        "failures": sum(s["report"]["failures"] for s in ss),
        "cpu_busy_pct": median([s["cpu_busy_pct"] for s in ss]),
        "busy_before_pct": median([s["busy_before_pct"] for s in ss]),
        "server_cpu_s": median([srv(s["run"], s["step"]).get("cpu_s") for s in ss]),
        "client_cpu_s": median([s.get("client_cpu_s") for s in ss]),
        # everything else the machine did meanwhile (PostgreSQL's own processes for load_postgres)
        "other_cpu_s": median([s["cpu_busy_s"] - (srv(s["run"], s["step"]).get("cpu_s") or 0) - (s.get("client_cpu_s") or 0)
                               for s in ss]),
        "server_rss_mib": median([(srv(s["run"], s["step"]).get("rss_kib") or 0) / 1024 for s in ss]),
    }
dl = {}
for m in ("slipway_agent", "slipway_packs", "nginx_packs"):
    ss = [s for s in steps if s["step"] == f"download_{m}" and "wall_seconds" in s["report"]]
    g = lambda f: median([f(s) for s in ss])
    dl[m] = {
        "runs": len(ss),
        "seconds": g(lambda s: s["report"]["wall_seconds"]),
        "seconds_min": min((s["report"]["wall_seconds"] for s in ss), default=None),
        "seconds_max": max((s["report"]["wall_seconds"] for s in ss), default=None),
        "mb_per_s": g(lambda s: s["report"]["aggregate_mb_per_s"]),
        "agent_median_s": g(lambda s: s["report"]["agent_seconds_median"]),
        "agent_max_s": g(lambda s: s["report"]["agent_seconds_max"]),
        "bytes": g(lambda s: s["report"]["bytes"]),
        "client_cpu_s": g(lambda s: s.get("client_cpu_s")),
        "cpu_busy_pct": g(lambda s: s["cpu_busy_pct"]),
        "busy_before_pct": g(lambda s: s["busy_before_pct"]),
        "failures": sum(s["report"]["failures"] for s in ss),
    }
ratio = lambda a, b: (a / b) if (a is not None and b) else None
ratios = {
    "postgres_over_sqlite_events_per_second": ratio(load["postgres"]["events_per_second"], load["sqlite"]["events_per_second"]),
    "slipway_agent_over_nginx_seconds": ratio(dl["slipway_agent"]["seconds"], dl["nginx_packs"]["seconds"]),
    "slipway_packs_over_nginx_seconds": ratio(dl["slipway_packs"]["seconds"], dl["nginx_packs"]["seconds"]),
}
mach = bench.machine_info(meta)
mach["versions"] = {k: v for k, v in mach["versions"].items() if k in ("slipway", "rustc")}
mach["versions"].update(meta["versions_extra"])
result = {
    "schema": "slipway.bench-server/1",
    "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "mode": meta["mode"],
    "runs": len({s["run"] for s in steps}),
    "machine": mach,
    "meta": meta,
    "load": load,
    "download": dl,
    "ratios": ratios,
    "findings": findings,
    "load_avg": [r for r in recs if r["kind"] == "load_avg"],
    "raw": recs,
}
with open(sys.argv[4], "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)
    f.write("\n")

print()
print(f"slipway server benchmark: medians of {result['runs']} run(s), mode {result['mode']}; {meta['machines']} machines x "
      f"{meta['events']} events, {meta['concurrency']} requests in flight; {mach['nproc']} CPUs")
head = ["database", "events/s", "post p50 ms", "p95", "p99", "max", "enroll p50 / p99 ms", "inventory p50 ms",
        "stored / sent", "lost", "failed", "CPU busy %", "CPU s server / client / other"]
rows = []
for db, m in load.items():
    if not m["runs"]:
        rows.append([db, "failed"] + [""] * (len(head) - 2))
        continue
    rows.append([db, fmt(m["events_per_second"], ".0f"), fmt(m["event_p50_ms"], ".1f"), fmt(m["event_p95_ms"], ".1f"),
                 fmt(m["event_p99_ms"], ".1f"), fmt(m["event_max_ms"], ".0f"),
                 f"{fmt(m['enroll_p50_ms'], '.0f')} / {fmt(m['enroll_p99_ms'], '.0f')}", fmt(m["inventory_p50_ms"], ".0f"),
                 f"{m['events_stored']:,} / {m['events_sent']:,}", str(m["events_lost"]), str(m["failures"]),
                 fmt(m["cpu_busy_pct"], ".0f"),
                 f"{fmt(m['server_cpu_s'], '.1f')} / {fmt(m['client_cpu_s'], '.1f')} / {fmt(m['other_cpu_s'], '.1f')}"])
print(text_table(head, rows))
print(f"PostgreSQL / SQLite events/s: {fmt(ratios['postgres_over_sqlite_events_per_second'], '.2f')}")
print()
head = ["download", "s (min-max)", "MB/s", "per agent median / max s", "MB", "client CPU s", "CPU busy %", "failed"]
rows = []
for m, d in dl.items():
    if not d["runs"]:
        rows.append([m, "failed"] + [""] * (len(head) - 2))
        continue
    rows.append([m, f"{d['seconds']:.2f} ({d['seconds_min']:.2f}-{d['seconds_max']:.2f})", fmt(d["mb_per_s"], ".0f"),
                 f"{d['agent_median_s']:.2f} / {d['agent_max_s']:.2f}", fmt(d["bytes"] / 1e6, ".1f"),
                 fmt(d["client_cpu_s"], ".1f"), fmt(d["cpu_busy_pct"], ".0f"), str(d["failures"])])
print(text_table(head, rows))
print(f"time slipway_agent / nginx: {fmt(ratios['slipway_agent_over_nginx_seconds'], '.2f')}; "
      f"slipway_packs / nginx: {fmt(ratios['slipway_packs_over_nginx_seconds'], '.2f')}")
for l in result["load_avg"]:
    print(f"load ({l['when']}): {l['uptime']}")
if findings:
    print("\nFINDINGS:")
    for f in findings:
        print(f"  - {f}")
    sys.exit(1)
print("\nno findings: every request answered, no event lost, the server stayed up")
EOF
if [ "$MODE" = quick ]; then
  python3 "$HERE/bench.py" server-markdown "$OUT" "$CACHE/benchmarks-server-quick.md"
  say "wrote $OUT and $CACHE/benchmarks-server-quick.md (bench/results and docs untouched); raw logs: $LOGDIR"
else
  python3 "$HERE/bench.py" server-markdown "$OUT" "$REPO/docs/benchmarks.md"
  say "wrote $OUT and its section of docs/benchmarks.md; raw logs: $LOGDIR"
fi
exit "$rc"
