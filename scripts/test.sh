#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real
# tools: bsdtar, getfattr, debootstrap), the quick start, and a short fuzz
# pass over every store parser. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== quick start (end to end, default store under target/)"
SLIPWAY_STORE=$PWD/target/quickstart/store bash scripts/quickstart.sh
echo "== fuzz smoke"
bash scripts/fuzz-smoke.sh
echo "== cargo test"
cargo test --workspace
