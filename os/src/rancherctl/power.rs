//! `rancherctl reboot|poweroff|halt`: ask PID 1 to shut down, with the same signals busybox's
//! `reboot`/`poweroff`/`halt` send, so that every path ends in PID 1's one clean shutdown.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy)]
pub enum Request {
    Reboot,
    Poweroff,
    Halt,
}

pub fn request(req: Request) -> anyhow::Result<()> {
    let signal = match req {
        Request::Reboot => Signal::SIGTERM,
        Request::Poweroff => Signal::SIGUSR2,
        Request::Halt => Signal::SIGUSR1,
    };
    match kill(Pid::from_raw(1), signal) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => anyhow::bail!("permission denied: run it as root (sudo)"),
        Err(e) => anyhow::bail!("signalling PID 1: {e}"),
    }
}
