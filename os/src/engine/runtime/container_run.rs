//! `run`: a debug and test entry that does in one helper what the engine does in steps: write
//! the bundle from command-line flags, create and start the container, and (unless `--detach`)
//! wait for it, delete it, and exit with its exit code. The wait is on the container's own pid,
//! which is this helper's child (never `waitpid(-1)`: that belongs to PID 1).

use super::container_create::{create_container, CreateArgs, Output};
use super::error::RuntimeError;
use super::spec::ContainerSpec;
use super::state::ContainerState;
use super::Paths;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::time::Instant;

pub(super) struct RunArgs {
    pub spec: ContainerSpec,
    /// Leave it running and report its state instead of waiting.
    pub detach: bool,
    /// Print the elapsed time on stderr.
    pub timing: bool,
    /// When the helper process started (timings count from there).
    pub t0: Instant,
}

pub(super) fn run(paths: &Paths, a: &RunArgs) -> Result<ContainerState, RuntimeError> {
    let t0 = a.t0;
    let id = &a.spec.id;
    // Before writing anything: the bundle of a live container with this id is not ours to touch.
    paths.ensure_new(id)?;
    let bundle = paths.bundle(id);
    a.spec.write_bundle(&bundle)?;
    let output = |p: &Option<std::path::PathBuf>| match p {
        Some(p) => Output::File(p.clone()),
        None if a.detach => Output::Null,
        None => Output::Inherit,
    };
    let create = CreateArgs {
        id: id.clone(),
        bundle: bundle.clone(),
        stdout: output(&a.spec.stdout),
        stderr: output(&a.spec.stderr),
        start: true,
    };
    let mut container = match create_container(paths, &create) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&bundle);
            return Err(e);
        }
    };
    let started = t0.elapsed();
    let mut state = ContainerState::of(&container);
    if a.detach {
        if a.timing {
            eprintln!("container-helper: timing {id} started {:.1}ms", ms(started));
        }
        return Ok(state);
    }
    let pid = container
        .pid()
        .ok_or_else(|| RuntimeError::Spec("libcontainer reported no pid".into()))?;
    let code = loop {
        match waitpid(Pid::from_raw(pid.as_raw()), None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(RuntimeError::Wait(e)),
        }
    };
    let exited = t0.elapsed();
    container.delete(true)?;
    let _ = std::fs::remove_dir_all(&bundle);
    if a.timing {
        eprintln!(
            "container-helper: timing {id} started {:.1}ms exited {:.1}ms deleted {:.1}ms",
            ms(started),
            ms(exited),
            ms(t0.elapsed())
        );
    }
    state.status = super::state::Status::Stopped;
    state.exit_code = Some(code);
    Ok(state)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
