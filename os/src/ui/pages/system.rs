//! The OS: its version and slots (`rancherctl os version`), the images on offer (`os list`),
//! an upgrade from a file, a device or an image reference with its progress shown as it
//! comes, a rollback, this boot's lines, and power. Upgrades and rollbacks never reboot by
//! themselves: the page that shows how they ended offers the reboot.

use super::layout::{button, csrf, notice, page, page_html};
use crate::ui::app::{blocking, PeerOf, Sess, St};
use crate::ui::auth::Session;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};

pub async fn show(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let (version, list, boot) = blocking(&ui, |b| {
        (b.os_read("version"), b.os_read("list"), b.boot_log())
    })
    .await;
    let body = html! {
        @match &version {
            Ok(v) => { pre #version { (v) } }
            Err(e) => { (notice("error", &format!("version: {e}"))) }
        }
        h2 { "Upgrade" }
        @match &list {
            Ok(l) if !l.trim().is_empty() => { p { "On offer (" code { "rancherctl os list" } "):" } pre #releases { (l) } }
            Ok(_) => { p { "No release on offer." } }
            Err(e) => { p #releases-none { "No list of releases: " (e) } }
        }
        form method="post" action="/system/upgrade" {
            (csrf(&s))
            label { "OS image (a file, a device holding its tar, or an image reference) "
                input type="text" name="image" id="image" size="50"; }
            " " button type="submit" id="upgrade" disabled[s.read_only] { "Upgrade" }
        }
        p { "The new version goes into the other slot and boots next, on trial: if it does not come up healthy, the machine comes back to this one by itself." }
        p { (button(&s, "/system/rollback", "Roll back to the other slot", "rollback")) }
        h2 { "Power" }
        p {
            (button(&s, "/system/reboot", "Reboot", "reboot"))
            (button(&s, "/system/poweroff", "Power off", "poweroff"))
        }
        h2 { "This boot" }
        @match &boot {
            Ok(t) => { pre #boot-log { (t) } }
            Err(e) => { (notice("note", e)) }
        }
    };
    page("OS & power", "/system", Some(&s), body)
}

pub async fn act(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    axum::Extension(peer): PeerOf,
    Path(verb): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match verb.as_str() {
        "reboot" | "poweroff" => {}
        "upgrade" | "rollback" => return change(ui, s, peer, verb, form).await,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    }
    let v = verb.clone();
    let result = blocking(&ui, move |b| b.power(&v)).await;
    ui.record(
        &s,
        peer,
        &verb,
        "",
        result.as_ref().map_or_else(|e| e.as_str(), |_| "ok"),
    );
    match result {
        Ok(()) => page(
            "OS & power",
            "/system",
            Some(&s),
            notice(
                "ok",
                &format!("{verb}: every service is being stopped cleanly."),
            ),
        ),
        Err(e) => page("OS & power", "/system", Some(&s), notice("error", &e)),
    }
}

/// Where the streamed lines go in the page.
const MARK: &str = "\u{1}progress\u{1}";

fn after(s: &Session, ok: bool) -> Markup {
    html! {
        @if ok {
            (notice("ok", "Done: the change takes effect at the next boot."))
            p { (button(s, "/system/reboot", "Reboot now", "reboot")) }
        } @else {
            (notice("error", "It failed: nothing boots differently (see the lines above)."))
        }
        p { a href="/system" { "Back to the OS page" } }
    }
}

/// An upgrade or a rollback, its page sent as its lines come.
async fn change(
    ui: std::sync::Arc<crate::ui::app::Ui>,
    s: Session,
    peer: crate::ui::app::Peer,
    verb: String,
    form: HashMap<String, String>,
) -> Response {
    let image = match verb.as_str() {
        "upgrade" => form
            .get("image")
            .map(|i| i.trim().to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    if verb == "upgrade" && !crate::dockerd::api::rancheros_os::valid_image(&image) {
        return (
            StatusCode::BAD_REQUEST,
            "image: a file, a device or an image reference (letters, digits, ._-/:@; not starting with -)",
        )
            .into_response();
    }
    let (v, i) = (verb.clone(), image.clone());
    let stream = blocking(&ui, move |b| b.os_change(&v, &i)).await;
    let stream = match stream {
        Ok(st) => st,
        Err(e) => {
            ui.record(&s, peer, &format!("os {verb}"), &image, &e);
            return page("OS & power", "/system", Some(&s), notice("error", &e));
        }
    };
    let title = if verb == "upgrade" {
        format!("Upgrading to {image}")
    } else {
        "Rolling back".into()
    };
    let whole = page_html(
        &title,
        "/system",
        Some(&s),
        html! { pre #progress { (maud::PreEscaped(MARK)) } },
    );
    let (head, tail) = whole
        .split_once(MARK)
        .map_or((whole.clone(), String::new()), |(h, t)| {
            (h.to_string(), t.to_string())
        });
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    std::thread::Builder::new()
        .name("ui-os".into())
        .spawn(move || {
            let _ = tx.blocking_send(Bytes::from(head));
            let mut code = None;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(c) = line
                    .strip_prefix("[exit ")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    code = c.parse::<i32>().ok();
                }
                let escaped = html! { (line) "\n" }.into_string();
                if tx.blocking_send(Bytes::from(escaped)).is_err() {
                    // The browser went; the engine finishes the change all the same.
                    break;
                }
            }
            let ok = code == Some(0);
            ui.record(
                &s,
                peer,
                &format!("os {verb}"),
                &image,
                &match code {
                    Some(0) => "ok".to_string(),
                    Some(c) => format!("exit {c}"),
                    None => "ended without an exit code".to_string(),
                },
            );
            // Close the <pre>, say how it ended, then the rest of the page.
            let end = tail.replacen(
                "</pre>",
                &format!("</pre>{}", after(&s, ok).into_string()),
                1,
            );
            let _ = tx.blocking_send(Bytes::from(end));
        })
        .ok();
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}
