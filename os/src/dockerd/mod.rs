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
//!             [--group docker] [--cgroup-parent /docker] [--preload DIR]
//! ```
//! The socket is mode 0660, owned by root and the group (the console's `rancher` is in it).
//! `--preload` names a directory whose `.tar`/`.tar.gz` images are loaded at start.

mod api;

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
        }
    }
}

fn parse(words: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
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
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

/// Entry point of `ros dockerd`.
pub fn main(words: &[String]) -> ExitCode {
    crate::console::init_logging(tracing::Level::INFO);
    let args = match parse(words) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dockerd: {e}");
            return ExitCode::from(2);
        }
    };
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
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| "/usr/bin/ros".into());
    let mgr = Manager::open(Config {
        root: args.root.clone(),
        run: args.run.clone(),
        cgroup_parent: args.cgroup_parent.clone(),
        exe,
    })
    .map_err(|e| e.to_string())?;
    let n = mgr.restore().await;
    tracing::info!(containers = n, root = %args.root.display(), "dockerd: records read");
    if let Some(dir) = &args.preload {
        preload(&mgr, dir).await;
    }
    let listener = bind(&args.socket, &args.group)?;
    tracing::info!(socket = %args.socket.display(), "dockerd: serving");
    let registries = registries();
    let state = api::Api::new(mgr, args.root.join("tmp"), registries);
    let app = api::app(state);
    let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("signal handler: {e}"))?;
    tokio::select! {
        r = axum::serve(listener, svc) => r.map_err(|e| format!("serving: {e}")),
        _ = term.recv() => {
            // Live restore: the containers belong to their shims and run on.
            tracing::info!("dockerd: TERM; leaving the containers to their shims");
            let _ = std::fs::remove_file(&args.socket);
            Ok(())
        }
    }
}

/// The registry settings of `rancher.docker` (trust roots, insecure registries); what cannot
/// be used is said on the log, naming its key, and left out.
fn registries() -> crate::engine::registry::Registries {
    let (config, errors) = crate::config::load_running();
    for e in errors {
        tracing::warn!(error = %e, "dockerd: configuration");
    }
    let (regs, warnings) = crate::engine::registry::Registries::from_config(
        &config.rancher.docker,
        Path::new(crate::engine::registry::config::SYSTEM_BUNDLE),
    );
    for w in warnings {
        tracing::warn!(problem = %w, "dockerd: registries");
    }
    tracing::info!(trust_roots = regs.roots(), "dockerd: registries");
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
