//! The services' status for `rancherctl service list`: `STATUS_PATH`, rewritten atomically
//! from the manager's records after every container event (and whenever a service fails before
//! it has a container), so it is never older than the last start, exit or restart.

use super::{lock, SystemServices};
use crate::engine::manager::exit::describe;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Service status, for `rancherctl service list`.
pub const STATUS_PATH: &str = "/run/system-docker/services.json";
/// The state of a service whose `io.rancher.os.condition` did not hold at boot: not started,
/// and as it should be (the boot's `ready` and the upgrade's health gate count it as done).
pub const SKIPPED: &str = "skipped";

/// The services the layer has handled.
#[derive(Debug, Default)]
pub(super) struct Known {
    /// In start order.
    pub order: Vec<String>,
    /// Each service's image as its entry names it.
    pub images: BTreeMap<String, String>,
    /// Services without a container: name → (image, `invalid`, `failed` or [`SKIPPED`], why).
    pub failed: BTreeMap<String, (String, String, String)>,
    /// How each service last ended (a record says 0 again once it runs, as Docker's does).
    pub last_exit: BTreeMap<String, i32>,
}

/// One service's line.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    pub image: String,
    /// `running`, `exited`, `restarting`, `created`, `paused`, `failed`, `invalid`,
    /// [`SKIPPED`].
    pub state: String,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub error: Option<String>,
}

/// Whether the status file says service `name` runs (for PID 1, which is not the engine).
pub fn is_running(name: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Line {
        name: String,
        state: String,
    }
    std::fs::read(STATUS_PATH)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Line>>(&b).ok())
        .is_some_and(|all| all.iter().any(|l| l.name == name && l.state == "running"))
}

impl SystemServices {
    /// Every service as it stands now.
    pub fn status(&self) -> Vec<ServiceStatus> {
        let known = lock(&self.known);
        let mut names: Vec<&String> = known.order.iter().collect();
        names.extend(known.failed.keys().filter(|n| !known.order.contains(n)));
        names
            .into_iter()
            .map(|name| {
                if let Some((image, state, why)) = known.failed.get(name) {
                    return ServiceStatus {
                        name: name.clone(),
                        image: image.clone(),
                        state: state.clone(),
                        pid: None,
                        restarts: 0,
                        last_exit: None,
                        error: Some(why.clone()),
                    };
                }
                let image = known.images.get(name).cloned().unwrap_or_default();
                match self.mgr.get(name) {
                    Ok(r) => ServiceStatus {
                        name: name.clone(),
                        image,
                        state: r.state.status.as_str().into(),
                        pid: (r.state.pid > 0).then_some(r.state.pid),
                        restarts: r.state.restart_count,
                        last_exit: known.last_exit.get(name).map(|c| describe(*c)).or_else(|| {
                            (r.state.finished_at > 0).then(|| describe(r.state.exit_code))
                        }),
                        error: Some(r.state.error.clone()).filter(|e| !e.is_empty()),
                    },
                    Err(_) => ServiceStatus {
                        name: name.clone(),
                        image,
                        state: "removed".into(),
                        pid: None,
                        restarts: 0,
                        last_exit: None,
                        error: None,
                    },
                }
            })
            .collect()
    }

    pub(super) fn write_status(&self) {
        let list = self.status();
        match serde_json::to_vec_pretty(&list) {
            Ok(json) => {
                if let Err(e) =
                    crate::config::atomic::write_atomic(Path::new(STATUS_PATH), &json, 0o644)
                {
                    tracing::warn!(error = %e, path = STATUS_PATH, "writing service status");
                }
            }
            Err(e) => tracing::warn!(error = %e, "service status as JSON"),
        }
    }

    /// Rewrite the status after container events (a burst of them, once).
    pub(super) fn watch_status(self: &Arc<Self>) {
        let (_, mut rx) = self.mgr.subscribe();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let mut events = Vec::new();
                match rx.recv().await {
                    Ok(ev) => events.push(ev),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
                while let Ok(ev) = rx.try_recv() {
                    events.push(ev);
                }
                let Some(me) = me.upgrade() else { return };
                {
                    let mut known = lock(&me.known);
                    for ev in events.iter().filter(|e| e.kind == "container") {
                        if let ("die", Some(code)) = (ev.action.as_str(), ev.exit_code) {
                            known.last_exit.insert(ev.name.clone(), code);
                        }
                    }
                }
                if !events.is_empty() && events.iter().all(|e| e.kind != "container") {
                    continue;
                }
                me.write_status();
            }
        });
    }
}
