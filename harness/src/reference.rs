//! The reference engine: this machine's Docker Engine, which tests compare ours against.
//!
//! It is one daemon for every test process, and some tests give it the same names (`docker load`
//! of our busybox tags `ros/busybox:latest`, then `docker rmi` of it). The suite runs test
//! processes side by side, so a test that names things there holds [`lock`] while it does.

use anyhow::Context;

/// Held while a test uses shared names on the reference engine; released on drop.
pub struct Lock {
    _held: std::fs::File,
}

/// Wait for the reference engine's lock (a file lock, across processes).
pub fn lock() -> anyhow::Result<Lock> {
    let path = crate::paths::repo_root()
        .join("target")
        .join("reference-engine.lock");
    std::fs::create_dir_all(path.parent().expect("target/")).context("mkdir target")?;
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    fs2::FileExt::lock_exclusive(&f).with_context(|| format!("locking {}", path.display()))?;
    Ok(Lock { _held: f })
}
