//! PID 1. Boot is a list of named steps ([`steps::STEPS`]), each run and timed in order and
//! printed as a milestone; a failed (or panicking) step is reported and boot goes on. After the
//! last step PID 1 prints `[ros] ready <seconds>` once (or, when a system service that should
//! run does not, `[ros] not running: …` naming each and `[ros] degraded <seconds>`) and becomes the supervisor: the single
//! owner of `waitpid`, reaping every zombie, keeping the system engine (`system_engine`: the
//! container manager that runs the system services) and the recovery console shell running,
//! and turning the power button, Ctrl-Alt-Del and `rancherctl reboot|poweroff` into a clean
//! shutdown.
//!
//! PID 1 must never exit: its death panics the kernel. Every step and the supervisor loop run
//! under `catch_unwind`; if the loop keeps failing, PID 1 falls back to an emergency shell.

mod console_config;
mod logs;
mod loopdev;
mod mounts;
mod net;
mod power_button;
mod shell;
pub mod shutdown;
mod state;
mod steps;
mod supervisor;
pub(crate) mod switch_root;
mod sysctl;
pub mod system_engine;
mod system_layers;

use crate::config::Config;
use crate::console::{say, since_boot};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What boot steps build up and the supervisor then uses.
#[derive(Default)]
pub struct Boot {
    pub cmdline: crate::cmdline::Cmdline,
    pub config: Config,
    /// The configuration's files as they were when [`Boot::config`] was read from them.
    pub config_seen: Option<crate::config::Fingerprint>,
    /// Open evdev devices that report KEY_POWER.
    pub power_buttons: Vec<power_button::Button>,
    /// The signalfd through which PID 1 receives SIGCHLD and the shutdown signals.
    pub signals: Option<nix::sys::signalfd::SignalFd>,
    /// The recovery console shell (`rancher.recovery`): its tty and pid.
    pub console: Option<(String, i32)>,
    /// The system engine's image store, once the initrd's images are loaded into it.
    pub store: Option<crate::engine::store::Store>,
    /// The system engine (which runs the system services), once started.
    pub engine: Option<system_engine::SystemEngine>,
    /// The engine started at boot, until `system-services` tells it to go on.
    pub engine_boot: Option<system_engine::Booting>,
    /// The system services that should run and do not when boot ends (`name (state: why)`):
    /// PID 1 then prints `[ros] degraded`, not `[ros] ready`.
    pub not_running: Vec<String>,
}

pub(crate) use steps::apply_to_host;

/// The health gate of a trial boot (`ros boot-health`: it exits at once when this boot is not
/// a trial), told which services did not run when boot ended (a degraded trial fails at once);
/// PID 1 does not wait for it, its supervisor reaps it like any other child.
fn spawn_boot_health(not_running: &[String]) {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let mut cmd = std::process::Command::new(exe);
    cmd.arg0("ros").arg("boot-health");
    if !not_running.is_empty() {
        cmd.arg("--degraded").arg(not_running.join(", "));
    }
    if let Err(e) = cmd.stdin(std::process::Stdio::null()).spawn() {
        say(format!("boot health: not started: {e}"));
    }
}

/// Entry point of `init`.
pub fn main() -> ExitCode {
    if std::process::id() != 1 {
        eprintln!(
            "init: must run as PID 1 (this is pid {})",
            std::process::id()
        );
        return ExitCode::from(1);
    }
    std::panic::set_hook(Box::new(|info| say(format!("panic: {info}"))));
    // SAFETY: umask has no memory-safety preconditions.
    unsafe { libc::umask(0o022) };
    let _ = std::env::set_current_dir("/");
    std::env::set_var(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );

    // The start of init, for `harness bench services` (init → every service running = ready),
    // printed once: by the first `/init`, not by the one that runs after the switch.
    if std::env::var_os(switch_root::SWITCHED_ENV).is_some() {
        std::env::remove_var(switch_root::SWITCHED_ENV);
    } else {
        let started = since_boot();
        say(format!("init {started:.3}"));
        switch_root::leave_initramfs(started);
    }
    crate::console::keep_journal();
    let mut boot = Boot::default();
    steps::run_all(&mut boot);
    if boot.engine.is_none() && boot.not_running.is_empty() {
        boot.not_running = vec!["system engine (not started)".into()];
    }
    if boot.not_running.is_empty() {
        say(format!("ready {:.3}", since_boot()));
    } else {
        say(format!("not running: {}", boot.not_running.join(", ")));
        say(format!("degraded {:.3}", since_boot()));
    }
    let lines: String = crate::console::journal()
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    if let Err(e) = crate::config::atomic::write_atomic(
        std::path::Path::new(crate::console::BOOT_LOG),
        lines.as_bytes(),
        0o644,
    ) {
        say(format!("{}: {e}", crate::console::BOOT_LOG));
    }
    spawn_boot_health(&boot.not_running);

    let mut sup = supervisor::Supervisor::new(boot);
    let mut panics: Vec<Instant> = Vec::new();
    loop {
        match catch_unwind(AssertUnwindSafe(|| sup.run())) {
            Ok(never) => match never {},
            Err(_) => {
                let now = Instant::now();
                panics.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                panics.push(now);
                say("supervisor panicked; restarting it");
                if panics.len() >= 5 {
                    say("supervisor keeps failing; starting the emergency shell");
                    shell::emergency_forever();
                }
            }
        }
    }
}
