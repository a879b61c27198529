//! `system-docker logs [-f] [--tail N] NAME`: the multiplexed stream, demultiplexed onto our
//! stdout and stderr as it arrives.

use super::client::{Client, ClientError};
use super::encode;
use crate::engine::api::stream::{Demux, StreamKind};
use std::io::Write;

pub fn logs(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let (mut follow, mut tail, mut name) = (false, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" | "--follow" => follow = true,
            "-n" | "--tail" => {
                tail = Some(
                    it.next()
                        .ok_or_else(|| ClientError::Usage("--tail needs N".into()))?
                        .clone(),
                )
            }
            t if t.starts_with("--tail=") => tail = Some(t["--tail=".len()..].to_string()),
            n if !n.starts_with('-') && name.is_none() => name = Some(n.to_string()),
            other => return Err(ClientError::Usage(format!("logs: unexpected {other:?}"))),
        }
    }
    let name = name.ok_or_else(|| ClientError::Usage("logs NAME".into()))?;
    let mut path = format!("/containers/{}/logs?stdout=1&stderr=1", encode(&name));
    if follow {
        path.push_str("&follow=1");
    }
    if let Some(t) = tail {
        path.push_str(&format!("&tail={}", encode(&t)));
    }
    let resp = client.request("GET", &path, None)?.ok()?;
    copy_frames(resp.body)
}

/// Copy a multiplexed body to stdout and stderr until it ends.
pub fn copy_frames(body: Box<dyn std::io::Read>) -> Result<(), ClientError> {
    let mut d = Demux::new(body);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    loop {
        let frame = d.next_frame().map_err(|source| ClientError::Io {
            what: "reading the stream".into(),
            source,
        })?;
        let Some((kind, data)) = frame else {
            return Ok(());
        };
        let w: &mut dyn Write = match kind {
            StreamKind::Stderr => &mut err,
            _ => &mut out,
        };
        // A closed stdout (`| head`) ends the command quietly.
        if w.write_all(&data).and_then(|_| w.flush()).is_err() {
            return Ok(());
        }
    }
}
