//! `rancherctl console`: which console runs (`crate::consoles`). `switch` and `enable` fetch
//! the console's image into the system engine's store first when it is not there (a pull
//! through the engine, with progress), then ask the engine to do the rest
//! (`system_services::console`): the switch is done there, to its end, even though this
//! command, running in the console being replaced, ends with it.

use crate::consoles::{self, DEFAULT};
use crate::system_docker::client::{Client, ClientError};
use crate::system_docker::encode;
use anyhow::{bail, Context};
use std::io::IsTerminal;

const USAGE: &str = "usage: rancherctl console <command>

commands:
  list            the consoles: the one running (current), the one chosen for the next
                  boots (enabled), and the names of rancher.console_index
  switch NAME [-f]
                  run the console NAME now (this session ends; -f: do not ask); NAME is
                  default, a name of the index, or an image reference; its image is pulled
                  first when the system engine does not have it
  enable NAME     run the console NAME from the next boot on
  reset NAME [-f] throw away what was installed or changed in the console NAME";

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let (force, rest): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| *a == "-f" || *a == "--force");
    let force = !force.is_empty();
    match rest.as_slice() {
        [cmd] if cmd.as_str() == "list" => list(),
        [cmd, name] if cmd.as_str() == "switch" || cmd.as_str() == "enable" => {
            let now = cmd.as_str() == "switch";
            if now
                && !force
                && !ask(&format!(
                    "Switching to the console {name} ends this session. Continue [y/N]? "
                ))?
            {
                bail!("not switched");
            }
            switch(name, now)
        }
        [cmd, name] if cmd.as_str() == "reset" => {
            if !force {
                if !std::io::stdin().is_terminal() {
                    bail!("reset throws away what was installed in {name}: give -f to confirm");
                }
                if !ask(&format!(
                    "Throw away every package and file installed or changed in the console {name} [y/N]? "
                ))? {
                    bail!("not reset");
                }
            }
            let client = Client::new(None)?;
            let done: serde_json::Value = client
                .json(
                    "POST",
                    &format!("/rancheros/console/reset?name={}", encode(name)),
                    None,
                )
                .map_err(|e| anyhow::anyhow!("{}", daemon_message(e)))?;
            println!(
                "console {name}: reset ({} removed)",
                done["Removed"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        [cmd] if ["-h", "--help", "help"].contains(&cmd.as_str()) => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// Ask on the terminal; not a terminal: yes (scripts and SSH commands switch without asking).
fn ask(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the answer")?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// The daemon's own words for a refused request.
fn daemon_message(e: ClientError) -> String {
    match e {
        ClientError::Daemon { message, .. } => message,
        other => other.to_string(),
    }
}

fn switch(name: &str, now: bool) -> anyhow::Result<()> {
    let (config, _) = crate::config::load_running();
    let choice = consoles::resolve(&config, name)?;
    let client = Client::new(None)?;
    let verb = if now { "switch" } else { "enable" };
    let path = format!("/rancheros/console/{verb}?name={}", encode(name));
    if now {
        println!("console {name}: starting it; this session ends when the current console stops");
    }
    // The engine takes the image from its store or from where a switch saved it; else it says
    // 404, and the image is pulled, then asked for again.
    let done: serde_json::Value = match client.json("POST", &path, None) {
        Err(ClientError::Daemon {
            status: 404,
            ref message,
        }) if choice.image.is_some() && message.contains("no such image") => {
            let image = choice.image.as_deref().unwrap_or_default();
            println!("console {name}: pulling {image}");
            crate::system_docker::images::pull(&client, &[image.to_string()]).map_err(|e| {
                anyhow::anyhow!(
                    "console {name}: {image} is not in the system engine's store and the pull failed: {}\n(load it with `system-docker load -i FILE`, or name a registry it can be pulled from)",
                    daemon_message(e)
                )
            })?;
            client.json("POST", &path, None)
        }
        other => other,
    }
    .map_err(|e| anyhow::anyhow!("{}", daemon_message(e)))?;
    let image = done["Image"].as_str().unwrap_or("?");
    if now {
        println!("console {name}: running ({image}); rancher.console: {name}");
    } else {
        println!(
            "console {name}: enabled ({image}), from the next boot on; rancher.console: {name}"
        );
    }
    Ok(())
}

fn list() -> anyhow::Result<()> {
    let (config, _) = crate::config::load_running();
    let enabled = config
        .rancher
        .console
        .clone()
        .unwrap_or_else(|| DEFAULT.into());
    let client = Client::new(None)?;
    // The running console: its container's image and writable layer.
    let running: serde_json::Value = client
        .json("GET", "/containers/console/json", None)
        .unwrap_or_default();
    let running_image = running["Config"]["Image"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let running_full = running["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .is_some_and(|u| u.starts_with(consoles::LAYERS));
    let mut names: Vec<String> = vec![DEFAULT.into()];
    names.extend(config.rancher.console_index.keys().cloned());
    if !names.contains(&enabled) {
        names.push(enabled.clone());
    }
    println!("{:<10} {:<18} IMAGE", "CONSOLE", "STATE");
    for n in names {
        let (image, is_current) = match consoles::resolve(&config, &n) {
            Ok(c) => match &c.image {
                None => {
                    let img = config
                        .rancher
                        .services
                        .get("console")
                        .and_then(|s| s.image.clone())
                        .unwrap_or_default();
                    (img, !running_image.is_empty() && !running_full)
                }
                Some(i) => (i.clone(), running_full && running_image == *i),
            },
            Err(e) => (format!("({e})"), false),
        };
        let mut state = Vec::new();
        if is_current {
            state.push("current");
        }
        if n == enabled {
            state.push("enabled");
        }
        println!("{n:<10} {:<18} {image}", state.join(","));
    }
    Ok(())
}
