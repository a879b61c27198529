//! `/containers/{id}/archive` (`docker cp`): `HEAD` stats a path (Docker's
//! `X-Docker-Container-Path-Stat` header: base64 of the `PathStat` JSON), `GET` streams a tar of
//! it (with the same header), `PUT` extracts the request's tar into a directory. The work is
//! the archive helper's, chrooted into the container (`engine::manager::archive`).

use super::{err, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::{ApiError, ChannelBody};
use crate::engine::manager::archive::ArchiveVerb;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveQuery {
    path: Option<String>,
    no_overwrite_dir_non_dir: Option<String>,
    #[serde(rename = "copyUIDGID")]
    copy_uid_gid: Option<String>,
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_of(q: &ArchiveQuery) -> Result<String, ApiError> {
    q.path
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("path is required"))
}

fn stat_header(stat: &serde_json::Value) -> Result<HeaderValue, ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(stat.to_string());
    HeaderValue::from_str(&b64).map_err(|e| ApiError::internal(format!("stat header: {e}")))
}

pub async fn head(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let path = path_of(&q)?;
    let stat = api.mgr.archive_stat(&id, &path).await.map_err(err)?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert(STAT_HEADER, stat_header(&stat)?);
    Ok(r)
}

pub async fn get(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let path = path_of(&q)?;
    let stat = api.mgr.archive_stat(&id, &path).await.map_err(err)?;
    let mut child = api
        .mgr
        .archive(&id, ArchiveVerb::Get, &path)
        .await
        .map_err(err)?;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| ApiError::internal("archive helper without stdout"))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let mgr = api.mgr.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        // The client went away; kill_on_drop ends the helper.
                        return;
                    }
                }
            }
        }
        if let Ok(o) = child.wait_with_output().await {
            if let Err(e) = mgr.archive_result(&id, o.status, &o.stderr) {
                tracing::warn!(container = %id, path = %path, error = %e, "docker cp: archiving");
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(STAT_HEADER, stat_header(&stat)?);
    Ok(r)
}

pub async fn put(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_of(&q)?;
    let _ = &q.no_overwrite_dir_non_dir;
    let verb = ArchiveVerb::Put {
        keep_owner: super::truthy(&q.copy_uid_gid),
    };
    let mut child = api.mgr.archive(&id, verb, &path).await.map_err(err)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ApiError::internal("archive helper without stdin"))?;
    let mut stream = body.into_data_stream();
    let mut broken = None;
    while let Some(chunk) = std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    })
    .await
    {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
        if let Err(e) = stdin.write_all(&chunk).await {
            // The helper stopped reading: its exit says why.
            broken = Some(e);
            break;
        }
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| ApiError::internal(format!("archive helper: {e}")))?;
    api.mgr
        .archive_result(&id, out.status, &out.stderr)
        .map_err(err)?;
    if let Some(e) = broken {
        return Err(ApiError::internal(format!("archive helper: {e}")));
    }
    Ok(StatusCode::OK.into_response())
}
