//! `/rancheros/…` for the web UI (`ros ui`), which reaches the host only through this socket:
//! the configuration editor, the services' status, the boot's lines, and power.
//!
//! - `GET /rancheros/config`: what the editor shows (`rancherctl config export`, secrets left
//!   out; `?full=1`: the built-in defaults too), its version, and the seconds before a network
//!   change on trial is undone;
//! - `POST /rancheros/config/check` (body: the edited YAML): what an apply would change, or
//!   400 with every problem at its line and key (`{"message", "problems": [{line, column,
//!   path, message}]}`); nothing written;
//! - `POST /rancheros/config?version=V` (the same body): saved and applied
//!   (`system_services::config_edit`); 409 when the configuration changed since version V;
//! - `POST /rancheros/config/confirm`: keep a network change (else undone after 60 s);
//! - `GET /rancheros/services`: `rancherctl service list`'s lines, as JSON;
//! - `GET /rancheros/boot`: PID 1's lines of this boot (steps, ready), as text;
//! - `GET /rancheros/kmsg`: the kernel's log (`/dev/kmsg`, as `dmesg` prints it: `[seconds]
//!   message`), which only root reads (`kernel.dmesg_restrict`);
//! - `POST /rancheros/power/{reboot|poweroff}`: PID 1's clean shutdown.

use super::St;
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::ApiError;
use crate::system_services::{EditError, SystemServices};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The largest configuration text taken.
const MAX_TEXT: usize = 1 << 20;

fn services(api: &crate::dockerd::api::Api) -> Result<Arc<SystemServices>, ApiError> {
    api.services.clone().ok_or_else(|| {
        ApiError::not_found("page not found: the host is the system engine's".to_string())
    })
}

fn edit_error(e: EditError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let problems: Vec<serde_json::Value> = match &e {
        EditError::Invalid(p) => p
            .iter()
            .map(|p| {
                serde_json::json!({
                    "line": p.location.map(|l| l.line),
                    "column": p.location.map(|l| l.column),
                    "path": p.path,
                    "message": p.message,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let body = serde_json::json!({ "message": e.to_string(), "problems": problems });
    (status, axum::Json(body)).into_response()
}

fn text_of(body: String) -> Result<String, ApiError> {
    if body.len() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "configuration: {} bytes, at most {MAX_TEXT}",
            body.len()
        )));
    }
    Ok(body)
}

#[derive(Debug, serde::Deserialize)]
pub struct ViewQuery {
    full: Option<String>,
}

pub async fn config_view(
    axum::extract::State(api): St,
    Query(q): Query<ViewQuery>,
) -> Result<Response, ApiError> {
    let full = super::truthy(&q.full);
    match services(&api)?.config_view(full).await {
        Ok(v) => Ok(axum::Json(v).into_response()),
        Err(e) => Ok(edit_error(e)),
    }
}

pub async fn config_check(
    axum::extract::State(api): St,
    body: String,
) -> Result<Response, ApiError> {
    let text = text_of(body)?;
    match services(&api)?.config_check(text).await {
        Ok(a) => Ok(axum::Json(a).into_response()),
        Err(e) => Ok(edit_error(e)),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ApplyQuery {
    version: String,
}

pub async fn config_apply(
    axum::extract::State(api): St,
    Query(q): Query<ApplyQuery>,
    body: String,
) -> Result<Response, ApiError> {
    let text = text_of(body)?;
    let services = services(&api)?;
    // To its end without its client: the network may go while it runs.
    let done = tokio::spawn(async move { services.config_apply(text, q.version).await })
        .await
        .map_err(|e| ApiError::internal(format!("config task: {e}")))?;
    match done {
        Ok(a) => Ok(axum::Json(a).into_response()),
        Err(e) => Ok(edit_error(e)),
    }
}

pub async fn config_confirm(axum::extract::State(api): St) -> Result<Response, ApiError> {
    match services(&api)?.config_confirm().await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Ok(edit_error(e)),
    }
}

pub async fn services_status(axum::extract::State(api): St) -> Result<Response, ApiError> {
    Ok(axum::Json(services(&api)?.status()).into_response())
}

pub async fn boot(axum::extract::State(api): St) -> Result<Response, ApiError> {
    services(&api)?;
    match tokio::fs::read_to_string(crate::console::BOOT_LOG).await {
        Ok(t) => Ok(t.into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found(
            "the boot has not ended yet".to_string(),
        )),
        Err(e) => Err(ApiError::internal(format!(
            "{}: {e}",
            crate::console::BOOT_LOG
        ))),
    }
}

pub async fn power(
    axum::extract::State(api): St,
    Path(verb): Path<String>,
) -> Result<Response, ApiError> {
    services(&api)?;
    let req = match verb.as_str() {
        "reboot" => crate::rancherctl::power::Request::Reboot,
        "poweroff" => crate::rancherctl::power::Request::Poweroff,
        other => {
            return Err(ApiError::not_found(format!(
                "page not found: no power verb {other:?} (reboot, poweroff)"
            )))
        }
    };
    tracing::info!(verb, "power: asked through the API");
    crate::rancherctl::power::request(req).map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn kmsg(axum::extract::State(api): St) -> Result<Response, ApiError> {
    services(&api)?;
    let text = tokio::task::spawn_blocking(|| read_kmsg(std::path::Path::new("/dev/kmsg")))
        .await
        .map_err(|e| ApiError::internal(format!("kmsg task: {e}")))?
        .map_err(|e| ApiError::internal(format!("/dev/kmsg: {e}")))?;
    Ok(text.into_response())
}

/// Every record `/dev/kmsg` holds now, as `[seconds] message` lines (continuation lines and
/// the key=value dictionary lines left out).
fn read_kmsg(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut out = String::new();
    // One record per read; a record is at most about 8 KB.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push_str(&kmsg_line(&String::from_utf8_lossy(&buf[..n]))),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // Overwritten while read (EPIPE): the next read gives the next record.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// `6,339,5140900,-;message` → `[    5.140900] message`.
pub fn kmsg_line(record: &str) -> String {
    let first = record.lines().next().unwrap_or_default();
    let Some((head, message)) = first.split_once(';') else {
        return String::new();
    };
    let micros: u64 = head
        .split(',')
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    format!(
        "[{:5}.{:06}] {message}\n",
        micros / 1_000_000,
        micros % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn kmsg_records_read_as_dmesg_prints_them() {
        assert_eq!(
            super::kmsg_line("6,339,5140900,-;virtio_net virtio0 eth0: up\n SUBSYSTEM=net\n"),
            "[    5.140900] virtio_net virtio0 eth0: up\n"
        );
        assert_eq!(super::kmsg_line("garbage"), "");
    }
}
