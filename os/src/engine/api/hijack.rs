//! Streams of a hijacked connection (`Upgrade: tcp`, as the docker CLI asks for exec and
//! attach): the task that writes a channel's frames to the client and feeds what it sends to a
//! process's stdin, and the pump that turns a pipe into multiplexed frames.

use super::stream::{frames, StreamKind};
use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
