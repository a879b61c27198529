//! The manager's side of a shim: start one (and read its one line), and talk to it on its
//! socket.

use super::{ManagerError, Result};
use crate::engine::shim::protocol::{Created, Reply, Request};
use crate::engine::shim::{self, Args};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long a shim may take to create its container.
const CREATE_WITHIN: Duration = Duration::from_secs(60);

/// Start a shim (blocking: run it on a blocking thread) and return the container's pid.
pub(super) fn spawn(exe: &Path, args: &Args, shim_log: &Path) -> Result<i32> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(shim_log)
        .map_err(|e| ManagerError::io(shim_log, e))?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        // Chosen by its first argument whatever the binary is called (`/init` runs init).
        .arg0("ros")
        .arg("container-shim")
        .args(args.to_words())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| ManagerError::Shim(format!("starting {}: {e}", exe.display())))?;
    let stdout = child.stdout.take();
    // The first process exits as soon as it has forked the shim.
    let _ = child.wait();
    let Some(mut out) = stdout else {
        return Err(ManagerError::Shim("the shim has no stdout".into()));
    };
    let deadline = Instant::now() + CREATE_WITHIN;
    let text = read_line_until(&mut out, deadline)?;
    match serde_json::from_str::<Created>(text.trim()) {
        Ok(Created::Pid { pid }) => Ok(pid),
        Ok(Created::Error { error }) => Err(ManagerError::Shim(error)),
        Err(_) => Err(ManagerError::Shim(format!(
            "the shim said {:?}",
            text.trim()
        ))),
    }
}

fn read_line_until(out: &mut std::process::ChildStdout, deadline: Instant) -> Result<String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ManagerError::Shim(format!(
                "no word from the shim within {}s",
                CREATE_WITHIN.as_secs()
            )));
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(10_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(ManagerError::Shim(format!("poll: {e}"))),
        }
        match out.read(&mut chunk) {
            Ok(0) => return Ok(String::from_utf8_lossy(&buf).into_owned()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') {
                    return Ok(String::from_utf8_lossy(&buf).into_owned());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ManagerError::Shim(format!("reading from the shim: {e}"))),
        }
    }
}

/// Connect to the shim in `dir` and send `req`; the connection is returned as it is after
/// the request line (for `attach`, it then carries the streams).
pub(super) async fn connect(dir: &Path, req: &Request) -> Result<UnixStream> {
    let sock = shim::socket_path(dir);
    let mut s = UnixStream::connect(&sock)
        .await
        .map_err(|e| ManagerError::Shim(format!("{}: {e}", sock.display())))?;
    let mut line = serde_json::to_vec(req).unwrap_or_default();
    line.push(b'\n');
    s.write_all(&line)
        .await
        .map_err(|e| ManagerError::Shim(format!("{}: {e}", sock.display())))?;
    Ok(s)
}

/// Send `req` and read the shim's one-line reply (`None`: it closed without one).
pub(super) async fn call(dir: &Path, req: &Request) -> Result<Option<Reply>> {
    let s = connect(dir, req).await?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match r.read_line(&mut line).await {
        Ok(0) => Ok(None),
        Ok(_) => serde_json::from_str(line.trim())
            .map(Some)
            .map_err(|e| ManagerError::Shim(format!("bad reply {line:?}: {e}"))),
        Err(e) => Err(ManagerError::Shim(format!("reading the shim's reply: {e}"))),
    }
}

/// `call`, with an error reply turned into an error.
pub(super) async fn call_ok(dir: &Path, req: &Request) -> Result<()> {
    match call(dir, req).await? {
        Some(Reply::Ok { .. }) | Some(Reply::Exit { .. }) => Ok(()),
        Some(Reply::Error { error }) => Err(ManagerError::Shim(error)),
        None => Err(ManagerError::Shim("the shim closed without a reply".into())),
    }
}
