//! `rancherctl`: the operator's command. One file per area, as in RancherOS's `cmd/control/`.

pub mod config;
mod console;
mod install;
mod os;
pub mod power;
mod service;
mod state;
mod tls;
mod ui;

use std::process::ExitCode;

const USAGE: &str = "usage: rancherctl <command>

commands:
  config     get, set, export, merge, validate the configuration (rancherctl config help)
  console    list, switch, enable, reset the console: busybox (default), debian, any image
             (rancherctl console help)
  service    list, start, stop, restart, enable, disable system services, show their logs
             (rancherctl service help)
  state      the state partition: device, mount, or running from RAM (--json)
  install    this system onto a disk: -d DEV [-i FILE|IMAGE] [-c cloud-config.yml]
             [--append ARGS] [-f] [--no-reboot] (rancherctl install help)
  os         version: the slot booted, its version, the boot state; mark-good: keep it;
             upgrade -i FILE|IMAGE; rollback
  tls        gen: a new CA, server and client certificate for the user engine's remote API
             (rancher.docker.tls) in /var/lib/docker/tls (rancherctl tls help)
  ui         token [--ttl 10m] [--read-only]: a one-time login link for the web UI;
             ca: its CA certificate (rancherctl ui help)
  reboot     stop every service cleanly and reboot
  poweroff   stop every service cleanly and power off
  halt       stop every service cleanly and halt";

pub fn main(args: &[String]) -> ExitCode {
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "config" => return config::main(&args[1..]),
        "service" => service::main(&args[1..]),
        "console" => console::main(&args[1..]),
        "state" => state::main(&args[1..]),
        "os" => os::main(&args[1..]),
        "install" => install::main(&args[1..]),
        "tls" => tls::main(&args[1..]),
        "ui" => ui::main(&args[1..]),
        "reboot" => power::request(power::Request::Reboot),
        "poweroff" | "shutdown" => power::request(power::Request::Poweroff),
        "halt" => power::request(power::Request::Halt),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("rancherctl: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rancherctl {cmd}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
