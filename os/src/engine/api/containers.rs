//! `/containers/…`: list, inspect, logs, start, stop, restart, in Docker's JSON. The engine's
//! [`ContainerInfo`] is turned into Docker's shapes here and only here.

use super::engine::{container_id, find};
use super::extract::{Path, Query};
use super::stream::{frames, StreamKind};
use super::time::{human, rfc3339, since};
use super::{multiplexed, ApiError, ContainerInfo, Engine, RunState, State};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

/// Docker's booleans in queries: `1`, `true`, `True`.
fn truthy(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| matches!(v, "1" | "true" | "True" | "TRUE"))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    all: Option<String>,
}

/// `ps`'s STATUS column: `Up 3 minutes`, `Exited (0) 5 seconds ago`, `Restarting (1) …`.
pub fn status_text(c: &ContainerInfo) -> String {
    match c.state {
        RunState::Running => format!("Up {}", human(since(c.started_at))),
        RunState::Restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(0),
            human(since(c.finished_at))
        ),
        RunState::Created => "Created".into(),
        RunState::Exited | RunState::Dead => match c.finished_at {
            Some(_) => format!(
                "Exited ({}) {} ago",
                c.exit_code.unwrap_or(0),
                human(since(c.finished_at))
            ),
            None => "Exited".into(),
        },
    }
}

pub fn summary(c: &ContainerInfo) -> Value {
    json!({
        "Id": container_id(&c.name),
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": c.cmd.join(" "),
        "Created": c.created,
        "Ports": [],
        "Labels": c.labels,
        "State": c.state.as_str(),
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": c.network_mode },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
}

pub fn inspect_json(c: &ContainerInfo) -> Value {
    let (path, args) = match c.cmd.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => (String::new(), Vec::new()),
    };
    json!({
        "Id": container_id(&c.name),
        "Created": rfc3339(Some(std::time::UNIX_EPOCH + Duration::from_secs(c.created.max(0) as u64))),
        "Path": path,
        "Args": args,
        "State": {
            "Status": c.state.as_str(),
            "Running": c.state == RunState::Running,
            "Paused": false,
            "Restarting": c.state == RunState::Restarting,
            "OOMKilled": false,
            "Dead": c.state == RunState::Dead,
            "Pid": c.pid.unwrap_or(0),
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.error.clone().unwrap_or_default(),
            "StartedAt": rfc3339(c.started_at),
            "FinishedAt": rfc3339(c.finished_at),
        },
        "Image": c.image_id,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay",
        "GraphDriver": { "Name": "overlay", "Data": Value::Null },
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": c.log_path,
        "Config": {
            "Hostname": "",
            "Image": c.image,
            "Cmd": c.cmd,
            "Entrypoint": Value::Null,
            "Env": c.env,
            "Labels": c.labels,
            "Tty": false,
            "OpenStdin": false,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "WorkingDir": "",
        },
        "HostConfig": {
            "Privileged": c.privileged,
            "NetworkMode": c.network_mode,
            "PidMode": c.pid_mode,
            "RestartPolicy": { "Name": c.restart_policy, "MaximumRetryCount": 0 },
            "LogConfig": { "Type": "json-file", "Config": {} },
        },
        "Mounts": [],
        "NetworkSettings": { "Networks": {} },
    })
}

pub async fn list<E: Engine>(
    axum::extract::State(api): State<E>,
    Query(q): Query<ListQuery>,
) -> Json<Vec<Value>> {
    let all = truthy(&q.all);
    Json(
        api.engine
            .containers()
            .iter()
            .filter(|c| all || c.state == RunState::Running)
            .map(summary)
            .collect(),
    )
}

pub async fn inspect<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = api.engine.containers();
    Ok(Json(inspect_json(find(&all, &id)?)))
}

#[derive(Debug, Deserialize)]
pub struct StopQuery {
    t: Option<String>,
}

/// The longest stop timeout accepted (a day): a longer one is a mistake or an attack, and a
/// bounded value keeps every deadline the supervisor computes from it representable.
pub const MAX_STOP_TIMEOUT: u64 = 86_400;

fn timeout(q: &StopQuery) -> Result<Option<u64>, ApiError> {
    q.t.as_deref()
        .map(|t| match t.parse::<u64>() {
            Ok(n) if n <= MAX_STOP_TIMEOUT => Ok(n),
            Ok(n) => Err(ApiError::bad_request(format!(
                "invalid value for t: {n} is more than {MAX_STOP_TIMEOUT} seconds"
            ))),
            Err(_) => Err(ApiError::bad_request(format!(
                "invalid value for t: {t:?} is not a whole number of seconds from 0 to \
                 {MAX_STOP_TIMEOUT}"
            ))),
        })
        .transpose()
}

pub async fn start<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let all = api.engine.containers();
    let c = find(&all, &id)?;
    if c.state == RunState::Running {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    api.engine.start(&c.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn stop<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Response, ApiError> {
    let t = timeout(&q)?;
    let all = api.engine.containers();
    let c = find(&all, &id)?;
    if !matches!(c.state, RunState::Running | RunState::Restarting) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    api.engine.stop(&c.name, t).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn restart<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Response, ApiError> {
    let t = timeout(&q)?;
    let all = api.engine.containers();
    let c = find(&all, &id)?;
    api.engine.restart(&c.name, t).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /rancheros/services/{name}/up`: (re)create the service from the configuration now in
/// force. The name need not be a container yet (a service just enabled).
pub async fn up<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    api.engine.up(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    stdout: Option<String>,
    stderr: Option<String>,
    follow: Option<String>,
    tail: Option<String>,
}

/// The last `n` lines of `text` (all of it for `None`).
pub fn tail_lines(text: &[u8], n: Option<usize>) -> &[u8] {
    let Some(n) = n else { return text };
    if n == 0 {
        return &text[text.len()..];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// `GET /containers/{id}/logs`: the service's log file (its stdout and stderr, which share one
/// file, so all of it is sent as stdout), multiplexed; with `follow`, new lines as they come
/// until the container stops or the client goes away.
pub async fn logs<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    if !truthy(&q.stdout) && !truthy(&q.stderr) {
        return Err(ApiError::bad_request("you must choose at least one stream"));
    }
    let tail = match q.tail.as_deref() {
        None | Some("all") | Some("") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?,
        ),
    };
    let all = api.engine.containers();
    let c = find(&all, &id)?.clone();
    let path = c.log_path.clone();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ApiError::internal(format!(
                "reading {}: {e}",
                path.display()
            )))
        }
    };
    let mut text = Vec::new();
    if let Some(f) = file.as_mut() {
        f.read_to_end(&mut text)
            .map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
    }
    let first: Vec<Bytes> = frames(StreamKind::Stdout, tail_lines(&text, tail))
        .into_iter()
        .map(Bytes::from)
        .collect();
    let (tx, response) = multiplexed();
    let follow = truthy(&q.follow);
    tokio::spawn(async move {
        for f in first {
            if tx.send(f).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        let mut offset = text.len() as u64;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let more = read_from(&path, &mut offset);
            for f in frames(StreamKind::Stdout, &more) {
                if tx.send(Bytes::from(f)).await.is_err() {
                    return;
                }
            }
            let running = api.engine.containers().iter().any(|x| {
                x.name == c.name && matches!(x.state, RunState::Running | RunState::Restarting)
            });
            if !running && more.is_empty() {
                return;
            }
        }
    });
    Ok(response)
}

/// What was appended to `path` since `offset` (empty on any error: the next poll tries again).
fn read_from(path: &std::path::Path, offset: &mut u64) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(mut f) = std::fs::File::open(path) else {
        return out;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < *offset {
        *offset = 0; // truncated or replaced: start over
    }
    if f.seek(SeekFrom::Start(*offset)).is_ok() && f.read_to_end(&mut out).is_ok() {
        *offset += out.len() as u64;
    }
    out
}
