//! `docker run` and `docker rm` of the console's CLI (the everyday verbs; the real docker CLI
//! remains the compatibility target):
//!
//! ```text
//! run [-d] [-i] [--rm] [--name N] [-e K=V]… [-w DIR] [-u USER] [-v SRC:DST[:ro]]…
//!     [--restart POLICY] [--net host|none|bridge|NETWORK] [--network-alias A]…
//!     [-p [IP:][HOST:]PORT[/udp]]… [-P]
//!     [--expose PORT[/udp]]… [-h NAME] IMAGE [CMD [ARG…]]
//! rm [-f] NAME…
//! ```
//! `run` does what the docker CLI does: create; unless detached, attach (an upgraded
//! connection) and ask for the exit (`wait`, before the start, so the exit cannot be missed);
//! start; copy the streams (stdin too with `-i`, half-closed at its end); exit with the
//! container's code.

use super::client::{Client, ClientError};
use super::encode;
use super::logs::copy_frames;
use serde_json::json;
use std::io::Read;
use std::process::ExitCode;

#[derive(Debug, Default, PartialEq)]
struct RunArgs {
    detach: bool,
    interactive: bool,
    rm: bool,
    name: Option<String>,
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    binds: Vec<String>,
    restart: Option<String>,
    net: Option<String>,
    aliases: Vec<String>,
    publish: Vec<String>,
    publish_all: bool,
    expose: Vec<String>,
    hostname: Option<String>,
    image: String,
    cmd: Vec<String>,
}

fn parse(args: &[String]) -> Result<RunArgs, ClientError> {
    let usage = || ClientError::Usage("run [OPTIONS] IMAGE [CMD [ARG…]]".into());
    let mut a = RunArgs::default();
    let mut it = args.iter();
    loop {
        let w = it.next().ok_or_else(usage)?;
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| ClientError::Usage(format!("{flag} needs a value")))
        };
        match w.as_str() {
            "-d" | "--detach" => a.detach = true,
            "-i" | "--interactive" => a.interactive = true,
            "--rm" => a.rm = true,
            "--name" => a.name = Some(value(w)?),
            "-e" | "--env" => a.env.push(value(w)?),
            "-w" | "--workdir" => a.workdir = Some(value(w)?),
            "-u" | "--user" => a.user = Some(value(w)?),
            "-v" | "--volume" => a.binds.push(value(w)?),
            "--restart" => a.restart = Some(value(w)?),
            "--net" | "--network" => a.net = Some(value(w)?),
            "--network-alias" => a.aliases.push(value(w)?),
            "-p" | "--publish" => a.publish.push(value(w)?),
            "-P" | "--publish-all" => a.publish_all = true,
            "--expose" => a.expose.push(value(w)?),
            "-h" | "--hostname" => a.hostname = Some(value(w)?),
            "-t" | "--tty" | "-it" | "-ti" => {
                return Err(ClientError::Usage(
                    "run: a tty is not supported by this CLI (the docker CLI over ssh:// has one)"
                        .into(),
                ))
            }
            f if f.starts_with('-') => {
                return Err(ClientError::Usage(format!("run: unknown flag {f:?}")))
            }
            image => {
                a.image = image.to_string();
                break;
            }
        }
    }
    a.cmd = it.cloned().collect();
    Ok(a)
}

/// `-p [IP:][HOST:]PORT[/PROTO]` as (`PORT/PROTO`, HostIp, HostPort).
fn publish_spec(p: &str) -> Result<(String, String, String), ClientError> {
    let bad = || ClientError::Usage(format!("-p {p:?}: [IP:][HOST:]PORT[/tcp|/udp]"));
    let (rest, proto) = match p.rsplit_once('/') {
        Some((r, proto @ ("tcp" | "udp"))) => (r, proto),
        Some(_) => return Err(bad()),
        None => (p, "tcp"),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, port) = match parts[..] {
        [port] => ("", "", port),
        [host, port] => ("", host, port),
        [ip, host, port] => (ip, host, port),
        _ => return Err(bad()),
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok((format!("{port}/{proto}"), ip.to_string(), host.to_string()))
}

/// `--restart` as the API's RestartPolicy (`on-failure:3` → name and count).
fn restart_policy(p: &str) -> Result<serde_json::Value, ClientError> {
    let (name, count) = match p.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<u32>()
                .map_err(|_| ClientError::Usage(format!("--restart: bad retry count {c:?}")))?,
        ),
        None => (p, 0),
    };
    Ok(json!({ "Name": name, "MaximumRetryCount": count }))
}

pub fn run(client: &Client, args: &[String]) -> ExitCode {
    match run_inner(client, args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("{e}");
            // docker run's own failures exit 125.
            match e {
                ClientError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::from(125),
            }
        }
    }
}

fn run_inner(client: &Client, args: &[String]) -> Result<i32, ClientError> {
    let a = parse(args)?;
    let attached = !a.detach;
    let mut host = json!({ "AutoRemove": a.rm, "Binds": a.binds });
    if let Some(p) = &a.restart {
        host["RestartPolicy"] = restart_policy(p)?;
    }
    if let Some(n) = &a.net {
        host["NetworkMode"] = json!(n);
    }
    let mut exposed = serde_json::Map::new();
    let mut bindings = serde_json::Map::new();
    for p in &a.publish {
        let (key, ip, port) = publish_spec(p)?;
        exposed.insert(key.clone(), json!({}));
        let list = bindings.entry(key).or_insert_with(|| json!([]));
        if let Some(l) = list.as_array_mut() {
            l.push(json!({ "HostIp": ip, "HostPort": port }));
        }
    }
    for e in &a.expose {
        let key = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(key, json!({}));
    }
    host["PortBindings"] = serde_json::Value::Object(bindings);
    host["PublishAllPorts"] = json!(a.publish_all);
    let mut networking = json!({});
    if !a.aliases.is_empty() {
        let net = a.net.clone().unwrap_or_default();
        networking = json!({ "EndpointsConfig": { net: { "Aliases": a.aliases } } });
    }
    let body = json!({
        "NetworkingConfig": networking,
        "Image": a.image,
        "Cmd": if a.cmd.is_empty() { serde_json::Value::Null } else { json!(a.cmd) },
        "Env": a.env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "AttachStdin": a.interactive && attached,
        "AttachStdout": attached,
        "AttachStderr": attached,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive,
        "HostConfig": host,
        "ExposedPorts": exposed,
        "Hostname": a.hostname.clone().unwrap_or_default(),
    });
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", encode(n)),
        None => "/containers/create".to_string(),
    };
    let created: serde_json::Value = client.json("POST", &path, Some(&body))?;
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| ClientError::Protocol("create: no Id".into()))?
        .to_string();
    if !attached {
        client.call("POST", &format!("/containers/{id}/start"))?;
        println!("{id}");
        return Ok(0);
    }
    let (reader, mut writer) = client.upgrade(
        "POST",
        &format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
            u8::from(a.interactive)
        ),
        b"",
    )?;
    let cond = if a.rm { "removed" } else { "next-exit" };
    let wait = client
        .request(
            "POST",
            &format!("/containers/{id}/wait?condition={cond}"),
            None,
        )?
        .ok()?;
    client.call("POST", &format!("/containers/{id}/start"))?;
    if a.interactive {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut writer);
            let _ = writer.shutdown(std::net::Shutdown::Write);
        });
    } else {
        let _ = writer.shutdown(std::net::Shutdown::Write);
    }
    copy_frames(Box::new(reader))?;
    let mut text = String::new();
    let mut body = wait.body;
    body.read_to_string(&mut text)
        .map_err(|source| ClientError::Io {
            what: "reading the wait answer".into(),
            source,
        })?;
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| ClientError::Protocol(format!("wait: {e}: {text:?}")))?;
    if let Some(m) = v["Error"]["Message"].as_str() {
        eprintln!("{m}");
    }
    v["StatusCode"]
        .as_i64()
        .map(|c| c as i32)
        .ok_or_else(|| ClientError::Protocol(format!("wait: no StatusCode in {text:?}")))
}

/// `rm [-f] NAME…`.
pub fn rm(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let q = if force { "?force=1" } else { "" };
    super::for_each_name("rm [-f] NAME…", &names, |n| {
        client.call("DELETE", &format!("/containers/{}{q}", encode(n)))?;
        println!("{n}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_stop_at_the_image() {
        let a = parse(&words(
            "-d --rm --name web -e A=1 -v /a:/b:ro busybox sh -c -d",
        ))
        .unwrap();
        assert!(a.detach && a.rm);
        assert_eq!(a.name.as_deref(), Some("web"));
        assert_eq!(a.image, "busybox");
        assert_eq!(a.cmd, ["sh", "-c", "-d"]);
        assert_eq!(a.binds, ["/a:/b:ro"]);
        assert!(parse(&words("-d")).is_err());
        let a = parse(&words(
            "-p 8080:80 -p 127.0.0.1:53:53/udp -P --expose 443 -h web b",
        ))
        .unwrap();
        assert_eq!(a.publish, ["8080:80", "127.0.0.1:53:53/udp"]);
        assert!(a.publish_all && a.hostname.as_deref() == Some("web"));
        assert_eq!(
            publish_spec("8080:80").unwrap(),
            ("80/tcp".into(), "".into(), "8080".into())
        );
        assert_eq!(
            publish_spec("127.0.0.1:53:53/udp").unwrap(),
            ("53/udp".into(), "127.0.0.1".into(), "53".into())
        );
        assert_eq!(publish_spec("80").unwrap().2, "");
        for bad in ["80/sctp", "a:b:c:d", "0", "x"] {
            assert!(publish_spec(bad).is_err(), "{bad}");
        }
        assert!(parse(&words("--frob busybox")).is_err());
        assert_eq!(
            restart_policy("on-failure:3").unwrap(),
            json!({ "Name": "on-failure", "MaximumRetryCount": 3 })
        );
    }
}
