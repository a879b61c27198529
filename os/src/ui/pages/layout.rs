//! What every page shares: the frame (navigation, who is logged in, the form token), the style
//! sheet and the script, both compiled into the binary (nothing is fetched at run time).

use super::super::auth::Session;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

const CSS: &str = include_str!("../static/ui.css");
const JS: &str = include_str!("../static/ui.js");

const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/services", "Services"),
    ("/containers", "Containers"),
    ("/logs", "Logs"),
    ("/config", "Config"),
    ("/system", "OS & power"),
];

/// A whole page; `here` is the navigation entry it belongs to.
pub fn page(title: &str, here: &str, session: Option<&Session>, body: Markup) -> Response {
    Html(page_html(title, here, session, body)).into_response()
}

/// [`page`]'s HTML.
pub fn page_html(title: &str, here: &str, session: Option<&Session>, body: Markup) -> String {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · RancherOS-rs" }
                link rel="stylesheet" href="/static/ui.css";
            }
            body {
                header {
                    strong { "RancherOS-rs" }
                    @if session.is_some() {
                        @for (href, name) in NAV {
                            a href=(href) class=[(*href == here).then_some("here")] { (name) }
                        }
                    }
                    @if let Some(s) = session {
                        span.who {
                            @if s.read_only { "read-only · " }
                            form.inline method="post" action="/logout" {
                                (csrf(s))
                                button type="submit" id="logout" { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                script src="/static/ui.js" {}
            }
        }
    };
    markup.into_string()
}

/// The hidden form token every form that changes something carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A button that posts to `action` (with the form token).
pub fn button(s: &Session, action: &str, label: &str, id: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(s))
            button type="submit" id=(id) disabled[s.read_only] { (label) }
        }
    }
}

/// The note the session's last change left (see `Auth::set_flash`), shown once.
pub fn flash(ui: &crate::ui::app::Ui, s: &Session) -> Markup {
    match ui.auth.take_flash(&s.key) {
        Some((kind, text)) => notice(&kind, &text),
        None => html! {},
    }
}

/// A note in the page: `ok`, `note` or `error`.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class=(kind) id=(format!("notice-{kind}")) { (text) } }
}

pub async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}
