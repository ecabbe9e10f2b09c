#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (the wasm target, the
# aiosmtpd mail sink), builds the plugins once, then runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
./scripts/build-plugins.sh
cargo test --workspace
