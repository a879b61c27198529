//! `system-docker start|stop|restart [-t SECS] NAME…`: each name printed on success, docker's
//! error line otherwise; the command fails if any did. `rancherctl service` uses these too.

use super::client::{Client, ClientError};
use super::encode;

/// One action on one container (`start`, `stop`, `restart`) or service (`up`).
pub fn act(
    client: &Client,
    verb: &str,
    name: &str,
    timeout: Option<&str>,
) -> Result<(), ClientError> {
    let path = match verb {
        "up" => format!("/rancheros/services/{}/up", encode(name)),
        _ => {
            let mut p = format!("/containers/{}/{verb}", encode(name));
            if let Some(t) = timeout {
                p.push_str(&format!("?t={}", encode(t)));
            }
            p
        }
    };
    client.call("POST", &path).map(|_| ())
}

/// Act on every name; print each as done, or the daemon's error.
pub fn each(
    client: &Client,
    verb: &str,
    names: &[String],
    timeout: Option<&str>,
) -> Result<(), ClientError> {
    super::for_each_name(&format!("{verb} NAME…"), names, |n| {
        act(client, verb, n, timeout)?;
        println!("{n}");
        Ok(())
    })
}

pub fn command(client: &Client, verb: &str, args: &[String]) -> Result<(), ClientError> {
    let mut timeout = None;
    let mut names: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-t" | "--time" if verb != "start" => {
                timeout = Some(
                    it.next()
                        .ok_or_else(|| ClientError::Usage(format!("{a} needs SECS")))?
                        .clone(),
                )
            }
            f if f.starts_with('-') => {
                return Err(ClientError::Usage(format!("{verb}: unknown flag {f:?}")))
            }
            n => names.push(n.to_string()),
        }
    }
    each(client, verb, &names, timeout.as_deref())
}
