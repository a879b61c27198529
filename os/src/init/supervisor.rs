//! After boot, PID 1 is an event loop over one `poll`: a signalfd (SIGCHLD and the shutdown
//! signals) and the power button, with timers for restarting the system engine or the
//! recovery shell and for log rotation. It reaps every zombie of the system (the shims of
//! containers are orphans that end up here); the system engine learns its containers' exits
//! from their shims, not from PID 1.
//!
//! Signals follow the sysvinit/busybox convention so that busybox's `reboot` and `poweroff` work
//! through PID 1 too: SIGTERM reboots, SIGUSR2 (and SIGPWR) powers off, SIGUSR1 halts, and SIGINT
//! (what the kernel sends on Ctrl-Alt-Del once it is told not to reboot by itself) reboots.

use super::power_button::{self, Press};
use super::shutdown::{self, Kind};
use super::{logs, shell, Boot};
use crate::console::say;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The signals PID 1 takes through its signalfd.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPWR,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Boot step: block the handled signals and open the signalfd; have Ctrl-Alt-Del sent to us as
/// SIGINT instead of rebooting on the spot.
pub fn setup_signals(boot: &mut Boot) -> anyhow::Result<()> {
    let set = handled();
    set.thread_block()
        .map_err(|e| anyhow::anyhow!("sigprocmask: {e}"))?;
    boot.signals = Some(
        SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| anyhow::anyhow!("signalfd: {e}"))?,
    );
    nix::sys::reboot::set_cad_enabled(false)
        .map_err(|e| anyhow::anyhow!("reboot(CAD_OFF): {e}"))?;
    Ok(())
}

/// Set PID 1's log level once config is read: the console carries the `[ros]` milestones and
/// notes, plus warnings and errors; `rancher.debug` adds everything down to debug events.
pub fn set_log_level(debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    crate::console::init_logging(level);
}

pub struct Supervisor {
    boot: Boot,
    /// When the console shell should be started again (after it exits).
    console_respawn: Option<Instant>,
    console_started: Instant,
    /// When the services' logs are next checked for rotation.
    next_rotation: Instant,
    /// When PID 1 powers off for a press a just-started acpid may have missed.
    unsure_press: Option<Instant>,
}

impl Supervisor {
    pub fn new(boot: Boot) -> Self {
        Supervisor {
            boot,
            console_respawn: None,
            console_started: Instant::now(),
            next_rotation: Instant::now() + logs::CHECK_EVERY,
            unsure_press: None,
        }
    }

    /// The loop; returns only by shutting the machine down.
    pub fn run(&mut self) -> std::convert::Infallible {
        loop {
            let next = [
                self.console_respawn,
                self.boot.engine.as_ref().and_then(|e| e.respawn_at),
                Some(self.next_rotation),
                self.unsure_press,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = match next {
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                        .unwrap_or(PollTimeout::NONE)
                }
                None => PollTimeout::NONE,
            };
            let (sig_ready, buttons_ready) = self.wait(timeout);
            if sig_ready {
                self.drain_signals();
            }
            for i in buttons_ready {
                let button = &mut self.boot.power_buttons[i];
                if !power_button::pressed(&mut button.dev) {
                    continue;
                }
                match power_button::who_has(&button.path) {
                    Press::Heard { pid } => crate::console::say(format!(
                        "power button: pressed; acpid (pid {pid}) has it"
                    )),
                    Press::PerhapsHeard { pid, age } => {
                        crate::console::say(format!(
                            "power button: pressed; acpid (pid {pid}) started {:.1}s ago and may \
                             have missed it: PID 1 powers off in {}s unless acpid does",
                            age.as_secs_f64(),
                            power_button::ACT_WITHIN.as_secs()
                        ));
                        self.unsure_press
                            .get_or_insert(Instant::now() + power_button::ACT_WITHIN);
                    }
                    Press::Unheard => self.shutdown(Kind::Poweroff, "power button"),
                }
            }
            if self.unsure_press.is_some_and(|at| at <= Instant::now()) {
                self.shutdown(Kind::Poweroff, "power button, acpid silent");
            }
            if self.console_respawn.is_some_and(|at| at <= Instant::now()) {
                self.respawn_console();
            }
            if let Some(engine) = self.boot.engine.as_mut() {
                if engine.respawn_at.is_some_and(|at| at <= Instant::now()) {
                    engine.respawn();
                }
            }
            if self.next_rotation <= Instant::now() {
                logs::rotate_dir(Path::new(logs::LOG_DIR), logs::MAX_BYTES, logs::KEEP);
                self.next_rotation = Instant::now() + logs::CHECK_EVERY;
            }
        }
    }

    /// Poll; returns whether the signalfd is readable and which power buttons are.
    fn wait(&mut self, timeout: PollTimeout) -> (bool, Vec<usize>) {
        let mut fds = Vec::new();
        if let Some(sfd) = &self.boot.signals {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        for b in &self.boot.power_buttons {
            fds.push(PollFd::new(b.dev.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            // No signalfd (its step failed): fall back to reaping on a timer.
            std::thread::sleep(Duration::from_millis(200));
            self.reap();
            return (false, Vec::new());
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return (false, Vec::new()),
            Err(e) => {
                tracing::error!(error = %e, "poll");
                std::thread::sleep(Duration::from_millis(100));
                return (false, Vec::new());
            }
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let has_sig = self.boot.signals.is_some();
        let sig = has_sig && ready(&fds[0]);
        let offset = usize::from(has_sig);
        let buttons = fds[offset..]
            .iter()
            .enumerate()
            .filter(|(_, f)| ready(f))
            .map(|(i, _)| i)
            .collect();
        (sig, buttons)
    }

    fn drain_signals(&mut self) {
        loop {
            let info = match self.boot.signals.as_mut().map(|s| s.read_signal()) {
                Some(Ok(Some(info))) => info,
                _ => return,
            };
            let signo = info.ssi_signo as i32;
            let Ok(signal) = Signal::try_from(signo) else {
                continue;
            };
            tracing::debug!(signal = ?signal, from_pid = info.ssi_pid, "signal");
            match signal {
                Signal::SIGCHLD => self.reap(),
                Signal::SIGINT => self.shutdown(Kind::Reboot, "ctrl-alt-del"),
                Signal::SIGTERM => self.shutdown(Kind::Reboot, "SIGTERM"),
                Signal::SIGUSR2 => self.shutdown(Kind::Poweroff, "SIGUSR2"),
                Signal::SIGPWR => self.shutdown(Kind::Poweroff, "SIGPWR"),
                Signal::SIGUSR1 => self.shutdown(Kind::Halt, "SIGUSR1"),
                _ => {}
            }
        }
    }

    /// Reap every exited child; notice when the console shell is gone.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if let Some(engine) = self.boot.engine.as_mut() {
                        if engine.pid == pid.as_raw() && engine.respawn_at.is_none() {
                            let what = match status {
                                WaitStatus::Exited(_, c) => format!("exit {c}"),
                                WaitStatus::Signaled(_, s, _) => format!("killed by {s}"),
                                other => format!("{other:?}"),
                            };
                            engine.exited(&what);
                            continue;
                        }
                    }
                    tracing::debug!(pid = pid.as_raw(), status = ?status, "reaped");
                    if self
                        .boot
                        .console
                        .as_ref()
                        .is_some_and(|(_, p)| *p == pid.as_raw())
                    {
                        // A shell that dies at once is restarted after a pause, not in a loop.
                        let quick = self.console_started.elapsed() < Duration::from_secs(2);
                        let delay = if quick {
                            Duration::from_secs(2)
                        } else {
                            Duration::ZERO
                        };
                        self.console_respawn = Some(Instant::now() + delay);
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "waitpid");
                    return;
                }
            }
        }
    }

    fn respawn_console(&mut self) {
        self.console_respawn = None;
        let Some((tty, _)) = self.boot.console.clone() else {
            return;
        };
        self.console_started = Instant::now();
        match shell::spawn_on(&tty) {
            Ok(child) => self.boot.console = Some((tty, child.id() as i32)),
            Err(e) => {
                say(format!("console shell on {tty}: {e:#}"));
                self.console_respawn = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    fn shutdown(&mut self, kind: Kind, reason: &str) -> ! {
        let timeout = Duration::from_secs(self.boot.config.rancher.shutdown_timeout);
        let ttys: Vec<String> = self
            .boot
            .console
            .iter()
            .map(|(tty, _)| tty.clone())
            .collect();
        let engine = &mut self.boot.engine;
        shutdown::run(kind, reason, timeout, &ttys, &mut || {
            if let Some(e) = engine.as_mut() {
                e.stop(timeout);
            }
        })
    }
}
