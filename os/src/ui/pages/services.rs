//! The system services: their state, and one's definition, actions and live log.

use super::follow;
use super::layout::{button, flash, notice, page};
use crate::ui::app::{blocking, PeerOf, Sess, St};
use crate::ui::backend::{ConfigRefused, Engine};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

/// A service or container name as the engines take them (and nothing that could be a path).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

fn bad_name() -> Response {
    (StatusCode::BAD_REQUEST, "not a service name").into_response()
}

pub async fn list(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let services = blocking(&ui, |b| b.services()).await;
    let body = html! {
        @match &services {
            Ok(list) => {
                table #services {
                    tr { th { "Service" } th { "State" } th { "PID" } th { "Restarts" } th { "Last exit" } th { "Image" } th { "Error" } }
                    @for svc in list {
                        tr id=(format!("service-{}", svc.name)) {
                            td { a href=(format!("/services/{}", svc.name)) { (svc.name) } }
                            td class=(format!("state-{}", svc.state)) { (svc.state) }
                            td { (svc.pid.map(|p| p.to_string()).unwrap_or_default()) }
                            td { (svc.restarts) }
                            td { (svc.last_exit.clone().unwrap_or_default()) }
                            td { (svc.image) }
                            td { (svc.error.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            Err(e) => { (notice("error", e)) }
        }
    };
    page("System services", "/services", Some(&s), body)
}

pub async fn show(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    Path(name): Path<String>,
) -> Response {
    if !valid_name(&name) {
        return bad_name();
    }
    let n = name.clone();
    let (status, definition) = blocking(&ui, move |b| {
        (
            b.services()
                .map(|all| all.into_iter().find(|x| x.name == n)),
            b.definition(&n),
        )
    })
    .await;
    let svc = match status {
        Ok(Some(svc)) => Some(svc),
        Ok(None) => None,
        Err(e) => return page(&name, "/services", Some(&s), notice("error", &e)),
    };
    let body = html! {
        (flash(&ui, &s))
        p {
            "State: "
            @match &svc {
                Some(svc) => { span #live-state class=(format!("state-{}", svc.state)) { (svc.state) " (restarts " (svc.restarts) ")" } }
                None => { span #live-state { "not started (disabled, or not a system service)" } }
            }
        }
        @if let Some(svc) = &svc { @if let Some(e) = &svc.error { (notice("error", e)) } }
        p {
            @for verb in ["start", "stop", "restart", "enable", "disable"] {
                (button(&s, &format!("/services/{name}/{verb}"), verb, &format!("action-{verb}")))
            }
        }
        h2 { "Log" }
        pre #live-log data-events=(format!("/services/{name}/events")) {}
        h2 { "Definition" }
        @match &definition {
            Ok(d) => { pre #definition { (d) } }
            Err(e) => { (notice("note", e)) }
        }
    };
    page(&name, "/services", Some(&s), body)
}

pub async fn act(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    axum::Extension(peer): PeerOf,
    Path((name, verb)): Path<(String, String)>,
) -> Response {
    if !valid_name(&name) {
        return bad_name();
    }
    if !matches!(
        verb.as_str(),
        "start" | "stop" | "restart" | "enable" | "disable"
    ) {
        return (StatusCode::NOT_FOUND, "no such action").into_response();
    }
    let (n, v) = (name.clone(), verb.clone());
    let result = blocking(&ui, move |b| match v.as_str() {
        "enable" | "disable" => b
            .include(&n, v == "enable")
            .map(|_| format!("{n}: {v}d (rancher.services_include.{n}); it applies at the next boot or service up"))
            .map_err(|e| match e {
                ConfigRefused::Other(m) => m,
                ConfigRefused::Problems(p) => p.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; "),
            }),
        _ => b.act(Engine::System, &v, &n).map(|()| format!("{n}: {v} done")),
    })
    .await;
    ui.record(
        &s,
        peer,
        &format!("service {verb}"),
        &name,
        result.as_ref().map_or_else(|e| e.as_str(), |_| "ok"),
    );
    match result {
        Ok(m) => ui.auth.set_flash(&s.key, "ok", &m),
        Err(e) => ui.auth.set_flash(&s.key, "error", &e),
    }
    Redirect::to(&format!("/services/{name}")).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Filter {
    filter: Option<String>,
}

pub async fn events(
    axum::extract::State(ui): St,
    Path(name): Path<String>,
    Query(f): Query<Filter>,
) -> Response {
    if !valid_name(&name) {
        return bad_name();
    }
    follow::events(ui, Engine::System, name, f.filter.unwrap_or_default())
}
