//! `pause` and `unpause`: the cgroup v2 freezer (`cgroup.freeze`) on the container's cgroup,
//! as runc does. A pause is done when `cgroup.events` says `frozen 1` (the kernel freezes
//! tasks asynchronously); a stop of a paused container sends its signal, then thaws it so the
//! signal can be handled.

use super::record::Lifecycle;
use super::{Manager, ManagerError, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the kernel gets to freeze every task of the cgroup.
const FREEZE_WITHIN: Duration = Duration::from_secs(10);

impl Manager {
    /// The container's cgroup directory, as this engine's mount of the cgroup2 tree sees it.
    pub(super) fn cgroup_dir(&self, id: &str) -> PathBuf {
        let leaf = self
            .lock()
            .get(id)
            .map(|e| e.rec.state.cgroup.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| id.to_string());
        PathBuf::from("/sys/fs/cgroup")
            .join(self.cfg.cgroup_parent.trim_start_matches('/'))
            .join(leaf)
    }

    pub async fn pause(&self, name_or_id: &str) -> Result<()> {
        let id = self.find(name_or_id)?;
        let rec = self.claim(&id)?;
        let r = async {
            match rec.state.status {
                Lifecycle::Running => {}
                Lifecycle::Paused => {
                    return Err(ManagerError::Conflict(format!(
                        "Container {id} is already paused"
                    )))
                }
                _ => {
                    return Err(ManagerError::Conflict(format!(
                        "Container {id} is not running"
                    )))
                }
            }
            self.freeze(&id, true).await?;
            let rec = self.update(&id, |r| {
                // It may have exited meanwhile: then it stays exited.
                if r.state.status == Lifecycle::Running {
                    r.state.status = Lifecycle::Paused;
                }
            })?;
            self.emit(&rec, "pause", None, None);
            Ok(())
        }
        .await;
        self.release(&id);
        r
    }

    pub async fn unpause(&self, name_or_id: &str) -> Result<()> {
        let id = self.find(name_or_id)?;
        let rec = self.claim(&id)?;
        let r = async {
            if rec.state.status != Lifecycle::Paused {
                return Err(ManagerError::Conflict(format!(
                    "Container {id} is not paused"
                )));
            }
            self.freeze(&id, false).await?;
            let rec = self.update(&id, |r| {
                if r.state.status == Lifecycle::Paused {
                    r.state.status = Lifecycle::Running;
                }
            })?;
            self.emit(&rec, "unpause", None, None);
            Ok(())
        }
        .await;
        self.release(&id);
        r
    }

    /// Thaw a paused container after a signal was sent to it (stop, kill), keeping what the
    /// record says in step.
    pub(super) async fn thaw_after_signal(&self, id: &str) {
        let paused = self
            .get(id)
            .is_ok_and(|r| r.state.status == Lifecycle::Paused);
        if !paused {
            return;
        }
        match self.freeze(id, false).await {
            Ok(()) => {
                let _ = self.update(id, |r| {
                    if r.state.status == Lifecycle::Paused {
                        r.state.status = Lifecycle::Running;
                    }
                });
            }
            Err(e) => tracing::warn!(id, error = %e, "thawing a signalled container"),
        }
    }

    /// Write the freezer and wait until the kernel says it is done.
    async fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let dir = self.cgroup_dir(id);
        let file = dir.join("cgroup.freeze");
        std::fs::write(&file, if frozen { "1" } else { "0" })
            .map_err(|e| ManagerError::io(&file, e))?;
        let events = dir.join("cgroup.events");
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        let t = Instant::now();
        loop {
            let text =
                std::fs::read_to_string(&events).map_err(|e| ManagerError::io(&events, e))?;
            if text.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if t.elapsed() > FREEZE_WITHIN {
                return Err(ManagerError::Conflict(format!(
                    "container {id}: the cgroup did not reach {want:?} within {FREEZE_WITHIN:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
