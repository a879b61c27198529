//! `rancherctl service`: the system services as PID 1's supervisor sees them. `list` reads the
//! status PID 1 writes atomically at every change; `logs` prints a service's log file (its
//! stdout and stderr, plus the engine's notes on restarts).

use crate::init::services::STATUS_PATH;
use anyhow::{bail, Context};
use serde::Deserialize;

const USAGE: &str = "usage: rancherctl service <list | logs NAME>";

#[derive(Debug, Deserialize)]
struct Status {
    name: String,
    image: String,
    state: String,
    pid: Option<i32>,
    restarts: u32,
    last_exit: Option<String>,
    error: Option<String>,
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("list") | Some("ls") => list(),
        Some("logs") => match args.get(1) {
            Some(name) => logs(name),
            None => bail!("{USAGE}"),
        },
        Some("help") | Some("-h") | Some("--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

fn list() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(STATUS_PATH)
        .with_context(|| format!("reading {STATUS_PATH} (is PID 1 the RancherOS-rs init?)"))?;
    let all: Vec<Status> =
        serde_json::from_str(&text).with_context(|| format!("{STATUS_PATH}: not valid status"))?;
    println!(
        "{:<16} {:<11} {:>6} {:>8}  {:<20} {:<24} ERROR",
        "NAME", "STATE", "PID", "RESTARTS", "LAST EXIT", "IMAGE"
    );
    for s in all {
        println!(
            "{:<16} {:<11} {:>6} {:>8}  {:<20} {:<24} {}",
            s.name,
            s.state,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            s.restarts,
            s.last_exit.unwrap_or_else(|| "-".into()),
            s.image,
            s.error.unwrap_or_default()
        );
    }
    Ok(())
}

fn logs(name: &str) -> anyhow::Result<()> {
    if name.contains('/') || name.starts_with('.') {
        bail!("{name:?} is not a service name");
    }
    let path = format!("/var/log/{name}.log");
    let text =
        std::fs::read(&path).with_context(|| format!("no log for service {name} ({path})"))?;
    use std::io::Write;
    std::io::stdout()
        .write_all(&text)
        .context("writing to stdout")
}
