//! `ros-init`: a container's init, for services with compose's `init: true` (what Docker's
//! `--init` does with tini). The engine binds this binary into the container at [`PATH`] and
//! runs `ros-init -- COMMAND…` instead of the command.
//!
//! Why: a container's command is PID 1 of its pid namespace, where the kernel drops every
//! signal the program has no handler for, so a plain program (`sleep`, most shell scripts)
//! ignores the engine's SIGTERM and is only stopped by SIGKILL after the timeout; and orphans
//! re-parented to it are never reaped. ros-init has handlers: it passes the usual signals on to
//! the command, reaps every orphan (it is also a subreaper, for `pid: host` services), and exits
//! with the command's status.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::process::{Command, ExitCode};

/// Where the engine puts this binary inside a container.
pub const PATH: &str = "/sbin/ros-init";

/// The signals passed on to the command.
const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The exit code for a wait status: the code, or 128 + the signal.
pub fn exit_code(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// `ros-init [--] COMMAND [ARGS…]`
pub fn main(args: &[String]) -> ExitCode {
    let args = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    let Some((prog, rest)) = args.split_first() else {
        eprintln!("usage: ros-init [--] COMMAND [ARGS…]");
        return ExitCode::from(2);
    };
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(*s);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("ros-init: blocking signals: {e}");
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut cmd = Command::new(prog);
    crate::signals::clean_child(cmd.args(rest));
    let child = match cmd.spawn() {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("ros-init: {prog}: {e}");
            return ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        // Reap everything that ended: the command, and any orphan handed to us.
        while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if st.pid() == Some(child) {
                if let Some(code) = exit_code(st) {
                    return ExitCode::from(code.clamp(0, 255) as u8);
                }
            }
            if st == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let p = Pid::from_raw(5);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGTERM, false)),
            Some(143)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
