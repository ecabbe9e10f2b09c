#!/usr/bin/env bash
# Builds the Debian package of wuye: the release `wuyed`, the standard plugins, the man pages and
# shell completions generated from the real command line, the systemd unit and the example
# configuration, then `cargo deb` (installed at a pinned version if missing) and a listing of
# what the .deb holds. Slow (a release build of wasmtime): not part of scripts/test.sh.
#
#   ./scripts/package.sh            # writes target/debian/wuye_<version>-1_<arch>.deb
#                                   # and its debug symbols, wuye-dbgsym_<version>-1_<arch>.ddeb
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
# Standard workflows the example communities use; test and example plugins stay out.
PLUGINS=(callback_escalation fee_reminder heartbeat payment_plan_reminder quarterly_survey
    semiannual_event)

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
export CARGO_TARGET_DIR="$target"

if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

cargo build --release -p wuye --bin wuyed
./scripts/build-plugins.sh

# Everything generated goes under <target>/release/assets: cargo-deb maps daemon/Cargo.toml's
# "target/release/..." asset paths onto the real target directory.
assets="$target/release/assets"
rm -rf "$assets"
mkdir -p "$assets/completions" "$assets/etc" "$assets/plugins"
wuyed="$target/release/wuyed"
"$wuyed" generate man "$assets/man" >/dev/null
# Debian policy: man pages compressed, reproducibly (-n: no name or time stamp in the header).
gzip -9n "$assets"/man/*.1
for shell in bash zsh fish; do
    "$wuyed" generate completions "$shell" --dir "$assets/completions" >/dev/null
done
for plugin in "${PLUGINS[@]}"; do
    cp "$target/wasm32-wasip2/release/$plugin.wasm" "$assets/plugins/"
done

# The shipped wuyed.toml with the paths of an installed system; fail loudly if the keys moved.
sed -e 's|^data_dir = "\.\./data"$|data_dir = "/var/lib/wuye"|' \
    -e 's|^dir = "\.\./target/wasm32-wasip2/release"$|dir = "/usr/lib/wuye/plugins"|' \
    config/wuyed.toml >"$assets/etc/wuyed.toml"
for want in 'data_dir = "/var/lib/wuye"' 'dir = "/usr/lib/wuye/plugins"'; do
    grep -qxF "$want" "$assets/etc/wuyed.toml" || {
        echo "package.sh: config/wuyed.toml no longer has the line that becomes: $want" >&2
        exit 1
    }
done

# The release profile keeps line tables for readable panics: 190 of the binary's 235 MB. They go
# to a separate wuye-dbgsym package (install it to debug a crash); wuyed itself ships stripped.
rm -f "$target"/debian/*.deb "$target"/debian/*.ddeb
cargo deb -p wuye --no-build --dbgsym --output "$target/debian/"
deb="$(ls -t "$target"/debian/*.deb | head -1)"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
echo "built $deb"
