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
    ("hide-init-args", hide_init_args),
    ("system-engine", start_system_engine),
    ("power-button", power_button::open),
    ("hostname", set_hostname),
    ("loopback", net::loopback_up),
    ("cgroup-controllers", mounts::enable_controllers),
    ("system-images", load_images),
    ("state", state::run),
    ("preload-images", preload_images),
    ("console-config", console_config::write),
    ("sysctl", |b| {
        problems(super::sysctl::apply(
            std::path::Path::new(PROC_SYS),
            &b.config.rancher.sysctl,
        ))
    }),
    ("write-files", write_files),
    ("system-services", system_services),
    ("recovery-console", shell::start_recovery),
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
    let (config, errors) = load(boot);
    boot.config = config;
    crate::init::supervisor::set_log_level(boot.config.rancher.debug);
    // The user's hostname may be in the layer just found.
    if let Err(e) = apply_hostname(&boot.config.hostname) {
        say(format!("hostname: {e:#}"));
    }
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        say(format!("config error: {e}"));
    }
    let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::bail!("{} problem(s), ignored: {}", errors.len(), msgs.join("; "))
}

/// Read the configuration, noting what its files were just before (a write during the read
/// then shows as a change at the next look, never the other way round).
fn load(boot: &mut Boot) -> (crate::config::Config, Vec<crate::config::ConfigError>) {
    boot.config_seen = Some(crate::config::Fingerprint::of(
        &crate::config::ConfigPaths::system(),
    ));
    crate::config::load_system(&boot.cmdline)
}

const PROC_SYS: &str = "/proc/sys";

/// A step's result from a list of problems.
fn problems(list: Vec<String>) -> anyhow::Result<()> {
    if list.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", list.join("; "))
    }
}

/// `write_files` without a `container`, on the host (before the services that may read them).
fn write_files(boot: &mut Boot) -> anyhow::Result<()> {
    problems(crate::cloudinit::write_files::apply(
        &boot.config.write_files,
        None,
        std::path::Path::new("/"),
    ))
}

/// The system engine's image store, which the initrd holds already loaded (the build wrote
/// the images as the store keeps them: index, configs, layers in one squashfs image that is
/// mounted here, [`super::system_layers`]). Here it is only opened, its layers mounted, and each
/// image's layers looked for, so a broken build is named at boot (the
/// `state` step runs its filesystem tools straight from one of these images).
fn load_images(boot: &mut Boot) -> anyhow::Result<()> {
    use anyhow::Context;
    let root = crate::dockerd::SYSTEM_STORE;
    let store =
        crate::engine::store::Store::open(root).with_context(|| format!("opening {root}"))?;
    let bound = super::system_layers::mount_into(store.root())?;
    super::system_layers::read_ahead(store.root());
    let images = store.list().with_context(|| format!("reading {root}"))?;
    let mut missing = Vec::new();
    for image in &images {
        if let Err(e) = store.lower_dirs(image) {
            missing.push(e.to_string());
        }
    }
    tracing::debug!(
        images = images.len(),
        squashfs_layers = bound,
        "system images"
    );
    boot.store = Some(store);
    if images.is_empty() {
        anyhow::bail!("{root} holds no image");
    }
    if !missing.is_empty() {
        anyhow::bail!("{}", missing.join("; "));
    }
    Ok(())
}

/// The images kept on the state partition for the system engine (services upgraded onto images
/// the initrd does not have: `crate::system_services::preload`).
fn preload_images(boot: &mut Boot) -> anyhow::Result<()> {
    let Some(store) = boot.store.as_ref() else {
        anyhow::bail!("no image store (the system-images step failed)");
    };
    // The console that will run: its image only, of the consoles' saved ones.
    let console = crate::consoles::configured(&boot.config)
        .ok()
        .filter(|c| !c.is_default())
        .map(|c| c.key);
    let (loaded, problems) = crate::system_services::preload::load_all(store, console.as_deref());
    if !loaded.is_empty() {
        tracing::info!(images = ?loaded, "preloaded images");
    }
    for p in &problems {
        say(format!("preload: {p}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} file(s) not loaded: {}",
            problems.len(),
            problems.join("; ")
        )
    }
}

/// Start the system engine: it sets itself up beside the steps that follow, and starts the
/// system services when `system-services` says so (`super::system_engine`).
fn start_system_engine(boot: &mut Boot) -> anyhow::Result<()> {
    // `/var/run` is where Docker's clients look (the engine's socket is named by it); our
    // run-time directory is `/run`.
    let var_run = std::path::Path::new("/var/run");
    if std::fs::symlink_metadata(var_run).is_err() {
        std::os::unix::fs::symlink("/run", var_run)
            .map_err(|e| anyhow::anyhow!("symlink /var/run -> /run: {e}"))?;
    }
    let (engine, booting) = super::system_engine::start_for_boot(boot.config.rancher.debug)?;
    boot.engine = Some(engine);
    boot.engine_boot = Some(booting);
    Ok(())
}

/// Tell the system engine to start the system services (after `cloud-init-save` it reads the
/// configuration again and applies it to the host: [`apply_to_host`]) and wait until they are
/// up; then take the configuration the boot ended with.
fn system_services(boot: &mut Boot) -> anyhow::Result<()> {
    boot.store = None;
    // Until the engine says otherwise, nothing runs.
    boot.not_running = vec!["system engine (not started)".into()];
    let booting = match boot.engine_boot.take() {
        Some(b) => b,
        // The `system-engine` step failed: one more try, now.
        None => {
            start_system_engine(boot)?;
            boot.engine_boot
                .take()
                .ok_or_else(|| anyhow::anyhow!("the system engine was not started"))?
        }
    };
    let up = booting.go(boot.config.rancher.debug)?;
    boot.not_running = up.not_running;
    let problems = up.problems;
    super::power_button::say_who_listens();
    // A datasource's layer (`cloud-init-save`) or a change made meanwhile: read again. At most
    // boots nothing changed, and ready need not wait for the same files to be parsed again.
    let paths = crate::config::ConfigPaths::system();
    let changed = match &boot.config_seen {
        Some(seen) => crate::config::Fingerprint::of(&paths).changed_since(seen),
        None => Some(paths.cloud_config),
    };
    if let Some(path) = changed {
        say(format!(
            "configuration: {} changed while the services started; read again",
            path.display()
        ));
        let (config, errors) = load(boot);
        for e in &errors {
            tracing::warn!(error = %e, "config (after the services)");
        }
        boot.config = config;
    }
    if problems > 0 {
        anyhow::bail!("{problems} problem(s); the other services run");
    }
    Ok(())
}

/// Apply a configuration read again during boot (a datasource's, saved by `cloud-init-save`)
/// to the host: hostname, the console's settings (keys and password reach the console, which
/// starts after), sysctl, `write_files` without a container. The problems, as lines.
pub(crate) fn apply_to_host(
    new: &crate::config::Config,
    cmdline: &crate::cmdline::Cmdline,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = apply_hostname(&new.hostname) {
        problems.push(format!("hostname: {e:#}"));
    }
    let dir = std::path::Path::new(console_config::DIR);
    if let Err(e) = console_config::write_to(dir, new, cmdline) {
        problems.push(format!("console config: {e:#}"));
    }
    problems.extend(super::sysctl::apply(
        std::path::Path::new(PROC_SYS),
        &new.rancher.sysctl,
    ));
    problems.extend(crate::cloudinit::write_files::apply(
        &new.write_files,
        None,
        std::path::Path::new("/"),
    ));
    problems
}

/// The words after `--` (`rancher.password=…`, `cc.*`) are for PID 1, which has read them: the
/// host and every container see a `/proc/cmdline` without them (a read-only file bound over it).
fn hide_init_args(boot: &mut Boot) -> anyhow::Result<()> {
    use anyhow::Context;
    if boot.cmdline.init.is_empty() {
        return Ok(());
    }
    let path = std::path::Path::new(crate::cmdline::SANITIZED_PATH);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    }
    let kept = std::path::Path::new(crate::cmdline::INIT_ARGS_PATH);
    crate::config::atomic::write_atomic(kept, boot.cmdline.init_line().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", kept.display()))?;
    let line = format!("{}\n", boot.cmdline.kernel_line());
    crate::config::atomic::write_atomic(path, line.as_bytes(), 0o444)
        .with_context(|| format!("writing {}", path.display()))?;
    nix::mount::mount(
        Some(path),
        "/proc/cmdline",
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .context("bind over /proc/cmdline")?;
    Ok(())
}

/// Read the configuration again, now that the state partition (and the user's layer on it) is
/// mounted. Problems already reported by `load-config` are not repeated.
pub fn reload_config(boot: &mut Boot) {
    let user = crate::config::ConfigPaths::system();
    if !user.cloud_config.exists() && !user.cloud_config_d.exists() {
        return;
    }
    let (config, errors) = load(boot);
    for e in &errors {
        say(format!("config error: {e}"));
    }
    boot.config = config;
    crate::init::supervisor::set_log_level(boot.config.rancher.debug);
    // The user's hostname may be in the layer just found.
    if let Err(e) = apply_hostname(&boot.config.hostname) {
        say(format!("hostname: {e:#}"));
    }
}

fn set_hostname(boot: &mut Boot) -> anyhow::Result<()> {
    apply_hostname(&boot.config.hostname)
}

/// Set the kernel's hostname, `/etc/hostname` and `/etc/hosts`.
fn apply_hostname(name: &str) -> anyhow::Result<()> {
    nix::unistd::sethostname(name).map_err(|e| anyhow::anyhow!("sethostname {name:?}: {e}"))?;
    std::fs::write("/etc/hostname", format!("{name}\n"))
        .map_err(|e| anyhow::anyhow!("/etc/hostname: {e}"))?;
    let hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost\n");
    std::fs::write("/etc/hosts", hosts).map_err(|e| anyhow::anyhow!("/etc/hosts: {e}"))?;
    Ok(())
}
