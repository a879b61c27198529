//! The OS: version and boot slot, the boot's own lines, and power.

use super::layout::{button, notice, page};
use crate::ui::app::{blocking, PeerOf, Sess, St};
use crate::ui::host;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

pub async fn show(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let (boot, facts) = blocking(&ui, |b| {
        (
            b.boot_log(),
            host::read(std::path::Path::new(crate::ui::DIR)),
        )
    })
    .await;
    let body = html! {
        p { "Version " b #version { (facts.version) }
            @match &facts.slot { Some(slot) => { ", booted from " (slot) "." } None => { " (not booted from an installed slot)." } } }
        p { "Upgrades and rollbacks: " code { "sudo rancherctl os list" } ", " code { "upgrade" } ", " code { "rollback" } " on the console." }
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

pub async fn power(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    axum::Extension(peer): PeerOf,
    Path(verb): Path<String>,
) -> Response {
    if !matches!(verb.as_str(), "reboot" | "poweroff") {
        return (StatusCode::NOT_FOUND, "no such action").into_response();
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
