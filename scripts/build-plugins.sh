#!/usr/bin/env bash
# Builds every plugin in plugins/ as a wasm component (wasm32-wasip2) into
# ${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/<name>.wasm, where the default
# `[plugins] dir` looks for them. Adds the rustup target first if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
args=()
for manifest in plugins/*/Cargo.toml; do
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n1)
    args+=(-p "$name")
done
exec cargo build --release --target wasm32-wasip2 "${args[@]}"
