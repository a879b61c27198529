//! `/images/…`: list, load, inspect, history, tag, remove (409 while a container uses it).

use super::{truthy, St};
use crate::engine::api::extract::Query;
use crate::engine::api::{time, ApiError};
use crate::engine::store::{Image, StoreError};
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Write;

fn store_err(e: StoreError, name: &str) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::not_found(format!("No such image: {name}")),
        other => ApiError::internal(other.to_string()),
    }
}

fn created(i: &Image) -> i64 {
    i.created
        .as_deref()
        .and_then(time::parse_rfc3339)
        .unwrap_or(0)
}

fn size(i: &Image) -> u64 {
    i.layers.iter().map(|l| l.size).sum()
}

pub async fn list(axum::extract::State(api): St) -> Result<Json<Vec<Value>>, ApiError> {
    let images = api
        .mgr
        .store
        .list()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let containers = api.mgr.list();
    Ok(Json(
        images
            .iter()
            .map(|i| {
                let id = i.id.to_string();
                let used = containers.iter().filter(|c| c.image_id == id).count();
                json!({
                    "Id": id,
                    "ParentId": "",
                    "RepoTags": i.names,
                    "RepoDigests": i.repo_digests,
                    "Created": created(i),
                    "Size": size(i),
                    "SharedSize": -1,
                    "VirtualSize": size(i),
                    "Labels": {},
                    "Containers": used,
                })
            })
            .collect(),
    ))
}

/// Space kept free on the engine's disk by an upload.
const SPOOL_RESERVE: u64 = 64 << 20;

#[derive(Debug, Default, Deserialize)]
pub struct LoadQuery {
    quiet: Option<String>,
}

/// `POST /images/load`: the body is a `docker save` or OCI-layout tar, spooled to the
/// engine's disk (413 beyond half its free space), then loaded and verified by the store.
pub async fn load(
    axum::extract::State(api): St,
    Query(q): Query<LoadQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let _ = truthy(&q.quiet);
    let dir = api.spool.clone();
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::internal(format!("mkdir {}: {e}", dir.display())))?;
    let st = nix::sys::statvfs::statvfs(&dir)
        .map_err(|e| ApiError::internal(format!("statvfs {}: {e}", dir.display())))?;
    let free = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    let limit = free.saturating_sub(SPOOL_RESERVE) / 2;
    let path = dir.join(format!("load-{}.tar", crate::engine::manager::id::new_id()));
    let guard = Spool(path.clone());
    let mut file = std::fs::File::create(&path)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", path.display())))?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    })
    .await
    {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
        written = written.saturating_add(chunk.len() as u64);
        if written > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the image archive is larger than the {limit} bytes this disk has room for"
                ),
            ));
        }
        file.write_all(&chunk)
            .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    }
    drop(file);
    let mgr = api.mgr.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let r = mgr
            .store
            .load(&guard.0, &crate::engine::store::LoadOptions::default());
        drop(guard);
        r
    })
    .await
    .map_err(|e| ApiError::internal(format!("load task: {e}")))?
    .map_err(|e| ApiError::bad_request(format!("loading images: {e}")))?;
    let mut out = String::new();
    for l in loaded {
        let name = l.image.names.first().cloned();
        let id = l.image.id.to_string();
        api.mgr.emit_image(
            "load",
            name.as_deref().unwrap_or(&id),
            name.as_deref().unwrap_or(&id),
        );
        let line = match name {
            Some(n) => format!("Loaded image: {n}\n"),
            None => format!("Loaded image ID: {}\n", l.image.id),
        };
        out.push_str(&format!("{}\n", json!({ "stream": line })));
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

/// Removed when dropped.
struct Spool(std::path::PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `GET /images/{name}/json`, `…/history` and `…/get` (names may hold `/`).
pub async fn by_name(
    axum::extract::State(api): St,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    if let Some(name) = path.strip_suffix("/get") {
        return super::image_save::save_one(api.clone(), name).await;
    }
    inspect_or_history(&api, &path).map(IntoResponse::into_response)
}

fn inspect_or_history(api: &super::Api, path: &str) -> Result<Json<Value>, ApiError> {
    if let Some(name) = path.strip_suffix("/json") {
        let i = api
            .mgr
            .store
            .resolve(name)
            .map_err(|e| store_err(e, name))?;
        let c = api
            .mgr
            .store
            .image_config(&i)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(Json(json!({
            "Id": i.id.to_string(),
            "RepoTags": i.names,
            "RepoDigests": i.repo_digests,
            "Parent": "",
            "Comment": "",
            "Created": i.created.clone().unwrap_or_else(|| time::ZERO.to_string()),
            "Os": c.os,
            "Architecture": c.architecture,
            "Size": size(&i),
            "VirtualSize": size(&i),
            "Config": {
                "Cmd": c.cmd,
                "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
                "Env": c.env,
                "WorkingDir": c.working_dir.unwrap_or_default(),
                "User": c.user.unwrap_or_default(),
                "Labels": c.labels,
                "StopSignal": c.stop_signal,
                "Volumes": c.volumes.iter().map(|v| (v.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
                "ExposedPorts": c.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
            },
            "RootFS": {
                "Type": "layers",
                "Layers": i.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
            "GraphDriver": { "Name": "overlay", "Data": {} },
            "Metadata": { "LastTagTime": time::ZERO },
        })));
    }
    if let Some(name) = path.strip_suffix("/history") {
        let i = api
            .mgr
            .store
            .resolve(name)
            .map_err(|e| store_err(e, name))?;
        let rows: Vec<Value> = i
            .layers
            .iter()
            .rev()
            .map(|l| json!({ "Id": "<missing>", "Created": created(&i), "CreatedBy": "", "Tags": null, "Size": l.size, "Comment": "" }))
            .collect();
        return Ok(Json(json!(rows)));
    }
    Err(ApiError::not_found(format!(
        "page not found: /images/{path}"
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct TagQuery {
    repo: Option<String>,
    tag: Option<String>,
}

/// `POST /images/{name}/tag?repo=R&tag=T`, and `POST /images/{name}/push?tag=T` (names may
/// hold `/`, so one wildcard route serves both).
pub async fn tag(
    axum::extract::State(api): St,
    axum::extract::Path(path): axum::extract::Path<String>,
    Query(q): Query<TagQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(name) = path.strip_suffix("/push") {
        return super::registry::push(api.clone(), name, q.tag, &headers).await;
    }
    let Some(name) = path.strip_suffix("/tag") else {
        return Err(ApiError::not_found(format!(
            "page not found: /images/{path}"
        )));
    };
    let repo = q.repo.unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::bad_request("repository name must be given"));
    }
    let target = match q.tag.as_deref() {
        Some(t) if !t.is_empty() => format!("{repo}:{t}"),
        _ => repo,
    };
    api.mgr.store.tag(name, &target).map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(format!("No such image: {name}")),
        other => ApiError::bad_request(other.to_string()),
    })?;
    if let Ok(i) = api.mgr.store.resolve(&target) {
        let familiar = crate::engine::store::reference::normalize(&target).unwrap_or(target);
        api.mgr.emit_image("tag", &i.id.to_string(), &familiar);
    }
    Ok(StatusCode::CREATED.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveQuery {
    force: Option<String>,
}

/// `DELETE /images/{name}`: 409 while a container (running or not) was made from it.
pub async fn remove(
    axum::extract::State(api): St,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Json<Value>, ApiError> {
    let i = api
        .mgr
        .store
        .resolve(&name)
        .map_err(|e| store_err(e, &name))?;
    let id = i.id.to_string();
    let by_name_only =
        i.names.len() > 1 && i.names.iter().any(|n| n.ends_with(&name) || *n == name);
    if !by_name_only {
        if let Some(c) = api.mgr.list().into_iter().find(|c| c.image_id == id) {
            let verb = if c.state.status.is_running() {
                "cannot delete"
            } else {
                "unable to delete"
            };
            if !truthy(&q.force) || c.state.status.is_running() {
                return Err(ApiError::conflict(format!(
                    "conflict: {verb} {} (must be forced) - image is being used by {} container {}",
                    i.id.short(),
                    if c.state.status.is_running() {
                        "running"
                    } else {
                        "stopped"
                    },
                    &c.id[..12]
                )));
            }
        }
    }
    let mgr = api.mgr.clone();
    let removed = tokio::task::spawn_blocking(move || {
        let r = mgr.store.remove(&name)?;
        if r.deleted.is_some() {
            if let Err(e) = mgr.store.gc() {
                tracing::warn!(error = %e, "collecting the store after an image removal");
            }
        }
        Ok::<_, StoreError>(r)
    })
    .await
    .map_err(|e| ApiError::internal(format!("remove task: {e}")))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out: Vec<Value> = removed
        .untagged
        .iter()
        .map(|n| json!({ "Untagged": n }))
        .collect();
    for _ in &removed.untagged {
        api.mgr.emit_image("untag", &id, &id);
    }
    if removed.deleted.is_some() {
        out.push(json!({ "Deleted": id }));
        api.mgr.emit_image("delete", &id, &id);
    }
    Ok(Json(json!(out)))
}
