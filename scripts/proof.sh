#!/usr/bin/env bash
# The proof suite: evidence that wuye loses no owner's message and sends none twice when it is
# killed or the world around it fails. Not part of scripts/test.sh (it takes minutes to hours);
# run it before a release and after any change to delivery, the outbox or the scheduler.
#
#   scripts/proof.sh          quick (~15 min on 2 cores): the fault trials, the clock jumps, the
#                             hostile plugins under load and 10 crash trials
#   scripts/proof.sh --long   200 crash trials, every `proof_*` test of every engineer, and
#                             scripts/fuzz.sh "$FUZZ_SECONDS" when it exists
#
# Knobs: WUYE_PROOF_TRIALS (crash trials; 10 quick, 200 long), WUYE_PROOF_HOUSEHOLDS (10000),
# FUZZ_SECONDS (300). The trials are the `#[ignore]`d `proof_*` tests of tests/e2e (proof_kill.rs,
# proof_fault.rs); docs/RELIABILITY.md says what each proves. Installs what it needs (the
# aiosmtpd mail sink, the plugins) and builds with the dev profile into the same target/ as
# scripts/test.sh, so nothing is compiled twice. The disk-full trial mounts a tmpfs: as a
# non-root user it is skipped, and the summary says so.
set -uo pipefail
cd "$(dirname "$0")/.."

long=0
case "${1:-}" in
    "") ;;
    --long) long=1 ;;
    *) echo "usage: scripts/proof.sh [--long]" >&2; exit 64 ;;
esac

if [ "$long" = 1 ]; then
    export WUYE_PROOF_TRIALS="${WUYE_PROOF_TRIALS:-200}"
else
    export WUYE_PROOF_TRIALS="${WUYE_PROOF_TRIALS:-10}"
fi
FUZZ_SECONDS="${FUZZ_SECONDS:-300}"

summary_file="$(mktemp -t wuye-proof.XXXXXX)"
trap 'rm -f "$summary_file"' EXIT
export WUYE_PROOF_SUMMARY="$summary_file"
results=()
failed=0

step() { printf '\n== %s\n' "$*"; }

# Runs a step, timing it and keeping its outcome for the summary; carries on after a failure so
# one broken trial does not hide the others' figures.
run() {
    local name="$1"; shift
    local start=$SECONDS
    step "$name"
    if "$@"; then
        results+=("ok      $(( SECONDS - start )) s  $name")
    else
        results+=("FAILED  $(( SECONDS - start )) s  $name")
        failed=1
    fi
}

step "setup: aiosmtpd, plugins, wuyed and the e2e tests (dev profile)"
python3 -m pip install --quiet --disable-pip-version-check aiosmtpd || exit 1
./scripts/build-plugins.sh || exit 1
cargo test -p wuye --test e2e --no-run || exit 1

skip=()
if [ "$(id -u)" != 0 ]; then
    skip=(--skip proof_fault_disk_full)
    results+=("skipped        proof_fault_disk_full (mounting a tmpfs needs root)")
fi

e2e() { cargo test -p wuye --test e2e -- --ignored --test-threads=1 --nocapture "$@"; }

if [ "$long" = 1 ]; then
    # Every engineer's proof tests, the crash and fault trials among them.
    run "every proof_* test ($WUYE_PROOF_TRIALS crash trials)" e2e proof_ "${skip[@]}"
    if [ -x scripts/fuzz.sh ]; then
        run "fuzzing (${FUZZ_SECONDS} s)" ./scripts/fuzz.sh "$FUZZ_SECONDS"
    else
        results+=("skipped        fuzzing (no scripts/fuzz.sh)")
    fi
else
    run "fault trials" e2e proof_fault "${skip[@]}"
    run "clock jumps" e2e proof_clock
    run "hostile plugins under load" e2e proof_hostile
    run "crash trials ($WUYE_PROOF_TRIALS)" e2e proof_sigkill
fi

step "summary"
[ -s "$summary_file" ] && sed 's/^/  /' "$summary_file"
printf '%s\n' "${results[@]}" | sed 's/^/  /'
exit "$failed"
