//! `ros consoled`: the console container's main process. It runs the SSH server given after
//! `--` and a getty on every terminal PID 1 listed in [`SESSIONS`] (see [`crate::tty`]), starts
//! a getty again whenever its session ends, and stops them all cleanly on SIGTERM.
//!
//! Why a program and not the start script's `&`: a shell without job control starts
//! background commands with SIGINT and SIGQUIT ignored, and nothing below can undo that, so
//! Ctrl-C would be dead in every serial session. Here every child starts with default signal
//! dispositions and an empty signal mask.
//!
//! A session with autologin runs `getty -n -l ros-autologin` (which is `login -f rancher`); the
//! others get getty's login prompt and busybox `login`, which checks `/etc/shadow` (the
//! `rancher` user has a password only when `rancher.password` is set). When the SSH server
//! ends, consoled ends with its status, so the engine's restart policy sees the container stop.
//!
//! A full console (`crate::consoles`) has util-linux's `agetty` instead (`--getty agetty`:
//! `-a rancher` for autologin, its own session made for it). With `--ready FILE` consoled writes
//! FILE once port 22 answers: what a console switch and the boot's start order wait for.

pub mod full;
pub mod hostkey;
pub mod start;

use crate::containerinit::exit_code;
use crate::tty::Session;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// The sessions file PID 1 writes (the `console-config` step).
pub const SESSIONS: &str = "/run/ros/console/ttys";
/// The login program of autologin sessions (in the console image).
const AUTOLOGIN: &str = "/usr/sbin/ros-autologin";
/// A session that ends sooner than this after its start failed to start: the next try waits.
const QUICK: Duration = Duration::from_secs(2);
const FIRST_DELAY: Duration = Duration::from_secs(5);
const MAX_DELAY: Duration = Duration::from_secs(300);
/// How long children get to go on SIGTERM before consoled exits anyway (the engine then kills
/// what is left in the container's cgroup).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Which getty the console image has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Getty {
    /// busybox `getty` (the default console), autologin through [`AUTOLOGIN`].
    Busybox,
    /// util-linux `agetty` (full consoles), autologin by its own `-a`.
    Agetty,
}

/// The getty program and its arguments for a session: `-L` (no carrier detect on serial
/// lines), the line's speed left as it is, the terminal type by kind of tty.
pub fn getty_command(g: Getty, s: &Session) -> (&'static str, Vec<String>) {
    let term = if s.tty.starts_with("tty") && s.tty[3..].chars().all(|c| c.is_ascii_digit()) {
        "linux"
    } else {
        "vt100"
    };
    let mut args = vec!["-L".to_string()];
    match g {
        Getty::Busybox => {
            if s.autologin {
                args.extend(["-n".into(), "-l".into(), AUTOLOGIN.into()]);
            }
            // Baud 0: leave the speed as it is.
            args.extend(["0".into(), s.tty.clone(), term.into()]);
            ("getty", args)
        }
        Getty::Agetty => {
            if s.autologin {
                args.extend(["-a".into(), "rancher".into()]);
            }
            args.extend([
                "--keep-baud".into(),
                s.tty.clone(),
                "115200,38400,9600".into(),
                term.into(),
            ]);
            ("agetty", args)
        }
    }
}

/// The respawn delay after a quick failure number `n` (0-based): 5 s doubling to 5 min.
pub fn retry_delay(n: u32) -> Duration {
    FIRST_DELAY.saturating_mul(1u32 << n.min(16)).min(MAX_DELAY)
}

/// One terminal's getty and its respawn state.
struct Tty {
    session: Session,
    pid: Option<i32>,
    started: Instant,
    failures: u32,
    next_start: Option<Instant>,
}

impl Tty {
    /// Say why the session is not running and start it again after the next back-off delay.
    fn retry_later(&mut self, why: &str) {
        let delay = retry_delay(self.failures);
        self.failures += 1;
        eprintln!("consoled: {why}; next try in {} s", delay.as_secs());
        self.next_start = Some(Instant::now() + delay);
    }
}

/// `ros consoled [--ttys FILE] -- COMMAND ARGS…`
pub fn main(args: &[String]) -> ExitCode {
    let mut file = SESSIONS.to_string();
    let mut it = args.iter();
    let mut command: Vec<String> = Vec::new();
    let mut ready: Option<String> = None;
    let mut getty = Getty::Busybox;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ttys" => match it.next() {
                Some(f) => file = f.clone(),
                None => return usage(),
            },
            "--ready" => match it.next() {
                Some(f) => ready = Some(f.clone()),
                None => return usage(),
            },
            "--getty" => match it.next().map(String::as_str) {
                Some("busybox") => getty = Getty::Busybox,
                Some("agetty") => getty = Getty::Agetty,
                _ => return usage(),
            },
            "--" => {
                command = it.by_ref().cloned().collect();
            }
            _ => return usage(),
        }
    }
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("consoled: blocking signals: {e}");
    }
    let sessions = std::fs::read_to_string(&file)
        .map_err(|e| e.to_string())
        .and_then(|text| crate::tty::parse(&text))
        .unwrap_or_else(|e| {
            eprintln!("consoled: {file}: {e}; no terminal sessions");
            Vec::new()
        });
    let main_pid = match command.split_first() {
        Some((prog, rest)) => match spawn(Command::new(prog).args(rest)) {
            Ok(pid) => Some(pid),
            Err(e) => {
                eprintln!("consoled: starting {prog}: {e}");
                return ExitCode::from(127);
            }
        },
        None => None,
    };
    if let Some(file) = &ready {
        say_ready(Path::new(file));
    }
    let mut ttys: Vec<Tty> = Vec::new();
    for session in sessions {
        if !Path::new("/dev").join(&session.tty).exists() {
            eprintln!(
                "consoled: /dev/{} does not exist; no session on it",
                session.tty
            );
            continue;
        }
        eprintln!("consoled: {session}");
        ttys.push(Tty {
            session,
            pid: None,
            started: Instant::now(),
            failures: 0,
            next_start: Some(Instant::now()),
        });
    }
    run(&set, main_pid, ttys, getty)
}

/// How long the SSH server gets to take connections before the console says it is ready
/// anyway (its sessions on the terminals must not wait for a server that will not come).
const READY_WAIT: Duration = Duration::from_secs(10);

/// Write `file` once port 22 takes connections on this host (the console shares the host's
/// network), within [`READY_WAIT`] (else never): what PID 1's start order and a console switch
/// wait for.
fn say_ready(file: &Path) {
    let t = Instant::now();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 22));
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if t.elapsed() >= READY_WAIT {
            // Not said ready: a switch to this console fails and the default one comes back.
            eprintln!(
                "consoled: port 22 did not answer within {} s; not ready",
                READY_WAIT.as_secs()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(file, format!("{}\n", std::process::id())) {
        eprintln!("consoled: {}: {e}", file.display());
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: ros consoled [--ttys FILE] [--ready FILE] [--getty busybox|agetty] -- COMMAND [ARGS…]"
    );
    ExitCode::from(2)
}

/// Start `cmd` with default signal dispositions and an empty signal mask; its pid.
fn spawn(cmd: &mut Command) -> std::io::Result<i32> {
    crate::signals::clean_child(cmd)
        .spawn()
        .map(|c| c.id() as i32)
}

fn run(set: &SigSet, main_pid: Option<i32>, mut ttys: Vec<Tty>, getty: Getty) -> ExitCode {
    loop {
        let now = Instant::now();
        for t in ttys.iter_mut() {
            if t.next_start.is_some_and(|at| at <= now) {
                t.next_start = None;
                t.started = now;
                let (program, args) = getty_command(getty, &t.session);
                let mut cmd = Command::new(program);
                cmd.args(args);
                if getty == Getty::Agetty {
                    // agetty does not make its own session (busybox getty does): without one
                    // the terminal is nobody's controlling tty and the shell has no job control.
                    use std::os::unix::process::CommandExt;
                    // SAFETY: setsid is async-signal-safe; the closure touches nothing else.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::setsid();
                            Ok(())
                        });
                    }
                }
                match spawn(&mut cmd) {
                    Ok(pid) => t.pid = Some(pid),
                    Err(e) => t.retry_later(&format!("getty on {}: {e}", t.session.tty)),
                }
            }
        }
        let wake = ttys.iter().filter_map(|t| t.next_start).min();
        let sig = match wait(
            set,
            wake.map(|w| w.saturating_duration_since(Instant::now())),
        ) {
            Some(s) => s,
            None => continue,
        };
        if sig != Signal::SIGCHLD {
            eprintln!("consoled: {sig}: stopping");
            stop(main_pid, &mut ttys);
            return ExitCode::SUCCESS;
        }
        while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            let (Some(pid), Some(code)) = (st.pid().map(Pid::as_raw), exit_code(st)) else {
                break;
            };
            if Some(pid) == main_pid {
                eprintln!("consoled: the SSH server ended ({code}); stopping");
                stop(None, &mut ttys);
                return ExitCode::from(code.clamp(1, 255) as u8);
            }
            if let Some(t) = ttys.iter_mut().find(|t| t.pid == Some(pid)) {
                t.pid = None;
                if t.started.elapsed() < QUICK {
                    let why = format!("the session on {} ended at once ({code})", t.session.tty);
                    t.retry_later(&why);
                } else {
                    t.failures = 0;
                    t.next_start = Some(Instant::now());
                }
            }
        }
    }
}

/// Wait for one of `set` (blocked) for up to `limit` (forever with None); None on timeout.
fn wait(set: &SigSet, limit: Option<Duration>) -> Option<Signal> {
    let Some(limit) = limit else {
        return set.wait().ok();
    };
    let ts = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid sigset_t and `ts` a valid timespec for the call; the siginfo
    // pointer may be null.
    let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    (rc > 0).then(|| Signal::try_from(rc).ok()).flatten()
}

/// TERM the SSH server, hang up every terminal (which ends its shell) and TERM its getty or
/// login, then reap for up to [`STOP_WAIT`].
fn stop(main_pid: Option<i32>, ttys: &mut [Tty]) {
    let mut left: BTreeMap<i32, String> = BTreeMap::new();
    if let Some(pid) = main_pid {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        left.insert(pid, "the SSH server".into());
    }
    for t in ttys.iter_mut() {
        t.next_start = None;
        if let Err(e) = crate::tty::hang_up(&t.session.tty) {
            eprintln!("consoled: hanging up {}: {e}", t.session.tty);
        }
        if let Some(pid) = t.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            left.insert(pid, format!("the session on {}", t.session.tty));
        }
    }
    let deadline = Instant::now() + STOP_WAIT;
    while !left.is_empty() && Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            Ok(st) => {
                if let Some(p) = st.pid() {
                    left.remove(&p.as_raw());
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    for what in left.values() {
        eprintln!("consoled: {what} did not stop in {} s", STOP_WAIT.as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getty_lines() {
        let auto = Session {
            tty: "ttyS0".into(),
            autologin: true,
        };
        let line = |g, s| {
            let (p, a) = getty_command(g, s);
            format!("{p} {}", a.join(" "))
        };
        assert_eq!(
            line(Getty::Busybox, &auto),
            "getty -L -n -l /usr/sbin/ros-autologin 0 ttyS0 vt100"
        );
        assert_eq!(
            line(Getty::Agetty, &auto),
            "agetty -L -a rancher --keep-baud ttyS0 115200,38400,9600 vt100"
        );
        let vt = Session {
            tty: "tty1".into(),
            autologin: false,
        };
        assert_eq!(line(Getty::Busybox, &vt), "getty -L 0 tty1 linux");
    }

    #[test]
    fn retries_back_off_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_delay(1000), MAX_DELAY);
    }
}
