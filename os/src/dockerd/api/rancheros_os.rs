//! `/rancheros/os/…`: the OS's slots for the web UI, by running the system's own `rancherctl
//! os` (the same binary, as root in the host's namespaces, where the ESP and the slots are)
//! and passing its output on as it comes, so an upgrade shows its progress:
//!
//! - `GET /rancheros/os/version`, `GET /rancheros/os/list`: its lines (409 and what it said
//!   when it failed: no slot, no release source);
//! - `POST /rancheros/os/upgrade?image=FILE|REF`, `POST /rancheros/os/rollback`: streamed as
//!   text, always `--no-reboot` (the UI offers the reboot), ending with `[exit N]`.
//!
//! The image is an argument of a command line: it may not start with `-` (no option
//! injection) and holds only the characters of a path or an image reference.

use super::St;
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::{ApiError, ChannelBody};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A `rancherctl os` answer that is not streamed is at most this long.
const MAX_OUTPUT: usize = 1 << 20;

fn rancherctl(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg("rancherctl")
        .arg("os")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    cmd
}

/// Whether `image` can be given to `rancherctl os upgrade -i` as it is.
pub fn valid_image(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && !image.starts_with('-')
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

pub async fn read(
    axum::extract::State(api): St,
    Path(verb): Path<String>,
) -> Result<Response, ApiError> {
    if api.services.is_none() {
        return Err(ApiError::not_found(
            "page not found: the system engine's".to_string(),
        ));
    }
    if !matches!(verb.as_str(), "version" | "list") {
        return Err(ApiError::not_found(format!(
            "page not found: no os verb {verb:?}"
        )));
    }
    let out = rancherctl(&[verb.as_str()])
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("rancherctl os {verb}: {e}")))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.truncate(MAX_OUTPUT);
    if out.status.success() {
        Ok(text.into_response())
    } else {
        Err(ApiError::conflict(text.trim().to_string()))
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ChangeQuery {
    image: Option<String>,
}

pub async fn change(
    axum::extract::State(api): St,
    Path(verb): Path<String>,
    Query(q): Query<ChangeQuery>,
) -> Result<Response, ApiError> {
    if api.services.is_none() {
        return Err(ApiError::not_found(
            "page not found: the system engine's".to_string(),
        ));
    }
    let mut cmd = match verb.as_str() {
        "upgrade" => {
            let image = q.image.unwrap_or_default();
            if !valid_image(&image) {
                return Err(ApiError::bad_request(format!(
                    "image {image:?}: a file, a device or an image reference"
                )));
            }
            rancherctl(&["upgrade", "-i", &image, "--no-reboot"])
        }
        "rollback" => rancherctl(&["rollback", "--no-reboot"]),
        other => {
            return Err(ApiError::not_found(format!(
                "page not found: no os verb {other:?} (upgrade, rollback)"
            )))
        }
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("rancherctl os {verb}: {e}")))?;
    tracing::info!(verb, "os: asked through the API");
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (out, err) = (child.stdout.take(), child.stderr.take());
    // To its end even when the client goes: a slot half written is the one thing not to leave.
    tokio::spawn(async move {
        let pass = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
                    tx: tokio::sync::mpsc::Sender<Bytes>| async move {
            let Some(r) = r else { return };
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(Bytes::from(format!("{l}\n"))).await;
            }
        };
        let a = pass(out.map(|o| Box::new(o) as _), tx.clone());
        let b = pass(err.map(|e| Box::new(e) as _), tx.clone());
        tokio::join!(a, b);
        let code = match child.wait().await {
            Ok(s) => s.code().unwrap_or(-1),
            Err(_) => -1,
        };
        tracing::info!(code, "os: rancherctl os ended");
        let _ = tx.send(Bytes::from(format!("[exit {code}]\n"))).await;
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_cannot_be_options() {
        assert!(super::valid_image("/dev/vdb"));
        assert!(super::valid_image("10.0.2.100:5000/ros/os:2.0.0"));
        assert!(!super::valid_image("-f"));
        assert!(!super::valid_image("--append=x"));
        assert!(!super::valid_image("a b"));
        assert!(!super::valid_image(""));
    }
}
