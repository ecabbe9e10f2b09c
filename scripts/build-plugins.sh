#!/usr/bin/env bash
# Builds every plugin in plugins/ to a wasm32-wasip2 component, once, into the shared target/
# (target/wasm32-wasip2/release/<name>.wasm), which is where config/wuyed.toml's plugins.dir points.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
# The daemon's crates (wuye, wuye-*) are native only; the SDK is built as the plugins' dependency.
cargo build --release --target wasm32-wasip2 --workspace --exclude wuye --exclude 'wuye-*'
