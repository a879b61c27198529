//! Volumes of an engine instance, Docker's `local` driver: a volume is a directory
//! `<root>/volumes/<name>/_data` with its record `<root>/volumes/<name>/volume.json` beside it
//! (written atomically), so volumes outlive their containers, an engine restart and a reboot
//! (the user engine's root is on the state partition).
//!
//! Names are Docker's (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`): a name never holds a `/`, so it cannot
//! leave the volumes directory. Which containers use a volume is the manager's to say (their
//! records list their mounts); this store only keeps the volumes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    TooShort(String),
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    BadName(String),
    #[error("create {name}: driver {driver:?}: only the local driver is served")]
    Driver { name: String, driver: String },
    #[error(
        "create {0}: the local driver's options (type, device, o) are not supported by this engine"
    )]
    Options(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Record { path: String, message: String },
}

fn io(path: &Path, source: std::io::Error) -> VolumeError {
    VolumeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One volume's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Unix nanoseconds.
    pub created: i128,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for one container (`-v /path`, an image's `Volumes`): removed with it by `rm -v`
    /// and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
}

/// What to make.
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    /// `None`: an anonymous volume with a random 64-hex name.
    pub name: Option<String>,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

const RECORD: &str = "volume.json";

pub struct Volumes {
    dir: PathBuf,
    /// Creations and removals one at a time (a create racing a remove of the same name).
    lock: Mutex<()>,
}

/// A name Docker's local driver accepts.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    if name.len() < 2 {
        return Err(VolumeError::TooShort(name.to_string()));
    }
    let mut b = name.bytes();
    let first_ok = b.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')) {
        return Err(VolumeError::BadName(name.to_string()));
    }
    Ok(())
}

impl Volumes {
    pub fn open(dir: PathBuf) -> Result<Volumes, VolumeError> {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(Volumes {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory a container mounts.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Make a volume; an existing one of that name is returned as it is (as Docker's local
    /// driver does). The bool says whether it is new.
    pub fn create(&self, v: NewVolume) -> Result<(Volume, bool), VolumeError> {
        let (name, anonymous) = match v.name.filter(|n| !n.is_empty()) {
            Some(n) => (n, false),
            None => (crate::engine::manager::id::new_id(), true),
        };
        check_name(&name)?;
        if !matches!(v.driver.as_str(), "" | "local") {
            return Err(VolumeError::Driver {
                name,
                driver: v.driver,
            });
        }
        if !v.driver_opts.is_empty() {
            return Err(VolumeError::Options(name));
        }
        let _g = self.guard();
        if let Ok(existing) = self.load(&name) {
            return Ok((existing, false));
        }
        let vol = Volume {
            name: name.clone(),
            created: crate::engine::manager::record::now(),
            labels: v.labels,
            anonymous,
        };
        let data = self.data_dir(&name);
        std::fs::create_dir_all(&data).map_err(|e| io(&data, e))?;
        let json = serde_json::to_vec_pretty(&vol).map_err(|e| VolumeError::Record {
            path: name.clone(),
            message: e.to_string(),
        })?;
        let path = self.dir.join(&name).join(RECORD);
        crate::config::atomic::write_atomic(&path, &json, 0o600).map_err(|e| io(&path, e))?;
        tracing::info!(volume = %name, anonymous, "volume created");
        Ok((vol, true))
    }

    fn load(&self, name: &str) -> Result<Volume, VolumeError> {
        if check_name(name).is_err() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let path = self.dir.join(name).join(RECORD);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io(&path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| VolumeError::Record {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.load(name)
    }

    /// Every volume whose record reads; the others are skipped with a warning.
    pub fn list(&self) -> Vec<Volume> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                match self.load(&name) {
                    Ok(v) => Some(v),
                    Err(err) => {
                        tracing::warn!(volume = %name, error = %err, "skipping a volume");
                        None
                    }
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Remove a volume and its data (the caller has checked no container uses it).
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let _g = self.guard();
        self.load(name)?;
        let dir = self.dir.join(name);
        // The record goes first: a removal cut short leaves no half-volume that looks whole.
        let rec = dir.join(RECORD);
        std::fs::remove_file(&rec).map_err(|e| io(&rec, e))?;
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
        tracing::info!(volume = %name, "volume removed");
        Ok(())
    }

    /// Bytes under a volume's data (not following symlinks, not crossing mounts).
    pub fn size(&self, name: &str) -> u64 {
        disk_usage(&self.data_dir(name))
    }
}

/// Bytes under `p` on its own filesystem: symlinks not followed, other filesystems (mounts)
/// not entered, at most 64 levels deep.
pub fn disk_usage(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, dev: u64, depth: usize) -> u64 {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if m.dev() != dev || depth > 64 {
            return 0;
        }
        if !m.is_dir() {
            return m.len();
        }
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| walk(&e.path(), dev, depth + 1)).sum())
            .unwrap_or(0)
    }
    let dev = std::fs::symlink_metadata(p).map(|m| m.dev()).unwrap_or(0);
    walk(p, dev, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_create_list_remove() {
        let t = tempfile::tempdir().unwrap();
        let vols = Volumes::open(t.path().join("volumes")).unwrap();
        for bad in ["a", "../etc", "a/b", "-x", ".x", "x y"] {
            assert!(
                vols.create(NewVolume {
                    name: Some(bad.into()),
                    ..Default::default()
                })
                .is_err(),
                "{bad}"
            );
        }
        let (v, new) = vols
            .create(NewVolume {
                name: Some("data_1.x".into()),
                labels: [("k".to_string(), "v".to_string())].into(),
                ..Default::default()
            })
            .unwrap();
        assert!(new && !v.anonymous);
        std::fs::write(vols.data_dir("data_1.x").join("f"), b"12345").unwrap();
        let (again, new) = vols
            .create(NewVolume {
                name: Some("data_1.x".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(!new);
        assert_eq!(again.labels["k"], "v");
        let (anon, _) = vols.create(NewVolume::default()).unwrap();
        assert!(anon.anonymous && anon.name.len() == 64);
        assert_eq!(vols.list().len(), 2);
        assert_eq!(vols.size("data_1.x"), 5);
        assert!(matches!(
            vols.create(NewVolume {
                name: Some("nfs".into()),
                driver_opts: [("type".to_string(), "nfs".to_string())].into(),
                ..Default::default()
            }),
            Err(VolumeError::Options(_))
        ));
        vols.remove("data_1.x").unwrap();
        assert!(matches!(
            vols.get("data_1.x"),
            Err(VolumeError::NotFound(_))
        ));
        assert!(matches!(vols.remove("../x"), Err(VolumeError::NotFound(_))));
        assert_eq!(vols.list().len(), 1);
    }
}
