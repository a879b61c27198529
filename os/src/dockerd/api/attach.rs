//! The stream routes: `attach` (hijacked: `101` on `Upgrade: tcp`, then the shim's stream
//! spliced to the client both ways: multiplexed frames without a tty, raw bytes with one) and
//! `logs` (the json-file log as frames, or raw with a tty).

use super::{err, truthy, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::stream::{frames, StreamKind};
use crate::engine::api::{ApiError, ChannelBody};
use crate::engine::manager::LogOptions;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde::Deserialize;

fn content_type(tty: bool) -> HeaderValue {
    HeaderValue::from_static(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachQuery {
    stream: Option<String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    logs: Option<String>,
    detach_keys: Option<String>,
}

pub async fn attach(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let rec = api.mgr.get(&id).map_err(err)?;
    let _ = &q.detach_keys;
    if truthy(&q.logs) && !truthy(&q.stream) {
        return Err(ApiError::bad_request(
            "attach with logs=1 alone is not supported; use GET /containers/{id}/logs",
        ));
    }
    let wants_upgrade = crate::engine::api::wants_upgrade(&req);
    let (stdin, stdout, stderr) = (truthy(&q.stdin), truthy(&q.stdout), truthy(&q.stderr));
    let conn = api
        .mgr
        .attach(&rec.id, stdin && wants_upgrade, stdout, stderr)
        .map_err(err)?;
    let tty = rec.config.tty;
    if wants_upgrade {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let client = match on_upgrade.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "attach: connection upgrade failed");
                    return;
                }
            };
            let mut client = hyper_util::rt::TokioIo::new(client);
            let mut shim = match conn.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "attach: no stream from the shim");
                    return;
                }
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut shim).await;
        });
        return Ok(crate::engine::api::switching_protocols(content_type(tty)));
    }
    // No upgrade: the output as a streamed body (stdin cannot travel this way).
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let Ok(mut shim) = conn.await else { return };
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match shim.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, content_type(tty));
    Ok(r)
}

#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    stdout: Option<String>,
    stderr: Option<String>,
    follow: Option<String>,
    since: Option<String>,
    until: Option<String>,
    timestamps: Option<String>,
    tail: Option<String>,
}

/// Unix seconds from Docker's `since`/`until` (`1733100000`, `1733100000.5`); 0 for none.
fn unix_seconds(v: &Option<String>, what: &str) -> Result<i64, ApiError> {
    match v.as_deref() {
        None | Some("") => Ok(0),
        Some(s) => s
            .split('.')
            .next()
            .and_then(|x| x.parse::<i64>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid value for {what}: {s:?}"))),
    }
}

pub async fn logs(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let rec = api.mgr.get(&id).map_err(err)?;
    let (out, errs) = (truthy(&q.stdout), truthy(&q.stderr));
    if !out && !errs {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.tail.as_deref() {
        None | Some("") | Some("all") => None,
        Some(t) => Some(
            t.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail value {t:?}")))?,
        ),
    };
    let opts = LogOptions {
        stdout: out,
        stderr: errs,
        since: unix_seconds(&q.since, "since")?,
        until: unix_seconds(&q.until, "until")?,
        tail,
        follow: truthy(&q.follow),
    };
    let stamps = truthy(&q.timestamps);
    let tty = rec.config.tty;
    let (ltx, mut lrx) = tokio::sync::mpsc::channel(64);
    api.mgr.logs(&rec.id, opts, ltx).await.map_err(err)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(l) = lrx.recv().await {
            let mut data = Vec::new();
            if stamps {
                data.extend_from_slice(l.time.as_bytes());
                data.push(b' ');
            }
            data.extend_from_slice(&l.data);
            let chunks = if tty {
                vec![data]
            } else {
                let kind = if l.stderr {
                    StreamKind::Stderr
                } else {
                    StreamKind::Stdout
                };
                frames(kind, &data)
            };
            for c in chunks {
                if tx.send(Bytes::from(c)).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, content_type(tty));
    Ok(r)
}
