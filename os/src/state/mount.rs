//! Mounting the state filesystem and binding its persistent directories over their places.
//! Only the directories in [`PERSISTENT`] live on the disk; everything else of the root stays
//! the initrd's tmpfs and is rebuilt at every boot.

use anyhow::Context;
use nix::mount::{mount, MsFlags};
use std::path::{Path, PathBuf};

/// Where the state filesystem is mounted.
pub const MOUNT_POINT: &str = "/mnt/state";

/// What persists, relative to `/` and to the state root alike.
pub const PERSISTENT: &[&str] = &[
    "home",
    "opt",
    "var/lib/rancher/conf",
    "var/lib/docker",
    "var/lib/rancher/ssh",
    // Images of the system engine's that the initrd does not bring (system_services::preload).
    "var/lib/rancher/preload",
    // Full consoles' own changes (their writable layers: crate::consoles).
    "var/lib/rancher/console",
    // The web UI's CA and audit log (crate::ui).
    "var/lib/rancher/ui",
];

/// The state root: the mount point, or `rancher.state.directory` under it. Refuses a directory
/// that climbs out (`..`).
pub fn state_root(mount_point: &Path, directory: Option<&str>) -> anyhow::Result<PathBuf> {
    let Some(dir) = directory
        .map(|d| d.trim_matches('/'))
        .filter(|d| !d.is_empty())
    else {
        return Ok(mount_point.to_path_buf());
    };
    if Path::new(dir)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        anyhow::bail!("rancher.state.directory {dir:?} must be a plain relative path");
    }
    Ok(mount_point.join(dir))
}

/// Mount `dev` (ext4) on [`MOUNT_POINT`].
pub fn mount_state(dev: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(MOUNT_POINT).with_context(|| format!("mkdir {MOUNT_POINT}"))?;
    mount(
        Some(dev),
        MOUNT_POINT,
        Some("ext4"),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .with_context(|| format!("mount {} (ext4) on {MOUNT_POINT}", dev.display()))
}

/// Bind every persistent directory of `root` over its place in `/`. The first boot on a new
/// state partition seeds it with what the initrd had there.
pub fn bind_persistent(root: &Path) -> anyhow::Result<()> {
    for rel in PERSISTENT {
        let src = root.join(rel);
        let dst = Path::new("/").join(rel);
        let fresh = !src.exists();
        std::fs::create_dir_all(&src).with_context(|| format!("mkdir {}", src.display()))?;
        std::fs::create_dir_all(&dst).with_context(|| format!("mkdir {}", dst.display()))?;
        if fresh {
            seed(&dst, &src).with_context(|| format!("seeding {}", src.display()))?;
        }
        mount(
            Some(&src),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind {} on {}", src.display(), dst.display()))?;
    }
    Ok(())
}

/// Copy the files of `from` (the initrd's) into the new `to`, keeping modes and owners.
fn seed(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            std::fs::create_dir_all(&dst)?;
            seed(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            continue;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            continue; // sockets and devices do not belong on the state partition
        }
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        let _ = std::os::unix::fs::chown(&dst, Some(meta.uid()), Some(meta.gid()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_root_is_under_the_mount_point() {
        let m = Path::new("/mnt/state");
        assert_eq!(state_root(m, None).unwrap(), m);
        assert_eq!(state_root(m, Some("")).unwrap(), m);
        assert_eq!(
            state_root(m, Some("/rancheros/")).unwrap(),
            m.join("rancheros")
        );
        assert!(state_root(m, Some("../etc")).is_err());
        assert!(state_root(m, Some("a/../../b")).is_err());
    }

    #[test]
    fn seeding_copies_files_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("d")).unwrap();
        std::fs::write(from.path().join("d/f"), "x").unwrap();
        std::fs::set_permissions(
            from.path().join("d/f"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("d/f", from.path().join("l")).unwrap();
        seed(from.path(), to.path()).unwrap();
        assert_eq!(std::fs::read_to_string(to.path().join("d/f")).unwrap(), "x");
        let mode = std::fs::metadata(to.path().join("d/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_link(to.path().join("l")).unwrap(),
            Path::new("d/f")
        );
    }
}
