#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS_PER_TARGET seconds each (default 60), one
# after the other, and fails on the first crash: libFuzzer leaves the input in
# fuzz/artifacts/<target>/. Fix the bug, then commit the input as fuzz/seeds/<target>/crash-<what>
# so the unit tests (daemon/src/fuzzing.rs) replay it forever.
#
# Stable toolchain only: `--sanitizer none`. With it cargo-fuzz passes only stable flags
# (-Cpasses=sancov-module and the -sanitizer-coverage LLVM options, --cfg fuzzing,
# -Cdebug-assertions); AddressSanitizer needs -Zsanitizer, a nightly flag, and our code has no
# unsafe of its own (workspace lint `unsafe_code = "deny"`) for it to watch. Debug assertions
# and overflow checks stay on, so an overflow is a crash.
#
# Each target reads the committed seeds (fuzz/seeds/<target>, never written to) and grows its
# own corpus in fuzz/corpus/<target> (not committed), so a second run starts where the first
# stopped. A summary line per target ("<target>: N runs in S s, ...") is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-60}
CARGO_FUZZ_VERSION=0.13.2
TARGETS=(config csv_import cron http_body)

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# 16 codegen units: the build (wasmtime included) takes a third of the time of cargo-fuzz's
# default of 1, for slightly slower executions.
FLAGS=(--sanitizer none --release --debug-assertions --codegen-units 16)
(cd fuzz && cargo fuzz build "${FLAGS[@]}")

summary=()
for target in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/artifacts/$target.log"
    mkdir -p fuzz/artifacts
    echo "== $target: ${SECONDS_PER_TARGET}s"
    # -rss_limit_mb: the HTTP target keeps a tokio runtime and SQLite copies; 4 GiB is a leak.
    if ! (cd fuzz && cargo fuzz run "${FLAGS[@]}" "$target" "corpus/$target" "seeds/$target" -- \
            -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -max_len=65536 \
            -print_final_stats=1) 2>"$log"; then
        tail -n 60 "$log"
        echo "$target: CRASH, input in fuzz/artifacts/$target/ (log: $log)" >&2
        exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE '#[0-9]+ +DONE +cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)/cov \1, features \2, corpus \3/' || true)
    summary+=("$target: $runs runs in ${SECONDS_PER_TARGET}s, ${cov:-?}, no crash")
done
printf '%s\n' "${summary[@]}"
