//! The Docker Engine API of the user engine: only translation between HTTP and the manager
//! (routes a file per area: `containers`, `attach` (attach and logs streams), `exec`,
//! `processes` (pause, unpause, top, stats), `archive` (`docker cp`), `events`, `images`,
//! `image_save` (save, prune), `registry` (pull, push, login), `volumes`, `json` (records as Docker's JSON), `system` (ping, version, info), `system_df`; `rancheros`: what Docker has no word for, on the system engine; `rancheros_host`, `rancheros_os`: the host and its slots for the web UI).
//!
//! Every response carries `Api-Version`, `Ostype` and `Server`, as dockerd's do; any version
//! prefix (`/v1.24/` … `/v1.51/`) is accepted and served as ours, and clients negotiate down
//! to [`API_VERSION`] from `/_ping`. Errors are Docker's `{"message": …}` with its status
//! codes.

mod archive;
mod attach;
mod containers;
mod events;
mod exec;
mod filters;
mod image_save;
mod images;
mod json;
mod networks;
mod processes;
mod pty;
mod rancheros;
mod rancheros_host;
pub(crate) mod rancheros_os;
mod registry;
mod system;
mod system_df;
mod volumes;

use crate::engine::api::{strip_version, ApiError};
use crate::engine::manager::{Manager, ManagerError};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;

/// The API version we speak (all of what we serve is in it).
pub const API_VERSION: &str = "1.41";
pub const MIN_API_VERSION: &str = "1.24";

pub struct Api {
    pub mgr: Arc<Manager>,
    /// How registries are reached (trust roots, insecure ones), from `rancher.docker`.
    pub registries: Arc<crate::engine::registry::Registries>,
    /// Where uploads are spooled (on the engine's own disk).
    pub spool: PathBuf,
    /// The system services (the system engine only).
    pub services: Option<Arc<crate::system_services::SystemServices>>,
}

impl Api {
    pub fn new(
        mgr: Arc<Manager>,
        spool: PathBuf,
        registries: crate::engine::registry::Registries,
        services: Option<Arc<crate::system_services::SystemServices>>,
    ) -> Arc<Api> {
        Arc::new(Api {
            mgr,
            spool,
            registries: Arc::new(registries),
            services,
        })
    }
}

type St = axum::extract::State<Arc<Api>>;

/// A manager error as Docker's answer.
pub(crate) fn err(e: ManagerError) -> ApiError {
    let status = axum::http::StatusCode::from_u16(e.status())
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, e.to_string())
}

/// Responses with our headers.
type WithHeaders = tower::util::MapResponse<Router, fn(Response) -> Response>;
/// The whole service: requests with the version prefix stripped.
pub type App =
    tower::util::MapRequest<WithHeaders, fn(axum::extract::Request) -> axum::extract::Request>;

/// The router with the version prefix stripped and the headers added.
pub fn app(api: Arc<Api>) -> App {
    let with_headers =
        tower::util::MapResponse::new(router(api), add_headers as fn(Response) -> Response);
    tower::util::MapRequest::new(
        with_headers,
        strip_version as fn(axum::extract::Request) -> axum::extract::Request,
    )
}

fn add_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Docker/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    r
}

fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/system/df", get(system_df::df))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/attach", post(attach::attach))
        .route("/containers/{id}/logs", get(attach::logs))
        .route("/containers/{id}/pause", post(processes::pause))
        .route("/containers/{id}/unpause", post(processes::unpause))
        .route("/containers/{id}/top", get(processes::top))
        .route("/containers/{id}/stats", get(processes::stats))
        .route("/events", get(events::events))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/prune", post(containers::prune))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/rancheros/services/{name}/up", post(rancheros::up))
        .route("/rancheros/console/{verb}", post(rancheros::console))
        .route(
            "/rancheros/config",
            get(rancheros_host::config_view).post(rancheros_host::config_apply),
        )
        .route(
            "/rancheros/config/check",
            post(rancheros_host::config_check),
        )
        .route(
            "/rancheros/config/confirm",
            post(rancheros_host::config_confirm),
        )
        .route("/rancheros/services", get(rancheros_host::services_status))
        .route("/rancheros/boot", get(rancheros_host::boot))
        .route("/rancheros/kmsg", get(rancheros_host::kmsg))
        .route(
            "/rancheros/os/{verb}",
            get(rancheros_os::read).post(rancheros_os::change),
        )
        .route("/rancheros/power/{verb}", post(rancheros_host::power))
        .route(
            "/rancheros/services/{name}/upgrade",
            post(rancheros::upgrade),
        )
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/create", post(registry::create))
        .route("/auth", post(registry::login))
        .route("/images/get", get(image_save::save_many))
        .route("/images/prune", post(image_save::prune))
        .route(
            "/images/{*name}",
            get(images::by_name)
                .delete(images::remove)
                .post(images::tag),
        )
        .method_not_allowed_fallback(not_found)
        .fallback(not_found)
        .with_state(api)
}

async fn not_found(req: axum::extract::Request) -> ApiError {
    ApiError::not_found(format!("page not found: {}", req.uri().path()))
}

/// `1`, `true`, `True` (Docker's boolean query values; anything else is false).
pub(crate) fn truthy(v: &Option<String>) -> bool {
    matches!(
        v.as_deref().map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("1") | Some("true") | Some("yes")
    )
}

#[cfg(test)]
mod tests;
