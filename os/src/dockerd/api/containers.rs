//! `/containers/…`: create, list, inspect, start, stop, restart, kill, wait, rename, resize,
//! remove, prune.

use super::{err, json, truthy, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::ApiError;
use crate::engine::manager::{ContainerConfig, CreateRequest, HostConfig, Lifecycle, Record};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateQuery {
    name: Option<String>,
}

/// The body: the container Config with a HostConfig in it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(flatten)]
    config: ContainerConfig,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    host_config: HostConfig,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    networking_config: NetworkingConfig,
}

/// `NetworkingConfig`: the endpoints asked for, per network name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkingConfig {
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    endpoints_config: std::collections::BTreeMap<String, super::networks::EndpointBody>,
}

pub async fn create(
    axum::extract::State(api): St,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    let endpoints = b
        .networking_config
        .endpoints_config
        .into_iter()
        .map(|(k, v)| v.request().map(|r| (k, r)))
        .collect::<Result<_, _>>()?;
    let mgr = api.mgr.clone();
    let rec = tokio::task::spawn_blocking(move || {
        mgr.create(CreateRequest {
            name: q.name.filter(|n| !n.is_empty()),
            config: b.config,
            host: b.host_config,
            endpoints,
            upper: None,
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("create task: {e}")))?
    .map_err(err)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": rec.id, "Warnings": [] })),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    all: Option<String>,
    limit: Option<i64>,
    filters: Option<String>,
}

pub async fn list(
    axum::extract::State(api): St,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let filters = super::filters::parse(q.filters.as_deref(), FILTERS)?;
    let all = truthy(&q.all) || filters.contains_key("status") || filters.contains_key("exited");
    let mut out = Vec::new();
    for r in api.mgr.list() {
        if !all && !r.state.status.is_running() {
            continue;
        }
        if !matches(&r, &filters)? {
            continue;
        }
        out.push(json::row(&api.mgr, &r));
        if q.limit.is_some_and(|l| l > 0 && out.len() as i64 >= l) {
            break;
        }
    }
    Ok(Json(out))
}

/// The filters `GET /containers/json` knows.
const FILTERS: &[&str] = &["status", "name", "id", "exited", "label", "ancestor"];

fn matches(r: &Record, f: &HashMap<String, Vec<String>>) -> Result<bool, ApiError> {
    for (key, vals) in f {
        let any = |p: &dyn Fn(&str) -> bool| vals.iter().any(|v| p(v));
        let ok = match key.as_str() {
            "status" => any(&|v| v == r.state.status.as_str()),
            "name" => any(&|v| r.name.contains(v.trim_start_matches('/'))),
            "id" => any(&|v| r.id.starts_with(v)),
            "exited" => any(&|v| {
                r.state.status == Lifecycle::Exited
                    && v.parse::<i32>().ok() == Some(r.state.exit_code)
            }),
            "label" => any(&|v| match v.split_once('=') {
                Some((k, val)) => r.config.labels.get(k).is_some_and(|x| x == val),
                None => r.config.labels.contains_key(v),
            }),
            "ancestor" => any(&|v| r.config.image == v || r.image_id.contains(v)),
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn inspect(
    axum::extract::State(api): St,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = api.mgr.get(&id).map_err(err)?;
    Ok(Json(json::inspect(&api.mgr, &r)))
}

pub async fn start(
    axum::extract::State(api): St,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mgr = api.mgr.clone();
    match detached(async move { mgr.start(&id).await }).await {
        Ok(()) => Ok(no_content()),
        Err(crate::engine::manager::ManagerError::NotModified(_)) => {
            Ok(StatusCode::NOT_MODIFIED.into_response())
        }
        Err(e) => Err(err(e)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StopQuery {
    t: Option<i64>,
    signal: Option<String>,
}

pub async fn stop(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Response, ApiError> {
    let mgr = api.mgr.clone();
    match detached(async move { mgr.stop(&id, q.t, q.signal.as_deref()).await }).await {
        Ok(()) => Ok(no_content()),
        Err(crate::engine::manager::ManagerError::NotModified(_)) => {
            Ok(StatusCode::NOT_MODIFIED.into_response())
        }
        Err(e) => Err(err(e)),
    }
}

pub async fn restart(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Response, ApiError> {
    let mgr = api.mgr.clone();
    detached(async move { mgr.restart(&id, q.t).await })
        .await
        .map_err(err)?;
    Ok(no_content())
}

/// Run a start, stop or restart to its end even when the client goes away meanwhile (hyper
/// drops a handler whose connection closed): `rancherctl service restart console`, run from
/// the console, is killed by its own stop, and the start must still come.
pub(crate) async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = crate::engine::manager::Result<T>> + Send + 'static,
) -> crate::engine::manager::Result<T> {
    tokio::spawn(f).await.unwrap_or_else(|e| {
        Err(crate::engine::manager::ManagerError::Shim(format!(
            "task: {e}"
        )))
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct KillQuery {
    signal: Option<String>,
}

pub async fn kill(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<KillQuery>,
) -> Result<Response, ApiError> {
    api.mgr.kill(&id, q.signal.as_deref()).await.map_err(err)?;
    Ok(no_content())
}

#[derive(Debug, Default, Deserialize)]
pub struct WaitQuery {
    condition: Option<String>,
}

/// `POST /containers/{id}/wait`: the 200 and its headers go out at once; the body, when the
/// condition holds.
pub async fn wait(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let cond = q.condition.as_deref().unwrap_or("").parse().map_err(err)?;
    let fut = api.mgr.wait(&id, cond).map_err(err)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        let (code, error) = fut.await;
        let body = json!({
            "StatusCode": code,
            "Error": if error.is_empty() { Value::Null } else { json!({ "Message": error }) },
        });
        let _ = tx.send(Bytes::from(format!("{body}\n"))).await;
    });
    let mut r = Response::new(axum::body::Body::from_stream(
        crate::engine::api::ChannelBody::new(rx),
    ));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[derive(Debug, Default, Deserialize)]
pub struct RenameQuery {
    name: Option<String>,
}

pub async fn rename(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<RenameQuery>,
) -> Result<Response, ApiError> {
    let name = q.name.unwrap_or_default();
    api.mgr.rename(&id, &name).map_err(err)?;
    Ok(no_content())
}

#[derive(Debug, Default, Deserialize)]
pub struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

pub async fn resize(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> Result<Response, ApiError> {
    let (h, w) = (q.h.unwrap_or(0), q.w.unwrap_or(0));
    api.mgr.resize(&id, h, w).await.map_err(err)?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveQuery {
    force: Option<String>,
    v: Option<String>,
    link: Option<String>,
}

pub async fn remove(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    if truthy(&q.link) {
        return Err(ApiError::bad_request("links are not supported yet"));
    }
    api.mgr
        .remove(&id, truthy(&q.force), truthy(&q.v))
        .await
        .map_err(err)?;
    Ok(no_content())
}

pub async fn prune(axum::extract::State(api): St) -> Result<Json<Value>, ApiError> {
    let mut deleted = Vec::new();
    for r in api.mgr.list() {
        if r.state.status.is_running() || r.state.status == Lifecycle::Restarting {
            continue;
        }
        if api.mgr.remove(&r.id, false, false).await.is_ok() {
            deleted.push(r.id);
        }
    }
    Ok(Json(
        json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 }),
    ))
}
