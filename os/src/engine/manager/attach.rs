//! `attach` and `resize`. A running container's streams come from its shim (one connection
//! an attach); an attach made before the container starts (`docker run` attaches, then
//! starts) waits and gets its connection at start, before the process runs, so no output is
//! missed.

use super::{shim_client, Manager, ManagerError, Result};
use crate::engine::shim::protocol::Request;
use std::sync::Arc;
use tokio::net::UnixStream;

pub(super) struct Pending {
    pub req: Request,
    pub tx: tokio::sync::oneshot::Sender<Result<UnixStream>>,
}

impl Manager {
    /// A connection carrying the container's streams (frames, or raw with a tty), and what is
    /// written to it goes to its stdin.
    ///
    /// The request is registered before this returns (so a start that follows it sees it);
    /// the connection comes with the future.
    pub fn attach(
        self: &Arc<Self>,
        name_or_id: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<impl std::future::Future<Output = Result<UnixStream>> + Send + 'static> {
        let id = self.find(name_or_id)?;
        let req = Request::Attach {
            stdin,
            stdout,
            stderr,
        };
        let rx = {
            let mut map = self.lock();
            let e = map
                .get_mut(&id)
                .ok_or_else(|| ManagerError::NoSuchContainer(name_or_id.to_string()))?;
            if e.rec.state.status.is_running() && !e.busy {
                None
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                e.pending.push(Pending {
                    req: req.clone(),
                    tx,
                });
                Some(rx)
            }
        };
        if let Ok(rec) = self.get(&id) {
            self.emit(&rec, "attach", None, None);
        }
        let shim = self.shim_dir(&id);
        Ok(async move {
            match rx {
                None => shim_client::connect(&shim, &req).await,
                Some(rx) => rx.await.map_err(|_| {
                    ManagerError::Conflict(format!("container {id} went away before it started"))
                })?,
            }
        })
    }

    /// The terminal's size (a running container with a tty; others: nothing to do).
    pub async fn resize(self: &Arc<Self>, name_or_id: &str, height: u16, width: u16) -> Result<()> {
        let rec = self.get(name_or_id)?;
        if !rec.state.status.is_running() {
            return Err(ManagerError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if !rec.config.tty {
            return Ok(());
        }
        shim_client::call_ok(&self.shim_dir(&rec.id), &Request::Resize { height, width }).await
    }
}
