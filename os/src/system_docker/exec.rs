//! `system-docker exec [-i] [-e K=V] [-u USER] [-w DIR] NAME CMD [ARG…]`: create the exec,
//! start it on an upgraded connection (as `docker exec` does), copy its output as it comes
//! (and, with `-i`, our stdin to it, half-closing at EOF), then exit with its exit code.

use super::client::{Client, ClientError};
use super::encode;
use super::logs::copy_frames;
use serde_json::json;
use std::process::ExitCode;

pub fn exec(client: &Client, args: &[String]) -> ExitCode {
    match run(client, args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("{e}");
            match e {
                ClientError::Usage(_) => ExitCode::from(2),
                // docker exec's own failures (no such container, not running) exit 1.
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(client: &Client, args: &[String]) -> Result<i32, ClientError> {
    let (mut env, mut user, mut dir, mut interactive) = (Vec::new(), None, None, false);
    let mut it = args.iter();
    let name = loop {
        let a = it
            .next()
            .ok_or_else(|| ClientError::Usage("exec NAME CMD [ARG…]".into()))?;
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| ClientError::Usage(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "-e" | "--env" => env.push(value(a)?),
            "-u" | "--user" => user = Some(value(a)?),
            "-w" | "--workdir" => dir = Some(value(a)?),
            "-i" | "--interactive" => interactive = true,
            "-t" | "--tty" | "-it" | "-ti" => {
                return Err(ClientError::Usage("exec: a tty is not supported".into()))
            }
            n if !n.starts_with('-') => break n.to_string(),
            other => return Err(ClientError::Usage(format!("exec: unknown flag {other:?}"))),
        }
    };
    let cmd: Vec<String> = it.cloned().collect();
    if cmd.is_empty() {
        return Err(ClientError::Usage("exec NAME CMD [ARG…]".into()));
    }
    let created: serde_json::Value = client.json(
        "POST",
        &format!("/containers/{}/exec", encode(&name)),
        Some(&json!({
            "Cmd": cmd,
            "AttachStdin": interactive,
            "AttachStdout": true,
            "AttachStderr": true,
            "Env": env,
            "User": user.unwrap_or_default(),
            "WorkingDir": dir.unwrap_or_default(),
        })),
    )?;
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| ClientError::Protocol("exec create: no Id".into()))?
        .to_string();
    let body = br#"{"Detach":false,"Tty":false}"#;
    let (reader, mut writer) = client.upgrade("POST", &format!("/exec/{id}/start"), body)?;
    if interactive {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut writer);
            let _ = writer.shutdown(std::net::Shutdown::Write);
        });
    } else {
        let _ = writer.shutdown(std::net::Shutdown::Write);
    }
    copy_frames(Box::new(reader))?;
    let info: serde_json::Value = client.json("GET", &format!("/exec/{id}/json"), None)?;
    match info["ExitCode"].as_i64() {
        Some(c) => Ok(c as i32),
        None => Err(ClientError::Protocol(format!(
            "exec {id}: no exit code (still running: {})",
            info["Running"]
        ))),
    }
}
