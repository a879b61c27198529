//! Replacing a configuration file so that a crash or power cut at any moment leaves either the
//! old file or the new one, never a torn mix: the next boot reads this file.
//!
//! The recipe: write a temporary file in the same directory (so the rename cannot cross file
//! systems), fsync it, rename it over the target (atomic in POSIX), then fsync the directory so
//! the rename itself is durable. On any failure the temporary file is removed and the target is
//! untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Atomically replace `path` with `contents`, created with `mode` (e.g. 0o600).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(contents))
}

/// Atomically replace `path` with whatever `fill` writes into the (temporary) file.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = open_new(&tmp, mode)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create `tmp` exclusively; a leftover of a crashed writer with the same pid is replaced.
fn open_new(tmp: &Path, mode: u32) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            open()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn replaces_the_file_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("conf/cloud-config.yml");
        write_atomic(&target, b"a: 1\n", 0o600).unwrap();
        write_atomic(&target, b"a: 2\n", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "a: 2\n");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(leftovers(target.parent().unwrap()).is_empty());
    }

    #[test]
    fn a_failing_write_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cloud-config.yml");
        fs::write(&target, "old: true\n").unwrap();
        let err = write_atomic_with(&target, 0o600, |f| {
            // Half the new content reaches the disk, then the write fails (disk full, crash…).
            f.write_all(b"new: tr")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read_to_string(&target).unwrap(), "old: true\n");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_failing_rename_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: rename over it fails after the data was written.
        let target = dir.path().join("cloud-config.yml");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), "x").unwrap();
        assert!(write_atomic(&target, b"new", 0o600).is_err());
        assert_eq!(fs::read_to_string(target.join("keep")).unwrap(), "x");
        assert!(leftovers(dir.path()).is_empty());
    }
}
