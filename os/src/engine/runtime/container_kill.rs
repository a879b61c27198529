//! `kill`: signal a container's init, or (`--all`) every process in its cgroup.
//! The processes' exit is PID 1's business: it reaps them.

use super::error::RuntimeError;
use super::state::ContainerState;
use super::Paths;
use libcontainer::signal::Signal;

pub(super) fn kill(
    paths: &Paths,
    id: &str,
    signal: &str,
    all: bool,
) -> Result<ContainerState, RuntimeError> {
    let sig = Signal::try_from(signal)
        .map_err(|_| RuntimeError::Usage(format!("unknown signal {signal:?}")))?;
    let mut c = paths.load(id)?;
    c.kill(sig, all)?;
    Ok(ContainerState::of(&c))
}
