//! The engine's control API: HTTP/1.1 + JSON on a unix socket ([`SOCKET`]), shaped like the
//! Docker Engine API (same paths, same JSON field names, `{"message": …}` errors, the
//! multiplexed stream format), so the `docker` CLI and our `system-docker` both talk to it, and
//! a later user engine can serve the same routes.
//!
//! Served by PID 1 in a thread of its own with a current-thread tokio runtime ([`server`]). The
//! routes never touch processes: they ask an [`Engine`] (the seam; in PID 1 the supervisor
//! loop, which alone spawns and reaps). Paths may carry a version prefix (`/v1.41/…`), which is
//! stripped before routing; `/_ping` answers with the `Api-Version` header the docker CLI
//! negotiates with.
//!
//! Routes: `containers.rs` (list, inspect, logs, start/stop/restart), `images.rs` (list, load),
//! `exec.rs` (create, start with streamed output, inspect), with `extract.rs`'s `Path` and
//! `Query` (their rejections are Docker's errors too); `/rancheros/…` holds what Docker has
//! no word for (`POST /rancheros/services/{name}/up`).

mod containers;
pub mod engine;
pub mod error;
pub(crate) mod exec;
pub mod extract;
mod images;
pub mod server;
pub mod stream;
pub mod time;

pub use engine::{ContainerInfo, Engine, ExecProcess, ExecSpec, ImageInfo, RunState};
pub use error::ApiError;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Where the system engine listens (`/var/run` is a link to `/run`).
pub const SOCKET: &str = "/var/run/system-docker.sock";
/// The API version we speak (Docker 20.10's).
pub const API_VERSION: &str = "1.41";
/// The oldest the docker CLI may ask for.
pub const MIN_API_VERSION: &str = "1.24";

/// What every route shares: the engine and the execs created so far.
pub struct Api<E> {
    pub engine: E,
    execs: Mutex<HashMap<String, exec::ExecRecord>>,
}

impl<E: Engine> Api<E> {
    pub fn new(engine: E) -> Arc<Self> {
        Arc::new(Api {
            engine,
            execs: Mutex::new(HashMap::new()),
        })
    }
}

type State<E> = axum::extract::State<Arc<Api<E>>>;

/// Every route, on `api`'s engine.
pub fn router<E: Engine>(api: Arc<Api<E>>) -> Router {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/containers/json", get(containers::list::<E>))
        .route("/containers/{id}/json", get(containers::inspect::<E>))
        .route("/containers/{id}/logs", get(containers::logs::<E>))
        .route("/containers/{id}/start", post(containers::start::<E>))
        .route("/containers/{id}/stop", post(containers::stop::<E>))
        .route("/containers/{id}/restart", post(containers::restart::<E>))
        .route("/containers/{id}/exec", post(exec::create::<E>))
        .route("/exec/{id}/start", post(exec::start::<E>))
        .route("/exec/{id}/json", get(exec::inspect::<E>))
        .route("/images/json", get(images::list::<E>))
        .route("/images/load", post(images::load::<E>))
        .route("/rancheros/services/{name}/up", post(containers::up::<E>))
        // A known path with another method is a page not found too, as dockerd answers it (axum
        // would send a bare 405): every error is Docker's `{"message": …}`. Set after the routes:
        // it applies to those registered before it.
        .method_not_allowed_fallback(not_found)
        .fallback(not_found)
        .with_state(api)
}

/// `/v1.41/containers/json` → `/containers/json`: the version prefix is optional and any
/// version is served as ours.
pub fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return req;
    };
    let Some((ver, tail)) = rest.split_once('/') else {
        return req;
    };
    if ver.is_empty() || !ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return req;
    }
    let new = match req.uri().query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    if let Ok(uri) = new.parse() {
        *req.uri_mut() = uri;
    }
    req
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("page not found: {}", req.uri().path()))
}

async fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("OSType", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn version() -> Json<serde_json::Value> {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    Json(serde_json::json!({
        "Platform": { "Name": "RancherOS-rs system-docker" },
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": std::env::consts::ARCH.replace("x86_64", "amd64"),
        "KernelVersion": kernel,
        "GitCommit": "",
        "GoVersion": "",
        "Components": [{ "Name": "Engine", "Version": env!("CARGO_PKG_VERSION"), "Details": { "ApiVersion": API_VERSION } }],
    }))
}

/// A streamed body fed from a task through a channel: log follow and exec output.
pub(crate) struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl ChannelBody {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelBody(rx)
    }
}

impl futures_core::Stream for ChannelBody {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// Whether the client asks to take the connection over (`Upgrade: tcp`, as the docker CLI does
/// for attach and exec).
pub(crate) fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"))
}

/// `101 Switching Protocols` to `Upgrade: tcp`, the stream typed `content_type`.
pub(crate) fn switching_protocols(content_type: HeaderValue) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, content_type);
    r
}

/// A channel and the streaming response reading from it, typed as Docker's multiplexed stream.
pub(crate) fn multiplexed() -> (tokio::sync::mpsc::Sender<Bytes>, Response) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut r = Response::new(Body::from_stream(ChannelBody(rx)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.multiplexed-stream"),
    );
    (tx, r)
}

#[cfg(test)]
mod tests;
