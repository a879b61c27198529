//! The overview: what runs, how it booted, how full it is.

use super::layout::{notice, page};
use crate::ui::app::{blocking, Sess, St};
use crate::ui::host::{self, Boot};
use axum::response::Response;
use maud::{html, Markup};

pub async fn show(axum::extract::State(ui): St, axum::Extension(s): Sess) -> Response {
    let (services, boot, config, facts) = blocking(&ui, |b| {
        (
            b.services(),
            b.boot_log().map(|t| host::boot(&t)),
            b.config(),
            host::read(std::path::Path::new(crate::ui::DIR)),
        )
    })
    .await;
    let body = html! {
        @if let Ok(c) = &config {
            @if let Some(secs) = c.revert_in {
                (notice("note", &format!("A network change waits for its confirmation: it is undone in {secs} s (Config page).")))
            }
        }
        div.grid {
            div.card { "Hostname" b #hostname { (facts.hostname) } }
            div.card { "Version" b { (facts.version) } @if let Some(slot) = &facts.slot { "slot " (slot) } }
            div.card { "Up" b #uptime { (host::duration(facts.uptime_secs)) } "load " (facts.load) }
            div.card { "CPUs" b { (facts.cpus) } }
            div.card { "Memory available" b { (host::bytes(facts.mem_available_kb * 1024)) } "of " (host::bytes(facts.mem_total_kb * 1024)) }
            div.card { "State partition used" b { (host::bytes(facts.disk_used)) } "of " (host::bytes(facts.disk_total)) }
            div.card { "Ready" b #ready {
                @match &boot { Ok(Boot { ready: Some(r), degraded, .. }) => { (format!("{r:.2} s")) @if *degraded { " (degraded)" } } _ => "—" }
            } "after the kernel started" }
        }
        h2 { "Addresses" }
        ul #addresses { @for a in &facts.addresses { li { (a) } } }
        h2 { "System services" }
        @match &services {
            Ok(list) => {
                p #health {
                    (list.iter().filter(|s| s.state == "running").count()) " running"
                    @let ended = list.iter().filter(|s| s.state == "exited").count();
                    @if ended > 0 { ", " (ended) " run to their end" }
                    " (of " (list.len()) ")."
                    @for s in list.iter().filter(|s| s.state != "running" && s.state != "exited") {
                        " " a href=(format!("/services/{}", s.name)) { (s.name) } " is " span class=(format!("state-{}", s.state)) { (s.state) } "."
                    }
                }
            }
            Err(e) => { (notice("error", &format!("services: {e}"))) }
        }
        h2 { "Boot" }
        @match &boot {
            Ok(b) => { (chart(b)) }
            Err(e) => { (notice("note", &format!("boot: {e}"))) }
        }
    };
    page("Overview", "/", Some(&s), body)
}

/// One bar per PID 1 step on the boot's clock, the kernel's time first.
fn chart(b: &Boot) -> Markup {
    let Some(ready) = b.ready else {
        return html! { p { "The boot has not ended yet." } };
    };
    let total_steps: f64 = b.steps.iter().map(|(_, ms)| ms / 1000.0).sum();
    let first = (ready - total_steps).max(0.0);
    let (width, row, label) = (640.0, 16.0, 150.0);
    let scale = (width - label - 10.0) / ready.max(0.001);
    let mut bars = vec![("kernel, initramfs".to_string(), 0.0, first)];
    let mut at = first;
    for (name, ms) in &b.steps {
        let d = ms / 1000.0;
        bars.push((name.clone(), at, d));
        at += d;
    }
    let height = row * bars.len() as f64 + 24.0;
    html! {
        svg #boot-chart xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) role="img" {
            title { (format!("boot: ready at {ready:.2} s")) }
            @for (i, (name, start, d)) in bars.iter().enumerate() {
                @let y = i as f64 * row;
                text x="0" y=(y + 12.0) { (name) }
                rect x=(label + start * scale) y=(y + 2.0) width=((d * scale).max(1.0)) height=(row - 4.0) fill=(if i == 0 { "#9fb7c7" } else { "#2b7bb9" }) {
                    title { (format!("{name}: {d:.3} s")) }
                }
            }
            text x=(label) y=(height - 6.0) { "0 s" }
            text x=(width - 60.0) y=(height - 6.0) { (format!("{ready:.2} s")) }
        }
    }
}
