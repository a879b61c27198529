//! `docker network` of the console's CLI, over the user engine's API:
//!
//! ```text
//! network ls
//! network create [--subnet CIDR] [--gateway IP] [--internal] [--label K=V]… NAME
//! network rm NAME…
//! network connect [--alias A]… [--ip IP] NETWORK CONTAINER
//! network disconnect [-f] NETWORK CONTAINER
//! network inspect NAME…
//! network prune [-f]
//! ```

use super::client::{Client, ClientError};
use super::encode;
use super::table::render;
use serde_json::{json, Value};

pub fn network(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let usage =
        || ClientError::Usage("network ls|create|rm|connect|disconnect|inspect|prune".into());
    let (verb, rest) = args.split_first().ok_or_else(usage)?;
    match verb.as_str() {
        "ls" | "list" => ls(client),
        "create" => create(client, rest),
        "rm" | "remove" => rm(client, rest),
        "connect" => connect(client, rest),
        "disconnect" => disconnect(client, rest),
        "inspect" => inspect(client, rest),
        "prune" => prune(client),
        _ => Err(usage()),
    }
}

fn ls(client: &Client) -> Result<(), ClientError> {
    let mut list: Vec<Value> = client.json("GET", "/networks", None)?;
    list.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let mut rows = vec![["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
        .map(String::from)
        .to_vec()];
    for n in &list {
        let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
        rows.push(vec![
            s("Id").chars().take(12).collect(),
            s("Name"),
            s("Driver"),
            s("Scope"),
        ]);
    }
    print!("{}", render(&rows));
    Ok(())
}

/// `--flag value` pairs (a lone flag with an empty value), then the operands.
type Split<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// Flags then operands.
fn split<'a>(
    args: &'a [String],
    with_value: &[&str],
    lone: &[&str],
) -> Result<Split<'a>, ClientError> {
    let mut flags = Vec::new();
    let mut operands = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if with_value.contains(&a.as_str()) {
            let v = it
                .next()
                .ok_or_else(|| ClientError::Usage(format!("{a} needs a value")))?;
            flags.push((a.as_str(), v.as_str()));
        } else if lone.contains(&a.as_str()) {
            flags.push((a.as_str(), ""));
        } else if a.starts_with('-') {
            return Err(ClientError::Usage(format!("network: unknown flag {a:?}")));
        } else {
            operands.push(a.as_str());
        }
    }
    Ok((flags, operands))
}

fn create(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let (flags, names) = split(args, &["--subnet", "--gateway", "--label"], &["--internal"])?;
    let [name] = names[..] else {
        return Err(ClientError::Usage("network create [OPTIONS] NAME".into()));
    };
    let mut config = json!({});
    let mut labels = serde_json::Map::new();
    let mut internal = false;
    for (f, v) in flags {
        match f {
            "--subnet" => config["Subnet"] = json!(v),
            "--gateway" => config["Gateway"] = json!(v),
            "--internal" => internal = true,
            _ => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                labels.insert(k.into(), json!(val));
            }
        }
    }
    let configs = if config.as_object().is_some_and(|o| o.is_empty()) {
        json!([])
    } else {
        json!([config])
    };
    let body = json!({
        "Name": name,
        "Driver": "bridge",
        "IPAM": { "Driver": "default", "Config": configs },
        "Internal": internal,
        "Labels": labels,
    });
    let made: Value = client.json("POST", "/networks/create", Some(&body))?;
    println!("{}", made["Id"].as_str().unwrap_or_default());
    Ok(())
}

fn rm(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let (_, names) = split(args, &[], &[])?;
    if names.is_empty() {
        return Err(ClientError::Usage("network rm NAME…".into()));
    }
    for n in names {
        client.call("DELETE", &format!("/networks/{}", encode(n)))?;
        println!("{n}");
    }
    Ok(())
}

fn connect(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let (flags, ops) = split(args, &["--alias", "--ip"], &[])?;
    let [net, container] = ops[..] else {
        return Err(ClientError::Usage(
            "network connect [OPTIONS] NETWORK CONTAINER".into(),
        ));
    };
    let aliases: Vec<&str> = flags
        .iter()
        .filter(|(f, _)| *f == "--alias")
        .map(|(_, v)| *v)
        .collect();
    let ip = flags.iter().find(|(f, _)| *f == "--ip").map(|(_, v)| *v);
    let body = json!({
        "Container": container,
        "EndpointConfig": { "Aliases": aliases, "IPAMConfig": { "IPv4Address": ip.unwrap_or_default() } },
    });
    let path = format!("/networks/{}/connect", encode(net));
    post(client, &path, &body)
}

fn disconnect(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let (flags, ops) = split(args, &[], &["-f", "--force"])?;
    let [net, container] = ops[..] else {
        return Err(ClientError::Usage(
            "network disconnect [-f] NETWORK CONTAINER".into(),
        ));
    };
    let body = json!({ "Container": container, "Force": !flags.is_empty() });
    let path = format!("/networks/{}/disconnect", encode(net));
    post(client, &path, &body)
}

/// A POST with a JSON body whose answer has none of interest (connect, disconnect).
fn post(client: &Client, path: &str, body: &Value) -> Result<(), ClientError> {
    let text = body.to_string();
    let mut bytes = text.as_bytes();
    let len = bytes.len() as u64;
    client
        .request("POST", path, Some(("application/json", len, &mut bytes)))?
        .ok()?
        .bytes()?;
    Ok(())
}

fn inspect(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let (_, names) = split(args, &[], &[])?;
    let mut out = Vec::new();
    for n in names {
        out.push(client.json::<Value>("GET", &format!("/networks/{}", encode(n)), None)?);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| ClientError::Protocol(e.to_string()))?
    );
    Ok(())
}

fn prune(client: &Client) -> Result<(), ClientError> {
    let r: Value = client.json("POST", "/networks/prune", None)?;
    if let Some(gone) = r["NetworksDeleted"].as_array().filter(|g| !g.is_empty()) {
        println!("Deleted Networks:");
        for g in gone {
            println!("{}", g.as_str().unwrap_or_default());
        }
    }
    Ok(())
}
