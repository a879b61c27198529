//! `exec`: create (record what to run), start (run it in the container and stream its output,
//! multiplexed), inspect (running? exit code?). The process itself is spawned by the engine
//! (in PID 1, the supervisor loop, which also reaps it and reports its exit code).

use super::engine::find;
use super::extract::Path;
use super::stream::{frames, StreamKind};
use super::{multiplexed, ApiError, Engine, ExecSpec, RunState, State};
use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How many execs are remembered before finished ones are forgotten.
const MAX_EXECS: usize = 256;
/// An exec created and never started is forgotten after this (the CLI starts its own at once).
const START_WITHIN: Duration = Duration::from_secs(300);

/// One exec, from create to its end.
pub struct ExecRecord {
    container: String,
    spec: ExecSpec,
    attach_stdout: bool,
    attach_stderr: bool,
    pid: Option<i32>,
    /// Set once started; holds the exit code when it ends.
    exit: Option<tokio::sync::watch::Receiver<Option<i32>>>,
    created: std::time::Instant,
}

impl ExecRecord {
    /// Worth keeping: running, or created recently and not started yet.
    fn live(&self) -> bool {
        match &self.exit {
            Some(e) => e.borrow().is_none(),
            None => self.created.elapsed() < START_WITHIN,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBody {
    cmd: Option<Vec<String>>,
    #[serde(default)]
    attach_stdin: bool,
    #[serde(default)]
    attach_stdout: bool,
    #[serde(default)]
    attach_stderr: bool,
    #[serde(default)]
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    #[serde(default)]
    tty: bool,
}

fn new_id() -> String {
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))
}

pub async fn create<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let cmd = b.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if b.tty {
        return Err(ApiError::bad_request("exec with a tty is not supported"));
    }
    let all = api.engine.containers();
    let c = find(&all, &id)?;
    if c.state != RunState::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.name
        )));
    }
    let exec_id = new_id();
    let record = ExecRecord {
        container: c.name.clone(),
        spec: ExecSpec {
            cmd,
            env: b.env.unwrap_or_default(),
            user: b.user.filter(|u| !u.is_empty()),
            working_dir: b.working_dir.filter(|w| !w.is_empty()),
            stdin: b.attach_stdin,
        },
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        pid: None,
        exit: None,
        created: std::time::Instant::now(),
    };
    let mut execs = lock(&api.execs);
    if execs.len() >= MAX_EXECS {
        // Forget finished execs (Docker too forgets them, when their container goes) and
        // those never started in time.
        execs.retain(|_, r| r.live());
    }
    if execs.len() >= MAX_EXECS {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_EXECS} execs are running or waiting to start; try again later"),
        ));
    }
    execs.insert(exec_id.clone(), record);
    Ok(Json(json!({ "Id": exec_id })))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it cannot leave the map half-written (single inserts): go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartBody {
    #[serde(default)]
    detach: bool,
    #[serde(default)]
    tty: bool,
}

/// `POST /exec/{id}/start`: run it and stream stdout and stderr as they come; the stream ends
/// after the process has ended and its exit code is known, so a client's `GET /exec/{id}/json`
/// right after always sees it. A client that asks to upgrade the connection (`Upgrade: tcp`, as
/// the docker CLI does) gets `101 Switching Protocols` and the frames on the raw connection;
/// others get them as a streamed `200` body.
pub async fn start<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let on_upgrade = super::wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let body = axum::body::to_bytes(req.into_body(), 1 << 16)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let opts: StartBody = if body.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?
    };
    if opts.tty {
        return Err(ApiError::bad_request("exec with a tty is not supported"));
    }
    let (container, spec, out, err) = {
        let execs = lock(&api.execs);
        let r = execs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
        if r.exit.is_some() {
            return Err(ApiError::conflict(format!(
                "Exec {id} has already been started"
            )));
        }
        (
            r.container.clone(),
            r.spec.clone(),
            r.attach_stdout,
            r.attach_stderr,
        )
    };
    let proc = api.engine.exec(&container, spec).await?;
    let exit = proc.exit.clone();
    if let Some(r) = lock(&api.execs).get_mut(&id) {
        r.pid = Some(proc.pid);
        r.exit = Some(exit.clone());
    }
    // Stdin travels only on an upgraded connection; otherwise the command reads EOF.
    let stdin = if opts.detach { None } else { proc.stdin };
    let (tx, response) = match on_upgrade {
        Some(on_upgrade) => upgraded(on_upgrade, stdin),
        None => multiplexed(),
    };
    let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(proc.stdout);
    let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(proc.stderr);
    tokio::spawn(async move {
        let detach = opts.detach;
        let a = pump(stdout, StreamKind::Stdout, out && !detach, tx.clone());
        let b = pump(stderr, StreamKind::Stderr, err && !detach, tx.clone());
        tokio::join!(a, b);
        // The pipes close when the process ends; the exit code comes with the reap, just after.
        let mut exit = exit;
        let _ = tokio::time::timeout(Duration::from_secs(10), exit.wait_for(|c| c.is_some())).await;
        drop(tx);
    });
    Ok(response)
}

/// `101 Switching Protocols`, and a task that writes what the channel carries to the upgraded
/// connection, then closes it (the client reads to EOF); what the client sends on it goes to
/// the command's stdin, which is closed when the client half-closes.
pub(crate) fn upgraded(
    on_upgrade: hyper::upgrade::OnUpgrade,
    stdin: Option<std::os::fd::OwnedFd>,
) -> (tokio::sync::mpsc::Sender<Bytes>, Response) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let conn = match on_upgrade.await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "exec: connection upgrade failed");
                return;
            }
        };
        let (mut from_client, mut to_client) = tokio::io::split(hyper_util::rt::TokioIo::new(conn));
        if let Some(fd) = stdin {
            tokio::spawn(async move {
                let Ok(mut pipe) = tokio::net::unix::pipe::Sender::from_owned_fd(fd) else {
                    tracing::warn!("exec: stdin pipe could not be registered");
                    return;
                };
                // Ends at the client's EOF (or the command's exit); dropping the pipe closes it.
                let _ = tokio::io::copy(&mut from_client, &mut pipe).await;
            });
        }
        while let Some(chunk) = rx.recv().await {
            if to_client.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to_client.shutdown().await;
    });
    let r = super::switching_protocols(HeaderValue::from_static(
        "application/vnd.docker.multiplexed-stream",
    ));
    (tx, r)
}

/// Copy one pipe into frames (or drain it unseen when not attached, so the process never blocks
/// on a full pipe).
pub(crate) async fn pump(
    pipe: std::io::Result<tokio::net::unix::pipe::Receiver>,
    kind: StreamKind,
    attached: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let Ok(mut pipe) = pipe else {
        tracing::warn!(stream = ?kind, "exec pipe could not be registered");
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut client_gone = false;
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) if attached && !client_gone => {
                for f in frames(kind, &buf[..n]) {
                    if tx.send(Bytes::from(f)).await.is_err() {
                        client_gone = true;
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(stream = ?kind, error = %e, "reading exec output");
                return;
            }
        }
    }
}

pub async fn inspect<E: Engine>(
    axum::extract::State(api): State<E>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let execs = lock(&api.execs);
    let r = execs
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    let code = r.exit.as_ref().and_then(|e| *e.borrow());
    let running = r.exit.is_some() && code.is_none();
    Ok(Json(json!({
        "ID": id,
        "Running": running,
        "ExitCode": code,
        "Pid": r.pid.unwrap_or(0),
        "ContainerID": super::engine::container_id(&r.container),
        "ProcessConfig": {
            "entrypoint": r.spec.cmd.first(),
            "arguments": r.spec.cmd.get(1..).unwrap_or_default(),
            "user": r.spec.user.clone().unwrap_or_default(),
            "tty": false,
        },
        "OpenStdin": false,
        "OpenStdout": r.attach_stdout,
        "OpenStderr": r.attach_stderr,
    })))
}
