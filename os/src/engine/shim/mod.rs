//! `ros container-shim`: the one owner of a running container's life, one shim a container.
//!
//! Why: an engine that is not PID 1 (the user's `ros dockerd`) must still learn every exit code,
//! and a container must outlive a restart of its engine. So, as containerd's shim and podman's
//! conmon do, the engine starts a small process per container that
//! - creates the container with libcontainer (a fresh single-threaded process: libcontainer
//!   clones without exec, see `engine::runtime`), so the container's init is *its* child, and
//!   reaps it (a pidfd in its poll loop; it is also a child subreaper);
//! - holds the container's stdio: pipes, or the pty master received over a console socket;
//!   writes every byte of output to the log (`log`, Docker's json-file lines) and to the
//!   clients attached at that moment, with back-pressure (output is not read while an attached
//!   client is [`MAX_PENDING`] behind), and feeds stdin from them;
//! - answers on its socket (`protocol`): start, attach, kill, resize, wait;
//! - when the container has exited and its output is drained: writes `exit.json` atomically,
//!   deletes the container (cgroup, state), answers its waiters, closes its clients, removes
//!   its socket and exits.
//!
//! It double-forks at once (the engine reaps the first process), so the shim is never the
//! engine's child: an engine that stops or crashes leaves its shims and containers running,
//! and finds them again by their sockets (or their `exit.json`).
//!
//! ```text
//! ros container-shim --root RUNTIME_ROOT --id ID --bundle DIR --dir SHIM_DIR --log FILE
//!                    [--tty] [--stdin] [--stdin-once] [--log-plain] [--cgroup PATH]
//! ```
//! Prints one JSON line on stdout once the container is created (`{"pid":N}`) or could not be
//! (`{"error":…}`), then closes its stdout; its stderr is the engine's shim log.

mod event_loop;
pub mod log;
pub mod protocol;

use crate::engine::runtime::{self, ContainerStdio as Stdio, Paths, RuntimeError};
use protocol::Created;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How far an attached client may fall behind before the container's output waits for it.
pub const MAX_PENDING: usize = 1 << 20;
/// A container created and not started within this is killed (its engine went away).
pub const START_WITHIN: Duration = Duration::from_secs(60);

/// The socket, console socket and exit file of a shim, in its directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("sock")
}

pub fn exit_path(dir: &Path) -> PathBuf {
    dir.join("exit.json")
}

fn console_path(dir: &Path) -> PathBuf {
    dir.join("console.sock")
}

/// The command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// The log is plain text (see `log`), not json-file.
    pub log_plain: bool,
    /// The cgroup the shim moves itself into (not its engine's: a system engine that stops
    /// the engine's service kills every process in that service's cgroup).
    pub cgroup: Option<String>,
    /// Create the container at this nice value (a preparation beside the boot's critical
    /// path, `Manager::hold`); the shim and the container's process go back to 0 at start.
    pub nice: i32,
}

impl Args {
    /// The words after `container-shim`.
    pub fn to_words(&self) -> Vec<String> {
        let mut w = vec![
            "--root".to_string(),
            self.root.display().to_string(),
            "--id".into(),
            self.id.clone(),
            "--bundle".into(),
            self.bundle.display().to_string(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--log".into(),
            self.log.display().to_string(),
        ];
        if let Some(c) = &self.cgroup {
            w.extend(["--cgroup".to_string(), c.clone()]);
        }
        if self.nice != 0 {
            w.extend(["--nice".to_string(), self.nice.to_string()]);
        }
        for (on, flag) in [
            (self.tty, "--tty"),
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
            (self.log_plain, "--log-plain"),
        ] {
            if on {
                w.push(flag.into());
            }
        }
        w
    }

    pub fn parse(words: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{w} needs a value"))
            };
            match w.as_str() {
                "--root" => a.root = value()?.into(),
                "--id" => a.id = value()?,
                "--bundle" => a.bundle = value()?.into(),
                "--dir" => a.dir = value()?.into(),
                "--log" => a.log = value()?.into(),
                "--cgroup" => a.cgroup = Some(value()?),
                "--nice" => {
                    let v = value()?;
                    a.nice = v
                        .parse()
                        .ok()
                        .filter(|n| (0..=19).contains(n))
                        .ok_or_else(|| format!("--nice {v:?}: not 0 to 19"))?;
                }
                "--tty" => a.tty = true,
                "--stdin" => a.stdin = true,
                "--stdin-once" => a.stdin_once = true,
                "--log-plain" => a.log_plain = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        for (v, name) in [
            (a.root.as_os_str().is_empty(), "--root"),
            (a.id.is_empty(), "--id"),
            (a.bundle.as_os_str().is_empty(), "--bundle"),
            (a.dir.as_os_str().is_empty(), "--dir"),
            (a.log.as_os_str().is_empty(), "--log"),
        ] {
            if v {
                return Err(format!("{name} is required"));
            }
        }
        Ok(a)
    }
}

/// Entry point of `ros container-shim`.
pub fn main(words: &[String]) -> ExitCode {
    crate::signals::reset_all();
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    crate::console::init_logging(tracing::Level::WARN);
    let args = match Args::parse(words) {
        Ok(a) => a,
        Err(e) => return report_failure(&e),
    };
    // SAFETY: nothing in this process has started a thread yet (argument parsing and logging
    // set-up only), so the child is a complete copy; it goes on with ordinary code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return ExitCode::SUCCESS,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => return report_failure(&format!("fork: {e}")),
    }
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    if let Some(cg) = &args.cgroup {
        if let Err(e) = join_cgroup(cg) {
            tracing::warn!(cgroup = cg, error = %e, "shim: staying in the engine's cgroup");
        }
    }
    if args.nice != 0 {
        set_nice(0, args.nice);
        // Its pid is its process group's (setsid above): the engine brings the whole creation
        // (this process and the runtime's that it forks) back to 0 with it.
        let f = args.dir.join(PGRP_FILE);
        if let Err(e) = std::fs::create_dir_all(&args.dir)
            .and_then(|()| std::fs::write(&f, std::process::id().to_string()))
        {
            tracing::warn!(file = %f.display(), error = %e, "shim: writing the process group");
        }
    }
    match setup(&args) {
        Ok(shim) => {
            report(&Created::Pid { pid: shim.pid });
            event_loop::run(shim, &args);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(id = args.id, error = %e, "shim: create failed");
            report_failure(&e)
        }
    }
}

/// Written in the shim's directory by a shim that creates at a nice value other than 0: its
/// process group, so that the engine can bring the creation back to 0 when the boot comes to
/// wait on it (`Manager::hurry`).
pub const PGRP_FILE: &str = "pgrp";

/// Set the nice value of thread `tid` (0: this one); a failure is only logged (priority is
/// never worth failing a container for).
pub(super) fn set_nice(tid: i32, nice: i32) {
    if let Err(e) = crate::priority::set_nice(tid, nice) {
        tracing::warn!(tid, nice, error = %e, "shim: setpriority");
    }
}

fn report_failure(msg: &str) -> ExitCode {
    eprintln!("container-shim: {msg}");
    report(&Created::Error {
        error: msg.to_string(),
    });
    ExitCode::FAILURE
}

/// Print the one line and let go of stdout (the engine reads it to its end).
fn report(c: &Created) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(c).unwrap_or_default());
    let _ = out.flush();
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2(2) on two descriptors we hold open; 1 is replaced atomically.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// Move this process into cgroup `path` (`/docker-shims`: a leaf of the cgroup v2 tree), made
/// if missing.
fn join_cgroup(path: &str) -> std::io::Result<()> {
    let ok = path.starts_with('/')
        && path
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != ".." && c != ".");
    if !ok {
        return Err(std::io::Error::other(format!("bad cgroup path {path:?}")));
    }
    let dir = Path::new("/sys/fs/cgroup").join(&path[1..]);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("cgroup.procs"), b"0")
}

/// The container created (not started) and its stdio held.
pub(crate) struct Shim {
    pub pid: i32,
    pub container: libcontainer::container::Container,
    pub listener: UnixListener,
    /// The output: stdout pipe (or the pty master), stderr pipe (none with a tty).
    pub out: Option<std::fs::File>,
    pub err: Option<std::fs::File>,
    /// Where stdin goes (the pipe, or the pty master).
    pub stdin: Option<std::fs::File>,
    /// The pty master (resize).
    pub master: Option<OwnedFd>,
    pub log: log::Writer,
}

fn setup(a: &Args) -> Result<Shim, String> {
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let sock = socket_path(&a.dir);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(exit_path(&a.dir));
    let listener = UnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.log)
        .map_err(|e| format!("{}: {e}", a.log.display()))?;
    let paths = Paths::new(&a.root);
    let fail = |e: RuntimeError| error_chain(&e);
    if a.tty {
        let console = console_path(&a.dir);
        let _ = std::fs::remove_file(&console);
        let cl = UnixListener::bind(&console).map_err(|e| format!("{}: {e}", console.display()))?;
        let container = runtime::create_with(
            &paths,
            &a.id,
            &a.bundle,
            Stdio::Console(console.clone()),
            false,
        )
        .map_err(fail)?;
        let master = match receive_master(&cl) {
            Ok(m) => m,
            Err(e) => {
                let mut c = container;
                let _ = c.delete(true);
                return Err(format!("receiving the terminal: {e}"));
            }
        };
        let _ = std::fs::remove_file(&console);
        let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        let dup = |fd: &OwnedFd| -> Result<std::fs::File, String> {
            let f = fd.try_clone().map_err(|e| format!("dup: {e}"))?;
            set_nonblocking(f.as_raw_fd())?;
            Ok(std::fs::File::from(f))
        };
        Ok(Shim {
            pid,
            out: Some(dup(&master)?),
            err: None,
            stdin: if a.stdin { Some(dup(&master)?) } else { None },
            master: Some(master),
            container,
            listener,
            log: log::Writer::new(logf, a.log_plain),
        })
    } else {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string());
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_r, stdin_w) = if a.stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
            (OwnedFd::from(null), None)
        };
        let stdio = Stdio::Fds {
            stdin: Some(stdin_r),
            stdout: Some(out_w),
            stderr: Some(err_w),
        };
        let container =
            runtime::create_with(&paths, &a.id, &a.bundle, stdio, false).map_err(fail)?;
        let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        let file = |fd: OwnedFd| -> Result<std::fs::File, String> {
            set_nonblocking(fd.as_raw_fd())?;
            Ok(std::fs::File::from(fd))
        };
        Ok(Shim {
            pid,
            out: Some(file(out_r)?),
            err: Some(file(err_r)?),
            stdin: stdin_w.map(file).transpose()?,
            master: None,
            container,
            listener,
            log: log::Writer::new(logf, a.log_plain),
        })
    }
}

/// Accept the container's connection on the console socket and take the pty master from it.
/// The container's init connected and sent it while libcontainer's create ran (the connection
/// waited in the listen backlog).
fn receive_master(l: &UnixListener) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    l.set_nonblocking(false).map_err(|e| e.to_string())?;
    let (conn, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor in our table for us
                // (SCM_RIGHTS); nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err("no descriptor in the message".into())
}

pub(crate) fn set_nonblocking(fd: RawFd) -> Result<(), String> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // SAFETY: `fd` is open for the duration of this call (the caller owns it).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = fcntl(bfd, FcntlArg::F_GETFL).map_err(|e| e.to_string())?;
    fcntl(
        bfd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// The error and its sources, `: `-joined (libcontainer nests them deeply).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    crate::engine::runtime::helper::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_reads_back_what_it_wrote() {
        let a = Args {
            root: "/run/docker/runtime".into(),
            id: "c1".into(),
            bundle: "/b".into(),
            dir: "/run/docker/shims/c1".into(),
            log: "/var/lib/docker/containers/c1/c1-json.log".into(),
            tty: true,
            stdin: true,
            stdin_once: false,
            log_plain: true,
            cgroup: Some("/docker-shims".into()),
            nice: 10,
        };
        assert_eq!(Args::parse(&a.to_words()).unwrap(), a);
        let at = |n: &str| Args::parse(&[a.to_words(), vec!["--nice".into(), n.into()]].concat());
        assert!(at("20").unwrap_err().contains("not 0 to 19"));
        assert!(at("-5").is_err(), "a shim never raises its priority");
        assert!(Args::parse(&["--id".into(), "x".into()])
            .unwrap_err()
            .contains("--root is required"));
        assert!(Args::parse(&["--frob".into()]).is_err());
    }
}
