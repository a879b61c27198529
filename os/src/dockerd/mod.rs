//! `ros dockerd`: the user's Docker engine, run as the `docker` system service.
//!
//! It is the container manager (`engine::manager`) and an image store of its own behind the
//! Docker Engine API on a unix socket, for the real `docker` CLI, the Python `docker` library
//! and docker-compose. It is not PID 1 and never parents a container: each one belongs to its
//! shim, so this process can stop, crash or be upgraded while its containers run on
//! (`restore` finds them again).
//!
//! ```text
//! ros dockerd [--root /var/lib/docker] [--run /run/docker] [--socket /run/docker/docker.sock]
//!             [--group docker] [--cgroup-parent /docker] [--preload DIR] [--store DIR]
//! ros dockerd --system [--boot FD]
//! ```
//! The socket is mode 0660, owned by root and the group (the console's `rancher` is in it).
//! `--preload` names a directory whose `.tar`/`.tar.gz` images are loaded at start. With
//! `rancher.docker.tls` (or `insecure_tcp`) the user engine also serves the API on TCP
//! ([`remote`]: mutual TLS on 2376, its certificates in `ROOT/tls`).
//!
//! `--system` is the system engine (`system-docker`), which PID 1 starts: the same manager and
//! API with the system's layout ([`Args::system`]: records and volumes in RAM under
//! `/run/system-docker`, the images PID 1 loaded from the initrd in `/var/lib/system-docker`,
//! cgroups `/system/<name>`, plain logs `/var/log/<name>.log`, the socket
//! `/run/system-docker.sock`, root's only) and the system services on top
//! (`crate::system_services`). With `--boot FD` (a socket PID 1 holds the other end of) it sets
//! itself up, waits for PID 1's line on FD (`{"debug":bool}`: its boot steps are done), starts
//! the services from the configuration and writes one JSON line on FD when they are up
//! (`{"problems":N,"not_running":[…]}`); without, it is a restart of
//! the engine and takes over the containers that run. TERM stops every container (services in
//! reverse dependency order, within `rancher.shutdown_timeout`) and ends it: that is how PID 1
//! shuts the system down. (The user engine, on TERM, leaves its containers to their shims.)

pub mod api;
pub mod remote;

use crate::engine::manager::{Config, Manager};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub root: PathBuf,
    pub run: PathBuf,
    pub socket: PathBuf,
    pub group: String,
    pub cgroup_parent: String,
    pub preload: Option<PathBuf>,
    pub store: Option<PathBuf>,
    /// The system engine, with the system services.
    pub system: bool,
    /// `--boot FD`: once PID 1 says so on FD, start the system services; say so on FD when
    /// they are up.
    pub boot_fd: Option<i32>,
    /// `-D`, `--debug` (as Docker's): the log has the debug lines too.
    pub debug: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            root: "/var/lib/docker".into(),
            run: "/run/docker".into(),
            socket: "/run/docker/docker.sock".into(),
            group: "docker".into(),
            cgroup_parent: "/docker".into(),
            preload: Some("/var/lib/rancher/preload/docker".into()),
            store: None,
            system: false,
            boot_fd: None,
            debug: false,
        }
    }
}

/// The system engine's image store (PID 1 loads the initrd's images into it at boot).
pub const SYSTEM_STORE: &str = "/var/lib/system-docker";
/// The system engine's records, volumes, shims and runtime state: RAM, rebuilt at each boot.
pub const SYSTEM_RUN: &str = "/run/system-docker";
/// Where the system services' logs are.
pub const SYSTEM_LOGS: &str = "/var/log";

impl Args {
    /// The system engine's layout.
    pub fn system() -> Args {
        Args {
            root: SYSTEM_RUN.into(),
            run: SYSTEM_RUN.into(),
            socket: crate::engine::api::SOCKET.into(),
            group: "root".into(),
            cgroup_parent: crate::engine::runtime::spec::CGROUP_PARENT.into(),
            preload: None,
            store: Some(SYSTEM_STORE.into()),
            system: true,
            boot_fd: None,
            debug: false,
        }
    }

    fn manager_config(&self, exe: PathBuf) -> Config {
        let mut c = Config::new(
            self.root.clone(),
            self.run.clone(),
            self.cgroup_parent.clone(),
            exe,
        );
        if let Some(s) = &self.store {
            c.store = s.clone();
        }
        if self.system {
            c.log_dir = Some(SYSTEM_LOGS.into());
            c.cgroup_by_name = true;
            c.etc_files = false;
        }
        c
    }
}

fn parse(words: &[String]) -> Result<Args, String> {
    let mut a = if words.iter().any(|w| w == "--system") {
        Args::system()
    } else {
        Args::default()
    };
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{w} needs a value"))
        };
        match w.as_str() {
            "--root" => a.root = value()?.into(),
            "--run" => a.run = value()?.into(),
            "--socket" => a.socket = value()?.into(),
            "--group" => a.group = value()?,
            "--cgroup-parent" => a.cgroup_parent = value()?,
            "--preload" => a.preload = Some(value()?.into()),
            "--store" => a.store = Some(value()?.into()),
            "--system" => {}
            "-D" | "--debug" => a.debug = true,
            "--boot" => {
                let v = value()?;
                a.boot_fd = Some(v.parse().map_err(|_| format!("--boot {v:?}: not an fd"))?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

/// Entry point of `ros dockerd`.
pub fn main(words: &[String]) -> ExitCode {
    crate::signals::reset_all();
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    let args = match parse(words) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dockerd: {e}");
            return ExitCode::from(2);
        }
    };
    crate::console::init_logging_stamped(if args.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    });
    if let Some(fd) = args.boot_fd {
        // Not for our children (shims, helpers): PID 1 must see the pipe close if we die.
        // SAFETY: fcntl(F_SETFD) on a descriptor number touches no memory; a bad number fails
        // with EBADF, which `ready` then reports.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dockerd: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dockerd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    tracing::info!(system = args.system, root = %args.root.display(), "dockerd: starting");
    // The os binary by its installed name (PID 1's own is `/init`, a name that runs init).
    let exe = if Path::new("/usr/bin/ros").exists() {
        PathBuf::from("/usr/bin/ros")
    } else {
        std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| "/usr/bin/ros".into())
    };
    // At boot PID 1 starts the system engine before its last steps (the state partition with
    // the user's layer of the configuration among them): what needs no configuration is done
    // beside them, the rest once PID 1 says they are done.
    let early = match args.boot_fd {
        Some(fd) if args.system => {
            let (mgr, n) = open_manager(&args, exe.clone(), None).await?;
            let listener = bind(&args.socket, &args.group)?;
            tracing::info!(
                containers = n,
                "dockerd: set up; waiting for PID 1's last boot steps"
            );
            let debug = wait_for_go(fd).await?;
            if debug && !args.debug {
                crate::console::set_stamped_level(tracing::Level::DEBUG);
            }
            Some((mgr, listener))
        }
        _ => None,
    };
    // Read once, here: parsing and merging the configuration's layers is ~0.1 s at boot
    // under TCG, and the system engine used to do it twice before its first container.
    let (config, errors) = tokio::task::spawn_blocking(crate::config::load_running)
        .await
        .map_err(|e| format!("reading the configuration: {e}"))?;
    for e in errors {
        tracing::warn!(error = %e, "dockerd: configuration");
    }
    let docker = config.rancher.docker.clone();
    let (mgr, listener) = match early {
        Some(set_up) => set_up,
        None => {
            let network = (!args.system)
                .then(|| crate::engine::network::Bridge::new(bip(&docker), &args.run));
            let (mgr, _) = open_manager(&args, exe, network).await?;
            (mgr, bind(&args.socket, &args.group)?)
        }
    };
    if let Some(dir) = &args.preload {
        preload(&mgr, dir).await;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("signal handler: {e}"))?;
    tracing::info!(socket = %args.socket.display(), "dockerd: serving");
    let registries = registries(&docker);
    let services = args
        .system
        .then(|| crate::system_services::SystemServices::new(mgr.clone()));
    let state = api::Api::new(mgr, args.root.join("tmp"), registries, services.clone());
    let app = api::app(state);
    if !args.system {
        remote::start(
            &docker,
            remote::certs::Layout::new(args.root.join("tls")),
            app.clone(),
        )
        .await;
    }
    let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
    // Served while the services start: `system-docker ps` answers during boot.
    let server = tokio::spawn(async move { axum::serve(listener, svc).await });
    if let Some(services) = &services {
        match args.boot_fd {
            Some(fd) => {
                let booted = services.boot(config).await;
                ready(fd, &booted);
            }
            None => services.adopt(&config).await,
        }
    }
    tokio::select! {
        r = server => match r {
            Ok(r) => r.map_err(|e| format!("serving: {e}")),
            Err(e) => Err(format!("server task: {e}")),
        },
        _ = term.recv() => {
            if let Some(services) = &services {
                // The machine is going down: every container stops, in order.
                let (config, _) = tokio::task::spawn_blocking(crate::config::load_running)
                    .await
                    .unwrap_or_default();
                let timeout = std::time::Duration::from_secs(config.rancher.shutdown_timeout);
                services.stop_all(timeout).await;
                tracing::info!("dockerd: TERM; every container stopped");
            } else {
                // Live restore: the containers belong to their shims and run on.
                tracing::info!("dockerd: TERM; leaving the containers to their shims");
            }
            let _ = std::fs::remove_file(&args.socket);
            Ok(())
        }
    }
}

/// The manager on its root, its network set up (`network`: the user engine's bridge) and the
/// containers of a run before found again (how many).
async fn open_manager(
    args: &Args,
    exe: PathBuf,
    network: Option<crate::engine::network::Bridge>,
) -> Result<(Arc<Manager>, usize), String> {
    let mut cfg = args.manager_config(exe);
    cfg.network = network;
    let mgr = Manager::open(cfg).map_err(|e| e.to_string())?;
    if let Err(e) = mgr.setup_network() {
        // Containers on the bridge then fail to start, each saying why; the rest work.
        tracing::error!(error = %e, "dockerd: the bridge network");
        println!("dockerd: the bridge network: {e}");
    }
    let n = mgr.restore().await;
    tracing::info!(containers = n, root = %args.root.display(), "dockerd: records read");
    Ok((mgr, n))
}

/// Wait for PID 1's one line on the boot link (`{"debug":bool}`): its last boot steps are
/// done. The link stays open for [`ready`].
async fn wait_for_go(fd: i32) -> Result<bool, String> {
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` was given on the command line by PID 1 for this link; the File is
        // never dropped (ManuallyDrop), so the descriptor stays open for `ready`.
        let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let mut line = String::new();
        // One byte at a time: nothing after the line may be read away from `ready`'s peer.
        let mut r = std::io::BufReader::with_capacity(1, &*f);
        r.read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| format!("waiting for PID 1: {e}"))?
    .map_err(|e| format!("waiting for PID 1 (fd {fd}): {e}"))?;
    go_line(&line)
}

/// PID 1's go line: `{"debug":bool}`; end of file (PID 1 gone) is an error.
fn go_line(line: &str) -> Result<bool, String> {
    if line.is_empty() {
        return Err("the boot link closed before PID 1 said to go on".into());
    }
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("PID 1 said {:?}: {e}", line.trim()))?;
    Ok(v["debug"].as_bool().unwrap_or(false))
}

/// Tell PID 1 the boot's services are up: one JSON line on `fd`, which is then closed.
fn ready(fd: i32, booted: &crate::system_services::Booted) {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was given on the command line by PID 1 for this one write (`--boot FD`);
    // nothing else in this process owns it, and the File closes it when dropped.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    if let Err(e) = writeln!(
        f,
        "{}",
        serde_json::json!({
            "problems": booted.problems.len(),
            "not_running": booted.not_running,
        })
    ) {
        tracing::warn!(fd, error = %e, "dockerd: telling PID 1 the services are up");
    }
}

/// The registry settings of `rancher.docker` (trust roots, insecure registries); what cannot
/// be used is said on the log, naming its key, and left out.
/// The OS configuration's `rancher.docker`, read once at start.
/// The default bridge's address: `rancher.docker.bip`, or 172.17.0.1/16 (a bad value is
/// reported with its key and the default used, so the machine keeps its containers' network).
fn bip(docker: &crate::config::model::Docker) -> crate::engine::network::ipam::Bip {
    use crate::engine::network::ipam::Bip;
    match docker.bip.as_deref().map(str::parse::<Bip>) {
        None => Bip::DEFAULT,
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            tracing::error!(key = "rancher.docker.bip", problem = %e, "dockerd: using {}", Bip::DEFAULT);
            println!("dockerd: rancher.docker.bip: {e}; using {}", Bip::DEFAULT);
            Bip::DEFAULT
        }
    }
}

fn registries(docker: &crate::config::model::Docker) -> crate::engine::registry::Registries {
    let (regs, warnings) = crate::engine::registry::Registries::from_config(
        docker,
        Path::new(crate::engine::registry::config::SYSTEM_BUNDLE),
    );
    for w in warnings {
        tracing::warn!(problem = %w, "dockerd: registries");
    }
    regs
}

/// Bind the socket (replacing a stale one), mode 0660, group `group` (a name or a gid).
fn bind(path: &Path, group: &str) -> Result<tokio::net::UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing the stale {}: {e}", path.display())),
    }
    let l = tokio::net::UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let gid = match group.parse::<u32>() {
        Ok(n) => Some(nix::unistd::Gid::from_raw(n)),
        Err(_) => nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .map(|g| g.gid),
    };
    if gid.is_none() {
        tracing::warn!(group, "dockerd: no such group; the socket is root's only");
    }
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), gid)
        .map_err(|e| format!("chown {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(l)
}

/// Load every `.tar` and `.tar.gz` in `dir` (a missing directory is nothing to load).
async fn preload(mgr: &Arc<Manager>, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".tar") || n.ends_with(".tar.gz") || n.ends_with(".tgz")
        })
        .collect();
    files.sort();
    for f in files {
        let m = mgr.clone();
        let path = f.clone();
        let r = tokio::task::spawn_blocking(move || {
            m.store
                .load(&path, &crate::engine::store::LoadOptions::default())
        })
        .await;
        match r {
            Ok(Ok(loaded)) => {
                for l in loaded {
                    tracing::info!(file = %f.display(), image = %l.image.display_name(), "preloaded");
                }
            }
            Ok(Err(e)) => tracing::warn!(file = %f.display(), error = %e, "preload failed"),
            Err(e) => tracing::warn!(file = %f.display(), error = %e, "preload task"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn pid1s_go_line_carries_debug_and_an_early_end_is_an_error() {
        assert_eq!(super::go_line("{\"debug\":true}\n"), Ok(true));
        assert_eq!(super::go_line("{\"debug\":false}\n"), Ok(false));
        assert_eq!(super::go_line("{}\n"), Ok(false));
        assert!(super::go_line("").unwrap_err().contains("closed"));
        assert!(super::go_line("go\n").unwrap_err().contains("\"go\""));
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn debug_is_asked_for_with_either_spelling_and_is_off_otherwise() {
        assert!(!parse(&words("--system")).unwrap().debug);
        assert!(parse(&words("--system --debug")).unwrap().debug);
        assert!(parse(&words("-D --root /x")).unwrap().debug);
        let e = parse(&words("--debgu")).unwrap_err();
        assert!(e.contains("--debgu"), "{e}");
    }
}
