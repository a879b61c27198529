//! `/images/…`: list the store, load a `docker save` or OCI-layout tar into it.

use super::{ApiError, Engine, State};
use axum::body::Body;
use axum::Json;
use serde_json::{json, Value};
use std::io::Write;

/// Where an uploaded tar is spooled before the store reads it (tmpfs, removed afterwards).
const SPOOL_DIR: &str = "/run/system-docker/tmp";

pub async fn list<E: Engine>(
    axum::extract::State(api): State<E>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let images = api.engine.images()?;
    Ok(Json(
        images
            .iter()
            .map(|i| {
                json!({
                    "Id": i.id,
                    "ParentId": "",
                    "RepoTags": i.names,
                    "RepoDigests": [],
                    "Created": i.created,
                    "Size": i.size,
                    "SharedSize": -1,
                    "VirtualSize": i.size,
                    "Labels": {},
                    "Containers": -1,
                })
            })
            .collect(),
    ))
}

/// Space the spool leaves free on its filesystem (the store unpacking the tar needs room too,
/// and on a tmpfs that room is the machine's memory).
const SPOOL_RESERVE: u64 = 64 << 20;

/// How large an upload the spool directory can take now: its filesystem's free space less
/// [`SPOOL_RESERVE`], halved (the layers unpacked from it need about as much again).
fn spool_limit(dir: &str) -> Result<u64, ApiError> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| ApiError::internal(format!("statvfs {dir}: {e}")))?;
    let free = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    Ok(free.saturating_sub(SPOOL_RESERVE) / 2)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        format!("the image archive is larger than the {limit} bytes this machine has room for"),
    )
}

/// `POST /images/load`: the body is the tar. Docker answers with JSON progress lines; the docker
/// CLI prints their `stream` fields, so one `Loaded image: NAME` line per image. A body larger
/// than the room there is (`Content-Length`, or counted as it arrives) gets 413.
pub async fn load<E: Engine>(
    axum::extract::State(api): State<E>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<String, ApiError> {
    std::fs::create_dir_all(SPOOL_DIR)
        .map_err(|e| ApiError::internal(format!("mkdir {SPOOL_DIR}: {e}")))?;
    let limit = spool_limit(SPOOL_DIR)?;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let spool = spool_in(SPOOL_DIR);
    let path = spool.0.clone();
    let result = async {
        let mut file = std::fs::File::create(&path)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", path.display())))?;
        let mut stream = body.into_data_stream();
        let mut written: u64 = 0;
        while let Some(chunk) = next_chunk(&mut stream).await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
            written = written.saturating_add(chunk.len() as u64);
            if written > limit {
                return Err(too_large(limit));
            }
            file.write_all(&chunk)
                .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
        }
        drop(file);
        api.engine.load(path.clone()).await
    }
    .await;
    let names = result?;
    Ok(names
        .iter()
        .map(|n| format!("{}\n", json!({ "stream": format!("Loaded image: {n}\n") })))
        .collect())
}

async fn next_chunk(
    s: &mut axum::body::BodyDataStream,
) -> Option<Result<axum::body::Bytes, axum::Error>> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut *s), cx))
        .await
}

/// A spool file path, removed when dropped.
struct Spool(std::path::PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_in(dir: &str) -> Spool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Spool(std::path::Path::new(dir).join(format!("load-{}-{n}.tar", std::process::id())))
}
