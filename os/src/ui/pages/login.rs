//! Logging in with a one-time token (`rancherctl ui token` prints `https://…/login?token=…`).
//! Opening that link only shows a form with the token in it: the token is spent by the POST,
//! so a link previewer or prefetcher that GETs it spends nothing.

use super::layout::{notice, page};
use crate::ui::app::{PeerOf, St};
use crate::ui::auth::{self, LoginError};
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::html;

#[derive(Debug, serde::Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn form_page(token: &str, problem: Option<&str>) -> Response {
    page(
        "Log in",
        "",
        None,
        html! {
            @if let Some(p) = problem { (notice("error", p)) }
            p { "Log in with a token from " code { "sudo rancherctl ui token" } " on this machine's console." }
            form method="post" action="/login" {
                label { "Token " input type="password" name="token" id="token" value=(token) autocomplete="off" size="70"; }
                " "
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

pub async fn form(Query(q): Query<TokenQuery>) -> Response {
    form_page(q.token.as_deref().unwrap_or_default(), None)
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(
    axum::extract::State(ui): St,
    axum::Extension(peer): PeerOf,
    Form(f): Form<LoginForm>,
) -> Response {
    match ui.auth.login(&f.token, peer.0, std::time::Instant::now()) {
        Ok((id, session)) => {
            ui.record(
                &session,
                peer,
                "login",
                if session.read_only {
                    "read-only"
                } else {
                    "read-write"
                },
                "ok",
            );
            (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, auth::set_cookie(&id)),
                    (header::LOCATION, "/".to_string()),
                ],
            )
                .into_response()
        }
        Err(e) => {
            // Failed logins are rate limited (auth), so these entries are too.
            ui.record_as("-", peer, "login", "", &format!("refused: {e}"));
            let status = match e {
                LoginError::BadToken => StatusCode::UNAUTHORIZED,
                LoginError::TooMany => StatusCode::TOO_MANY_REQUESTS,
            };
            let mut r = form_page("", Some(&e.to_string()));
            *r.status_mut() = status;
            r
        }
    }
}

pub async fn logout(
    axum::extract::State(ui): St,
    axum::Extension(session): crate::ui::app::Sess,
    axum::Extension(peer): PeerOf,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::cookie_id)
    {
        ui.auth.logout(id);
    }
    ui.record(&session, peer, "logout", "", "ok");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::clear_cookie()),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}
