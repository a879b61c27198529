//! `system-docker`: the system engine's CLI, docker's verbs and output over the engine's Docker API
//! socket (`-H unix:///path` or `DOCKER_HOST` picks another). One file per area; every command
//! talks HTTP through [`client`] only, so it works against any engine serving the same API.

pub mod client;
mod dial_stdio;
mod exec;
pub(crate) mod images;
mod inspect;
pub mod lifecycle;
mod logs;
mod network;
mod ps;
mod run;
mod table;

use client::{Client, ClientError};
use std::process::ExitCode;

const USAGE: &str = "usage: system-docker [-H unix:///path] <command>

commands:
  ps [-a]                      list containers (-a: stopped ones too)
  images                       list images
  logs [-f] [--tail N] NAME    print a container's log (-f: follow)
  exec [-i] [-e K=V] [-u USER] [-w DIR] NAME CMD [ARG…]
                               run a command in a running container; exits with its code
  start|stop|restart [-t SECS] NAME…
  inspect NAME…                low-level information as JSON
  load [-i FILE]               load images from a docker save or OCI layout tar (stdin without -i)
  save [-o FILE] IMAGE…        the images as one docker save tar (stdout without -o)
  pull IMAGE                   fetch an image from its registry (rancher.docker's settings)
  rmi [-f] IMAGE…              untag images, deleting those no name is left on
  version                      the engine's version
  run [-d] [-i] [--rm] [--name N] [-e K=V] [-v SRC:DST[:ro]] [--restart P] IMAGE [CMD…]
                               create and start a container
  rm [-f] NAME…                remove containers
  system dial-stdio            join stdin and stdout to the engine's socket (docker -H ssh://)";

pub fn main(args: &[String]) -> ExitCode {
    run(args, crate::engine::api::SOCKET)
}

/// The user engine's socket (the console's `/var/run` is the host's `/run`).
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// `docker` in the console: the same verbs against the user engine, and `docker system
/// dial-stdio`, which a workstation's docker CLI runs over SSH for `DOCKER_HOST=ssh://…`.
pub fn docker_main(args: &[String]) -> ExitCode {
    run(args, DOCKER_SOCKET)
}

fn run(args: &[String], default_socket: &str) -> ExitCode {
    let mut args = args.to_vec();
    let mut host = None;
    while let Some(first) = args.first() {
        match first.as_str() {
            "-H" | "--host" if args.len() > 1 => {
                host = Some(args[1].clone());
                args.drain(..2);
            }
            h if h.starts_with("--host=") => {
                host = Some(h["--host=".len()..].to_string());
                args.remove(0);
            }
            _ => break,
        }
    }
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let client = match Client::with_default(host.as_deref(), default_socket) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let result = match cmd.as_str() {
        "ps" => ps::ps(&client, rest),
        "images" => images::images(&client, rest),
        "logs" => logs::logs(&client, rest),
        "exec" => return exec::exec(&client, rest),
        "start" | "stop" | "restart" => lifecycle::command(&client, cmd, rest),
        "inspect" => inspect::inspect(&client, rest),
        "load" => images::load(&client, rest),
        "pull" => images::pull(&client, rest),
        "save" => images::save(&client, rest),
        "rmi" => images::rmi(&client, rest),
        "version" => version(&client),
        "run" => return run::run(&client, rest),
        "rm" => run::rm(&client, rest),
        "network" => network::network(&client, rest),
        "system" if rest.first().map(String::as_str) == Some("dial-stdio") => {
            dial_stdio::dial_stdio(&client)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(ClientError::Usage(format!(
            "unknown command {other:?}\n\n{USAGE}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &ClientError) -> ExitCode {
    eprintln!("{e}");
    match e {
        ClientError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

fn version(client: &Client) -> Result<(), ClientError> {
    let v: serde_json::Value = client.json("GET", "/version", None)?;
    println!(
        "Server: {}\n Version:     {}\n API version: {} (minimum version {})\n OS/Arch:     {}/{}\n Kernel:      {}",
        v["Platform"]["Name"].as_str().unwrap_or(""),
        v["Version"].as_str().unwrap_or(""),
        v["ApiVersion"].as_str().unwrap_or(""),
        v["MinAPIVersion"].as_str().unwrap_or(""),
        v["Os"].as_str().unwrap_or(""),
        v["Arch"].as_str().unwrap_or(""),
        v["KernelVersion"].as_str().unwrap_or(""),
    );
    Ok(())
}

/// `%`-encode a path segment or query value (names are plain, but a user may type anything).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Run `act` on every name, going on past a failure (its error printed) and failing at the
/// end with how many failed, as docker's multi-name commands do; a connection failure stops at
/// once. `usage` is the command's synopsis, for no names at all.
pub(crate) fn for_each_name<N: AsRef<str>>(
    usage: &str,
    names: &[N],
    mut act: impl FnMut(&str) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    if names.is_empty() {
        return Err(ClientError::Usage(usage.to_string()));
    }
    let mut failed = 0;
    for n in names {
        match act(n.as_ref()) {
            Ok(()) => {}
            Err(e @ ClientError::Connect { .. }) => return Err(e),
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        let verb = usage.split_whitespace().next().unwrap_or(usage);
        return Err(ClientError::Protocol(format!(
            "{verb}: {failed} of {} failed",
            names.len()
        )));
    }
    Ok(())
}
