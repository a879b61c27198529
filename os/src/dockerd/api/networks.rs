//! `/networks`: the engine's networks as `docker network ls|inspect` read them: `bridge` (the
//! default bridge, with the containers on it), `host` and `none`. Their IDs are stable (a
//! digest of the engine's root and the name), so a container's `NetworkID` and `network ls`
//! agree across restarts. Creating networks of one's own is refused with a message until
//! user-defined networks exist.

use super::St;
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::ApiError;
use crate::engine::manager::Manager;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The predefined networks: name and driver.
const NETWORKS: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// A network's ID on this engine.
pub fn id(m: &Manager, name: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "{}\0network\0{name}",
        m.config().root.display()
    )))
}

fn network(m: &Manager, name: &str, driver: &str, verbose: bool) -> Value {
    let bridge = m.config().network.as_ref();
    let (config, options) = match (name, bridge) {
        ("bridge", Some(b)) => (
            json!([{ "Subnet": b.bip.subnet(), "Gateway": b.bip.gateway.to_string() }]),
            json!({ "com.docker.network.bridge.name": b.name, "com.docker.network.bridge.default_bridge": "true" }),
        ),
        _ => (json!([]), json!({})),
    };
    let mut containers = serde_json::Map::new();
    if verbose && name == "bridge" {
        for r in m.list() {
            if let Some(e) = m.endpoint(&r) {
                containers.insert(
                    r.id.clone(),
                    json!({
                        "Name": r.name,
                        "EndpointID": "",
                        "MacAddress": e.mac,
                        "IPv4Address": format!("{}/{}", e.ip, e.prefix),
                        "IPv6Address": "",
                    }),
                );
            }
        }
    }
    json!({
        "Name": name,
        "Id": id(m, name),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    })
}

/// The predefined networks this engine has (`bridge` only with a bridge).
fn present(m: &Manager) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    NETWORKS
        .into_iter()
        .filter(move |(n, _)| *n != "bridge" || m.has_bridge())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

pub async fn list(
    axum::extract::State(api): St,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filters = super::filters::parse(
        q.filters.as_deref(),
        &["name", "id", "driver", "type", "label", "scope"],
    )?;
    let m = &api.mgr;
    let out: Vec<Value> = present(m)
        .filter(|(n, d)| {
            filters.iter().all(|(k, vals)| match k.as_str() {
                "name" => vals.iter().any(|v| n.contains(v.as_str())),
                "id" => vals.iter().any(|v| id(m, n).starts_with(v.as_str())),
                "driver" => vals.iter().any(|v| v == d),
                "type" => vals.iter().any(|v| v == "builtin"),
                "scope" => vals.iter().any(|v| v == "local"),
                // `label`: the predefined networks have none.
                _ => false,
            })
        })
        .map(|(n, d)| network(m, n, d, false))
        .collect();
    Ok(Json(Value::Array(out)))
}

pub async fn inspect(
    axum::extract::State(api): St,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = &api.mgr;
    present(m)
        .find(|(n, _)| *n == name || (name.len() >= 3 && id(m, n).starts_with(&name)))
        .map(|(n, d)| Json(network(m, n, d, true)))
        .ok_or_else(|| ApiError::not_found(format!("network {name} not found")))
}

pub async fn create() -> Result<Json<Value>, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "user-defined networks are not supported by this engine yet: use the default bridge (or host, none)",
    ))
}
