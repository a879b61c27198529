//! The configuration editor: the whole `rancherctl config export` in a text area; "Review"
//! checks it with the same loader as `rancherctl config validate` (every problem at its line
//! and key, nothing written) and shows what would change, line by line; only then "Apply"
//! saves it (the system engine refuses it if the configuration changed meanwhile). A network
//! change is undone after 60 s unless confirmed here.

use super::layout::{csrf, flash, notice, page};
use crate::ui::app::{blocking, PeerOf, Sess, St};
use crate::ui::auth::Session;
use crate::ui::backend::{Applied, ConfigRefused, Problem};
use crate::ui::diff::{self, Line};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};

#[derive(Debug, serde::Deserialize)]
pub struct Edited {
    text: String,
    version: String,
}

fn editor(s: &Session, text: &str, version: &str) -> Markup {
    html! {
        form method="post" action="/config/review" {
            (csrf(s))
            input type="hidden" name="version" value=(version);
            textarea name="text" id="config-text" spellcheck="false" { (text) }
            p { button type="submit" id="review" { "Review changes" } }
        }
    }
}

fn problems_list(problems: &[Problem]) -> Markup {
    html! {
        div.error #problems {
            p { (problems.len()) " problem(s); nothing was written:" }
            ul {
                @for p in problems {
                    li {
                        @if let Some(l) = p.line { "line " (l) @if let Some(c) = p.column { ", column " (c) } ": " }
                        @if !p.path.is_empty() { code { (p.path) } ": " }
                        (p.message)
                    }
                }
            }
        }
    }
}

fn pending(revert_in: Option<u64>, s: &Session) -> Markup {
    html! {
        @if let Some(secs) = revert_in {
            div.note #pending {
                "The network settings changed: they are undone in " (secs) " s unless you confirm them. "
                form.inline method="post" action="/config/confirm" {
                    (csrf(s))
                    button type="submit" id="confirm" { "Keep the new network settings" }
                }
            }
        }
    }
}

pub async fn show(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let view = blocking(&ui, |b| b.config()).await;
    let body = match view {
        Ok(v) => html! {
            (flash(&ui, &s))
            (pending(v.revert_in, &s))
            p { "Every layer from OEM up, merged (secrets are left out, and cannot be set here: "
                code { "rancherctl config set" } "). Changes are saved in "
                code { "/var/lib/rancher/conf/cloud-config.yml" } "." }
            (editor(&s, &v.text, &v.version))
        },
        Err(e) => notice("error", &e),
    };
    page("Configuration", "/config", Some(&s), body)
}

pub async fn review(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    Form(f): Form<Edited>,
) -> Response {
    let text = f.text.replace("\r\n", "\n");
    let t = text.clone();
    let (checked, current) = blocking(&ui, move |b| (b.config_check(&t), b.config())).await;
    let body = match checked {
        Err(ConfigRefused::Problems(p)) => html! {
            (problems_list(&p))
            (editor(&s, &text, &f.version))
        },
        Err(ConfigRefused::Other(e)) => html! {
            (notice("error", &e))
            (editor(&s, &text, &f.version))
        },
        Ok(Applied { changed, .. }) if changed.is_empty() => html! {
            (notice("note", "Nothing changes."))
            (editor(&s, &text, &f.version))
        },
        Ok(Applied { changed, .. }) => {
            let old = current.map(|c| c.text).unwrap_or_default();
            html! {
                p { "These keys change: " @for (i, k) in changed.iter().enumerate() { @if i > 0 { ", " } code { (k) } } }
                div.diff #diff {
                    @for l in diff::lines(&old, &text) {
                        @match l {
                            Line::Same(t) => span { "  " (t) },
                            Line::Removed(t) => span.del { "- " (t) },
                            Line::Added(t) => span.add { "+ " (t) },
                        }
                    }
                }
                form method="post" action="/config/apply" {
                    (csrf(&s))
                    input type="hidden" name="version" value=(f.version);
                    input type="hidden" name="text" value=(text);
                    button type="submit" id="apply" { "Apply" }
                    " " a href="/config" { "Back to the editor (changes lost)" }
                }
                details { summary { "Edit again" } (editor(&s, &text, &f.version)) }
            }
        }
    };
    page("Review the configuration", "/config", Some(&s), body)
}

pub async fn apply(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    axum::Extension(peer): PeerOf,
    Form(f): Form<Edited>,
) -> Response {
    let text = f.text.replace("\r\n", "\n");
    let version = f.version.clone();
    let t = text.clone();
    let result = blocking(&ui, move |b| b.config_apply(&t, &version)).await;
    let outcome = match &result {
        Ok(a) => format!("ok: {}", a.changed.join(", ")),
        Err(ConfigRefused::Problems(p)) => format!("refused: {} problem(s)", p.len()),
        Err(ConfigRefused::Other(e)) => format!("refused: {e}"),
    };
    ui.record(&s, peer, "config apply", "", &outcome);
    match result {
        Ok(a) => {
            let mut said = format!("Saved: {}.", a.changed.join(", "));
            if !a.restarted.is_empty() {
                said.push_str(&format!(" Restarted: {}.", a.restarted.join(", ")));
            }
            for p in &a.problems {
                said.push_str(&format!(" Not applied now: {p}."));
            }
            ui.auth.set_flash(&s.key, "ok", &said);
            Redirect::to("/config").into_response()
        }
        Err(ConfigRefused::Problems(p)) => page(
            "Configuration",
            "/config",
            Some(&s),
            html! { (problems_list(&p)) (editor(&s, &text, &f.version)) },
        ),
        Err(ConfigRefused::Other(e)) => page(
            "Configuration",
            "/config",
            Some(&s),
            html! { (notice("error", &e)) (editor(&s, &text, &f.version)) },
        ),
    }
}

pub async fn confirm(
    axum::extract::State(ui): St,
    axum::Extension(s): Sess,
    axum::Extension(peer): PeerOf,
) -> Response {
    let result = blocking(&ui, |b| b.config_confirm()).await;
    ui.record(
        &s,
        peer,
        "config confirm",
        "",
        result.as_ref().map_or_else(|e| e.as_str(), |_| "ok"),
    );
    match result {
        Ok(()) => ui
            .auth
            .set_flash(&s.key, "ok", "The network settings are kept."),
        Err(e) => ui.auth.set_flash(&s.key, "error", &e),
    }
    Redirect::to("/config").into_response()
}
