//! `rm`: a running container is refused (409) unless forced, which kills it first; then its
//! root filesystem is unmounted and its directory (record, log, upper layer) removed, and its
//! waiters for `removed` are answered (the change channel closes with the entry).

use super::record::Lifecycle;
use super::{shim_client, Manager, ManagerError, Result};
use crate::engine::shim::protocol::Request;
use std::sync::Arc;
use std::time::Duration;

impl Manager {
    /// `volumes` (`rm -v`, `--rm`): its anonymous volumes go too.
    pub async fn remove(
        self: &Arc<Self>,
        name_or_id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let id = self.find(name_or_id)?;
        if force {
            self.until_idle(&id, super::stop::IDLE_WAIT).await;
        }
        let rec = self.get(&id)?;
        if rec.state.status.is_running() || rec.state.status == Lifecycle::Restarting {
            if !force {
                return Err(ManagerError::Conflict(format!(
                    "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
                )));
            }
            self.update(&id, |r| r.state.stopped_by_user = true)?;
            if rec.state.status.is_running() {
                let _ = shim_client::call(&self.shim_dir(&id), &Request::Kill { signal: 9 }).await;
                if !self.until_stopped(&id, Some(Duration::from_secs(30))).await {
                    return Err(ManagerError::Conflict(format!(
                        "could not kill running container {id}, cannot remove"
                    )));
                }
            }
        }
        let rec = self.claim(&id)?;
        let _ = self.update(&id, |r| r.state.status = Lifecycle::Removing);
        let dir = self.dir(&id);
        let shim = self.shim_dir(&id);
        let bundle = self.bundle(&id);
        let removed = tokio::task::spawn_blocking(move || {
            crate::engine::rootfs::unmount(&dir)?;
            let _ = std::fs::remove_dir_all(&shim);
            let _ = std::fs::remove_dir_all(&bundle);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", dir.display()),
                )),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| ManagerError::Shim(format!("remove task: {e}")))?;
        if let Err(e) = removed {
            let _ = self.update(&id, |r| {
                r.state.status = Lifecycle::Dead;
                r.state.error = e.to_string();
            });
            self.release(&id);
            return Err(ManagerError::io(&self.dir(&id), e));
        }
        self.lock().remove(&id);
        self.forget_execs(&id);
        if volumes {
            self.remove_anonymous(&rec);
        }
        self.emit(&rec, "destroy", None, None);
        tracing::info!(id, name = %rec.name, "removed");
        Ok(())
    }
}
