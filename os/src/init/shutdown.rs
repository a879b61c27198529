//! Clean shutdown: every process gets SIGTERM, then SIGKILL after the timeout; then sync, unmount
//! everything in reverse mount order, sync again, print `[ros] shutdown complete`, and reboot,
//! power off or halt. Nothing here may return: PID 1 stops only with the machine.

use crate::console::say;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// What to do once everything is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reboot,
    Poweroff,
    Halt,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Reboot => "reboot",
            Kind::Poweroff => "poweroff",
            Kind::Halt => "halt",
        })
    }
}

/// Shut down. `ttys` are the console terminals (`ttyS0`): they are hung up first, as a modem
/// line would be, because interactive shells ignore SIGTERM (and busybox ash survives a bare
/// SIGHUP). The kernel spares files opened through `/dev/console`, so PID 1 keeps printing.
///
/// `stop_services` stops the system services (in reverse start order) before everything else
/// gets SIGTERM.
pub fn run(
    kind: Kind,
    reason: &str,
    timeout: Duration,
    ttys: &[String],
    stop_services: &mut dyn FnMut(),
) -> ! {
    say(format!("shutdown {kind} ({reason})"));
    stop_services();
    for tty in ttys {
        hang_up(tty);
    }
    stop_processes(timeout);
    nix::unistd::sync();
    unmount_all();
    nix::unistd::sync();
    say("shutdown complete");
    let how = match kind {
        Kind::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
        Kind::Poweroff => nix::sys::reboot::RebootMode::RB_POWER_OFF,
        Kind::Halt => nix::sys::reboot::RebootMode::RB_HALT_SYSTEM,
    };
    let err = nix::sys::reboot::reboot(how).unwrap_err();
    say(format!("reboot({how:?}) failed: {err}"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Hang up a console terminal; a failure is logged, not fatal.
fn hang_up(tty: &str) {
    if let Err(e) = crate::tty::hang_up(tty) {
        tracing::warn!(tty, error = %e, "cannot hang up");
    }
}

/// TERM to all, wait up to `timeout` for them to go, KILL what is left.
fn stop_processes(timeout: Duration) {
    // kill(-1) reaches every process but PID 1 itself. ESRCH means there is none: fine.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let _ = kill(Pid::from_raw(-1), Signal::SIGCONT);
    if reap_until_none(timeout) {
        return;
    }
    say(format!(
        "shutdown: processes still running after {}s; killing them",
        timeout.as_secs()
    ));
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    reap_until_none(Duration::from_secs(5));
}

/// Reap children until none is left (true) or the deadline passes (false).
fn reap_until_none(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return true,
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Unmount everything but `/`, deepest (latest) first. A busy mount is remounted read-only and
/// detached, so its data is safe even when it cannot be unmounted.
fn unmount_all() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(unescape)
        .filter(|p| p != "/")
        .collect();
    for p in points.iter().rev() {
        if nix::mount::umount(p.as_str()).is_ok() {
            continue;
        }
        let _ = nix::mount::mount(
            None::<&str>,
            p.as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
            None::<&str>,
        );
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            let digits: String = (0..3)
                .filter_map(|_| it.next_if(|d| d.is_digit(8)))
                .collect();
            if let (3, Ok(v)) = (digits.len(), u8::from_str_radix(&digits, 8)) {
                out.push(v as char);
                continue;
            }
            out.push('\\');
            out.push_str(&digits);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_mount_points() {
        assert_eq!(super::unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
