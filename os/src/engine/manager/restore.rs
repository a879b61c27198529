//! At engine start: every record read back. A container the record says runs is followed
//! again when its shim still answers (the engine restarted, the container did not); otherwise
//! it ended while no engine was there (its `exit.json` says how, or it was lost with the
//! machine: exit code 255, as Docker records it), and its restart policy decides.

use super::record::{Lifecycle, Record};
use super::{Entry, Manager};
use std::sync::Arc;

impl Manager {
    /// Read every record; returns how many containers there are.
    pub async fn restore(self: &Arc<Self>) -> usize {
        let root = self.cfg.root.join("containers");
        let mut found = Vec::new();
        if let Ok(dir) = std::fs::read_dir(&root) {
            for d in dir.flatten() {
                let path = d.path();
                if !path.join(super::record::FILE).exists() {
                    continue;
                }
                match Record::load(&path) {
                    Ok(r) if r.id == d.file_name().to_string_lossy() => found.push(r),
                    Ok(r) => {
                        tracing::warn!(path = %path.display(), id = %r.id, "record names another id; skipped")
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable record; skipped"),
                }
            }
        }
        let n = found.len();
        {
            let mut map = self.lock();
            for r in &found {
                let (changed, _) = tokio::sync::watch::channel(0);
                map.insert(
                    r.id.clone(),
                    Entry {
                        rec: r.clone(),
                        changed,
                        pending: Vec::new(),
                        busy: false,
                    },
                );
            }
        }
        for r in found {
            let was = r.state.status;
            if !(was.is_running() || was == Lifecycle::Restarting || was == Lifecycle::Removing) {
                continue;
            }
            let sock = crate::engine::shim::socket_path(&self.shim_dir(&r.id));
            let alive = was.is_running() && tokio::net::UnixStream::connect(&sock).await.is_ok();
            if alive {
                tracing::info!(id = %r.id, name = %r.name, "still running: following it again");
                self.follow(r.id.clone());
                self.republish(&r).await;
                self.watch_health(&r);
            } else {
                self.exited(&r.id, None).await;
            }
        }
        n
    }
}
