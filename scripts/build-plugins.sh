#!/usr/bin/env bash
# Builds every plugin in plugins/ to a wasm32-wasip2 component, once, into the shared target/
# (target/wasm32-wasip2/release/<name>.wasm), which is where config/wuyed.toml's plugins.dir points.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 --workspace --exclude wuye --exclude wuye-core --exclude wuye-schedule --exclude wuye-store
