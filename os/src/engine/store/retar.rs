//! A layer written back as a tar from its unpacked tree, for a save whose layer blob the store
//! does not keep: the system images the initrd ships already unpacked (`harness` writes them
//! that way so that boot does not hash and unpack them again, and keeps no second copy of
//! their bytes in RAM).
//!
//! Those layers were built as plain tars in one canonical form: every entry sorted by path,
//! ustar headers, owner root, mtime 0, directories with a trailing `/`, symlinks mode 0777
//! (`harness/src/images.rs`, `to_tar`). The same tree written the same way is the same bytes;
//! the caller checks the digest, so a tree that is not what the build wrote (or a layer not
//! made that way) fails the save with a digest mismatch and is never exported as if it were.

use super::error::{IoContext, Result, StoreError};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Write the canonical tar of the tree `diff` to `out`.
pub fn write(diff: &Path, out: impl Write) -> Result<()> {
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    collect(diff, "", &mut entries)?;
    // As the build's archive orders them: by the whole path as a string.
    entries.sort();
    let mut b = tar::Builder::new(out);
    for (name, path) in &entries {
        let m = fs::symlink_metadata(path).ctx("stat", path)?;
        let ft = m.file_type();
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let mode = m.mode() & 0o7777;
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(mode);
            h.set_size(0);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())
                .ctx("writing the layer of", path)?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(mode);
            h.set_size(m.len());
            let f = fs::File::open(path).ctx("opening", path)?;
            b.append_data(&mut h, name, f)
                .ctx("writing the layer of", path)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).ctx("readlink", path)?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, name, &target)
                .ctx("writing the layer of", path)?;
        } else {
            return Err(StoreError::BadArchive {
                source_path: path.display().to_string(),
                reason: "a layer kept without its blob holds only directories, files and \
                         symbolic links"
                    .into(),
            });
        }
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .ctx("writing the layer of", diff)?;
    Ok(())
}

/// Every entry under `dir`, named `prefix/name` (without a leading `/`).
fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in fs::read_dir(dir).ctx("reading", dir)? {
        let entry = entry.ctx("reading", dir)?;
        let Some(name) = entry.file_name().to_str().map(String::from) else {
            return Err(StoreError::BadArchive {
                source_path: entry.path().display().to_string(),
                reason: "a file name that is not UTF-8".into(),
            });
        };
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let is_dir = entry.file_type().ctx("stat", &path)?.is_dir();
        out.push((full.clone(), path.clone()));
        if is_dir {
            collect(&path, &full, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A test entry: name, file content, mode, symlink target (neither: a directory).
    type E<'a> = (&'a str, Option<&'a [u8]>, u32, Option<&'a str>);

    /// The build's form, written the way `harness::images::to_tar` writes it, from a list.
    fn canonical(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut sorted = entries.to_vec();
        sorted.sort_by(|a, b| format!("/{}", a.0).cmp(&format!("/{}", b.0)));
        for (name, data, mode, link) in sorted {
            let mut h = tar::Header::new_ustar();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match (data, link) {
                (Some(d), _) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(mode);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, name, d).unwrap();
                }
                (None, Some(t)) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, name, t).unwrap();
                }
                (None, None) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{name}/"), std::io::empty())
                        .unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn the_tree_is_written_back_as_the_build_wrote_it() {
        let long = format!("usr/share/{}", "d".repeat(120));
        let entries: Vec<E<'_>> = vec![
            ("bin", None, 0o755, None),
            ("bin/sh", Some(b"#!"), 0o4755, None),
            ("bin-x", Some(b"x"), 0o644, None),
            ("etc", None, 0o700, None),
            ("etc/link", None, 0, Some("../bin/sh")),
            ("usr", None, 0o755, None),
            ("usr/share", None, 0o755, None),
            (long.as_str(), Some(b"long"), 0o600, None),
        ];
        let want = canonical(&entries);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, data, mode, link) in &entries {
            let p = d.join(name);
            match (data, link) {
                (Some(data), _) => {
                    fs::write(&p, data).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                }
                (None, Some(t)) => std::os::unix::fs::symlink(t, &p).unwrap(),
                (None, None) => {
                    fs::create_dir(&p).unwrap();
                }
            }
        }
        for (name, data, mode, link) in &entries {
            if data.is_none() && link.is_none() {
                fs::set_permissions(d.join(name), fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
        let mut got = Vec::new();
        write(d, &mut got).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the same bytes");
    }

    #[test]
    fn a_device_node_cannot_be_written_back() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::S_IRUSR).unwrap();
        let err = write(dir.path(), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("only directories, files"), "{err}");
    }
}
