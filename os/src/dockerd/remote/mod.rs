//! The user engine's API on TCP, beside its unix socket, as RancherOS's `rancher.docker.tls`
//! had it: so that a machine's engine can be driven from elsewhere (`docker -H tcp://…
//! --tlsverify`) without SSH.
//!
//! - `rancher.docker.tls: true`: TCP 2376 with mutual TLS ([`tls`]): the client must show a
//!   certificate signed by the CA ([`certs`]: from the configuration, or made at first start
//!   and kept in /var/lib/docker/tls, whose `client/` is the bundle to hand out).
//! - else `rancher.docker.insecure_tcp: true`: TCP 2375 in plain HTTP, which is root on the
//!   machine for anyone who reaches it: said loudly on the console at each start.
//! - else: no TCP at all.
//!
//! A problem here (a bad PEM in the configuration, a port in use) is said on the service log,
//! naming the key or file, and the remote API stays off: the unix socket is served regardless.
//! The material is read once, at start: new certificates (`rancherctl tls gen`) are in force
//! at the engine's next start (`sudo system-docker restart docker`).

pub mod certs;
mod error;
pub mod tls;

#[cfg(test)]
mod tests;

pub use error::RemoteError;

use crate::config::model::Docker;
use std::net::{Ipv4Addr, SocketAddr};

/// The port of the API over mutual TLS.
pub const TLS_PORT: u16 = 2376;
/// The port of the API in plain HTTP.
pub const PLAIN_PORT: u16 = 2375;

/// What `rancher.docker` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Tls,
    Plain,
}

impl Mode {
    pub fn of(docker: &Docker) -> Mode {
        if docker.tls {
            Mode::Tls
        } else if docker.insecure_tcp {
            Mode::Plain
        } else {
            Mode::Off
        }
    }
}

/// Start serving `app` on TCP as `docker` asks, with the TLS material in `layout` (when the
/// configuration gives none). Spawns the servers and returns; problems are logged, not fatal.
pub async fn start(docker: &Docker, layout: certs::Layout, app: super::api::App) {
    match Mode::of(docker) {
        Mode::Off => {}
        Mode::Tls => {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, TLS_PORT));
            match tls_listener(docker.clone(), layout, addr).await {
                Ok(listener) => {
                    tracing::info!(%addr, "dockerd: serving the API over mutual TLS");
                    spawn_serve(listener, app, "TLS");
                }
                Err(e) => {
                    tracing::error!(error = %e, "dockerd: the API over TLS is off");
                    println!("dockerd: rancher.docker.tls: the API over TLS is off: {e}");
                }
            }
        }
        Mode::Plain => {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PLAIN_PORT));
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::warn!(%addr, key = "rancher.docker.insecure_tcp", "dockerd: the API is served without TLS or authentication");
                    shout(&format!(
                        "dockerd: WARNING: rancher.docker.insecure_tcp: the Docker API is served \
                         WITHOUT TLS OR AUTHENTICATION on tcp://{addr}: anyone who can reach it \
                         is root on this machine. Use rancher.docker.tls instead."
                    ));
                    spawn_serve(listener, app, "plain");
                }
                Err(e) => {
                    tracing::error!(%addr, error = %e, "dockerd: the plain TCP API is off");
                    println!("dockerd: rancher.docker.insecure_tcp: listening on {addr}: {e}");
                }
            }
        }
    }
}

/// The TLS listener on `addr`: the material (read, or made and kept: blocking file I/O and
/// key generation, off the runtime's thread), the rustls configuration, the socket.
async fn tls_listener(
    docker: Docker,
    layout: certs::Layout,
    addr: SocketAddr,
) -> Result<tls::TlsListener, RemoteError> {
    let dir = layout.dir.clone();
    let (pem, origin) =
        tokio::task::spawn_blocking(move || certs::load_or_create(&docker, &layout))
            .await
            .map_err(|e| RemoteError::Io {
                path: dir.clone(),
                source: std::io::Error::other(e),
            })??;
    tracing::info!(?origin, cert = %pem.cert.origin, "dockerd: TLS material");
    if origin == certs::Origin::Generated {
        println!(
            "dockerd: made a CA, a server and a client certificate in {}; the client bundle is {}",
            dir.display(),
            dir.join("client").display()
        );
    }
    let config = tls::server_config(&pem)?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RemoteError::Listen { addr, source })?;
    tls::TlsListener::new(tcp, config).map_err(|source| RemoteError::Listen { addr, source })
}

fn spawn_serve<L>(listener: L, app: super::api::App, what: &'static str)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, svc).await {
            tracing::error!(what, error = %e, "dockerd: serving TCP");
        }
    });
}

/// Say `msg` on the service log and on the machine's console, where an operator sees it.
fn shout(msg: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    println!("{msg}");
    let console = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/console");
    match console {
        Ok(mut c) => {
            if let Err(e) = writeln!(c, "{msg}") {
                tracing::debug!(error = %e, "dockerd: writing to /dev/console");
            }
        }
        Err(e) => tracing::debug!(error = %e, "dockerd: opening /dev/console"),
    }
}
