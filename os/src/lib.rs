//! The RancherOS-rs operating system: PID 1 (`init`), `rancherctl`, and the pieces they share.

pub mod bootstate;
pub mod cloudinit;
pub mod cmdline;
pub mod config;
pub mod console;
pub mod consoled;
pub mod consoles;
pub mod containerinit;
pub mod dirfd;
pub mod dockerd;
pub mod engine;
pub mod init;
pub mod install;
pub mod netconf;
pub mod ntp;
pub mod priority;
pub mod procfs;
pub mod rancherctl;
pub mod random;
pub mod services;
pub mod signals;
pub mod state;
pub mod system_docker;
pub mod system_services;
pub mod tty;
pub mod ui;

use std::process::ExitCode;

/// The commands this binary answers to, by program name or first argument.
const COMMANDS: &[&str] = &[
    "init",
    "rancherctl",
    "system-docker",
    "docker",
    "ros-init",
    // In full consoles (whose images have no init of their own to ask): PID 1's shutdown.
    "reboot",
    "poweroff",
    "halt",
];

/// Run the command named by `argv[0]` (its file name) or, failing that, by `argv[1]`.
pub fn dispatch(args: Vec<String>) -> ExitCode {
    let prog = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let (cmd, rest) = if COMMANDS.contains(&prog.as_str()) {
        (prog, &args[1..])
    } else if let Some(first) = args.get(1) {
        (first.clone(), &args[2..])
    } else {
        eprintln!("usage: ros <{}> [args…]", COMMANDS.join("|"));
        return ExitCode::from(2);
    };
    match cmd.as_str() {
        "init" => init::main(),
        "rancherctl" => {
            signals::quiet_on_closed_pipe();
            rancherctl::main(rest)
        }
        "reboot" | "poweroff" | "halt" => {
            // No options: PID 1 always stops every service cleanly first (busybox's -f and
            // systemd's --force have nothing to skip here).
            if !rest.is_empty() {
                eprintln!(
                    "usage: {cmd}\n(asks PID 1 to stop every service cleanly, then to {cmd})"
                );
                return ExitCode::from(if rest.iter().any(|a| a == "-h" || a == "--help") {
                    0
                } else {
                    2
                });
            }
            let req = match cmd.as_str() {
                "reboot" => rancherctl::power::Request::Reboot,
                "poweroff" => rancherctl::power::Request::Poweroff,
                _ => rancherctl::power::Request::Halt,
            };
            match rancherctl::power::request(req) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{cmd}: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        // The `cloud-init-save` and `cloud-init-execute` system services (in their containers).
        "cloud-init" => cloudinit::main(rest),
        // The `network` system service's main process (in its container).
        "netconf" => netconf::main(rest),
        // The `ntp` system service's client (run inside its container).
        "ntpd" => ntp::main(rest),
        // The console container's main process: the SSH server and a getty per terminal.
        "consoled" => consoled::main(rest),
        // The `ui` system service: the local web UI (in its container).
        "ui" => ui::main(rest),
        // The console image's command: ready the rancher user, then become consoled.
        "console-start" => consoled::start::main(rest),
        // A container's init (services with `init: true`), bound in as /sbin/ros-init.
        "ros-init" => containerinit::main(rest),
        // The system engine's CLI (talks to its Docker API socket).
        "system-docker" => {
            signals::quiet_on_closed_pipe();
            system_docker::main(rest)
        }
        // The user engine's CLI in the console (and `docker system dial-stdio` for ssh://).
        "docker" => {
            signals::quiet_on_closed_pipe();
            system_docker::docker_main(rest)
        }
        // The engines: the user engine (the `docker` system service's main process), and with
        // `--system` the system engine (PID 1's child, which runs the system services).
        "dockerd" => dockerd::main(rest),
        // Hidden: the short-lived process that runs libcontainer for the engine.
        "container-helper" => engine::runtime::helper::main(rest),
        // Hidden: the process that owns one container of the user engine (see engine::shim).
        "container-shim" => engine::shim::main(rest),
        // Hidden: the health gate of a trial boot, started by PID 1 once boot ends.
        "boot-health" => bootstate::health::main(rest),
        other => {
            eprintln!(
                "ros: unknown command {other:?}; expected one of {}",
                COMMANDS.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
