//! `/volumes`: create, list (filters `name`, `label`, `dangling`, `driver`), inspect, remove
//! (409 while a container uses it), prune. The local driver only.

use super::{err, truthy, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::{time, ApiError};
use crate::engine::manager::record::system_time;
use crate::engine::manager::Manager;
use crate::engine::volume::{NewVolume, Volume};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn volume_json(m: &Manager, v: &Volume) -> Value {
    let mut labels = v.labels.clone();
    if v.anonymous {
        labels.insert("com.docker.volume.anonymous".into(), String::new());
    }
    json!({
        "CreatedAt": time::rfc3339(system_time(v.created)),
        "Driver": "local",
        "Labels": labels,
        "Mountpoint": m.volumes.data_dir(&v.name),
        "Name": v.name,
        "Options": {},
        "Scope": "local",
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    #[serde(deserialize_with = "crate::engine::manager::record::null_default")]
    name: String,
    #[serde(deserialize_with = "crate::engine::manager::record::null_default")]
    driver: String,
    #[serde(deserialize_with = "crate::engine::manager::record::null_default")]
    driver_opts: BTreeMap<String, String>,
    #[serde(deserialize_with = "crate::engine::manager::record::null_default")]
    labels: BTreeMap<String, String>,
}

pub async fn create(axum::extract::State(api): St, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?
    };
    let (v, _) = api
        .mgr
        .volumes
        .create(NewVolume {
            name: Some(b.name).filter(|n| !n.is_empty()),
            driver: b.driver,
            driver_opts: b.driver_opts,
            labels: b.labels,
        })
        .map_err(|e| err(e.into()))?;
    Ok((StatusCode::CREATED, Json(volume_json(&api.mgr, &v))).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

const FILTERS: &[&str] = &["name", "label", "dangling", "driver"];

pub async fn list(
    axum::extract::State(api): St,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filters = super::filters::parse(q.filters.as_deref(), FILTERS)?;
    let mut out = Vec::new();
    for v in api.mgr.volumes.list() {
        let used = !api.mgr.volume_users(&v.name).is_empty();
        let keep = filters.iter().all(|(k, vals)| {
            vals.iter().any(|f| match k.as_str() {
                "name" => v.name.contains(f.as_str()),
                "driver" => f == "local",
                "dangling" => matches!(f.as_str(), "true" | "1") != used,
                "label" => match f.split_once('=') {
                    Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                    None => v.labels.contains_key(f.as_str()),
                },
                _ => false,
            })
        });
        if keep {
            out.push(volume_json(&api.mgr, &v));
        }
    }
    Ok(Json(json!({ "Volumes": out, "Warnings": [] })))
}

pub async fn inspect(
    axum::extract::State(api): St,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let v = api.mgr.volumes.get(&name).map_err(|e| err(e.into()))?;
    Ok(Json(volume_json(&api.mgr, &v)))
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveQuery {
    force: Option<String>,
}

pub async fn remove(
    axum::extract::State(api): St,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    api.mgr
        .volume_remove(&name, truthy(&q.force))
        .map_err(err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(axum::extract::State(api): St) -> Json<Value> {
    let (deleted, bytes) = api.mgr.volume_prune();
    Json(json!({ "VolumesDeleted": deleted, "SpaceReclaimed": bytes }))
}
