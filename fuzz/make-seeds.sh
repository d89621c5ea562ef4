#!/usr/bin/env bash
# Regenerates fuzz/seeds/: captures a tiny directory tree with the real
# `slipway` binary into a scratch store, then runs the make_seeds bin to copy
# its pack/index/record/config files and extract frames and tree blobs, plus
# hand-built trees with every entry kind, and packages built from small trees
# (signed with fuzz/package-test-key.key) with their manifests and blobs for
# the package_open, package_manifest and delta_decode targets. Run it when a
# store or package format changes; commit the result.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

(cd "$root" && cargo build --release --bin slipway)
src="$scratch/src"
mkdir -p "$src/sub/deeper"
echo hello >"$src/a.txt"
for _ in $(seq 20); do echo "second file"; done >"$src/sub/b.txt"
echo deep >"$src/sub/deeper/c"
chmod 4755 "$src/sub/deeper/c"
ln -s a.txt "$src/link"
ln -s ../a.txt "$src/sub/up"
ln "$src/a.txt" "$src/hard"
mkfifo "$src/fifo"
truncate -s 100000 "$src/sparse" && echo x >>"$src/sparse"
setfattr -n user.test -v val "$src/a.txt" 2>/dev/null || true

"$root/target/release/slipway" -q --store "$scratch/store" store init
"$root/target/release/slipway" -q --store "$scratch/store" capture "$src" --name seed
echo again >>"$src/sub/b.txt"
"$root/target/release/slipway" -q --store "$scratch/store" capture "$src" --name seed

# Regenerate the store-format seeds; the iso_read seeds (hand-made ISO
# images, see fuzz/fuzz_targets/iso_read.rs) and the answer_parse seeds
# (hand-written answer files) and the rule_parse seeds (hand-written
# collection rules) stay.
find "$fuzz_dir/seeds" -mindepth 1 -maxdepth 1 -type d ! -name iso_read ! -name answer_parse ! -name rule_parse -exec rm -rf {} +
(cd "$fuzz_dir" && cargo run --quiet --features make-seeds --bin make_seeds -- "$fuzz_dir/seeds" "$scratch/store")
