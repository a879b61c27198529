//! `docker save` (`GET /images/get?names=…` and `GET /images/{name}/get`): the store's export
//! (`engine::store::save`), streamed as it is written, and `docker image prune`
//! (`POST /images/prune`): dangling images no container uses, or with `dangling=false` every
//! image no container uses, then a collection of what no image holds any more.

use super::St;
use crate::engine::api::{ApiError, ChannelBody};
use crate::engine::store::save::SaveItem;
use crate::engine::store::StoreError;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// A `Write` that hands what is written to the response, chunk by chunk (from a blocking
/// task; a client that went away makes the next write fail, which ends the save).
struct ChannelWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The images named, resolved before anything is sent (an unknown one is a 404, as Docker).
fn items(
    mgr: &crate::engine::manager::Manager,
    names: &[String],
) -> Result<Vec<SaveItem>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let mut out: Vec<SaveItem> = Vec::new();
    for n in names {
        let image = mgr.store.resolve(n).map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::not_found(format!("No such image: {n}")),
            other => ApiError::internal(other.to_string()),
        })?;
        // By name: that name; by ID: every name it has.
        let named: Vec<String> = match crate::engine::store::reference::normalize(n) {
            Ok(full) if image.names.contains(&full) => vec![full],
            _ => image.names.clone(),
        };
        match out.iter_mut().find(|i| i.image.id == image.id) {
            Some(i) => {
                for x in named {
                    if !i.names.contains(&x) {
                        i.names.push(x);
                    }
                }
            }
            None => out.push(SaveItem {
                image,
                names: named,
            }),
        }
    }
    Ok(out)
}

fn stream(mgr: Arc<crate::engine::manager::Manager>, items: Vec<SaveItem>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let w = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter(tx));
        if let Err(e) = mgr.store.save(&items, w) {
            // The client sees a truncated tar (its load fails); the reason is logged here.
            tracing::warn!(error = %e, "docker save");
        }
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    r
}

/// `GET /images/get?names=a&names=b`.
pub async fn save_many(
    axum::extract::State(api): St,
    q: Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, ApiError> {
    let axum::extract::Query(pairs) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let names: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    let items = items(&api.mgr, &names)?;
    Ok(stream(api.mgr.clone(), items))
}

/// `GET /images/{name}/get`.
pub async fn save_one(api: Arc<super::Api>, name: &str) -> Result<Response, ApiError> {
    let items = items(&api.mgr, &[name.to_string()])?;
    Ok(stream(api.mgr.clone(), items))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PruneQuery {
    filters: Option<String>,
}

/// Bytes of the store's blobs (what a prune gives back is the difference).
fn blob_bytes(mgr: &crate::engine::manager::Manager) -> u64 {
    std::fs::read_dir(mgr.store.root().join("blobs").join("sha256"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub async fn prune(
    axum::extract::State(api): St,
    crate::engine::api::extract::Query(q): crate::engine::api::extract::Query<PruneQuery>,
) -> Result<Json<Value>, ApiError> {
    let filters = super::filters::parse(q.filters.as_deref(), &["dangling"])?;
    let dangling_only = !filters
        .get("dangling")
        .is_some_and(|v| v.iter().any(|x| matches!(x.as_str(), "false" | "0")));
    let mgr = api.mgr.clone();
    let (deleted, reclaimed) = tokio::task::spawn_blocking(move || {
        let used: std::collections::HashSet<String> =
            mgr.list().into_iter().map(|c| c.image_id).collect();
        let before = blob_bytes(&mgr);
        let mut deleted: Vec<Value> = Vec::new();
        for img in mgr.store.list().unwrap_or_default() {
            let id = img.id.to_string();
            if used.contains(&id) || (dangling_only && !img.names.is_empty()) {
                continue;
            }
            // By ID: every name goes, then the image.
            match mgr.store.remove(&id) {
                Ok(r) => {
                    deleted.extend(r.untagged.iter().map(|u| json!({ "Untagged": u })));
                    if r.deleted.is_some() {
                        deleted.push(json!({ "Deleted": id }));
                    }
                }
                Err(e) => tracing::warn!(image = %id, error = %e, "image prune"),
            }
        }
        if !deleted.is_empty() {
            if let Err(e) = mgr.store.gc() {
                tracing::warn!(error = %e, "image prune: collecting");
            }
        }
        (deleted, before.saturating_sub(blob_bytes(&mgr)))
    })
    .await
    .map_err(|e| ApiError::internal(format!("prune task: {e}")))?;
    Ok(Json(
        json!({ "ImagesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}
