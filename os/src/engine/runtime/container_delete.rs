//! `delete`: remove a stopped container's state and cgroup (with `--force`, kill it first),
//! and the bundle the runtime wrote for it. The rootfs is the caller's and is left alone.

use super::error::RuntimeError;
use super::Paths;

pub(super) fn delete(paths: &Paths, id: &str, force: bool) -> Result<(), RuntimeError> {
    let mut c = paths.load(id)?;
    c.delete(force)?;
    let bundle = paths.bundle(id);
    match std::fs::remove_dir_all(&bundle) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(&bundle, e)),
    }
}
