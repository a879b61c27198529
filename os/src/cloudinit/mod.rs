//! Cloud-init for RancherOS-rs: user-data and metadata from the datasources become
//! configuration layers, and the parts of a cloud-config that *do* something are applied.
//!
//! The work is split as RancherOS split it, by when it must happen:
//! - `ros cloud-init save` ([`save`]) runs early, in the `cloud-init-save` system container
//!   (run to completion, labelled `io.rancher.os.reloadconfig`): it reads the datasources
//!   ([`datasource`]: NoCloud and ConfigDrive disks found by [`label`], URLs and EC2 through
//!   [`http`]) and saves what it got under `/var/lib/rancher/conf`. PID 1 then reloads the
//!   configuration before it starts the remaining services, so a datasource can set the
//!   hostname, keys, services, everything.
//! - [`write_files`] is applied by PID 1 itself, on the host at the reload and inside a named
//!   container when that container starts.
//! - `ros cloud-init execute` ([`execute`]) runs `runcmd` and `#!` user-data in the
//!   `cloud-init-execute` container, after the console is up.
//!
//! A failing datasource is logged and boot goes on.

pub mod datasource;
pub mod execute;
pub mod http;
pub mod identify;
pub mod label;
pub mod save;
pub mod write_files;

use std::path::PathBuf;
use std::process::ExitCode;

/// The OS config directory (on the state partition when there is one).
pub const CONF_DIR: &str = "/var/lib/rancher/conf";
/// Used when `rancher.cloud_init.datasources` is empty.
pub const DEFAULT_SOURCES: &[&str] = &["cmdline", "nocloud", "configdrive"];

/// The datasources' names `ros cloud-init save` asks, in order.
fn source_names(config: &crate::config::Config) -> Vec<String> {
    if config.rancher.cloud_init.datasources.is_empty() {
        DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect()
    } else {
        config.rancher.cloud_init.datasources.clone()
    }
}

/// The datasources `ros cloud-init save` asks, in order, and why any name is not one.
pub fn sources(config: &crate::config::Config) -> (Vec<datasource::Source>, Vec<String>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for n in source_names(config) {
        match datasource::Source::parse(&n) {
            Ok(s) => ok.push(s),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

/// Whether `ros cloud-init save` will ask a datasource over the network, so that it must start
/// after the network service; with disks only (the default, without `cloud-config-url=`) it
/// need not, and the network service starts with what the datasource says from its first
/// start. (A name that is not a datasource is skipped by `save`: it reaches nothing.)
pub fn needs_network(config: &crate::config::Config, cmdline: &crate::cmdline::Cmdline) -> bool {
    sources(config)
        .0
        .iter()
        .any(|s| s.reaches_network(cmdline.words()))
}

fn load_config() -> crate::config::Config {
    let (config, errors) = crate::config::load_running();
    for e in errors {
        println!("cloud-init: config: {e}");
    }
    config
}

/// `ros cloud-init save [--dev DIR] | execute`.
pub fn main(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("save") => {
            let dev = args
                .iter()
                .position(|a| a == "--dev")
                .and_then(|i| args.get(i + 1))
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/dev"));
            let config = load_config();
            let names = source_names(&config);
            let (sources, errors) = sources(&config);
            for e in errors {
                println!("cloud-init: {e}");
            }
            let env = datasource::Env {
                dev,
                mnt: PathBuf::from("/run/cloud-init"),
                cmdline: std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
            };
            let conf = PathBuf::from(CONF_DIR);
            println!("cloud-init: datasources {}", names.join(", "));
            match save::run(&sources, &env, &conf) {
                Ok(notes) => notes.iter().for_each(|n| println!("cloud-init: {n}")),
                Err(tried) => println!(
                    "cloud-init: no datasource answered ({}); the configuration of an earlier boot, if any, stays",
                    tried.join("; ")
                ),
            }
            ExitCode::SUCCESS
        }
        Some("execute") => {
            let config = load_config();
            let script = PathBuf::from(CONF_DIR).join(save::SCRIPT_FILE);
            for n in execute::run(&config.runcmd, &script) {
                println!("cloud-init: {n}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: ros cloud-init save [--dev DIR] | execute");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::needs_network;
    use crate::cmdline::Cmdline;
    use crate::config::Config;

    #[test]
    fn the_network_is_needed_by_a_url_or_metadata_datasource_only() {
        let plain = Cmdline::parse("console=ttyS0 rancher.debug=true");
        let url = Cmdline::parse("console=ttyS0 -- cloud-config-url=http://10.0.2.100/u");
        let with = |names: &[&str]| {
            let mut c = Config::default();
            c.rancher.cloud_init.datasources = names.iter().map(|s| s.to_string()).collect();
            c
        };
        // The defaults (cmdline, nocloud, configdrive): only with a cloud-config-url=.
        assert!(!needs_network(&with(&[]), &plain));
        assert!(needs_network(&with(&[]), &url), "after `--` too");
        assert!(!needs_network(
            &with(&["nocloud", "configdrive:/media/x"]),
            &url
        ));
        assert!(needs_network(&with(&["nocloud", "ec2"]), &plain));
        assert!(needs_network(&with(&["url:http://x/y"]), &plain));
        assert!(
            !needs_network(&with(&["nonsense", "nocloud"]), &plain),
            "skipped by save"
        );
    }
}
