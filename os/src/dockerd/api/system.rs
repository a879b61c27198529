//! `/_ping`, `/version`, `/info`.

use super::{St, API_VERSION, MIN_API_VERSION};
use crate::engine::manager::Lifecycle;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub async fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn arch() -> String {
    std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64")
}

pub async fn version() -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": { "Name": "RancherOS-rs User Docker" },
        "Components": [{
            "Name": "Engine",
            "Version": v,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": arch(),
                "KernelVersion": kernel(),
            },
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel(),
    }))
}

pub async fn info(axum::extract::State(api): St) -> Json<Value> {
    let all = api.mgr.list();
    let count = |f: &dyn Fn(Lifecycle) -> bool| all.iter().filter(|r| f(r.state.status)).count();
    let images = api.mgr.store.list().map(|l| l.len()).unwrap_or(0);
    let (ncpu, mem) = machine();
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cfg = api.mgr.config();
    Json(json!({
        "ID": "",
        "Containers": all.len(),
        "ContainersRunning": count(&|s| s == Lifecycle::Running),
        "ContainersPaused": count(&|s| s == Lifecycle::Paused),
        "ContainersStopped": count(&|s| !s.is_running()),
        "Images": images,
        "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "overlayfs"]],
        "DockerRootDir": cfg.root.display().to_string(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2",
        "KernelVersion": kernel(),
        "OperatingSystem": "RancherOS-rs",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": ncpu,
        "MemTotal": mem,
        "Name": hostname,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DefaultRuntime": "ros",
        "Runtimes": { "ros": { "path": cfg.exe.display().to_string() } },
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Labels": [],
        "Debug": false,
        "Warnings": ["WARNING: bridge networking is a private network namespace with loopback only (no NAT, no published ports yet)"],
    }))
}

/// CPUs online and total memory in bytes.
fn machine() -> (usize, u64) {
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    (ncpu, mem)
}
