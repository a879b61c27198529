//! Where things live: the checkout, the build cache (outside the checkout, so that a fresh clone
//! or `git clean` does not throw away a 6-minute kernel build), and `dist/`.

use std::path::PathBuf;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness crate lives one level below the workspace root")
        .to_path_buf()
}

/// The build cache: `$RANCHEROS_CACHE`, else `$XDG_CACHE_HOME/rancheros-rs`, else
/// `~/.cache/rancheros-rs`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RANCHEROS_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("rancheros-rs");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("rancheros-rs")
}

/// `dist/` in the checkout: what `harness build` writes (`vmlinuz`, `initrd.img`).
pub fn dist_dir() -> PathBuf {
    repo_root().join("dist")
}
