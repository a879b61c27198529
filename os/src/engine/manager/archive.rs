//! `docker cp`'s side in the manager: a `container-helper archive` process, chrooted into the
//! container's root (see `runtime::container_archive`), that stats, tars or untars a path. A
//! running container is joined through its init's pid (its volumes seen as it sees them); a
//! stopped one through its root filesystem, mounted for it (and left mounted until it starts,
//! exits again or is removed).

use super::{Manager, ManagerError, Result};
use crate::engine::runtime::container_archive::{NOT_A_DIR, NOT_FOUND};
use std::process::Stdio;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveVerb {
    Stat,
    Get,
    /// `keep_owner`: the tar's owners stay (`docker cp -a`); otherwise root's.
    Put {
        keep_owner: bool,
    },
}

impl ArchiveVerb {
    fn word(self) -> &'static str {
        match self {
            ArchiveVerb::Stat => "stat",
            ArchiveVerb::Get => "get",
            ArchiveVerb::Put { .. } => "put",
        }
    }
}

impl Manager {
    /// Start the helper: stdout piped (the stat line, or the tar), stdin piped for `put`,
    /// stderr piped (the reason of a failure, see [`Manager::archive_result`]).
    pub async fn archive(
        &self,
        name_or_id: &str,
        verb: ArchiveVerb,
        path: &str,
    ) -> Result<tokio::process::Child> {
        if !path.starts_with('/') || path.contains('\0') {
            return Err(ManagerError::BadRequest(format!(
                "path {path:?}: give an absolute path in the container"
            )));
        }
        let rec = self.get(name_or_id)?;
        let put = matches!(verb, ArchiveVerb::Put { .. });
        if put && rec.host.readonly_rootfs {
            return Err(ManagerError::BadRequest(
                "container rootfs is marked read-only".into(),
            ));
        }
        let mut cmd = tokio::process::Command::new(&self.cfg.exe);
        // Chosen by its first argument whatever the binary is called (`/init` runs init).
        cmd.arg0("ros");
        cmd.args(["container-helper", "archive"]);
        if rec.state.status.is_running() && rec.state.pid > 0 {
            cmd.args(["--pid", &rec.state.pid.to_string()]);
        } else {
            let image = self.store.resolve(&rec.image_id)?;
            let lowers = self.store.lower_dirs(&image)?;
            let dir = self.dir(&rec.id);
            let rootfs = crate::engine::rootfs::mount(
                &dir,
                rec.upper.as_deref(),
                &lowers,
                !rec.host.privileged,
            )
            .map_err(|e| ManagerError::io(&dir, e))?;
            cmd.arg("--rootfs").arg(rootfs);
        }
        cmd.args([verb.word(), path]);
        if verb == (ArchiveVerb::Put { keep_owner: true }) {
            cmd.arg("--keep-owner");
        }
        cmd.stdin(if put { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn()
            .map_err(|e| ManagerError::Shim(format!("archive: spawning the helper: {e}")))
    }

    /// What the helper's exit says, in Docker's terms.
    pub fn archive_result(
        &self,
        name_or_id: &str,
        status: std::process::ExitStatus,
        stderr: &[u8],
    ) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(stderr).trim().to_string();
        let code = status.code().unwrap_or(1) as u8;
        Err(match code {
            NOT_FOUND => ManagerError::NoSuchPath(format!("{said} {name_or_id}")),
            NOT_A_DIR => ManagerError::BadRequest(said),
            _ => ManagerError::Shim(if said.is_empty() {
                format!("archive helper: {status}")
            } else {
                said
            }),
        })
    }

    /// Docker's `PathStat` of `path` in the container (one JSON object).
    pub async fn archive_stat(&self, name_or_id: &str, path: &str) -> Result<serde_json::Value> {
        let child = self.archive(name_or_id, ArchiveVerb::Stat, path).await?;
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ManagerError::Shim(format!("archive helper: {e}")))?;
        self.archive_result(name_or_id, out.status, &out.stderr)?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| ManagerError::Shim(format!("archive helper said: {e}")))
    }
}
