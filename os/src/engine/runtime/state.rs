//! What the helper reports about a container: the state libcontainer keeps under
//! `<root>/state/<id>/state.json`, reduced to what the engine needs, as one JSON line.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A container's life cycle, as libcontainer tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    /// Its init process waits for `start`.
    Created,
    Running,
    Stopped,
    Paused,
}

impl From<libcontainer::container::ContainerStatus> for Status {
    fn from(s: libcontainer::container::ContainerStatus) -> Self {
        use libcontainer::container::ContainerStatus as C;
        match s {
            C::Creating => Status::Creating,
            C::Created => Status::Created,
            C::Running => Status::Running,
            C::Stopped => Status::Stopped,
            C::Paused => Status::Paused,
        }
    }
}

/// One container, as the helper saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// The container's init process, as seen from the host's PID namespace.
    pub pid: Option<i32>,
    pub status: Status,
    pub bundle: PathBuf,
    /// `run` only: the exit code (128 + signal when killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl ContainerState {
    pub(super) fn of(c: &libcontainer::container::Container) -> Self {
        ContainerState {
            id: c.id().to_string(),
            pid: c.pid().map(|p| p.as_raw()),
            status: c.status().into(),
            bundle: c.bundle().clone(),
            exit_code: None,
        }
    }
}

/// The helper's answer on stdout: the state, or what went wrong.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Reply {
    Error { error: String },
    State(ContainerState),
    Done { done: String },
}
