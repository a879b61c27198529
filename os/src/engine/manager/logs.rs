//! `logs`: the container's json-file log read back, stdout and stderr apart, with Docker's
//! options (since, until, tail, timestamps, follow). Following reads what the shim appends
//! until the container no longer runs and the file has no more.
//!
//! An engine with plain-text logs (the system engine's `/var/log/<name>.log`) has neither
//! streams nor times in its files: every line is stdout, `since`/`until` do not filter, and a
//! follower that finds the file shorter than where it was (rotated by copy and truncate)
//! starts again at its beginning.

use super::{Manager, Result};
use crate::engine::shim::log::Entry;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// Unix seconds; 0: from the start.
    pub since: i64,
    /// Unix seconds; 0: no end.
    pub until: i64,
    /// The last N lines only.
    pub tail: Option<usize>,
    pub follow: bool,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub stderr: bool,
    /// RFC 3339 with nanoseconds, as logged.
    pub time: String,
    pub data: Vec<u8>,
}

impl LogOptions {
    fn wants(&self, e: &Entry) -> bool {
        let stream_ok = match e.stream.as_str() {
            "stdout" => self.stdout,
            "stderr" => self.stderr,
            _ => false,
        };
        if !stream_ok {
            return false;
        }
        if e.time.is_empty() {
            return true; // a plain-text log: no time to filter on
        }
        let t = crate::engine::api::time::parse_rfc3339(&e.time).unwrap_or(0);
        (self.since == 0 || t >= self.since) && (self.until == 0 || t <= self.until)
    }
}

/// The entries of every complete line from the reader's position on; a line still being
/// written (no newline yet) is left to be read again later. A line that does not parse is
/// skipped. `plain`: the lines are the output itself (stdout, no time).
fn complete_entries(r: &mut BufReader<std::fs::File>, plain: bool) -> Vec<Entry> {
    use std::io::Seek;
    if plain {
        // Truncated under us (rotation): what is there now is new.
        let len = r.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
        if r.stream_position().is_ok_and(|p| p > len) {
            let _ = r.seek(std::io::SeekFrom::Start(0));
        }
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if !buf.ends_with(b"\n") => {
                let _ = r.seek_relative(-(n as i64));
                break;
            }
            Ok(_) => {}
        }
        if plain {
            out.push(Entry {
                log: String::from_utf8_lossy(&buf).into_owned(),
                stream: "stdout".into(),
                time: String::new(),
            });
        } else if let Ok(e) = serde_json::from_slice::<Entry>(buf.trim_ascii_end()) {
            out.push(e);
        }
    }
    out
}

fn line_of(e: Entry) -> LogLine {
    LogLine {
        stderr: e.stream == "stderr",
        time: e.time,
        data: e.log.into_bytes(),
    }
}

impl Manager {
    /// Send the container's log lines into `tx` (it ends when the log does, or the receiver
    /// goes away).
    pub async fn logs(
        self: &Arc<Self>,
        name_or_id: &str,
        opts: LogOptions,
        tx: tokio::sync::mpsc::Sender<LogLine>,
    ) -> Result<()> {
        let id = self.find(name_or_id)?;
        let rec = self.get(&id)?;
        let path = self.log_path(&rec);
        let plain = self.cfg.log_dir.is_some();
        let file = match std::fs::File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(super::ManagerError::io(&path, e)),
        };
        let me = self.clone();
        tokio::spawn(async move {
            let mut reader = file.map(BufReader::new);
            let mut first: VecDeque<LogLine> = VecDeque::new();
            if let Some(r) = reader.as_mut() {
                for e in complete_entries(r, plain)
                    .into_iter()
                    .filter(|e| opts.wants(e))
                {
                    first.push_back(line_of(e));
                    if let Some(t) = opts.tail {
                        while first.len() > t {
                            first.pop_front();
                        }
                    }
                }
            }
            for l in first {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            loop {
                let running = me
                    .get(&id)
                    .map(|r| {
                        r.state.status.is_running()
                            || r.state.status == super::Lifecycle::Restarting
                    })
                    .unwrap_or(false);
                if reader.is_none() {
                    reader = std::fs::File::open(&path).ok().map(BufReader::new);
                }
                let mut got = false;
                if let Some(r) = reader.as_mut() {
                    for e in complete_entries(r, plain) {
                        got = true;
                        if opts.wants(&e) && tx.send(line_of(e)).await.is_err() {
                            return;
                        }
                    }
                }
                if !running && !got {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(())
    }
}
