//! Every system service's log (read, filtered, followed live, downloaded) and the kernel's
//! (read, filtered, followed live, downloaded).

use super::layout::{notice, page};
use super::services::valid_name;
use crate::ui::app::{blocking, Sess, St};
use crate::ui::backend::Engine;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use std::io::Read;

/// Lines read for the page and the download.
pub const LINES: usize = 5000;
/// Bytes read at most (a log is rotated well below).
const MAX_BYTES: u64 = 16 << 20;

pub async fn index(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let services = blocking(&ui, |b| b.services()).await;
    let body = html! {
        @match &services {
            Ok(list) => {
                ul #logs {
                    li { a href="/kernel-log" { "the kernel" } }
                    @for svc in list { li { a href=(format!("/logs/{}", svc.name)) { (svc.name) } } }
                }
            }
            Err(e) => { (notice("error", e)) }
        }
    };
    page("Logs", "/logs", Some(&s), body)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct LogQuery {
    filter: Option<String>,
    download: Option<String>,
}

/// The last `lines` lines of a log, `filter`ed (case-insensitive), as text.
pub fn read_log(
    b: &dyn crate::ui::backend::Backend,
    engine: Engine,
    name: &str,
    filter: &str,
) -> Result<String, String> {
    let mut text = Vec::new();
    b.logs(engine, name, LINES, false)?
        .take(MAX_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| format!("reading the log: {e}"))?;
    Ok(filtered(&String::from_utf8_lossy(&text), filter))
}

/// Lines of `text` holding `filter` (case-insensitive; empty: all).
fn filtered(text: &str, filter: &str) -> String {
    let f = filter.to_lowercase();
    text.lines()
        .filter(|l| f.is_empty() || l.to_lowercase().contains(&f))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn download(name: &str, text: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.log\""),
            ),
        ],
        text,
    )
        .into_response()
}

/// The kernel's log (read when the page is asked for; reload to see more).
pub async fn kernel(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    Query(q): Query<LogQuery>,
) -> Response {
    let filter = q.filter.clone().unwrap_or_default();
    let text = blocking(&ui, |b| b.kernel_log())
        .await
        .map(|t| filtered(&t, &filter));
    if q.download.is_some() {
        return match text {
            Ok(t) => download("kernel", t),
            Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
        };
    }
    let body = html! {
        form method="get" action="/kernel-log" {
            label { "Lines holding " input type="text" name="filter" id="filter" value=(filter); }
            " " button type="submit" { "Filter" }
            " " a href=(format!("/kernel-log?download=1&filter={}", crate::system_docker::encode(&filter))) { "Download" }
        }
        @match &text {
            Ok(t) => { pre #log { (t) } }
            Err(e) => { (notice("error", e)) }
        }
        h2 { "Live" }
        pre #live-log data-events=(format!("/kernel-log/events?filter={}", crate::system_docker::encode(&filter))) {}
    };
    page("Kernel log", "/logs", Some(&s), body)
}

/// The kernel's records from now on, as server-sent events.
pub async fn kernel_events(axum::extract::State(ui): St, Query(q): Query<LogQuery>) -> Response {
    super::follow::events(
        ui,
        Engine::Kernel,
        "kernel".into(),
        q.filter.unwrap_or_default(),
    )
}

pub async fn show(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    if !valid_name(&name) {
        return (StatusCode::BAD_REQUEST, "not a service name").into_response();
    }
    let filter = q.filter.clone().unwrap_or_default();
    let (n, f) = (name.clone(), filter.clone());
    let text = blocking(&ui, move |b| read_log(b, Engine::System, &n, &f)).await;
    if q.download.is_some() {
        return match text {
            Ok(t) => (
                [
                    (
                        header::CONTENT_TYPE,
                        "text/plain; charset=utf-8".to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}.log\""),
                    ),
                ],
                t,
            )
                .into_response(),
            Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
        };
    }
    let events = format!(
        "/services/{name}/events?filter={}",
        crate::system_docker::encode(&filter)
    );
    let body = html! {
        form method="get" action=(format!("/logs/{name}")) {
            label { "Lines holding " input type="text" name="filter" id="filter" value=(filter); }
            " " button type="submit" { "Filter" }
            " " a href=(format!("/logs/{name}?download=1&filter={}", crate::system_docker::encode(&filter))) { "Download" }
        }
        @match &text {
            Ok(t) => { pre #log { (t) } }
            Err(e) => { (notice("error", e)) }
        }
        h2 { "Live" }
        pre #live-log data-events=(events) {}
    };
    page(&format!("Log of {name}"), "/logs", Some(&s), body)
}
