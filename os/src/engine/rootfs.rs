//! A container's root filesystem: its image's layers (overlayfs lower directories) under an
//! upper and a work directory of its own, mounted on `<dir>/rootfs`. Shared by the system
//! services and the container manager.

use std::path::{Path, PathBuf};

/// Mount the overlay for the container whose directory is `dir` (`upper/`, `work/`,
/// `rootfs/` in it), unless it is mounted already; returns the mount point. `upper_at`: the
/// directory that holds `upper/` and `work/` instead of `dir` (a system service's writable
/// layer kept outside the store: it must be one filesystem for both). `nodev`
/// (non-privileged containers): a device node in an image's layer cannot even be opened
/// through this mount, whatever the device filter says.
pub fn mount(
    dir: &Path,
    upper_at: Option<&Path>,
    lowers: &[PathBuf],
    nodev: bool,
) -> std::io::Result<PathBuf> {
    let base = upper_at.unwrap_or(dir);
    let (upper, work, merged) = (base.join("upper"), base.join("work"), dir.join("rootfs"));
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

/// Fill a new volume `volume` with what the image has at `path` (Docker copies an image's
/// content into a volume that is empty when first mounted). The image's tree is untrusted:
/// `path` is resolved inside `rootfs` without leaving it (pathrs), and the copy never follows
/// a symlink nor crosses into another filesystem. Nothing at `path`, or not a directory:
/// nothing to copy.
pub fn copy_up(rootfs: &Path, path: &str, volume: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let root = pathrs::Root::open(rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
    let Ok(handle) = root.resolve(Path::new(path)) else {
        return Ok(());
    };
    let Ok(dir) =
        handle.reopen(pathrs::flags::OpenFlags::O_RDONLY | pathrs::flags::OpenFlags::O_DIRECTORY)
    else {
        return Ok(());
    };
    let from = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let dev = std::fs::metadata(&from)
        .map(|m| m.dev())
        .map_err(|e| format!("{path}: {e}"))?;
    crate::engine::copy_tree::copy_tree(&from, volume, dev, &mut Default::default())
        .map_err(|e| format!("{e:#}"))
}
