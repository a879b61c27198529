//! `create` (and `create --start`): the one place libcontainer clones. It forks an intermediate
//! process, which forks the container's init with `CLONE_PARENT`, so init is the helper's child;
//! when the helper exits, init is re-parented to PID 1, which reaps it like any other orphan.
//!
//! The container's stdio is never the helper's stdout (the engine reads the helper's reply from
//! it to EOF): it is `/dev/null` or a log file, unless the caller asks to inherit it (`run`).

use super::error::RuntimeError;
use super::state::ContainerState;
use super::Paths;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Where the container's stdout/stderr go.
#[derive(Debug, Clone, Default)]
pub(super) enum Output {
    /// `/dev/null`.
    #[default]
    Null,
    /// Appended to this file (created if missing).
    File(PathBuf),
    /// The helper's own (the `run` debug verb: output lands on the caller's terminal).
    Inherit,
}

pub(super) struct CreateArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub stdout: Output,
    pub stderr: Output,
    /// Start it too (one helper run instead of two).
    pub start: bool,
}

fn open_output(o: &Output) -> Result<Option<File>, RuntimeError> {
    let path = match o {
        Output::Inherit => return Ok(None),
        Output::Null => Path::new("/dev/null"),
        Output::File(p) => p.as_path(),
    };
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Some)
        .map_err(|e| RuntimeError::io(path, e))
}

pub(super) fn create(paths: &Paths, a: &CreateArgs) -> Result<ContainerState, RuntimeError> {
    let container = create_container(paths, a)?;
    Ok(ContainerState::of(&container))
}

pub(super) fn create_container(paths: &Paths, a: &CreateArgs) -> Result<Container, RuntimeError> {
    let inherit = matches!(a.stdout, Output::Inherit) && matches!(a.stderr, Output::Inherit);
    let stdin = if inherit {
        None
    } else {
        let null =
            File::open("/dev/null").map_err(|e| RuntimeError::io(Path::new("/dev/null"), e))?;
        Some(OwnedFd::from(null))
    };
    let stdio = Stdio::Fds {
        stdin,
        stdout: open_output(&a.stdout)?.map(OwnedFd::from),
        stderr: open_output(&a.stderr)?.map(OwnedFd::from),
    };
    create_with(paths, &a.id, &a.bundle, stdio, a.start)
}

/// The container's stdio as its creator hands it over.
pub(crate) enum Stdio {
    /// These descriptors (`None`: the creator's own).
    Fds {
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    },
    /// A pseudo-terminal made in the container; its master is sent to this listening socket
    /// (the bundle must say `process.terminal: true`).
    Console(PathBuf),
}

/// Create (and with `start`, start) container `id` from `bundle`, its stdio given.
pub(crate) fn create_with(
    paths: &Paths,
    id: &str,
    bundle: &Path,
    stdio: Stdio,
    start: bool,
) -> Result<Container, RuntimeError> {
    paths.ensure_new(id)?;
    let state_root = paths.state();
    std::fs::create_dir_all(&state_root).map_err(|e| RuntimeError::io(&state_root, e))?;
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(&state_root)?
        .validate_id()?;
    match stdio {
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            if let Some(f) = stdin {
                builder = builder.with_stdin(f);
            }
            if let Some(f) = stdout {
                builder = builder.with_stdout(f);
            }
            if let Some(f) = stderr {
                builder = builder.with_stderr(f);
            }
        }
        Stdio::Console(socket) => builder = builder.with_console_socket(Some(socket)),
    }
    let no_pivot = root_is_initramfs();
    tracing::debug!(id, no_pivot, "creating");
    let mut container = builder
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .with_no_pivot(no_pivot)
        .build()?;
    // Init waits for start in its cgroup: the device filter goes on before any of the
    // container's code runs. Without it the container must not run at all.
    if let Err(e) = attach_device_filter(bundle) {
        let _ = container.delete(true);
        return Err(e);
    }
    if start {
        if let Err(e) = container.start() {
            // Do not leave an init process waiting for a start that will not come.
            let _ = container.delete(true);
            return Err(e.into());
        }
    }
    Ok(container)
}

/// Attach the device filter of the bundle's `linux.resources.devices` to its cgroup.
fn attach_device_filter(bundle: &Path) -> Result<(), RuntimeError> {
    let path = bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&path)
        .map_err(|e| RuntimeError::Spec(format!("{}: {e}", path.display())))?;
    let linux = spec.linux().as_ref();
    let rules = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_else(super::devices::default_rules);
    let cgroup = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .ok_or_else(|| RuntimeError::Spec(format!("{}: no cgroupsPath", path.display())))?;
    let dir = Path::new("/sys/fs/cgroup").join(cgroup.strip_prefix("/").unwrap_or(cgroup));
    super::devices::attach(&dir, &rules)
}

/// Whether `/` is the initramfs itself (a root mount without a parent). `pivot_root(2)`
/// refuses to move it (EINVAL), so libcontainer must then use `MS_MOVE` + `chroot` instead
/// (runc's `DOCKER_RAMDISK`), as RancherOS's system-docker did. PID 1 puts a bind of it over
/// `/` first (`init::switch_root`), which has a parent.
pub(super) fn root_is_initramfs() -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    !root_has_parent(&info)
}

/// Whether the topmost mount on `/` has a parent mount (what `pivot_root(2)` needs): in
/// mountinfo, a mount without one is its own parent (`1 1 … / / … - rootfs rootfs`).
pub fn root_has_parent(mountinfo: &str) -> bool {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .is_some_and(|l| {
            let mut ids = l.split(' ');
            ids.next() != ids.next()
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_initramfs_root_has_no_parent_and_a_mount_over_it_has_one() {
        let info = "1 1 0:2 / / rw - rootfs rootfs rw,size=246852k\n\
                    15 1 0:14 / /proc rw,nosuid - proc proc rw\n";
        assert!(!super::root_has_parent(info));
        // PID 1's bind of the same filesystem over it.
        let info = "1 1 0:2 / / rw - rootfs rootfs rw\n\
                    25 1 0:2 / / rw - rootfs rootfs rw\n";
        assert!(super::root_has_parent(info));
        let info = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
        assert!(super::root_has_parent(info));
        assert!(!super::root_has_parent(""));
    }
}
