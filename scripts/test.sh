#!/usr/bin/env bash
# The whole test suite on a fresh machine (CI runs this): installs what the checks and tests need
# (the wasm target, the aiosmtpd mail sink, cargo-machete), then checks formatting, lints, the
# API docs and unused dependencies, builds the plugins once and runs every unit and end-to-end
# test. Everything shares the one dev profile and target/, so nothing is compiled twice for
# nothing; the checks before the tests add a few minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_MACHETE_VERSION=0.9.2

step() { printf '\n== %s\n' "$*"; }

python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
# libfaketime: the clock-jump tests (tests/e2e/clock.rs) move the wall clock of a real daemon.
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]; then
    apt-get update -qq && apt-get install -y -qq faketime
fi
if ! cargo machete --version 2>/dev/null | grep -qF "$CARGO_MACHETE_VERSION"; then
    cargo install --locked cargo-machete --version "$CARGO_MACHETE_VERSION"
fi

step "formatting (cargo fmt --check)"
cargo fmt --all --check
step "unused dependencies (cargo machete)"
cargo machete
step "lints (clippy, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
step "API docs (rustdoc, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
step "plugins"
./scripts/build-plugins.sh
step "tests"
cargo test --workspace
