//! `system-docker ps [-a]`: `CONTAINER ID  IMAGE  COMMAND  CREATED  STATUS  PORTS  NAMES`.

use super::client::{Client, ClientError};
use super::table::render;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    id: String,
    names: Vec<String>,
    image: String,
    command: String,
    created: i64,
    status: String,
}

pub fn ps(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let mut all = false;
    for a in args {
        match a.as_str() {
            "-a" | "--all" => all = true,
            other => return Err(ClientError::Usage(format!("ps: unknown flag {other:?}"))),
        }
    }
    let path = if all {
        "/containers/json?all=1"
    } else {
        "/containers/json"
    };
    let list: Vec<Summary> = client.json("GET", path, None)?;
    print!("{}", table(&list, now()));
    Ok(())
}

fn now() -> i64 {
    crate::engine::api::time::unix(Some(std::time::SystemTime::now()))
}

/// `"/sbin/syslogd -n…"`: quoted, cut at 20 characters as docker does.
fn command(c: &str) -> String {
    let short: String = c.chars().take(19).collect();
    if c.chars().count() > 20 {
        format!("\"{short}…\"")
    } else {
        format!("\"{c}\"")
    }
}

pub fn ago(created: i64, now: i64) -> String {
    let d = std::time::Duration::from_secs((now - created).max(0) as u64);
    format!("{} ago", crate::engine::api::time::human(d))
}

fn table(list: &[Summary], now: i64) -> String {
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for c in list {
        rows.push(vec![
            c.id.chars().take(12).collect(),
            c.image.clone(),
            command(&c.command),
            ago(c.created, now),
            c.status.clone(),
            String::new(),
            c.names
                .iter()
                .map(|n| n.trim_start_matches('/'))
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_like_docker_ps() {
        let list = vec![Summary {
            id: "0123456789abcdef".into(),
            names: vec!["/syslog".into()],
            image: "rancher/os-syslog:v1".into(),
            command: "/bin/busybox syslogd -n -O /dev/stdout".into(),
            created: 1000,
            status: "Up 5 seconds".into(),
        }];
        let out = table(&list, 1120);
        let mut lines = out.lines();
        assert!(lines.next().unwrap().starts_with("CONTAINER ID   IMAGE"));
        let row = lines.next().unwrap();
        assert!(row.starts_with("0123456789ab   rancher/os-syslog:v1   \"/bin/busybox syslog…\"   2 minutes ago   Up 5 seconds"), "{row}");
        assert!(row.ends_with("syslog"), "{row}");
    }
}
