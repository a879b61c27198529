//! A container's log followed live, as server-sent events (`event: log`, one line each), and
//! for a system service its state too (`event: state`, when it changes, polled every second).
//! The kernel's log is read again every two seconds, and the records stamped after the last
//! one seen are sent.
//!
//! An engine's follow ends when the container stops (a restart is a stop and a start), so the
//! follower opens it again; the lines the new stream repeats from the log's end are skipped by
//! matching them against the last lines sent. A line written between the two streams, while
//! the container was starting again, may be missed when it does not reach the file before the
//! new follow opens; the page's reload shows the whole log.

use crate::ui::app::{blocking, Ui};
use crate::ui::backend::Engine;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Followers at once, over all clients (each holds a connection to an engine and a thread).
pub const MAX_FOLLOWERS: usize = 16;
/// Lines of the log's end sent first.
pub const FIRST_LINES: usize = 100;
/// Lines remembered to skip what a reopened stream repeats.
const REMEMBERED: usize = 200;
/// A longer line is cut (and its rest is a line of its own).
const MAX_LINE: u64 = 64 * 1024;
/// Pauses before a reopening, growing while the stream ends at once with nothing new (a
/// container that does not run).
const FIRST_PAUSE: Duration = Duration::from_millis(300);
const MAX_PAUSE: Duration = Duration::from_secs(5);

enum Msg {
    Log(String),
    State(String),
}

/// Give back a follower's place when it ends.
struct Place(Arc<Ui>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The event stream for `name`'s log, lines holding `filter` only (empty: all).
pub fn events(ui: Arc<Ui>, engine: Engine, name: String, filter: String) -> Response {
    if ui.followers.fetch_add(1, Ordering::SeqCst) >= MAX_FOLLOWERS {
        ui.followers.fetch_sub(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many live logs open: close some",
        )
            .into_response();
    }
    let place = Arc::new(Place(ui.clone()));
    let (tx, rx) = mpsc::channel::<Msg>(256);
    {
        let (ui, name, tx, place) = (ui.clone(), name.clone(), tx.clone(), place.clone());
        std::thread::Builder::new()
            .name("ui-follow".into())
            .spawn(move || {
                let _place = place;
                follow_lines(&ui, engine, &name, &filter, &tx)
            })
            .ok();
    }
    if engine == Engine::System {
        let ui = ui.clone();
        tokio::spawn(async move {
            let mut last = String::new();
            while !tx.is_closed() {
                let n = name.clone();
                let now = blocking(&ui, move |b| {
                    b.services().ok().and_then(|all| {
                        all.into_iter()
                            .find(|s| s.name == n)
                            .map(|s| format!("{} (restarts {})", s.state, s.restarts))
                    })
                })
                .await
                .unwrap_or_else(|| "unknown".into());
                if now != last {
                    if tx.send(Msg::State(now.clone())).await.is_err() {
                        break;
                    }
                    last = now;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    let stream = futures_util::stream::unfold((rx, place), |(mut rx, place)| async move {
        let msg = rx.recv().await?;
        let event = match msg {
            Msg::Log(l) => Event::default().event("log").data(l),
            Msg::State(s) => Event::default().event("state").data(s),
        };
        Some((Ok::<_, std::convert::Infallible>(event), (rx, place)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// How often the kernel's log is read again while followed.
const KERNEL_POLL: Duration = Duration::from_secs(2);

/// The kernel's log followed: read again every [`KERNEL_POLL`], the records stamped after the
/// last one seen sent (its records' times only grow). The first read only sets that mark: the
/// page shows what was there.
fn follow_kernel(ui: &Ui, filter: &str, tx: &mpsc::Sender<Msg>) {
    let mut sent: VecDeque<String> = VecDeque::new();
    // None until the first read.
    let mut mark: Option<f64> = None;
    while !tx.is_closed() {
        if let Ok(text) = ui.backend.kernel_log() {
            let newest = text
                .lines()
                .filter_map(kernel_time)
                .fold(mark.unwrap_or(0.0), f64::max);
            if let Some(m) = mark {
                for line in text.lines() {
                    if kernel_time(line).is_some_and(|t| t > m)
                        && !send(tx, &mut sent, line.to_string(), filter)
                    {
                        return;
                    }
                }
            }
            mark = Some(newest);
        }
        std::thread::sleep(KERNEL_POLL);
    }
}

/// `[   12.345678] …` → 12.345678.
pub fn kernel_time(line: &str) -> Option<f64> {
    line.strip_prefix('[')?
        .split_once(']')?
        .0
        .trim()
        .parse()
        .ok()
}

/// Read the log and its reopenings until the client goes.
fn follow_lines(ui: &Ui, engine: Engine, name: &str, filter: &str, tx: &mpsc::Sender<Msg>) {
    if engine == Engine::Kernel {
        return follow_kernel(ui, filter, tx);
    }
    let mut sent: VecDeque<String> = VecDeque::new();
    let mut first = true;
    let mut pause = FIRST_PAUSE;
    while !tx.is_closed() {
        let opened = std::time::Instant::now();
        let sent_before = sent.len();
        let last_before = sent.back().cloned();
        let tail = if first { FIRST_LINES } else { REMEMBERED };
        // How many lines the reopened stream repeats first: those there now (a line written
        // meanwhile comes after them, and is new).
        let repeated = if first {
            0
        } else {
            match ui.backend.logs(engine, name, REMEMBERED, false) {
                Ok(s) => BufReader::new(s).split(b'\n').count(),
                Err(_) => 0,
            }
        };
        let stream = match ui.backend.logs(engine, name, tail, true) {
            Ok(s) => s,
            Err(e) => {
                if tx.blocking_send(Msg::Log(format!("(log: {e})"))).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
        };
        let mut reader = BufReader::new(stream);
        let mut burst = Vec::new();
        let mut synced = repeated == 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            // A read that times out (FOLLOW_IDLE) or fails ends this stream: the loop above
            // looks whether anyone still reads, and opens it again.
            match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if !synced {
                burst.push(text);
                if burst.len() == repeated {
                    synced = true;
                    if !flush(tx, &mut sent, &mut burst, filter) {
                        return;
                    }
                }
                continue;
            }
            if !send(tx, &mut sent, text, filter) {
                return;
            }
        }
        if !flush(tx, &mut sent, &mut burst, filter) {
            return;
        }
        first = false;
        let quiet = sent.len() == sent_before && sent.back() == last_before.as_ref();
        pause = if quiet && opened.elapsed() < Duration::from_secs(1) {
            (pause * 2).min(MAX_PAUSE)
        } else {
            FIRST_PAUSE
        };
        std::thread::sleep(pause);
    }
}

/// Send what of `burst` was not sent before.
fn flush(
    tx: &mpsc::Sender<Msg>,
    sent: &mut VecDeque<String>,
    burst: &mut Vec<String>,
    filter: &str,
) -> bool {
    let fresh = after_overlap(sent, burst);
    let lines: Vec<String> = burst.drain(..).skip(fresh).collect();
    lines.into_iter().all(|l| send(tx, sent, l, filter))
}

fn send(tx: &mpsc::Sender<Msg>, sent: &mut VecDeque<String>, line: String, filter: &str) -> bool {
    if tx.is_closed() {
        return false;
    }
    sent.push_back(line.clone());
    if sent.len() > REMEMBERED {
        sent.pop_front();
    }
    if !filter.is_empty() && !line.to_lowercase().contains(&filter.to_lowercase()) {
        return true;
    }
    tx.blocking_send(Msg::Log(line)).is_ok()
}

/// How many of `burst`'s first lines were sent already: the longest start of `burst` that
/// ends with the last lines sent (at most 5 compared), else none.
pub fn after_overlap(sent: &VecDeque<String>, burst: &[String]) -> usize {
    let Some(last) = sent.back() else {
        return 0;
    };
    (1..=burst.len())
        .rev()
        .find(|&end| {
            burst[end - 1] == *last && {
                let k = end.min(sent.len()).min(5);
                burst[end - k..end]
                    .iter()
                    .zip(sent.iter().skip(sent.len() - k))
                    .all(|(a, b)| a == b)
            }
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_reopened_stream_skips_what_was_sent() {
        let sent: VecDeque<String> = v(&["a", "b", "c"]).into();
        assert_eq!(after_overlap(&sent, &v(&["a", "b", "c", "d", "e"])), 3);
        assert_eq!(after_overlap(&sent, &v(&["b", "c", "d"])), 2);
        assert_eq!(after_overlap(&sent, &v(&["x", "y"])), 0);
        assert_eq!(after_overlap(&VecDeque::new(), &v(&["a"])), 0);
    }
}
