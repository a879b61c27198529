//! `ros ui`: the local web UI, the `ui` system service (off unless `rancher.ui.enabled`).
//!
//! It runs in a container of its own and reaches the host only through the system engine's
//! socket (services, configuration, boot, power: `dockerd::api::rancheros_host`) and the user
//! engine's (containers, images); what it shows of the machine itself is what any process in
//! the host's network and UTS namespaces reads in `/proc`. HTML is made on the server (maud);
//! the one script it serves follows logs live; nothing is fetched from elsewhere.
//!
//! HTTPS only, on `rancher.ui.listen` (default `0.0.0.0:9443`), with a CA made at first start
//! and kept in [`DIR`] on the state partition (`rancherctl ui ca`). Logins take one-time tokens
//! `rancherctl ui token` asks for over the admin socket ([`ADMIN_SOCKET`], root only, on the
//! host's `/run`): see [`auth`]. Modules: [`app`] (routes and their guard), [`pages`] (one file
//! per area), [`backend`] (the engines), [`auth`], [`tls`], [`audit`], [`diff`], [`host`].

pub mod app;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod diff;
pub mod host;
pub mod pages;
pub mod tls;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The UI's own state (its CA, its audit log), on the state partition.
pub const DIR: &str = "/var/lib/rancher/ui";
/// Where `rancherctl ui token|ca` reach the UI (the host's `/run`, bound into the console).
pub const ADMIN_SOCKET: &str = "/run/ros-ui/admin.sock";
/// The default address.
pub const LISTEN: &str = "0.0.0.0:9443";
/// The system engine's socket (`engine::api::SOCKET` through the host's `/var/run` link, which
/// the UI's container does not have).
pub const SYSTEM_SOCKET: &str = "/run/system-docker.sock";
/// The user engine's socket.
pub const USER_SOCKET: &str = "/run/docker/docker.sock";

const USAGE: &str = "usage: ros ui [--listen ADDR:PORT] [--dir DIR] [--admin SOCKET]
  (the web UI; its address comes from rancher.ui.listen unless --listen says)";

struct Args {
    listen: Option<String>,
    dir: PathBuf,
    admin: PathBuf,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        listen: None,
        dir: DIR.into(),
        admin: ADMIN_SOCKET.into(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--listen" => a.listen = Some(value("--listen")?),
            "--dir" => a.dir = value("--dir")?.into(),
            "--admin" => a.admin = value("--admin")?.into(),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(a)
}

pub fn main(args: &[String]) -> ExitCode {
    crate::console::init_logging(tracing::Level::INFO);
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ros ui: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ros ui: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ros ui: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rancher.ui.listen`, asked of the system engine (the UI reads no configuration file).
fn configured_listen(backend: &backend::Sockets) -> Option<String> {
    let full: serde_json::Value = backend
        .system
        .json("GET", "/rancheros/config?full=1", None)
        .ok()?;
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(full["text"].as_str()?).ok()?;
    tree.get("rancher")?
        .get("ui")?
        .get("listen")?
        .as_str()
        .map(String::from)
}

async fn serve(args: Args) -> Result<(), String> {
    let backend = Arc::new(backend::Sockets::new(SYSTEM_SOCKET, USER_SOCKET));
    let listen = match args.listen.clone() {
        Some(l) => l,
        None => {
            let b = backend.clone();
            tokio::task::spawn_blocking(move || configured_listen(&b))
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| LISTEN.to_string())
        }
    };
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("rancher.ui.listen {listen:?}: not ADDR:PORT ({e})"))?;
    let extra: Vec<String> = if addr.ip().is_unspecified() {
        Vec::new()
    } else {
        vec![addr.ip().to_string()]
    };
    let config = tls::server_config(&args.dir, &extra).map_err(|e| e.to_string())?;
    let ui = app::Ui::new(backend, &args.dir);
    let admin = bind_admin(&args.admin)?;
    tokio::spawn(serve_admin(admin, ui.clone(), args.dir.clone(), addr));
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    let listener = crate::dockerd::remote::tls::TlsListener::new(tcp, config)
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    crate::console::say(format!(
        "ui: https://{addr} (rancherctl ui token to log in)"
    ));
    let svc = app::router(ui).into_make_service_with_connect_info::<app::Remote>();
    axum::serve(listener, svc)
        .await
        .map_err(|e| format!("serving: {e}"))
}

fn bind_admin(path: &Path) -> Result<tokio::net::UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", path.display()))
        }
        _ => {}
    }
    let l = tokio::net::UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(l)
}

struct Admin {
    ui: Arc<app::Ui>,
    dir: PathBuf,
    listen: SocketAddr,
}

async fn serve_admin(
    listener: tokio::net::UnixListener,
    ui: Arc<app::Ui>,
    dir: PathBuf,
    listen: SocketAddr,
) {
    let admin = Arc::new(Admin { ui, dir, listen });
    let router = axum::Router::new()
        .route("/token", post(admin_token))
        .route("/ca", get(admin_ca))
        .with_state(admin);
    let app = tower::util::MapRequest::new(
        router,
        crate::engine::api::strip_version as fn(axum::extract::Request) -> axum::extract::Request,
    );
    let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
    if let Err(e) = axum::serve(listener, svc).await {
        tracing::warn!(error = %e, "ui: admin socket");
    }
}

#[derive(Debug, serde::Deserialize)]
struct TokenQuery {
    ttl: Option<u64>,
    read_only: Option<String>,
}

async fn admin_token(State(a): State<Arc<Admin>>, Query(q): Query<TokenQuery>) -> Response {
    let ttl = q.ttl.map_or(auth::TOKEN_TTL, Duration::from_secs);
    if ttl.is_zero() || ttl > auth::TOKEN_TTL_MAX {
        return (
            StatusCode::BAD_REQUEST,
            format!("ttl: between 1 s and {} s", auth::TOKEN_TTL_MAX.as_secs()),
        )
            .into_response();
    }
    let read_only = crate::dockerd::api::truthy(&q.read_only);
    let token = a.ui.auth.issue(ttl, read_only, Instant::now());
    let hosts: Vec<String> = if a.listen.ip().is_unspecified() {
        host::read(&a.dir)
            .addresses
            .iter()
            .filter_map(|l| l.split_once(": ").map(|(_, ip)| ip.to_string()))
            .filter(|ip| !ip.contains(':'))
            .collect()
    } else {
        vec![a.listen.ip().to_string()]
    };
    let urls: Vec<String> = hosts
        .iter()
        .map(|h| format!("https://{h}:{}/login?token={token}", a.listen.port()))
        .collect();
    tracing::info!(ttl = ttl.as_secs(), read_only, "ui: token issued");
    axum::Json(serde_json::json!({
        "token": token,
        "urls": urls,
        "ttl": ttl.as_secs(),
        "read_only": read_only,
    }))
    .into_response()
}

async fn admin_ca(State(a): State<Arc<Admin>>) -> Response {
    match std::fs::read_to_string(a.dir.join(tls::CA)) {
        Ok(pem) => pem.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", a.dir.join(tls::CA).display()),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests;
