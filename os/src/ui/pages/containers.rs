//! The user engine's containers and images: list, start, stop, remove, logs.

use super::follow;
use super::layout::{button, flash, notice, page};
use super::logs::read_log;
use super::services::valid_name;
use crate::ui::app::{blocking, PeerOf, Sess, St};
use crate::ui::backend::Engine;
use crate::ui::host;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

pub async fn list(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let (containers, images) = blocking(&ui, |b| (b.containers(), b.images())).await;
    let body = html! {
        (flash(&ui, &s))
        @match &containers {
            Ok(list) if list.is_empty() => { p { "No containers." } }
            Ok(list) => {
                table #containers {
                    tr { th { "Name" } th { "Image" } th { "State" } th { "Status" } th {} }
                    @for c in list {
                        tr id=(format!("container-{}", c.name)) {
                            td { a href=(format!("/containers/{}/logs", c.name)) { (c.name) } }
                            td { (c.image) }
                            td class=(format!("state-{}", c.state)) { (c.state) }
                            td { (c.status) }
                            td {
                                @for verb in ["start", "stop", "rm"] {
                                    (button(&s, &format!("/containers/{}/{verb}", c.name), verb, &format!("{verb}-{}", c.name)))
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => { (notice("error", &format!("the user engine: {e}"))) }
        }
        h2 { "Images" }
        @match &images {
            Ok(list) => {
                table #images {
                    tr { th { "Tags" } th { "ID" } th { "Size" } }
                    @for i in list {
                        tr { td { (i.tags.join(", ")) } td { code { (i.id.get(7..19).unwrap_or(&i.id)) } } td { (host::bytes(i.size)) } }
                    }
                }
            }
            Err(e) => { (notice("error", e)) }
        }
    };
    page("Containers", "/containers", Some(&s), body)
}

pub async fn act(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    axum::Extension(peer): PeerOf,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    if !valid_name(&id) {
        return (StatusCode::BAD_REQUEST, "not a container name").into_response();
    }
    if !matches!(verb.as_str(), "start" | "stop" | "rm") {
        return (StatusCode::NOT_FOUND, "no such action").into_response();
    }
    let (i, v) = (id.clone(), verb.clone());
    let result = blocking(&ui, move |b| b.act(Engine::User, &v, &i)).await;
    ui.record(
        &s,
        peer,
        &format!("container {verb}"),
        &id,
        result.as_ref().map_or_else(|e| e.as_str(), |_| "ok"),
    );
    match result {
        Ok(()) => ui
            .auth
            .set_flash(&s.key, "ok", &format!("{id}: {verb} done")),
        Err(e) => ui.auth.set_flash(&s.key, "error", &e),
    }
    Redirect::to("/containers").into_response()
}

pub async fn logs(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    Path(id): Path<String>,
) -> Response {
    if !valid_name(&id) {
        return (StatusCode::BAD_REQUEST, "not a container name").into_response();
    }
    let i = id.clone();
    let text = blocking(&ui, move |b| read_log(b, Engine::User, &i, "")).await;
    let body = html! {
        @match &text {
            Ok(t) => { pre #log { (t) } }
            Err(e) => { (notice("error", e)) }
        }
        h2 { "Live" }
        pre #live-log data-events=(format!("/containers/{id}/events")) {}
    };
    page(&format!("Log of {id}"), "/containers", Some(&s), body)
}

pub async fn events(axum::extract::State(ui): St, Path(id): Path<String>) -> Response {
    if !valid_name(&id) {
        return (StatusCode::BAD_REQUEST, "not a container name").into_response();
    }
    follow::events(ui, Engine::User, id, String::new())
}
