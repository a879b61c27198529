//! `/containers/{id}/exec` and `/exec/{id}/…`: create, start (hijacked on `Upgrade: tcp` as the
//! CLI asks, or a streamed body; frames without a tty, raw with one), resize, inspect.
//!
//! The stream ends only once the exec's exit code is known, so `GET /exec/{id}/json` right after
//! (how the CLI learns the code) sees it.

use super::pty::PtyMaster;
use super::{err, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::hijack::{pump, upgraded};
use crate::engine::api::stream::StreamKind;
use crate::engine::api::{multiplexed, switching_protocols, wants_upgrade, ApiError, ChannelBody};
use crate::engine::manager::{ExecConfig, ExecIo};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a finished stream waits for the exit code before it closes anyway.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    cmd: Vec<String>,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    env: Vec<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    attach_stdin: bool,
    #[serde(default)]
    attach_stdout: bool,
    #[serde(default)]
    attach_stderr: bool,
    #[serde(default)]
    privileged: bool,
    #[serde(default)]
    detach_keys: Option<String>,
    #[serde(default)]
    console_size: Option<Vec<u16>>,
}

pub async fn create(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    if b.privileged {
        return Err(ApiError::bad_request(
            "privileged exec is not supported: the exec gets its container's privileges",
        ));
    }
    let _ = (&b.detach_keys, &b.console_size);
    let exec_id = api
        .mgr
        .exec_create(
            &id,
            ExecConfig {
                cmd: b.cmd,
                env: b.env,
                user: b.user.filter(|u| !u.is_empty()),
                working_dir: b.working_dir.filter(|w| !w.is_empty()),
                tty: b.tty,
                stdin: b.attach_stdin,
                stdout: b.attach_stdout,
                stderr: b.attach_stderr,
            },
        )
        .map_err(err)?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartBody {
    #[serde(default)]
    detach: bool,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    console_size: Option<Vec<u16>>,
}

pub async fn start(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let on_upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let body = axum::body::to_bytes(req.into_body(), 1 << 16)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let opts: StartBody = if body.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?
    };
    let info = api.mgr.exec_inspect(&id).map_err(err)?;
    let _ = opts.tty;
    let size = match opts.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some((*h, *w)),
        _ => None,
    };
    let started = api.mgr.exec_start(&id, size).await.map_err(err)?;
    let exit = started.exit;
    let cfg = info.config;
    match started.io {
        ExecIo::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let detach = opts.detach;
            let stdin = if detach { None } else { stdin };
            let (tx, response) = match on_upgrade {
                Some(u) if !detach => upgraded(u, stdin),
                _ => multiplexed(),
            };
            let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout);
            let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr);
            tokio::spawn(async move {
                let a = pump(
                    stdout,
                    StreamKind::Stdout,
                    cfg.stdout && !detach,
                    tx.clone(),
                );
                let b = pump(
                    stderr,
                    StreamKind::Stderr,
                    cfg.stderr && !detach,
                    tx.clone(),
                );
                tokio::join!(a, b);
                wait_exit(exit).await;
                drop(tx);
            });
            if detach {
                return Ok(StatusCode::OK.into_response());
            }
            Ok(response)
        }
        ExecIo::Tty { master } => {
            let pty = PtyMaster::new(master)
                .map_err(|e| ApiError::internal(format!("exec: the terminal: {e}")))?;
            if opts.detach {
                tokio::spawn(async move {
                    let mut pty = pty;
                    let mut sink = tokio::io::sink();
                    let _ = tokio::io::copy(&mut pty, &mut sink).await;
                });
                return Ok(StatusCode::OK.into_response());
            }
            Ok(raw(pty, on_upgrade, cfg.stdin, exit))
        }
    }
}

async fn wait_exit(mut exit: tokio::sync::watch::Receiver<Option<i32>>) {
    let _ = tokio::time::timeout(EXIT_WITHIN, exit.wait_for(|c| c.is_some())).await;
}

/// A tty exec's stream: raw bytes both ways on an upgraded connection, or the output alone as
/// a streamed body.
fn raw(
    pty: PtyMaster,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    stdin: bool,
    exit: tokio::sync::watch::Receiver<Option<i32>>,
) -> Response {
    let content_type = HeaderValue::from_static("application/vnd.docker.raw-stream");
    let (mut from_pty, mut to_pty) = tokio::io::split(pty);
    let Some(on_upgrade) = on_upgrade else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match from_pty.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
            wait_exit(exit).await;
        });
        let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
        r.headers_mut().insert(header::CONTENT_TYPE, content_type);
        return r;
    };
    tokio::spawn(async move {
        let conn = match on_upgrade.await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "exec: connection upgrade failed");
                return;
            }
        };
        let (mut from_client, mut to_client) = tokio::io::split(hyper_util::rt::TokioIo::new(conn));
        let input = stdin.then(|| {
            tokio::spawn(async move {
                // Ends at the client's EOF; the session goes on (its output still comes).
                let _ = tokio::io::copy(&mut from_client, &mut to_pty).await;
            })
        });
        let _ = tokio::io::copy(&mut from_pty, &mut to_client).await;
        wait_exit(exit).await;
        let _ = to_client.shutdown().await;
        if let Some(i) = input {
            i.abort();
        }
    });
    switching_protocols(content_type)
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
    let (Some(h), Some(w)) = (q.h, q.w) else {
        return Err(ApiError::bad_request("resize needs h and w"));
    };
    api.mgr.exec_resize(&id, h, w).map_err(err)?;
    Ok(StatusCode::CREATED.into_response())
}

pub async fn inspect(
    axum::extract::State(api): St,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = api.mgr.exec_inspect(&id).map_err(err)?;
    Ok(Json(json!({
        "ID": e.id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": e.config.tty,
            "entrypoint": e.config.cmd.first(),
            "arguments": e.config.cmd.get(1..).unwrap_or_default(),
            "privileged": false,
            "user": e.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": e.config.stdin,
        "OpenStderr": e.config.stderr,
        "OpenStdout": e.config.stdout,
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": "",
        "Pid": e.pid,
    })))
}
