#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the server's tests and
# benchmarks. Never touches the system's own cluster.
#
#   scripts/postgres-test.sh start DIR   prints the database URL (postgres://...)
#   scripts/postgres-test.sh stop DIR    stops it (the directory stays)
#
# The cluster runs as the `postgres` user (PostgreSQL refuses root), listens
# on 127.0.0.1 on a free port, with its socket in DIR, and trusts loopback
# connections. Install PostgreSQL first (scripts/install-deps.sh).
set -euo pipefail

cmd=${1:?usage: postgres-test.sh start|stop DIR}
dir=${2:?usage: postgres-test.sh start|stop DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres-test: PostgreSQL server binaries not found; run scripts/install-deps.sh" >&2
  exit 2
fi
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qtA -c "DROP DATABASE IF EXISTS slipway" \
    -c "CREATE DATABASE slipway" >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/slipway"
  ;;
stop)
  [ -f "$dir/data/postmaster.pid" ] || exit 0
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
*)
  echo "usage: postgres-test.sh start|stop DIR" >&2
  exit 2
  ;;
esac
