#!/usr/bin/env bash
# slipway's main job end to end on defaults: build a master root, capture it
# into the image store, list it, apply it to a new directory, verify the store,
# check the applied tree against its source with bsdtar's mtree, then change
# the applied copy, capture it as the next version (only what changed is
# stored), show the difference between the two versions, and build an ISO
# straight from the newest version (read back by xorriso and bsdtar). A clone
# of the master is generalized and specialized from an answer file, and the
# generalized master is deployed by a local server (SQLite) to a local agent
# with a directory target, specialized there from the same answer file.
#
# The store is the default one ($SLIPWAY_STORE, else
# ${XDG_DATA_HOME:-~/.local/share}/slipway/store); it is created if missing.
# The master root is a debootstrap minbase bookworm root where debootstrap can
# reach this machine's configured mirror (needs root), otherwise a generated
# tree. Work files go under target/quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; then
  bash scripts/install-deps.sh
fi
echo "== building slipway (release)"
cargo build --release --quiet
slipway() { "$ROOT/target/release/slipway" "$@"; }

work=$ROOT/target/quickstart
mkdir -p "$work"
echo "== master root"
if [ "$(id -u)" -eq 0 ] && master=$(scripts/minbase-root.sh "$ROOT/target/cache/minbase-bookworm"); then
  echo "using debootstrap minbase root $master"
else
  echo "debootstrap not usable here; generating a sample tree instead"
  master=$(scripts/sample-tree.sh "$work/sample-master")
fi

store=${SLIPWAY_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/slipway/store}
if [ ! -f "$store/config" ]; then
  slipway store init
fi
echo "== capture"
slipway capture "$master" --name quickstart --description "slipway quick start master"
echo "== images"
slipway images
echo "== apply"
rm -rf "$work/applied"
slipway apply quickstart "$work/applied"
echo "== verify"
slipway verify
echo "== compare applied tree with its source (bsdtar mtree: type uid gid mode time size sha256 link device nlink)"
mt() { (cd "$1" && bsdtar -cf - --format=mtree --options='!all,type,uid,gid,mode,time,size,sha256,link,device,nlink' .); }
if diff <(mt "$master") <(mt "$work/applied") >"$work/mtree.diff"; then
  echo "identical: $(mt "$master" | grep -c ' type=') entries"
else
  echo "DIFFERENT: see $work/mtree.diff" >&2
  exit 1
fi

echo "== service the applied tree, capture it as the next version (only what changed is stored), diff"
printf 'serviced by the slipway quick start\n' >"$work/applied/etc/motd"
slipway capture "$work/applied" --name quickstart --description "serviced copy"
new=$(slipway images --json | python3 -c 'import json,sys; print([i["image"] for i in json.load(sys.stdin)["images"] if i["name"]=="quickstart"][-1])')
prev=quickstart@$(( ${new#quickstart@} - 1 ))
slipway diff "$prev" "$new" --bytes

echo "== updates: a signed hotfix made from two trees, installed and uninstalled on a copy, then slipstreamed"
rm -rf "$work/keys" "$work/serviced"
mkdir -p "$work/keys"
slipway key new "$work/keys/quickstart"
slipway package build --diff "$master" "$work/applied" --id QS-HOTFIX-1 --title "quick start motd" \
  --sign "$work/keys/quickstart.key" -o "$work/qs-hotfix.slwpkg"
slipway package verify "$work/qs-hotfix.slwpkg" --trust "$work/keys/quickstart.pub"
cp -a "$master" "$work/serviced"
slipway install "$work/qs-hotfix.slwpkg" --root "$work/serviced" --trust "$work/keys/quickstart.pub"
slipway packages --root "$work/serviced"
mts() { (cd "$1" && bsdtar -cf - --format=mtree --options='!all,type,uid,gid,mode,time,size,sha256,link,device,nlink' \
  --exclude ./var/lib/slipway --exclude ./var/log/slipway .); }
diff <(mts "$work/applied") <(mts "$work/serviced") >/dev/null || { echo "installed tree differs from the target tree" >&2; exit 1; }
slipway uninstall QS-HOTFIX-1 --root "$work/serviced"
diff <(mts "$master") <(mts "$work/serviced") >/dev/null || { echo "uninstall did not restore the master" >&2; exit 1; }
echo "install and uninstall: the copy matched the serviced tree, then the master again"
slipway integrate "$work/qs-hotfix.slwpkg" --image quickstart@1 --trust "$work/keys/quickstart.pub"

echo "== generalize a clone of the master, then specialize it from an answer file (Sysprep + Mini-Setup)"
rm -rf "$work/clone"
cp -a "$master" "$work/clone"
# Exit status 3 means generalize reported findings it left for you to decide.
slipway generalize "$work/clone" || [ $? -eq 3 ]
slipway answer new --non-interactive --force -o "$work/answer.toml" --hostname 'web-{serial}' --user admin \
  --password-hash '$6$slipwaysalt0$aT7VBVHeEKNYQ4.7yiJzLCAtWW232OSH2F70KCkgaiYR1D/tFPs/m6L/hhJMvpqUfnV4CjDcv4YAxpm1Tomi/0' \
  --no-sudo --timezone UTC
# The generalized master is what a deployment server hands out (below).
slipway capture "$work/clone" --name quickstart-generalized --description "generalized master"
slipway answer check "$work/answer.toml" --root "$work/clone"
slipway specialize "$work/clone" --answer "$work/answer.toml" --fact serial=QS1
echo "the clone is now $(cat "$work/clone/etc/hostname"); slipway-firstboot.service finishes it at its first boot"

echo "== deploy: a server on the embedded default (SQLite, self-signed TLS), a local agent with a directory target"
# The server's own files (database, certificate, secrets) go to --data;
# without it they live beside the store, in STORE.server.
data=$work/server
rm -rf "$data" "$work/agent" "$work/target"
token=$(slipway server token new --data "$data" --name quickstart)
enroll=$(slipway server token new --data "$data" --enrollment --name quickstart-agents --uses 1)
# The binary itself in the background (not the shell function), so $! is
# the server's own PID and the kill below stops it.
"$ROOT/target/release/slipway" serve --data "$data" --listen 127.0.0.1:0 --json >"$work/serve.json" 2>"$work/serve.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
started() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["started"][sys.argv[2]])' "$work/serve.json" "$1"; }
export SLIPWAY_SERVER=$(started url) SLIPWAY_TOKEN=$token SLIPWAY_CA=$(started certificate)
echo "server at $SLIPWAY_SERVER (console: $SLIPWAY_SERVER/console/)"
slipway collection new quickstart --rule 'role == "quickstart" and memory_mb >= 64'
"$ROOT/target/release/slipway" agent --enroll "$enroll" --target "$work/target" --state "$work/agent" \
  --fact serial=QS2 --fact role=quickstart --once 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 100); do [ "$(slipway machines --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["machines"]))')" -ge 1 ] && break; sleep 0.2; done
slipway machines
slipway deploy quickstart-generalized --to quickstart --answer "$work/answer.toml" --name quickstart-rollout --wait
wait "$agent_pid"
slipway status
echo "the deployed target is now $(cat "$work/target/etc/hostname")"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
trap - EXIT

echo "== boot media: an ISO straight from the newest version, read back by xorriso and bsdtar"
slipway iso build --image "$new" -o "$work/quickstart.iso" --volume-id QUICKSTART
slipway iso info "$work/quickstart.iso"
xorriso -indev "$work/quickstart.iso" -check_media -- 2>&1 | grep -E 'Media region'
echo "bsdtar lists $(bsdtar -tf "$work/quickstart.iso" | wc -l) entries"
