//! What the configuration's files are at one moment, to tell without reading them whether a
//! load would read what the last one did. PID 1 reads the configuration again once the system
//! services are up (a datasource may have added a layer); at most boots nothing changed, and
//! parsing every layer again (~20 ms under TCG) would only delay `[ros] ready`.
//!
//! Each file is known by its device, inode, size and change time (nanoseconds): our own writes
//! are atomic renames (a new inode), and any other write moves the change time; the datasource
//! directory's entries are listed, so a file added or removed shows too. The built-in defaults
//! are the initrd's and never change; the kernel command line is the caller's.

use super::layers::ConfigPaths;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One file's identity, or `None` when it is not there (or cannot be read: a load would then
/// say why).
type Seen = Option<(u64, u64, u64, i64, i64)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, Seen)>);

fn seen(path: &Path) -> Seen {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.ctime(), m.ctime_nsec()))
}

impl Fingerprint {
    /// The layers' files under `paths` now.
    pub fn of(paths: &ConfigPaths) -> Fingerprint {
        let mut files = vec![
            paths.oem.clone(),
            paths.cloud_config.clone(),
            paths.cloud_config_d.clone(),
        ];
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&paths.cloud_config_d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        files.extend(entries);
        Fingerprint(
            files
                .into_iter()
                .map(|p| {
                    let s = seen(&p);
                    (p, s)
                })
                .collect(),
        )
    }

    /// The first file that is not as it was in `before` (added, removed or written), if any.
    pub fn changed_since(&self, before: &Fingerprint) -> Option<PathBuf> {
        let new = self.0.iter().find(|f| !before.0.contains(f));
        let gone = || before.0.iter().find(|f| !self.0.contains(f));
        new.or_else(gone).map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::Fingerprint;
    use crate::config::ConfigPaths;

    #[test]
    fn a_write_a_new_file_or_a_removal_changes_it_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(dir.path());
        let none = Fingerprint::of(&paths);
        assert_eq!(none, Fingerprint::of(&paths));
        std::fs::create_dir_all(&paths.cloud_config_d).unwrap();
        let with_dir = Fingerprint::of(&paths);
        assert_ne!(none, with_dir);
        let ds = paths.cloud_config_d.join("nocloud.yml");
        std::fs::write(&ds, "hostname: a\n").unwrap();
        let with_ds = Fingerprint::of(&paths);
        assert_ne!(with_dir, with_ds);
        assert_eq!(
            with_ds.changed_since(&with_dir),
            Some(paths.cloud_config_d.clone())
        );
        assert_eq!(with_ds.changed_since(&with_ds), None);
        assert_eq!(with_ds, Fingerprint::of(&paths));
        // The same size, written in place.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&ds, "hostname: b\n").unwrap();
        let rewritten = Fingerprint::of(&paths);
        assert_ne!(with_ds, rewritten);
        assert_eq!(rewritten.changed_since(&with_ds), Some(ds.clone()));
        // An atomic write of the user's layer, then its removal.
        crate::config::atomic::write_atomic(&paths.cloud_config, b"rancher: {}\n", 0o600).unwrap();
        let with_user = Fingerprint::of(&paths);
        assert_ne!(rewritten, with_user);
        std::fs::remove_file(&paths.cloud_config).unwrap();
        assert_eq!(rewritten, Fingerprint::of(&paths));
    }
}
