//! Test support shared by every exmux crate: the one rule for finding `../shared/`.
//!
//! Public samples that exmux did not produce (real-server captures, specification
//! examples, cases from bug reports) live in a `shared/` folder beside the checkout and
//! are never copied into the repository. Tests find it like this:
//!
//! 1. the `EXMUX_SHARED` environment variable, when set;
//! 2. otherwise `../shared` next to the workspace root, which is found by walking up
//!    from `CARGO_MANIFEST_DIR` to the folder whose `Cargo.toml` has `[workspace]`.
//!
//! When the folder is missing, [`shared_dir`] returns `None` outside CI so the test can
//! skip, and panics when the `CI` environment variable is set, so CI can never pass by
//! skipping.

use std::path::{Path, PathBuf};

/// Returns the workspace root: the nearest ancestor of `CARGO_MANIFEST_DIR` (or of the
/// current directory) whose `Cargo.toml` declares `[workspace]`.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut dir: &Path = &start;
    loop {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest)
            && text.contains("[workspace]")
        {
            return dir.to_path_buf();
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => return start,
        }
    }
}

/// Returns the shared data folder, or `None` when it is absent outside CI.
///
/// # Panics
///
/// Panics when the folder is absent and the `CI` environment variable is set.
pub fn shared_dir() -> Option<PathBuf> {
    let candidate = match std::env::var_os("EXMUX_SHARED") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("..").join("shared"),
    };
    if candidate.is_dir() {
        return Some(candidate);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "shared data folder not found at {}: CI requires it; set EXMUX_SHARED or place \
             `shared/` beside the checkout",
            candidate.display()
        );
    }
    eprintln!(
        "skipping: shared data folder not found at {} (set EXMUX_SHARED to run this test)",
        candidate.display()
    );
    None
}

/// Returns `shared/<relative>`, or `None` when the shared folder is absent outside CI.
///
/// # Panics
///
/// Panics under CI when the shared folder or the named path is missing, and outside CI
/// when the shared folder exists but the named path does not (a renamed sample must fail
/// loudly, not skip).
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let path = shared_dir()?.join(relative);
    assert!(path.exists(), "shared sample {} is missing", path.display());
    Some(path)
}
