//! The web UI's audit log: one JSON line per change asked for (login, logout, service actions,
//! configuration applies, container actions, OS upgrades, power) and per failed login, with its session's tag (never its id), the
//! client's address and how it ended. Appended to `audit.log` in the UI's directory on the
//! state partition (mode 0600), kept at most [`MAX_BYTES`] plus one older file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Past this size the log becomes `audit.log.1` (the one before is dropped).
pub const MAX_BYTES: u64 = 1 << 20;

pub struct Audit {
    path: PathBuf,
    lock: Mutex<()>,
}

/// One entry.
#[derive(Debug, serde::Serialize)]
pub struct Entry {
    /// Unix seconds.
    pub time: u64,
    /// The session's tag, or `-`.
    pub session: String,
    pub peer: String,
    pub action: String,
    pub target: String,
    /// `ok`, or why not.
    pub result: String,
}

impl Audit {
    pub fn new(dir: &Path) -> Audit {
        Audit {
            path: dir.join("audit.log"),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry`; a failure is logged, not raised (the change is done or refused already).
    pub fn record(&self, entry: &Entry) {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.append(entry) {
            tracing::warn!(path = %self.path.display(), error = %e, "ui: audit log");
        }
    }

    fn append(&self, entry: &Entry) -> std::io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= MAX_BYTES) {
            std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
