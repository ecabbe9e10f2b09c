#!/usr/bin/env bash
# Runs the demo daemon on the embedded default: the example config/, a SQLite file under data/,
# messages delivered as files under data/outbox/. Installs the wasm target, builds the plugins and
# wuyed, loads the demo owners, bills, tickets and surveys (idempotent: re-running changes nothing), then
# starts `wuyed run`. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-plugins.sh
cargo build -p wuye
wuyed=target/debug/wuyed
"$wuyed" check --config config
for community in shuipan shijixinzhu; do
  for kind in owners bills payments balances tickets surveys; do
    file="config/data/$community/$kind.csv"
    [ -f "$file" ] && "$wuyed" import "$kind" "$file" --community "$community" --config config
  done
done
exec "$wuyed" run --config config "$@"
