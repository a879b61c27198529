//! `start`: release a created container's init (it waits on libcontainer's notify socket)
//! so that it execs the container's command.

use super::error::RuntimeError;
use super::state::ContainerState;
use super::Paths;

pub(super) fn start(paths: &Paths, id: &str) -> Result<ContainerState, RuntimeError> {
    let mut c = paths.load(id)?;
    c.start()?;
    Ok(ContainerState::of(&c))
}
