//! PID 1's side of the system engine: it starts `ros dockerd --system` (the container manager,
//! the system-docker API and the system services, `crate::system_services`) as its child. At
//! boot it starts it early, right after the configuration is read: the engine's own start (an
//! exec, its records, its socket) then runs on the second CPU beside PID 1's later steps
//! (images, state, sysctl, …) instead of after them, and waits on a socket pair for PID 1's
//! word that those steps are done; PID 1 then waits on the same pair until the engine says the
//! boot's services are up. PID 1 is then only the
//! engine's keeper: when the engine exits unexpectedly it is started again (with a growing
//! pause), without `--boot`, and takes over the containers that run (each belongs to its shim,
//! not to the engine); at shutdown it gets TERM, stops every container in order and exits.
//!
//! The engine's stdout is PID 1's (the console: its notes on services); its log (stderr) is
//! [`LOG`].

use crate::console::say;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The system engine's own log.
pub const LOG: &str = "/var/log/system-docker.log";

/// First and last pause before the engine is started again; a run this long resets it.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);
const RESET_AFTER: Duration = Duration::from_secs(60);

/// The running engine, as PID 1 keeps it.
#[derive(Debug)]
pub struct SystemEngine {
    pub pid: i32,
    /// `rancher.debug`: the engine logs at debug level (`--debug`), again when respawned.
    debug: bool,
    started: Instant,
    pause: Duration,
    /// When to start it again (it has exited).
    pub respawn_at: Option<Instant>,
}

/// What the engine's boot of the services ended with.
#[derive(Debug, Default, PartialEq)]
pub struct ServicesUp {
    /// How many problems it met (each said on the console by the engine).
    pub problems: usize,
    /// The services that should run and do not, each as `name (state: why)`.
    pub not_running: Vec<String>,
}

/// The engine started at boot before PID 1's last steps, waiting for their end ([`Booting::go`]).
#[derive(Debug)]
pub struct Booting {
    /// PID 1's end of the socket pair whose other end is the engine's `--boot FD`.
    link: std::os::unix::net::UnixStream,
}

/// Start the engine at boot. It sets itself up (its records, its socket) beside PID 1's steps
/// that follow, and starts the system services only when told to go: the configuration it
/// starts them from must include the state partition's layer, mounted by a later step. With
/// `debug` (`rancher.debug` as known so far) its log has the debug lines too.
pub fn start_for_boot(debug: bool) -> anyhow::Result<(SystemEngine, Booting)> {
    use anyhow::Context;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().context("socketpair")?;
    // Inherited (no CLOEXEC) and named on the command line; the engine marks it CLOEXEC at
    // once, so its own children do not hold it.
    nix::fcntl::fcntl(
        &theirs,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .context("fcntl")?;
    let pid = spawn(Some(theirs.as_raw_fd()), debug)?;
    drop(theirs); // ours: only the engine's copy keeps the pair open
    Ok((engine(pid, debug), Booting { link: ours }))
}

fn engine(pid: i32, debug: bool) -> SystemEngine {
    SystemEngine {
        pid,
        debug,
        started: Instant::now(),
        pause: FIRST_PAUSE,
        respawn_at: None,
    }
}

impl Booting {
    /// PID 1's steps are done: the engine may start the services (`debug`: `rancher.debug` as
    /// the configuration now says). Returns once it says they are up.
    pub fn go(mut self, debug: bool) -> anyhow::Result<ServicesUp> {
        use std::io::Write;
        let line = serde_json::json!({ "debug": debug }).to_string();
        // A write to an engine that has died fails (EPIPE); the read below then says so.
        if let Err(e) = writeln!(self.link, "{line}") {
            tracing::warn!(error = %e, "telling the system engine to go on");
        }
        wait_ready(self.link)
    }
}

fn spawn(boot_fd: Option<i32>, debug: bool) -> anyhow::Result<i32> {
    use anyhow::Context;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOG)
        .with_context(|| format!("opening {LOG}"))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(["dockerd", "--system"])
        .stdin(Stdio::null())
        .stderr(log);
    if debug {
        cmd.arg("--debug");
    }
    if let Some(fd) = boot_fd {
        cmd.args(["--boot", &fd.to_string()]);
    }
    let child = cmd.spawn().context("starting ros dockerd --system")?;
    // Dropped without a wait: the supervisor's waitpid(-1) reaps it.
    let pid = child.id() as i32;
    tracing::info!(pid, boot = boot_fd.is_some(), "system engine started");
    Ok(pid)
}

/// The engine's line on the link: the boot's services are up (or it died: end of file).
fn wait_ready(link: std::os::unix::net::UnixStream) -> anyhow::Result<ServicesUp> {
    let mut line = String::new();
    let n = BufReader::new(link)
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("waiting for the system engine: {e}"))?;
    if n == 0 {
        anyhow::bail!(
            "the system engine ended before the system services were up (its log: {LOG})"
        );
    }
    parse_ready(&line)
}

/// The engine's line: `{"problems":N,"not_running":["name (state: why)",…]}`.
fn parse_ready(line: &str) -> anyhow::Result<ServicesUp> {
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| anyhow::anyhow!("the system engine said {line:?}: {e}"))?;
    let not_running = v["not_running"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(ServicesUp {
        problems: v["problems"].as_u64().unwrap_or(0) as usize,
        not_running,
    })
}

impl SystemEngine {
    /// Its process has ended with `status`: start it again after a pause.
    pub fn exited(&mut self, status: &str) {
        if self.started.elapsed() >= RESET_AFTER {
            self.pause = FIRST_PAUSE;
        }
        say(format!(
            "system engine exited ({status}); starting it again in {}s (its log: {LOG})",
            self.pause.as_secs()
        ));
        self.respawn_at = Some(Instant::now() + self.pause);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
    }

    /// Start it again (its containers run on; it finds them).
    pub fn respawn(&mut self) {
        self.respawn_at = None;
        match spawn(None, self.debug) {
            Ok(pid) => {
                self.pid = pid;
                self.started = Instant::now();
            }
            Err(e) => {
                say(format!("system engine: {e:#}"));
                self.respawn_at = Some(Instant::now() + self.pause);
                self.pause = (self.pause * 2).min(MAX_PAUSE);
            }
        }
    }

    /// Shutdown: TERM, and wait for it to have stopped every container (it gives them
    /// `timeout`; a stuck one is killed after that), a little longer at most.
    pub fn stop(&mut self, timeout: Duration) {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        if self.respawn_at.is_some() {
            return; // not running
        }
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + timeout + Duration::from_secs(10);
        while Instant::now() < end {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
                _ => return,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        say("the system engine did not stop its containers in time; going on");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_engines_ready_line_is_read() {
        let up = super::parse_ready(
            "{\"problems\":2,\"not_running\":[\"ntp (exited: exit code 1)\",\"x (invalid: no image)\"]}\n",
        )
        .unwrap();
        assert_eq!(up.problems, 2);
        assert_eq!(
            up.not_running,
            ["ntp (exited: exit code 1)", "x (invalid: no image)"]
        );
        assert_eq!(
            super::parse_ready("{\"problems\":0}").unwrap(),
            Default::default()
        );
        assert!(super::parse_ready("ready").is_err());
    }
}
