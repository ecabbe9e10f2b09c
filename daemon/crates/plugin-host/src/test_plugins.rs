//! The test plugins (`plugins/heartbeat`, `misbehaving`, `legacy-*`), built for wasm32-wasip2
//! once per test process with the same command as `scripts/test.sh`, into the shared target
//! directory. For this crate's sandbox tests and, through the `test-plugins` feature, for the
//! daemon's tests of `wuyed check` against real plugin files.

use std::path::{Path, PathBuf};
use std::sync::Once;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .expect("the crate lives at daemon/crates/plugin-host")
        .to_path_buf()
}

/// Builds the test plugins for wasm32-wasip2 once, returns the directory holding them.
pub fn wasm() -> PathBuf {
    static BUILD: Once = Once::new();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args(["-p", "heartbeat", "-p", "misbehaving"])
            .args(["-p", "legacy-v010", "-p", "legacy-v020"])
            .status()
            .expect("cannot run cargo to build the test plugins");
        assert!(
            status.success(),
            "building the test plugins failed (rustup target add wasm32-wasip2?)"
        );
    });
    let dir = target.join("wasm32-wasip2/release");
    if dir.is_absolute() {
        dir
    } else {
        workspace().join(dir)
    }
}
