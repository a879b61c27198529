//! The web UI's audit log: one JSON line per change asked for (login, logout, service actions,
//! configuration applies, container actions, OS upgrades, power) and per failed login, with its session's tag (never its id), the
//! client's address and how it ended. Appended to `audit.log` in the UI's directory on the
//! state partition (mode 0600), kept at most [`MAX_BYTES`] plus one older file.
//!
//! Entries from request handlers go through [`Audit::submit`] to one writer thread: the
//! synced write stays off the runtime's thread, entries land in the order they were made, and
//! none is dropped when a runtime shuts down (a `spawn_blocking` job that has not started by
//! then is cancelled, and its entry was lost).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

/// Past this size the log becomes `audit.log.1` (the one before is dropped).
pub const MAX_BYTES: u64 = 1 << 20;

pub struct Audit {
    writer: Arc<Writer>,
    /// The writer thread's queue, started by the first [`Audit::submit`]. The thread owns a
    /// [`Writer`] of its own (not the `Audit`): what is queued is written even if the `Audit`
    /// is dropped meanwhile, and the thread ends when the queue closes.
    queue: Mutex<Option<mpsc::Sender<Entry>>>,
}

/// Appends entries to the file, one at a time.
struct Writer {
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
            writer: Arc::new(Writer {
                path: dir.join("audit.log"),
                lock: Mutex::new(()),
            }),
            queue: Mutex::new(None),
        }
    }

    /// Queue `entry` for the writer thread (started on first use); written here if the thread
    /// cannot be started or has gone.
    pub fn submit(&self, entry: Entry) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_none() {
            let (tx, rx) = mpsc::channel::<Entry>();
            let writer = self.writer.clone();
            let started = std::thread::Builder::new()
                .name("ui-audit".into())
                .spawn(move || rx.iter().for_each(|e| writer.record(&e)));
            match started {
                Ok(_) => *queue = Some(tx),
                Err(e) => tracing::warn!(error = %e, "ui: audit writer thread, writing inline"),
            }
        }
        let unsent = match queue.as_ref() {
            Some(tx) => tx.send(entry).err().map(|mpsc::SendError(e)| e),
            None => Some(entry),
        };
        if let Some(entry) = unsent {
            *queue = None;
            drop(queue);
            self.writer.record(&entry);
        }
    }

    pub fn path(&self) -> &Path {
        &self.writer.path
    }
}

impl Writer {
    /// Append `entry`; a failure is logged, not raised (the change is done or refused already).
    fn record(&self, entry: &Entry) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            time: n as u64,
            session: "-".into(),
            peer: "10.0.2.2".into(),
            action: "test".into(),
            target: n.to_string(),
            result: "ok".into(),
        }
    }

    #[test]
    fn submitted_entries_all_land_in_order_after_their_runtime_and_the_log_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::new(dir.path());
        for round in 0..5 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for n in 0..20 {
                    audit.submit(entry(round * 20 + n));
                }
            });
            drop(rt);
        }
        // Dropped with entries perhaps still queued: the writer thread writes them all.
        let path = audit.path().to_path_buf();
        drop(audit);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let text = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() >= 100 || std::time::Instant::now() >= deadline {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let targets: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["target"].to_string())
            .collect();
        let want: Vec<String> = (0..100).map(|n| format!("\"{n}\"")).collect();
        assert_eq!(targets, want);
    }
}
