//! HTTP plumbing the engines' Docker Engine API shares (the routes are `crate::dockerd::api`,
//! served by both the system engine and the user engine): Docker's `{"message": …}` errors
//! ([`ApiError`]), path and query extractors whose rejections are such errors ([`extract`]),
//! the multiplexed stream format ([`stream`]), hijacked connections ([`hijack`]), Docker's
//! times ([`time`]), and the version prefix every path may carry ([`strip_version`]).

pub mod error;
pub mod extract;
pub(crate) mod hijack;
pub mod stream;
pub mod time;

pub use error::ApiError;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where the system engine listens (`/var/run` is a link to `/run`).
pub const SOCKET: &str = "/var/run/system-docker.sock";

/// `/v1.41/containers/json` → `/containers/json`: the version prefix is optional and any
/// version is served as ours.
pub fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return req;
    };
    let Some((ver, tail)) = rest.split_once('/') else {
        return req;
    };
    if ver.is_empty() || !ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return req;
    }
    let new = match req.uri().query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    if let Ok(uri) = new.parse() {
        *req.uri_mut() = uri;
    }
    req
}

/// A streamed body fed from a task through a channel: log follow and exec output.
pub(crate) struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl ChannelBody {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelBody(rx)
    }
}

impl futures_core::Stream for ChannelBody {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// Whether the client asks to take the connection over (`Upgrade: tcp`, as the docker CLI does
/// for attach and exec).
pub(crate) fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"))
}

/// `101 Switching Protocols` to `Upgrade: tcp`, the stream typed `content_type`.
pub(crate) fn switching_protocols(content_type: HeaderValue) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, content_type);
    r
}

/// A channel and the streaming response reading from it, typed as Docker's multiplexed stream.
pub(crate) fn multiplexed() -> (tokio::sync::mpsc::Sender<Bytes>, Response) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut r = Response::new(Body::from_stream(ChannelBody(rx)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.multiplexed-stream"),
    );
    (tx, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_prefix_is_optional() {
        let r = |u: &str| {
            strip_version(
                axum::http::Request::builder()
                    .uri(u)
                    .body(Body::empty())
                    .unwrap(),
            )
            .uri()
            .to_string()
        };
        assert_eq!(r("/v1.41/containers/json?all=1"), "/containers/json?all=1");
        assert_eq!(r("/containers/json"), "/containers/json");
        assert_eq!(r("/volumes/x"), "/volumes/x");
        assert_eq!(r("/vx/containers/json"), "/vx/containers/json");
    }
}
