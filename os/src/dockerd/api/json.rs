//! Records as Docker's JSON: `GET /containers/json` rows and `GET /containers/{id}/json`.
//! Only values we hold; network settings say what the network is (a private namespace with
//! loopback only, or the host's): no addresses, no ports.

use crate::engine::api::time;
use crate::engine::manager::record::system_time;
use crate::engine::manager::{Lifecycle, Manager, Record};
use serde_json::{json, Value};

fn status_text(r: &Record) -> String {
    let s = &r.state;
    match s.status {
        Lifecycle::Running => format!(
            "Up {}{}",
            time::human(time::since(system_time(s.started_at))),
            match s.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            }
        ),
        Lifecycle::Paused => format!(
            "Up {} (Paused)",
            time::human(time::since(system_time(s.started_at)))
        ),
        Lifecycle::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            time::human(time::since(system_time(s.finished_at)))
        ),
        Lifecycle::Exited if s.finished_at > 0 => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            time::human(time::since(system_time(s.finished_at)))
        ),
        Lifecycle::Exited | Lifecycle::Created => "Created".into(),
        Lifecycle::Dead => "Dead".into(),
        Lifecycle::Removing => "Removal In Progress".into(),
    }
}

fn network_mode(r: &Record) -> &str {
    match r.host.network_mode.as_str() {
        "" | "default" => "bridge",
        m => m,
    }
}

fn mounts(m: &Manager, r: &Record) -> Vec<Value> {
    if r.mounts.is_empty() {
        // A record from before volumes: its binds.
        return r
            .host
            .binds
            .iter()
            .map(|b| {
                let parts: Vec<&str> = b.split(':').collect();
                let mode = parts.get(2).copied().unwrap_or("");
                json!({
                    "Type": "bind",
                    "Source": parts.first().copied().unwrap_or(""),
                    "Destination": parts.get(1).copied().unwrap_or(""),
                    "Mode": mode,
                    "RW": mode != "ro",
                    "Propagation": "rprivate",
                })
            })
            .collect();
    }
    r.mounts
        .iter()
        .map(|p| {
            let mode = if p.rw { "" } else { "ro" };
            if p.kind == "tmpfs" {
                json!({
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": p.destination,
                    "Mode": p.options,
                    "RW": p.rw,
                    "Propagation": "",
                })
            } else if p.kind == "volume" {
                json!({
                    "Type": "volume",
                    "Name": p.name,
                    "Source": m.volumes.data_dir(&p.name),
                    "Destination": p.destination,
                    "Driver": "local",
                    "Mode": mode,
                    "RW": p.rw,
                    "Propagation": "",
                })
            } else {
                json!({
                    "Type": "bind",
                    "Source": p.source,
                    "Destination": p.destination,
                    "Mode": mode,
                    "RW": p.rw,
                    "Propagation": "rprivate",
                })
            }
        })
        .collect()
}

/// One row of `docker ps`.
pub fn row(m: &Manager, r: &Record) -> Value {
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.config.image,
        "ImageID": r.image_id,
        "Command": r.argv().join(" "),
        "Created": (r.created / 1_000_000_000) as i64,
        "Ports": port_rows(r),
        "Labels": r.config.labels,
        "State": r.state.status.as_str(),
        "Status": status_text(r),
        "HostConfig": { "NetworkMode": network_mode(r) },
        "NetworkSettings": { "Networks": network_settings(m, r)["Networks"].clone() },
        "Mounts": mounts(m, r),
    })
}

/// `docker ps`'s ports: each published one while it runs, then each exposed one that is not.
fn port_rows(r: &Record) -> Value {
    let running = r.state.status.is_running();
    let mut rows: Vec<Value> = Vec::new();
    if running {
        for p in &r.network.ports {
            rows.push(json!({
                "IP": p.host_ip.to_string(),
                "PrivatePort": p.port,
                "PublicPort": p.host_port,
                "Type": if p.udp { "udp" } else { "tcp" },
            }));
        }
    }
    for key in r.config.exposed_ports.keys() {
        let Ok((port, udp)) = crate::engine::manager::record::parse_port_key(key) else {
            continue;
        };
        if running
            && r.network
                .ports
                .iter()
                .any(|p| p.port == port && p.udp == udp)
        {
            continue;
        }
        rows.push(json!({ "PrivatePort": port, "Type": if udp { "udp" } else { "tcp" } }));
    }
    Value::Array(rows)
}

/// `NetworkSettings.Ports`: every exposed port, with its host bindings while it runs (`null`
/// when it has none), as `docker port` reads them.
fn port_map(r: &Record) -> Value {
    let running = r.state.status.is_running();
    let mut map = serde_json::Map::new();
    for key in r.config.exposed_ports.keys() {
        map.insert(key.clone(), Value::Null);
    }
    if running {
        for p in &r.network.ports {
            let key = format!("{}/{}", p.port, if p.udp { "udp" } else { "tcp" });
            let entry = map.entry(key).or_insert(Value::Null);
            if !entry.is_array() {
                *entry = json!([]);
            }
            if let Some(list) = entry.as_array_mut() {
                list.push(
                    json!({ "HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string() }),
                );
            }
        }
    }
    Value::Object(map)
}

/// `docker inspect`.
/// The path of a file the engine makes for the container's `/etc`, or "" when it makes none
/// (the system engine).
fn etc(m: &Manager, dir: &std::path::Path, file: &str) -> String {
    if m.config().etc_files {
        dir.join(file).display().to_string()
    } else {
        String::new()
    }
}

pub fn inspect(m: &Manager, r: &Record) -> Value {
    let s = &r.state;
    let dir = m.dir(&r.id);
    let argv = r.argv();
    let mut host = serde_json::to_value(&r.host).unwrap_or_else(|_| json!({}));
    host["LogConfig"] = json!({ "Type": "json-file", "Config": {} });
    host["NetworkMode"] = json!(network_mode(r));
    host["CgroupParent"] = json!(m.config().cgroup_parent);
    let mut config = serde_json::to_value(&r.config).unwrap_or_else(|_| json!({}));
    config["StopSignal"] = json!(r
        .config
        .stop_signal
        .clone()
        .unwrap_or_else(|| "SIGTERM".into()));
    let mut v = json!({
        "Id": r.id,
        "Created": time::rfc3339(system_time(r.created)),
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.get(1..).unwrap_or_default(),
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status.is_running(),
            "Paused": s.status == Lifecycle::Paused,
            "Restarting": s.status == Lifecycle::Restarting,
            "OOMKilled": false,
            "Dead": s.status == Lifecycle::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": time::rfc3339(system_time(s.started_at)),
            "FinishedAt": time::rfc3339(system_time(s.finished_at)),
            "Health": s.health.as_ref().filter(|_| s.status.is_running()),
        },
        "Image": r.image_id,
        "ResolvConfPath": etc(m, &dir, "resolv.conf"),
        "HostnamePath": etc(m, &dir, "hostname"),
        "HostsPath": etc(m, &dir, "hosts"),
        "LogPath": m.log_path(r),
        "Name": format!("/{}", r.name),
        "RestartCount": s.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "MergedDir": dir.join("rootfs"),
                "UpperDir": r.upper.as_deref().unwrap_or(&dir).join("upper"),
                "WorkDir": r.upper.as_deref().unwrap_or(&dir).join("work"),
            },
        },
        "Mounts": mounts(m, r),
        "Config": config,
        "NetworkSettings": network_settings(m, r),
    });
    // Docker leaves `Health` out when there is no health check.
    if v["State"]["Health"].is_null() {
        if let Some(state) = v["State"].as_object_mut() {
            state.remove("Health");
        }
    }
    v
}

/// `NetworkSettings`: on each network, its address, gateway and MAC (the default bridge's at
/// the top level too, as Docker shows them; empty while it does not run), aliases on a
/// user-defined network.
fn network_settings(m: &Manager, r: &Record) -> Value {
    let s = &r.state;
    let eps = m.endpoints(r);
    let first = eps.first().filter(|e| e.ip.is_some());
    // As Docker: the top-level address is the default bridge's only.
    let on_bridge = first.filter(|e| e.network == "bridge");
    let sandbox = match first {
        Some(e) => json!(e.sandbox),
        None if s.pid > 0 && network_mode(r) != "host" => json!(format!("/proc/{}/ns/net", s.pid)),
        None => json!(""),
    };
    let (ip, prefix, gateway, mac) = match on_bridge {
        Some(e) => (
            e.ip.map(|i| i.to_string()).unwrap_or_default(),
            e.prefix,
            e.gateway.to_string(),
            e.mac.clone(),
        ),
        None => (String::new(), 0, String::new(), String::new()),
    };
    let mut networks = serde_json::Map::new();
    for e in &eps {
        let running = e.ip.is_some();
        networks.insert(
            e.network.clone(),
            json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": e.aliases,
                "MacAddress": e.mac,
                "NetworkID": e.network_id,
                "EndpointID": "",
                "Gateway": if running { e.gateway.to_string() } else { String::new() },
                "IPAddress": e.ip.map(|i| i.to_string()).unwrap_or_default(),
                "IPPrefixLen": if running { e.prefix } else { 0 },
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
            }),
        );
    }
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": sandbox,
        "Ports": port_map(r),
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "Gateway": gateway,
        "MacAddress": mac,
        "Networks": networks,
    })
}
