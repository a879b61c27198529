//! Raw HTTP/1.1 request bytes against the control API's router (the routes PID 1 serves on
//! `/var/run/system-docker.sock`) with a fake engine behind it, as the unit tests do
//! (`os/src/engine/api/tests.rs`), on a current-thread tokio runtime.
//!
//! An input is up to four pipelined requests, each parsed with `httparse` (hyper's parser: what
//! it refuses never reaches the router) with a body of its `Content-Length`; `{exec}` in a path
//! is replaced by the id of the last exec created, so `create → start → inspect` is reachable.
//! Asserted: no panic; every status is one the API documents (the fake engine never fails, so no
//! 5xx); an error carries Docker's `{"message": …}` (but for HEAD, which has no body); every
//! body ends (streams are read on a paused clock, so `logs?follow=1` costs no real time; it
//! alone may go on until the client leaves).
//!
//! `POST /images/load` spools the body under `/run`: as root the target gets a tmpfs of its own
//! there (a private mount namespace); as another user it leaves that route out.

#![no_main]

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use os::engine::api::{
    router, strip_version, Api, ApiError, ContainerInfo, Engine, ExecProcess, ExecSpec, ImageInfo,
    RunState,
};
use os_fuzz::sandbox;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;
use tower::ServiceExt;

/// Statuses the API answers with: 101 (exec on an upgraded connection), 200, 204, 304 (already
/// started or stopped), and Docker's 400, 404, 409, 413 (a load larger than the room there is)
/// and 503 (too many execs waiting to start).
const STATUSES: &[u16] = &[101, 200, 204, 304, 400, 404, 409, 413, 503];

/// At most this many requests per input.
const MAX_REQUESTS: usize = 4;

struct Setup {
    log_dir: PathBuf,
    /// `/run` is ours (a tmpfs in a mount namespace of our own).
    own_run: bool,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let own_run = sandbox::private_mounts();
    let log_dir = if own_run {
        sandbox::tmpfs(Path::new("/run"), "64m");
        PathBuf::from("/run/fuzz-logs")
    } else {
        std::env::temp_dir().join("os-fuzz-api-logs")
    };
    std::fs::create_dir_all(&log_dir).expect("log dir");
    std::fs::write(log_dir.join("syslog.log"), "one\ntwo\nthree\n").expect("log");
    Setup { log_dir, own_run }
});

struct Fake {
    containers: Vec<ContainerInfo>,
}

fn info(name: &str, state: RunState, dir: &Path) -> ContainerInfo {
    let now = std::time::SystemTime::now();
    ContainerInfo {
        name: name.into(),
        image: format!("rancher/os-{name}:v1"),
        image_id: "sha256:abc".into(),
        state,
        pid: (state == RunState::Running).then_some(42),
        exit_code: (state != RunState::Running).then_some(1),
        restart_count: 1,
        created: 1_700_000_000,
        started_at: Some(now),
        finished_at: (state != RunState::Running).then_some(now),
        cmd: vec!["/sbin/syslogd".into(), "-n".into()],
        env: vec!["PATH=/bin".into()],
        labels: [("io.rancher.os.scope".to_string(), "system".to_string())].into(),
        privileged: false,
        network_mode: "default".into(),
        pid_mode: String::new(),
        restart_policy: "always".into(),
        error: None,
        log_path: dir.join(format!("{name}.log")),
    }
}

impl Fake {
    fn new(log_dir: &Path) -> Self {
        Fake {
            containers: vec![
                info("syslog", RunState::Running, log_dir),
                info("ntp", RunState::Exited, log_dir),
                info("acpid", RunState::Restarting, log_dir),
                info("udev", RunState::Created, log_dir),
            ],
        }
    }
}

impl Engine for Fake {
    fn containers(&self) -> Vec<ContainerInfo> {
        self.containers.clone()
    }
    fn images(&self) -> Result<Vec<ImageInfo>, ApiError> {
        Ok(vec![ImageInfo {
            id: "sha256:abc".into(),
            names: vec!["rancher/os-syslog:v1".into()],
            created: 1,
            size: 1000,
        }])
    }
    async fn load(&self, path: PathBuf) -> Result<Vec<String>, ApiError> {
        std::fs::read(&path).expect("the spooled upload is there");
        Ok(vec!["x:latest".into()])
    }
    async fn start(&self, _: &str) -> Result<(), ApiError> {
        Ok(())
    }
    async fn stop(&self, _: &str, _: Option<u64>) -> Result<(), ApiError> {
        Ok(())
    }
    async fn restart(&self, _: &str, _: Option<u64>) -> Result<(), ApiError> {
        Ok(())
    }
    async fn up(&self, name: &str) -> Result<(), ApiError> {
        if name == "nope" {
            return Err(ApiError::not_found("no service nope"));
        }
        Ok(())
    }
    async fn exec(&self, _: &str, _: ExecSpec) -> Result<ExecProcess, ApiError> {
        let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
        let (err_r, err_w) = nix::unistd::pipe().expect("pipe");
        std::fs::File::from(out_w)
            .write_all(b"hello\n")
            .expect("write");
        std::fs::File::from(err_w)
            .write_all(b"oops\n")
            .expect("write");
        let (_tx, exit) = tokio::sync::watch::channel(Some(3));
        Ok(ExecProcess {
            pid: 99,
            stdin: None,
            stdout: out_r,
            stderr: err_r,
            exit,
        })
    }
}

/// The next request of `data` and the bytes after it; `None` for what hyper would refuse.
fn next_request<'a>(data: &'a [u8], exec_id: &str) -> Option<(Request<Body>, &'a [u8])> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = req.parse(data).ok()? else {
        return None;
    };
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let path = req.path?.replace("{exec}", exec_id);
    let mut builder = Request::builder().method(method).uri(path);
    let mut length = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
        builder = builder.header(h.name, h.value);
    }
    let rest = &data[head..];
    let body = rest.get(..length)?;
    let request = builder.body(Body::from(body.to_vec())).ok()?;
    Some((request, &rest[length..]))
}

fuzz_target!(|data: &[u8]| {
    let setup = &*SETUP;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let api = Api::new(Fake::new(&setup.log_dir));
        let mut rest = data;
        let mut exec_id = String::new();
        for _ in 0..MAX_REQUESTS {
            let Some((req, more)) = next_request(rest, &exec_id) else {
                return;
            };
            rest = more;
            let req = strip_version(req);
            if !setup.own_run && req.uri().path().contains("images/load") {
                continue;
            }
            let what = format!("{} {}", req.method(), req.uri());
            // A response to HEAD has no body (axum drops it, as HTTP says).
            let head = req.method() == Method::HEAD;
            // `logs?follow=1` of a running container streams until the client goes away.
            let may_follow = req.uri().query().is_some_and(|q| q.contains("follow"));
            let resp = router(api.clone()).oneshot(req).await.expect("infallible");
            let status = resp.status().as_u16();
            let read = axum::body::to_bytes(resp.into_body(), 1 << 20);
            let body = match tokio::time::timeout(Duration::from_secs(5), read).await {
                Ok(body) => body.unwrap_or_else(|e| panic!("{what}: reading the body: {e}")),
                Err(_) if may_follow && status == 200 => continue,
                Err(_) => panic!("{what}: the body never ends"),
            };
            assert!(
                STATUSES.contains(&status),
                "{what}: status {status}: {}",
                String::from_utf8_lossy(&body)
            );
            if status >= 400 && !head {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                    panic!(
                        "{what}: {status} without Docker's JSON error ({e}): {:?}",
                        String::from_utf8_lossy(&body)
                    )
                });
                assert!(v["message"].is_string(), "{what}: {status}: {v}");
            }
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(id) = v["Id"].as_str() {
                    exec_id = id.to_string();
                }
            }
        }
    });
});
