//! A fuzz target that writes files (layer unpack, image upload spooling) runs as root in CI.
//! These helpers give it a mount namespace of its own with fresh tmpfs mounts, so whatever an
//! input makes it write lands in memory, bounded in size, gone when the process ends, and never
//! on the machine's own file systems. Without the privilege (not root) they report `false` and
//! the target falls back to a plain temporary directory.

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::path::Path;

/// Enter a mount namespace of our own whose mounts do not propagate back. `false` without the
/// privilege to.
pub fn private_mounts() -> bool {
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        return false;
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("making / private in our mount namespace");
    true
}

/// A fresh tmpfs of at most `size` (`64m`) on `dir`: device nodes made in it cannot be opened
/// (`nodev`), nothing in it runs (`noexec`), setuid bits mean nothing (`nosuid`).
pub fn tmpfs(dir: &Path, size: &str) {
    let flags = MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID;
    let data = format!("size={size},mode=0755");
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .unwrap_or_else(|e| panic!("mounting a tmpfs on {}: {e}", dir.display()));
}

/// Bind `src` on `dst` (which must exist), with everything mounted under `src`.
pub fn bind(src: &Path, dst: &Path) {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("binding {} on {}: {e}", src.display(), dst.display()));
}
