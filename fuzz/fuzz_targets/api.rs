//! Raw HTTP/1.1 request bytes against the Docker Engine API both engines serve (the system
//! engine on `/var/run/system-docker.sock`, the user engine on `/var/run/docker.sock`:
//! `os::dockerd::api`), with a real container manager behind it on a directory of its own (its
//! image store empty, so nothing is ever started), on a current-thread tokio runtime.
//!
//! An input is up to four pipelined requests, each parsed with `httparse` (hyper's parser: what
//! it refuses never reaches the router) with a body of its `Content-Length`; `{exec}` in a path
//! is replaced by the last `Id` an answer held. Asserted: no panic; every status is one the API
//! documents (no 5xx: nothing here can fail inside); an error carries Docker's
//! `{"message": …}` (but for HEAD, which has no body); every body ends (streams are read on a
//! paused clock; `logs?follow`, `events` and `stats` alone may go on until the client leaves).
//! Routes that reach a registry (`/images/create`, `…/push`, `/auth`) are left out: they would
//! leave the machine.
//!
//! Uploads (`/images/load`, `docker cp`) are spooled under the manager's root: as root the
//! target gets a tmpfs of its own on `/run` (a private mount namespace) for it; as another user
//! it leaves `/images/load` out.

#![no_main]

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use os::dockerd::api::{app, Api};
use os::engine::manager::{Config, Manager};
use os_fuzz::sandbox;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tower::ServiceExt;

/// Statuses the API answers with: 101 (an upgraded connection), 200, 201, 204, 304 (already
/// started or stopped), and Docker's 400, 404, 409, 413 (a load larger than the room there is).
const STATUSES: &[u16] = &[101, 200, 201, 204, 304, 400, 404, 409, 413];

/// At most this many requests per input.
const MAX_REQUESTS: usize = 4;

struct Setup {
    root: PathBuf,
    /// `/run` is ours (a tmpfs in a mount namespace of our own).
    own_run: bool,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let own_run = sandbox::private_mounts();
    let root = if own_run {
        sandbox::tmpfs(Path::new("/run"), "64m");
        PathBuf::from("/run/fuzz-engine")
    } else {
        std::env::temp_dir().join("os-fuzz-api-engine")
    };
    std::fs::create_dir_all(&root).expect("engine root");
    Setup { root, own_run }
});

/// One engine for the process (the manager keeps no state a request can grow without bound:
/// nothing can be created without an image).
fn api(setup: &Setup) -> Arc<Api> {
    let mgr = Manager::open(Config::new(
        setup.root.join("root"),
        setup.root.join("run"),
        "/fuzz".into(),
        "/bin/false".into(),
    ))
    .expect("manager");
    Api::new(mgr, setup.root.join("tmp"), Default::default(), None)
}

/// Whether a path reaches a registry (nothing here may leave the machine).
fn leaves_the_machine(path: &str) -> bool {
    path.contains("/images/create") || path.ends_with("/push") || path.starts_with("/auth")
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
        let api = api(setup);
        let mut rest = data;
        let mut exec_id = String::new();
        for _ in 0..MAX_REQUESTS {
            let Some((req, more)) = next_request(rest, &exec_id) else {
                return;
            };
            rest = more;
            let req = os::engine::api::strip_version(req);
            let path = req.uri().path().to_string();
            if leaves_the_machine(&path) || (!setup.own_run && path.contains("images/load")) {
                continue;
            }
            let what = format!("{} {}", req.method(), req.uri());
            // A response to HEAD has no body (axum drops it, as HTTP says).
            let head = req.method() == Method::HEAD;
            // Streams that go on until the client goes away.
            let may_follow = req.uri().query().is_some_and(|q| q.contains("follow"))
                || path.ends_with("/events")
                || path.ends_with("/stats");
            let resp = app(api.clone()).oneshot(req).await.expect("infallible");
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
