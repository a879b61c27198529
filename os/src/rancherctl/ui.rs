//! `rancherctl ui`: the web UI's login tokens and CA, asked of the UI over its admin socket
//! (`ui::ADMIN_SOCKET`, root only): the UI keeps only a token's hash, so the token printed
//! here is its only copy.

use crate::system_docker::client::Client;
use anyhow::{bail, Context};

const USAGE: &str = "usage: rancherctl ui <command>

commands:
  token [--ttl DURATION] [--read-only]
         a one-time login link (default ttl 10m; 30s, 10m, 2h; at most 24h); --read-only:
         the session it opens changes nothing
  ca     the CA certificate the UI's HTTPS certificate is signed by (PEM), to trust it

The UI runs when rancher.ui.enabled is true (rancherctl config set rancher.ui.enabled true;
rancherctl service up ui), on rancher.ui.listen (default 0.0.0.0:9443).";

pub fn main(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("token") => token(&args[1..]),
        Some("ca") => {
            let pem = admin()?
                .request("GET", "/ca", None)
                .and_then(|r| r.ok())
                .and_then(|r| r.bytes())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{}", String::from_utf8_lossy(&pem));
            Ok(())
        }
        Some("help") | Some("-h") | Some("--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

fn admin() -> anyhow::Result<Client> {
    let socket = std::path::Path::new(crate::ui::ADMIN_SOCKET);
    match std::fs::symlink_metadata(socket) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!("{}: permission denied: run it as root (sudo)", socket.display())
        }
        Err(_) => bail!(
            "the web UI is not running ({} missing): rancherctl config set rancher.ui.enabled true, then rancherctl service up ui",
            socket.display()
        ),
    }
    Ok(Client {
        socket: socket.into(),
    })
}

/// `30s`, `10m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("--ttl {s:?}: not a duration (30s, 10m, 2h)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("--ttl {s:?}: unit s, m, h or d"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("--ttl {s:?}: too long"))
}

fn token(args: &[String]) -> anyhow::Result<()> {
    let (mut ttl, mut read_only) = (None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ttl" => {
                ttl = Some(parse_duration(
                    it.next().context("--ttl needs a duration")?,
                )?)
            }
            t if t.starts_with("--ttl=") => ttl = Some(parse_duration(&t[6..])?),
            "--read-only" => read_only = true,
            other => bail!("unexpected {other:?}\n\n{USAGE}"),
        }
    }
    let mut path = format!("/token?read_only={read_only}");
    if let Some(t) = ttl {
        path.push_str(&format!("&ttl={t}"));
    }
    let answer: serde_json::Value = admin()?
        .json("POST", &path, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let urls: Vec<&str> = answer["urls"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u.as_str()).collect())
        .unwrap_or_default();
    let Some(first) = urls.first() else {
        bail!("the UI answered no address: {answer}");
    };
    println!("{first}");
    for u in &urls[1..] {
        println!("{u}");
    }
    eprintln!(
        "(one login, within {} s{}; the CA: rancherctl ui ca)",
        answer["ttl"].as_u64().unwrap_or(0),
        if read_only { ", read-only" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("30s").unwrap(), 30);
        assert_eq!(super::parse_duration("10m").unwrap(), 600);
        assert_eq!(super::parse_duration("2h").unwrap(), 7200);
        assert_eq!(super::parse_duration("45").unwrap(), 45);
        assert!(super::parse_duration("10x").is_err());
        assert!(super::parse_duration("m").is_err());
    }
}
