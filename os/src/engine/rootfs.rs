//! A container's root filesystem: its image's layers (overlayfs lower directories) under an
//! upper and a work directory of its own, mounted on `<dir>/rootfs`. Shared by the system
//! services and the container manager.

use std::path::{Path, PathBuf};

/// Mount the overlay for the container whose directory is `dir` (`upper/`, `work/`,
/// `rootfs/` in it), unless it is mounted already; returns the mount point. `nodev`
/// (non-privileged containers): a device node in an image's layer cannot even be opened
/// through this mount, whatever the device filter says.
pub fn mount(dir: &Path, lowers: &[PathBuf], nodev: bool) -> std::io::Result<PathBuf> {
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| with_path(d, e))?;
    }
    if is_mounted(&merged) {
        return Ok(merged);
    }
    let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let flags = if nodev {
        nix::mount::MsFlags::MS_NODEV
    } else {
        nix::mount::MsFlags::empty()
    };
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| with_path(&merged, std::io::Error::from(e)))?;
    Ok(merged)
}

/// Unmount `<dir>/rootfs` if it is mounted (lazily: an exec'd process may still be leaving).
pub fn unmount(dir: &Path) -> std::io::Result<()> {
    let merged = dir.join("rootfs");
    if !is_mounted(&merged) {
        return Ok(());
    }
    nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| with_path(&merged, std::io::Error::from(e)))
}

fn is_mounted(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*p.to_string_lossy()))
}

fn with_path(p: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}
