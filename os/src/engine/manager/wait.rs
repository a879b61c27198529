//! `wait`: until the container is not running, exits next, or is removed (Docker's three
//! conditions), following the record's change channel.

use super::record::Lifecycle;
use super::{Manager, ManagerError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = ManagerError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(ManagerError::BadRequest(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

impl Manager {
    /// The container's id and a future of its exit code (and error text) once `cond` holds.
    /// The lookup happens now, so a caller can answer 404 before it starts waiting.
    pub fn wait(
        self: &std::sync::Arc<Self>,
        name_or_id: &str,
        cond: WaitCondition,
    ) -> Result<impl std::future::Future<Output = (i32, String)> + Send + 'static> {
        let id = self.find(name_or_id)?;
        let (mut rx, first) = {
            let map = self.lock();
            let e = map
                .get(&id)
                .ok_or_else(|| ManagerError::NoSuchContainer(name_or_id.to_string()))?;
            (e.changed.subscribe(), e.rec.clone())
        };
        let me = self.clone();
        Ok(async move {
            let mut last = first;
            let stopped = |s: Lifecycle| !s.is_running() && s != Lifecycle::Restarting;
            if cond == WaitCondition::NotRunning && stopped(last.state.status) {
                return (last.state.exit_code, last.state.error);
            }
            loop {
                if rx.changed().await.is_err() {
                    // Removed.
                    return (last.state.exit_code, last.state.error);
                }
                if let Ok(r) = me.get(&last.id) {
                    last = r;
                }
                match cond {
                    WaitCondition::NotRunning | WaitCondition::NextExit => {
                        if last.state.status == Lifecycle::Exited
                            || last.state.status == Lifecycle::Restarting
                            || (cond == WaitCondition::NotRunning && stopped(last.state.status))
                        {
                            return (last.state.exit_code, last.state.error);
                        }
                    }
                    WaitCondition::Removed => {}
                }
            }
        })
    }
}
