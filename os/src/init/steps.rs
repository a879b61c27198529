//! The boot sequence as data: a named step per line, run in order, each timed and printed as a
//! milestone (`[ros] step <name> ok|failed <ms>ms`). Adding a step is adding a line here.

use super::{console_config, mounts, net, power_button, shell, state, Boot};
use crate::console::{say, step_line, StepOutcome};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

type StepFn = fn(&mut Boot) -> anyhow::Result<()>;

/// The boot steps, in order.
pub const STEPS: &[(&str, StepFn)] = &[
    ("mount-proc", mounts::proc),
    ("mount-sys", mounts::sys),
    ("mount-dev", mounts::dev),
    ("mount-run", mounts::run_and_tmp),
    ("mount-cgroup2", mounts::cgroup2),
    ("signals", super::supervisor::setup_signals),
    ("load-config", load_config),
    ("hostname", set_hostname),
    ("loopback", net::loopback_up),
    ("cgroup-controllers", mounts::enable_controllers),
    ("power-button", power_button::open),
    ("system-images", |b| b.services.load_images()),
    ("state", state::run),
    ("console-config", console_config::write),
    ("system-services", |b| {
        let config = b.config.clone();
        b.services.start_all(&config)
    }),
    ("console", shell::start_console),
];

/// Run every step; a failure or panic is printed and boot goes on.
pub fn run_all(boot: &mut Boot) {
    for (name, step) in STEPS {
        let start = Instant::now();
        let outcome = match catch_unwind(AssertUnwindSafe(|| step(boot))) {
            Ok(Ok(())) => StepOutcome::Ok,
            Ok(Err(e)) => StepOutcome::Failed(format!("{e:#}")),
            Err(_) => StepOutcome::Failed("panicked".into()),
        };
        if matches!(outcome, StepOutcome::Failed(_)) {
            tracing::error!(step = name, "boot step failed");
        }
        say(step_line(name, &outcome, start.elapsed()));
    }
}

fn load_config(boot: &mut Boot) -> anyhow::Result<()> {
    boot.cmdline =
        crate::cmdline::Cmdline::from_proc().map_err(|e| anyhow::anyhow!("/proc/cmdline: {e}"))?;
    let (config, errors) = crate::config::load(
        std::path::Path::new(crate::config::DEFAULTS_PATH),
        &boot.cmdline,
    );
    boot.config = config;
    crate::init::supervisor::set_log_level(boot.config.rancher.debug);
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        say(format!("config error: {e}"));
    }
    let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::bail!("{} problem(s), ignored: {}", errors.len(), msgs.join("; "))
}

/// Read the configuration again, now that the state partition (and the user's layer on it) is
/// mounted. Problems already reported by `load-config` are not repeated.
pub fn reload_config(boot: &mut Boot) {
    let user = crate::config::ConfigPaths::system();
    if !user.cloud_config.exists() && !user.cloud_config_d.exists() {
        return;
    }
    let (config, errors) = crate::config::load(
        std::path::Path::new(crate::config::DEFAULTS_PATH),
        &boot.cmdline,
    );
    for e in &errors {
        say(format!("config error: {e}"));
    }
    boot.config = config;
    crate::init::supervisor::set_log_level(boot.config.rancher.debug);
}

fn set_hostname(boot: &mut Boot) -> anyhow::Result<()> {
    let name = &boot.config.hostname;
    nix::unistd::sethostname(name).map_err(|e| anyhow::anyhow!("sethostname {name:?}: {e}"))?;
    std::fs::write("/etc/hostname", format!("{name}\n"))
        .map_err(|e| anyhow::anyhow!("/etc/hostname: {e}"))?;
    let hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost\n");
    std::fs::write("/etc/hosts", hosts).map_err(|e| anyhow::anyhow!("/etc/hosts: {e}"))?;
    Ok(())
}
