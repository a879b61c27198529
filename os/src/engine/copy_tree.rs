//! Copying a directory tree as it is (owners, modes, setuid bits, symlinks unfollowed, hard
//! links kept, device nodes made again): a new volume gets the image's files at its mount point
//! this way, as Docker's copy-up does.

use anyhow::Context;
use nix::sys::stat::{mknod, Mode, SFlag};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{lchown, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Copy the directory `from` into `to` (an existing directory), entries of other filesystems
/// (mount points) left out. Symlinks are copied as links, never followed; hard links stay hard
/// links (`links`: (dev, ino) of the source → its copy).
pub(crate) fn copy_tree(
    from: &Path,
    to: &Path,
    dev: u64,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("stat {}", from.display()))?;
    copy_owner_mode(to, &meta)?;
    for entry in fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry.with_context(|| format!("read {}", from.display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let m = fs::symlink_metadata(&src).with_context(|| format!("stat {}", src.display()))?;
        if m.dev() != dev {
            continue;
        }
        let ft = m.file_type();
        if ft.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dst)
                .with_context(|| format!("mkdir {}", dst.display()))?;
            copy_tree(&src, &dst, dev, links)?;
            continue;
        }
        if !ft.is_symlink() {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                fs::hard_link(first, &dst)
                    .with_context(|| format!("link {} to {}", dst.display(), first.display()))?;
                continue;
            }
            if m.nlink() > 1 {
                links.insert((m.dev(), m.ino()), dst.clone());
            }
        }
        if ft.is_symlink() {
            let target =
                fs::read_link(&src).with_context(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst)
                .with_context(|| format!("symlink {}", dst.display()))?;
            lchown(&dst, Some(m.uid()), Some(m.gid()))
                .with_context(|| format!("chown {}", dst.display()))?;
            continue;
        }
        if ft.is_file() {
            fs::copy(&src, &dst)
                .with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
        } else {
            // Device nodes, FIFOs and sockets.
            let kind = SFlag::from_bits_truncate(m.mode() & libc::S_IFMT);
            mknod(
                &dst,
                kind,
                Mode::from_bits_truncate(m.mode() & 0o7777),
                m.rdev(),
            )
            .with_context(|| format!("mknod {}", dst.display()))?;
        }
        copy_owner_mode(&dst, &m)?;
    }
    Ok(())
}

fn copy_owner_mode(path: &Path, m: &fs::Metadata) -> anyhow::Result<()> {
    lchown(path, Some(m.uid()), Some(m.gid()))
        .with_context(|| format!("chown {}", path.display()))?;
    // After the chown, which clears setuid/setgid.
    fs::set_permissions(path, fs::Permissions::from_mode(m.mode() & 0o7777))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_and_modes() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("usr/bin")).unwrap();
        fs::write(s.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(s.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(s.join("usr/bin/tool"), s.join("usr/bin/alias")).unwrap();
        std::os::unix::fs::symlink("usr/bin", s.join("bin")).unwrap();
        fs::create_dir(s.join("secret")).unwrap();
        fs::set_permissions(s.join("secret"), fs::Permissions::from_mode(0o700)).unwrap();
        let dev = fs::metadata(s).unwrap().dev();
        let mut links = HashMap::new();
        copy_tree(s, dst.path(), dev, &mut links).unwrap();
        let d = dst.path();
        assert_eq!(fs::read(d.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\n");
        let tool = fs::metadata(d.join("usr/bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(
            tool.ino(),
            fs::metadata(d.join("usr/bin/alias")).unwrap().ino()
        );
        assert_eq!(fs::read_link(d.join("bin")).unwrap(), Path::new("usr/bin"));
        assert_eq!(
            fs::metadata(d.join("secret")).unwrap().mode() & 0o7777,
            0o700
        );
    }
}
