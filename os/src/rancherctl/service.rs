//! `rancherctl service`: the system services as PID 1's supervisor sees them. `list` reads the
//! status PID 1 writes atomically at every change; `logs` prints a service's log file (its
//! stdout and stderr, plus the engine's notes on restarts). `start`, `stop`, `restart` and `up`
//! go through the engine's control API (as `system-docker` does); `enable` and `disable` only
//! edit `rancher.services_include.NAME` in the saved configuration, as RancherOS's `ros service
//! enable` did: the change takes effect at the next boot or `rancherctl service up NAME`.

use crate::config::ConfigPaths;
use crate::system_docker::client::Client;
use crate::system_docker::lifecycle;
use crate::system_services::STATUS_PATH;
use anyhow::{bail, Context};
use serde::Deserialize;

const USAGE: &str = "usage: rancherctl service <command>

commands:
  list                     the system services and their state
  logs NAME                a service's log
  start|stop|restart NAME… act on running services (stop keeps it stopped)
  up NAME…                 (re)create services from the configuration now saved
  upgrade NAME IMAGE [--stable SECS]
                           run NAME on IMAGE (in the system engine's store: `system-docker
                           load` it first); kept, and saved for the next boots, only if the
                           service holds for SECS (default 10), else back on its old image
  enable|disable NAME…     set rancher.services_include.NAME in the saved configuration";

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
        Some(verb @ ("start" | "stop" | "restart" | "up")) => {
            let client = Client::new(None)?;
            lifecycle::each(&client, verb, &args[1..], None)?;
            Ok(())
        }
        Some("upgrade") => upgrade(&args[1..]),
        Some(verb @ ("enable" | "disable")) => {
            if args.len() < 2 {
                bail!("{USAGE}");
            }
            include(&ConfigPaths::system(), &args[1..], verb == "enable")
        }
        Some("help") | Some("-h") | Some("--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// `enable`/`disable`: `rancher.services_include.NAME: true|false` in the saved layer.
fn include(paths: &ConfigPaths, names: &[String], on: bool) -> anyhow::Result<()> {
    for name in names {
        if name.is_empty() || name.contains(['.', '/', '[', ']']) {
            bail!("{name:?} is not a service name");
        }
        let key = format!("rancher.services_include.{name}");
        crate::rancherctl::config::set(paths, &key, if on { "true" } else { "false" })
            .with_context(|| format!("setting {key}"))?;
        println!("{key}: {on}");
    }
    Ok(())
}

/// `upgrade NAME IMAGE [--stable SECS]`: through the engine's API, which does the switch and
/// the way back (`system_services::upgrade`); this waits for its verdict.
fn upgrade(args: &[String]) -> anyhow::Result<()> {
    let mut positional = Vec::new();
    let mut stable = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stable" => {
                let v = it.next().context("--stable needs a number of seconds")?;
                let secs: u64 = v
                    .parse()
                    .with_context(|| format!("--stable {v:?}: not a number of seconds"))?;
                stable = Some(secs);
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n\n{USAGE}"),
            _ => positional.push(a.as_str()),
        }
    }
    let [name, image] = positional[..] else {
        bail!("{USAGE}");
    };
    let mut path = format!(
        "/rancheros/services/{}/upgrade?image={}",
        crate::system_docker::encode(name),
        crate::system_docker::encode(image)
    );
    if let Some(s) = stable {
        path.push_str(&format!("&stable={s}"));
    }
    println!("{name}: starting on {image}, watching it…");
    let client = Client::new(None)?;
    let done: serde_json::Value = client
        .json("POST", &path, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{name}: runs on {image} ({}), was {}; saved in {} for the next boots",
        done["ImageId"].as_str().unwrap_or("?"),
        done["Previous"].as_str().unwrap_or("?"),
        done["Saved"].as_str().unwrap_or("?"),
    );
    Ok(())
}

fn list() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(STATUS_PATH)
        .with_context(|| format!("reading {STATUS_PATH} (is the system engine running?)"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_and_disable_edit_services_include_and_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(dir.path());
        std::fs::create_dir_all(paths.cloud_config.parent().unwrap()).unwrap();
        std::fs::write(
            &paths.cloud_config,
            "#cloud-config\nhostname: box\nfoo_unknown: 1\n",
        )
        .unwrap();
        include(&paths, &["ntp".into()], true).unwrap();
        include(&paths, &["syslog".into()], false).unwrap();
        let text = std::fs::read_to_string(&paths.cloud_config).unwrap();
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        use serde_yaml_ng::Value;
        assert_eq!(v["rancher"]["services_include"]["ntp"], Value::Bool(true));
        assert_eq!(
            v["rancher"]["services_include"]["syslog"],
            Value::Bool(false)
        );
        assert_eq!(v["hostname"], Value::String("box".into()));
        assert_eq!(v["foo_unknown"], Value::from(1), "unknown keys are kept");
        let loaded = crate::config::load_layers(&paths, &Default::default());
        assert_eq!(
            loaded.config.rancher.services_include.get("syslog"),
            Some(&false)
        );
        assert!(include(&paths, &["a.b".into()], true).is_err());
    }
}
