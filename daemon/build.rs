//! Records which commit `wuyed` was built from, for `wuyed --version`: an administrator
//! reporting a problem can then say exactly what they run, and a `.deb` names its source.
//!
//! Sets `WUYED_SOURCE` to `commit <short hash>`, with `-dirty` when tracked files differ from it,
//! or to `unknown commit` when the workspace is not a git checkout (a crate tarball, a source
//! package) or git is missing. A build never fails for want of git.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest.parent().unwrap_or(&manifest).to_path_buf();
    let source = match commit(&workspace) {
        Some(hash) => format!("commit {hash}"),
        None => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=WUYED_SOURCE={source}");
}

/// The short hash of HEAD plus a dirty flag, or `None` outside a git checkout of this workspace.
/// Also tells cargo which files to watch: a new commit or checkout (HEAD, the branch's ref) and
/// staged or edited sources (the index, this crate's sources) re-run this script.
fn commit(workspace: &Path) -> Option<String> {
    // Only the workspace's own repository: a tarball unpacked inside some other checkout must
    // not report that checkout's commit.
    if !workspace.join(".git").exists() {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(".git").display()
        );
        return None;
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let hash = git(&["rev-parse", "--short", "HEAD"])?;
    // In a worktree HEAD and the index live in its own git dir, branch refs in the common one.
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), git_dir.join("index")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    watched.push(common.join("packed-refs"));
    // A missing watched file would re-run the script at every build: watch only what exists.
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // Edits not yet staged change no git file; the sources themselves tell.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    // `status` compares contents, not just the index's timestamps; it must not write the index
    // (which would re-run this script at the next build).
    let dirty = !git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])?
    .is_empty();
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}
