#!/usr/bin/env bash
# Short libFuzzer pass over every fuzz target in fuzz/ (for CI).
#
#   scripts/fuzz-smoke.sh [TARGET...]     default: every fuzz/fuzz_targets/*.rs
#
# Environment:
#   FUZZ_SECONDS    seconds of fuzzing per target (default 15)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer: address (default), none, leak, memory, thread
#
# Seeds from fuzz/seeds/<target>/ are copied into fuzz/corpus/<target>/ first,
# and fuzz/regressions/<target>-*.bin (inputs that once crashed) are replayed
# before fuzzing.
# Works on stable Rust: cargo-fuzz needs -Z flags, so RUSTC_BOOTSTRAP=1 is set.
# Exits non-zero if the build fails or any target finds a crash, OOM, leak or
# timeout; the input is left in fuzz/artifacts/<target>/ and its path printed.
# The last line is always `fuzz: N passed, M failed`.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2

FUZZ_SECONDS="${FUZZ_SECONDS:-15}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        t="$(basename "$f" .rs)"
        targets+=("$t")
    done
fi
total=${#targets[@]}

finish() { # passed failed
    echo "fuzz: $1 passed, $2 failed"
    [ "$2" -eq 0 ]
    exit $?
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz not found, installing it"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz-smoke: could not install cargo-fuzz" >&2
        finish 0 "$total"
    fi
fi
echo "fuzz-smoke: $(cargo fuzz --version), sanitizer $FUZZ_SANITIZER, ${FUZZ_SECONDS}s per target"

for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "fuzz-smoke: no fuzz target $t (fuzz/fuzz_targets/$t.rs)" >&2
        finish 0 "$total"
    fi
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    if [ -d "fuzz/seeds/$t" ]; then
        cp -p fuzz/seeds/"$t"/* "fuzz/corpus/$t/"
    else
        echo "fuzz-smoke: warning: no seeds for $t (fuzz/seeds/$t)" >&2
    fi
done

start=$SECONDS
if [ "$#" -gt 0 ]; then
    build_ok=1
    for t in "${targets[@]}"; do
        cargo fuzz build -s "$FUZZ_SANITIZER" "$t" || build_ok=0
    done
else
    cargo fuzz build -s "$FUZZ_SANITIZER" && build_ok=1 || build_ok=0
fi
if [ "$build_ok" -ne 1 ]; then
    echo "fuzz-smoke: build failed" >&2
    finish 0 "$total"
fi
echo "fuzz-smoke: build took $((SECONDS - start))s"

passed=0
failed=0
for t in "${targets[@]}"; do
    log="fuzz/artifacts/$t/fuzz-smoke.log"
    t0=$SECONDS
    : >"$log"
    rc=0
    # Inputs that once crashed this target (fuzz/regressions/<target>-*.bin)
    # are replayed first, so a fixed bug that comes back always fails here.
    regressions=(fuzz/regressions/"$t"-*.bin)
    if [ -e "${regressions[0]}" ]; then
        # -s must match the build above, or cargo fuzz rebuilds.
        cargo fuzz run -s "$FUZZ_SANITIZER" "$t" "${regressions[@]}" -- -timeout="$FUZZ_TIMEOUT" >>"$log" 2>&1
        rc=$?
    fi
    if [ "$rc" -eq 0 ]; then
        cargo fuzz run -s "$FUZZ_SANITIZER" "$t" "fuzz/corpus/$t" -- \
            -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -print_final_stats=1 >>"$log" 2>&1
        rc=$?
    fi
    secs=$((SECONDS - t0))
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
        echo "PASS $t (${secs}s, ${runs:-?} runs)"
        passed=$((passed + 1))
    else
        echo "FAIL $t (${secs}s, exit $rc)"
        grep -m 1 -A 1 "panicked at" "$log" | sed 's/^/    /'
        grep -m 1 -E "^==[0-9]+== ?ERROR|^SUMMARY:" "$log" | sed 's/^/    /'
        if [ -n "$artifact" ]; then
            echo "    crashing input: $artifact"
            echo "    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $FUZZ_SANITIZER $t $artifact"
        else
            tail -n 20 "$log" | sed 's/^/    /'
        fi
        echo "    full log: $log"
        failed=$((failed + 1))
    fi
done

echo "fuzz-smoke: total $((SECONDS - start))s"
finish "$passed" "$failed"
