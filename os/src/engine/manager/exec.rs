//! `exec`: run another process in a running container (`docker exec`): create records what to
//! run, start spawns a `container-helper exec` (which joins the container's namespaces, cgroup,
//! root, privileges and seccomp filter; see `runtime::container_exec`) and hands its streams to
//! the API, inspect tells whether it runs and its exit code.
//!
//! Why the engine's own child and not the shim's: an exec is a session of a client, not part
//! of the container's life; if the engine restarts the session is gone anyway (its client's
//! connection was to the engine), while the container goes on. The exit code is known when the
//! helper is reaped, before the API closes the stream, so an inspect that follows the stream's
//! end always sees it.
//!
//! With a tty the helper makes the pty inside the container and passes its master back over a
//! socket on its stdin; the master is kept here for `resize`.

use super::{id, Manager, ManagerError, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many execs are remembered before finished ones are forgotten.
const MAX_EXECS: usize = 256;
/// An exec created and never started is forgotten after this.
const START_WITHIN: Duration = Duration::from_secs(300);
/// How long the helper gets to join the container and send a pty's master.
const PTY_WITHIN: Duration = Duration::from_secs(10);

/// What to run (`POST /containers/{id}/exec`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An exec as inspect shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecInfo {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub running: bool,
    /// Once it has ended.
    pub exit_code: Option<i32>,
    /// The helper's pid (its command is the helper's child), 0 before start.
    pub pid: u32,
}

/// A started exec's streams.
pub enum ExecIo {
    /// Stdin (when asked for), stdout, stderr.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// The pty's master (both ways, raw).
    Tty { master: OwnedFd },
}

pub struct ExecStarted {
    pub io: ExecIo,
    /// `Some(code)` once the helper has been reaped.
    pub exit: tokio::sync::watch::Receiver<Option<i32>>,
}

pub(super) struct Exec {
    container: String,
    cfg: ExecConfig,
    created: Instant,
    pid: u32,
    exit: Option<tokio::sync::watch::Receiver<Option<i32>>>,
    master: Option<Arc<OwnedFd>>,
}

impl Exec {
    /// Worth keeping: running, or created recently and not started yet.
    fn live(&self) -> bool {
        match &self.exit {
            Some(e) => e.borrow().is_none(),
            None => self.created.elapsed() < START_WITHIN,
        }
    }
}

impl Manager {
    fn execs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Exec>> {
        // Whole-entry inserts and removals only: a panic elsewhere leaves nothing half-done.
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record an exec for a running container; its id.
    pub fn exec_create(&self, name_or_id: &str, cfg: ExecConfig) -> Result<String> {
        if cfg.cmd.is_empty() || cfg.cmd[0].is_empty() {
            return Err(ManagerError::BadRequest("No exec command specified".into()));
        }
        let rec = self.get(name_or_id)?;
        if rec.state.status == super::Lifecycle::Paused {
            return Err(ManagerError::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                rec.id
            )));
        }
        if !rec.state.status.is_running() {
            return Err(ManagerError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let mut execs = self.execs();
        if execs.len() >= MAX_EXECS {
            execs.retain(|_, e| e.live());
        }
        if execs.len() >= MAX_EXECS {
            return Err(ManagerError::Conflict(format!(
                "{MAX_EXECS} execs are running or waiting to start; try again later"
            )));
        }
        let exec_id = id::new_id();
        execs.insert(
            exec_id.clone(),
            Exec {
                container: rec.id,
                cfg,
                created: Instant::now(),
                pid: 0,
                exit: None,
                master: None,
            },
        );
        Ok(exec_id)
    }

    pub fn exec_inspect(&self, exec_id: &str) -> Result<ExecInfo> {
        let execs = self.execs();
        let e = execs.get(exec_id).ok_or_else(|| no_such(exec_id))?;
        let exit_code = e.exit.as_ref().and_then(|x| *x.borrow());
        Ok(ExecInfo {
            id: exec_id.to_string(),
            container: e.container.clone(),
            config: e.cfg.clone(),
            running: e.exit.is_some() && exit_code.is_none(),
            exit_code,
            pid: e.pid,
        })
    }

    /// Run it (once). `size` is the terminal's (height, width) for a tty exec.
    pub async fn exec_start(
        self: &Arc<Self>,
        exec_id: &str,
        size: Option<(u16, u16)>,
    ) -> Result<ExecStarted> {
        let (container, cfg) = {
            let mut execs = self.execs();
            let e = execs.get_mut(exec_id).ok_or_else(|| no_such(exec_id))?;
            if e.exit.is_some() {
                return Err(ManagerError::Conflict(format!(
                    "Error: Exec command {exec_id} has already run"
                )));
            }
            // Claimed: a second start is refused from here on.
            let (_, rx) = tokio::sync::watch::channel(None);
            e.exit = Some(rx);
            (e.container.clone(), e.cfg.clone())
        };
        let r = self.spawn_exec(exec_id, &container, &cfg, size).await;
        if r.is_err() {
            let (_, rx) = tokio::sync::watch::channel(Some(126));
            if let Some(e) = self.execs().get_mut(exec_id) {
                e.exit = Some(rx);
            }
        }
        r
    }

    async fn spawn_exec(
        self: &Arc<Self>,
        exec_id: &str,
        container: &str,
        cfg: &ExecConfig,
        size: Option<(u16, u16)>,
    ) -> Result<ExecStarted> {
        use std::process::Stdio;
        let rec = self.get(container)?;
        if !rec.state.status.is_running() || rec.state.pid <= 0 {
            return Err(ManagerError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let mut cmd = tokio::process::Command::new(&self.cfg.exe);
        // Chosen by its first argument whatever the binary is called (`/init` runs init).
        cmd.arg0("ros");
        cmd.args([
            "container-helper",
            "exec",
            "--pid",
            &rec.state.pid.to_string(),
        ]);
        cmd.arg("--seccomp-from")
            .arg(self.bundle(&rec.id).join("config.json"));
        for e in &cfg.env {
            cmd.args(["--env", e]);
        }
        if let Some(u) = &cfg.user {
            cmd.args(["--user", u]);
        }
        if let Some(w) = &cfg.working_dir {
            cmd.args(["--cwd", w]);
        }
        let mut ours = None;
        if cfg.tty {
            cmd.arg("--tty");
            let (a, b) = std::os::unix::net::UnixStream::pair()
                .map_err(|e| ManagerError::Shim(format!("exec: socketpair: {e}")))?;
            cmd.stdin(Stdio::from(OwnedFd::from(b)))
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            ours = Some(a);
        } else {
            cmd.stdin(if cfg.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        }
        cmd.arg("--").args(&cfg.cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| ManagerError::Shim(format!("exec: spawning the helper: {e}")))?;
        let pid = child.id().unwrap_or(0);
        let io = match ours {
            Some(sock) => {
                let err = child.stderr.take();
                match receive_master(sock).await {
                    Ok(master) => ExecIo::Tty { master },
                    Err(why) => {
                        let _ = child.start_kill();
                        let said = match err {
                            Some(mut e) => {
                                use tokio::io::AsyncReadExt;
                                let mut s = String::new();
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(2),
                                    e.read_to_string(&mut s),
                                )
                                .await;
                                s
                            }
                            None => String::new(),
                        };
                        let _ = child.wait().await;
                        let said = said.trim();
                        return Err(ManagerError::Shim(if said.is_empty() {
                            format!("exec: {why}")
                        } else {
                            said.to_string()
                        }));
                    }
                }
            }
            None => {
                let stdin = match child.stdin.take() {
                    Some(s) => Some(s.into_owned_fd().map_err(helper_io)?),
                    None => None,
                };
                let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
                    return Err(ManagerError::Shim("exec helper without pipes".into()));
                };
                ExecIo::Pipes {
                    stdin,
                    stdout: out.into_owned_fd().map_err(helper_io)?,
                    stderr: err.into_owned_fd().map_err(helper_io)?,
                }
            }
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        let master = match &io {
            ExecIo::Tty { master } => {
                Some(Arc::new(master.try_clone().map_err(|e| {
                    ManagerError::Shim(format!("exec: pty: {e}"))
                })?))
            }
            ExecIo::Pipes { .. } => None,
        };
        if let (Some(m), Some((h, w))) = (&master, size) {
            set_size(m, h, w);
        }
        if let Some(e) = self.execs().get_mut(exec_id) {
            e.pid = pid;
            e.exit = Some(rx.clone());
            e.master = master;
        }
        let me = self.clone();
        let exec = exec_id.to_string();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    s.code()
                        .or_else(|| s.signal().map(|n| 128 + n))
                        .unwrap_or(126)
                }
                Err(e) => {
                    tracing::warn!(exec = %exec, error = %e, "exec: waiting for the helper");
                    126
                }
            };
            if let Some(e) = me.execs().get_mut(&exec) {
                e.master = None;
            }
            tracing::debug!(exec = %exec, code, "exec ended");
            let _ = tx.send(Some(code));
        });
        if let Ok(rec) = self.get(container) {
            self.emit(
                &rec,
                &format!("exec_start: {}", cfg.cmd.join(" ")),
                None,
                None,
            );
        }
        Ok(ExecStarted { io, exit: rx })
    }

    /// The terminal's size of a running tty exec (others: nothing to do, as Docker).
    pub fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let execs = self.execs();
        let e = execs.get(exec_id).ok_or_else(|| no_such(exec_id))?;
        if let Some(m) = &e.master {
            set_size(m, height, width);
        }
        Ok(())
    }

    /// Forget the execs of a removed container.
    pub(super) fn forget_execs(&self, container: &str) {
        self.execs().retain(|_, e| e.container != container);
    }
}

fn no_such(exec_id: &str) -> ManagerError {
    ManagerError::NoSuchExec(exec_id.to_string())
}

fn helper_io(e: std::io::Error) -> ManagerError {
    ManagerError::Shim(format!("exec: the helper's pipes: {e}"))
}

fn set_size(master: &OwnedFd, height: u16, width: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "exec: resize");
    }
}

/// The pty master the helper sends over its stdin socket (one byte with SCM_RIGHTS).
async fn receive_master(
    sock: std::os::unix::net::UnixStream,
) -> std::result::Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    sock.set_nonblocking(true)
        .map_err(|e| format!("exec socket: {e}"))?;
    let sock = tokio::net::UnixStream::from_std(sock).map_err(|e| format!("exec socket: {e}"))?;
    let got = tokio::time::timeout(PTY_WITHIN, async {
        loop {
            sock.readable().await.map_err(|e| e.to_string())?;
            let r = sock.try_io(tokio::io::Interest::READABLE, || {
                let mut byte = [0u8; 1];
                let mut iov = [std::io::IoSliceMut::new(&mut byte)];
                let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
                let msg = recvmsg::<()>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .map_err(std::io::Error::from)?;
                let mut fd = None;
                for c in msg.cmsgs().map_err(std::io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for f in fds {
                            // SAFETY: the kernel just gave us this descriptor (SCM_RIGHTS);
                            // nothing else owns it.
                            let owned = unsafe { OwnedFd::from_raw_fd(f) };
                            if fd.is_none() {
                                fd = Some(owned);
                            }
                        }
                    }
                }
                Ok((msg.bytes, fd))
            });
            match r {
                Ok((_, Some(fd))) => return Ok(fd),
                Ok((0, None)) => return Err("the helper ended before it made a terminal".into()),
                Ok((_, None)) => return Err("the helper sent no terminal".into()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("receiving the terminal: {e}")),
            }
        }
    })
    .await;
    got.unwrap_or_else(|_| Err(format!("no terminal from the helper within {PTY_WITHIN:?}")))
}
