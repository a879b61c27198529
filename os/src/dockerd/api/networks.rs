//! `/networks`: the predefined networks (`bridge`, the default bridge, with the containers on
//! it; `host`; `none`) and the user-defined ones (`docker network create|ls|inspect|rm|
//! connect|disconnect|prune`). Predefined networks' IDs are stable (a digest of the engine's
//! root and the name), so a container's `NetworkID` and `network ls` agree across restarts.

use super::{err, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::{time, ApiError};
use crate::engine::manager::record::system_time;
use crate::engine::manager::{ConnectRequest, CreateNetwork, Manager};
use crate::engine::network::named::NetworkDef;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The predefined networks: name and driver.
const NETWORKS: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// A network's ID on this engine (a predefined one's, or a user-defined one's).
pub fn id(m: &Manager, name: &str) -> String {
    m.builtin_network_id(name)
}

/// One network as Docker shows it.
struct View {
    name: String,
    id: String,
    driver: &'static str,
    created: String,
    ipam: Value,
    options: Value,
    labels: Value,
    internal: bool,
    attachable: bool,
    builtin: bool,
}

fn builtin(m: &Manager, name: &str, driver: &'static str) -> View {
    let (config, options) = match (name, m.config().network.as_ref()) {
        ("bridge", Some(b)) => (
            json!([{ "Subnet": b.bip.subnet(), "Gateway": b.bip.gateway.to_string() }]),
            json!({ "com.docker.network.bridge.name": b.name, "com.docker.network.bridge.default_bridge": "true" }),
        ),
        _ => (json!([]), json!({})),
    };
    View {
        name: name.into(),
        id: id(m, name),
        driver,
        created: "0001-01-01T00:00:00Z".into(),
        ipam: json!({ "Driver": "default", "Options": null, "Config": config }),
        options,
        labels: json!({}),
        internal: false,
        attachable: false,
        builtin: true,
    }
}

fn user(d: &NetworkDef) -> View {
    View {
        name: d.name.clone(),
        id: d.id.clone(),
        driver: "bridge",
        created: time::rfc3339(system_time(d.created)),
        ipam: json!({
            "Driver": "default",
            "Options": {},
            "Config": [{ "Subnet": d.subnet, "Gateway": d.gateway.to_string() }],
        }),
        options: json!(d.options),
        labels: json!(d.labels),
        internal: d.internal,
        attachable: d.attachable,
        builtin: false,
    }
}

fn render(m: &Manager, v: &View, verbose: bool) -> Value {
    let mut containers = serde_json::Map::new();
    if verbose {
        for r in m.list() {
            for e in m.endpoints(&r) {
                if e.network_id != v.id {
                    continue;
                }
                let Some(ip) = e.ip else { continue };
                containers.insert(
                    r.id.clone(),
                    json!({
                        "Name": r.name,
                        "EndpointID": "",
                        "MacAddress": e.mac,
                        "IPv4Address": format!("{ip}/{}", e.prefix),
                        "IPv6Address": "",
                    }),
                );
            }
        }
    }
    json!({
        "Name": v.name,
        "Id": v.id,
        "Created": v.created,
        "Scope": "local",
        "Driver": v.driver,
        "EnableIPv6": false,
        "IPAM": v.ipam,
        "Internal": v.internal,
        "Attachable": v.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": v.options,
        "Labels": v.labels,
    })
}

/// Every network this engine has: the predefined ones (`bridge` only with a bridge), then
/// the user-defined ones.
fn all(m: &Manager) -> Vec<View> {
    let mut out: Vec<View> = NETWORKS
        .into_iter()
        .filter(|(n, _)| *n != "bridge" || m.has_bridge())
        .map(|(n, d)| builtin(m, n, d))
        .collect();
    out.extend(m.networks().iter().map(user));
    out
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

fn label_matches(labels: &Value, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
        None => labels.get(want).is_some(),
    }
}

pub async fn list(
    axum::extract::State(api): St,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filters = super::filters::parse(
        q.filters.as_deref(),
        &["name", "id", "driver", "type", "label", "scope", "dangling"],
    )?;
    let m = &api.mgr;
    let out: Vec<Value> = all(m)
        .into_iter()
        .filter(|v| {
            filters.iter().all(|(k, vals)| match k.as_str() {
                "name" => vals.iter().any(|x| v.name.contains(x.as_str())),
                "id" => vals.iter().any(|x| v.id.starts_with(x.as_str())),
                "driver" => vals.iter().any(|x| x == v.driver),
                "type" => vals
                    .iter()
                    .any(|x| x == if v.builtin { "builtin" } else { "custom" }),
                "scope" => vals.iter().any(|x| x == "local"),
                "label" => vals.iter().all(|x| label_matches(&v.labels, x)),
                "dangling" => {
                    let used = v.builtin || attached(m, &v.id);
                    vals.iter().any(|x| (x == "true" || x == "1") != used)
                }
                _ => false,
            })
        })
        .map(|v| render(m, &v, false))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// Whether any container is attached to the user-defined network `id`.
fn attached(m: &Manager, id: &str) -> bool {
    m.list()
        .iter()
        .any(|r| r.network.attached.iter().any(|a| a.network == id))
}

/// Find a network as Docker does: exact id, exact name, then an id prefix.
fn find(m: &Manager, name: &str) -> Option<View> {
    let views = all(m);
    if let Some(i) = views
        .iter()
        .position(|v| v.id == name)
        .or_else(|| views.iter().position(|v| v.name == name))
    {
        return views.into_iter().nth(i);
    }
    let mut prefixed = views
        .into_iter()
        .filter(|v| !name.is_empty() && v.id.starts_with(name));
    match (prefixed.next(), prefixed.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

pub async fn inspect(
    axum::extract::State(api): St,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = &api.mgr;
    find(m, &name)
        .map(|v| Json(render(m, &v, true)))
        .ok_or_else(|| ApiError::not_found(format!("network {name} not found")))
}

/// `IPAM` of a create request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamBody {
    #[serde(default)]
    driver: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    config: Vec<IpamConfigBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfigBody {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default, rename = "IPRange")]
    ip_range: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    driver: Option<String>,
    #[serde(
        default,
        rename = "IPAM",
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    ipam: IpamBody,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    options: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default)]
    attachable: Option<bool>,
    #[serde(default, rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
}

fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

pub async fn create(axum::extract::State(api): St, b: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = body(&b)?;
    if !matches!(b.ipam.driver.as_deref(), None | Some("") | Some("default")) {
        return Err(ApiError::bad_request(
            "only the default IPAM driver is supported by this engine",
        ));
    }
    if b.ipam.config.len() > 1 {
        return Err(ApiError::bad_request(
            "one IPAM config (an IPv4 subnet) at most is supported by this engine",
        ));
    }
    let c = b.ipam.config.into_iter().next().unwrap_or_default();
    let def = api
        .mgr
        .create_network(CreateNetwork {
            name: b.name,
            driver: b.driver.unwrap_or_default(),
            subnet: c.subnet,
            gateway: c.gateway,
            ip_range: c.ip_range,
            labels: b.labels,
            options: b.options,
            internal: b.internal.unwrap_or(false),
            attachable: b.attachable.unwrap_or(false),
            enable_ipv6: b.enable_ipv6.unwrap_or(false),
        })
        .await
        .map_err(err)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": def.id, "Warning": "" })),
    )
        .into_response())
}

pub async fn remove(
    axum::extract::State(api): St,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    // A predefined network by its id is still predefined.
    let name = match find(&api.mgr, &name) {
        Some(v) if v.builtin => v.name,
        Some(v) => v.id,
        None => return Err(ApiError::not_found(format!("network {name} not found"))),
    };
    api.mgr.remove_network(&name).await.map_err(err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `EndpointConfig` (connect) and `EndpointsConfig` values (create).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointBody {
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    aliases: Vec<String>,
    #[serde(
        default,
        rename = "IPAMConfig",
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    ipam_config: EndpointIpam,
}

#[derive(Debug, Default, Deserialize)]
struct EndpointIpam {
    #[serde(default, rename = "IPv4Address")]
    ipv4: Option<String>,
}

impl EndpointBody {
    pub fn request(self) -> Result<ConnectRequest, ApiError> {
        let ipv4_address = match self.ipam_config.ipv4.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address {s:?}")))?,
            ),
        };
        Ok(ConnectRequest {
            aliases: self.aliases,
            ipv4_address,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectBody {
    container: String,
    #[serde(
        default,
        deserialize_with = "crate::engine::manager::record::null_default"
    )]
    endpoint_config: EndpointBody,
    #[serde(default)]
    force: Option<bool>,
}

pub async fn connect(
    axum::extract::State(api): St,
    Path(name): Path<String>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let b: ConnectBody = body(&b)?;
    let req = b.endpoint_config.request()?;
    api.mgr
        .connect(&name, &b.container, req)
        .await
        .map_err(err)?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(
    axum::extract::State(api): St,
    Path(name): Path<String>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let b: ConnectBody = body(&b)?;
    api.mgr
        .disconnect(&name, &b.container, b.force.unwrap_or(false))
        .await
        .map_err(err)?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct PruneQuery {
    filters: Option<String>,
}

pub async fn prune(
    axum::extract::State(api): St,
    Query(q): Query<PruneQuery>,
) -> Result<Json<Value>, ApiError> {
    let filters = super::filters::parse(q.filters.as_deref(), &["label", "label!", "until"])?;
    let until = match filters.get("until").and_then(|v| v.first()) {
        Some(u) => Some(until_nanos(u)?),
        None => None,
    };
    let keep = move |d: &NetworkDef| {
        let labels = json!(d.labels);
        let want = filters
            .get("label")
            .is_none_or(|v| v.iter().all(|x| label_matches(&labels, x)));
        let unwanted = filters
            .get("label!")
            .is_some_and(|v| v.iter().any(|x| label_matches(&labels, x)));
        let young = until.is_some_and(|t| d.created > t);
        !want || unwanted || young
    };
    let gone = api.mgr.prune_networks(keep).await;
    Ok(Json(json!({ "NetworksDeleted": gone })))
}

/// `until`: a Unix timestamp, an RFC 3339 time, or a duration before now (`10m`, `1h30m`).
fn until_nanos(u: &str) -> Result<i128, ApiError> {
    if let Ok(secs) = u.parse::<i64>() {
        return Ok(secs as i128 * 1_000_000_000);
    }
    if let Some(secs) = time::parse_rfc3339(u) {
        return Ok(secs as i128 * 1_000_000_000);
    }
    let secs = duration_secs(u)
        .ok_or_else(|| ApiError::bad_request(format!("invalid until filter {u:?}")))?;
    Ok(crate::engine::manager::record::now() - secs as i128 * 1_000_000_000)
}

/// `1h30m`, `10m`, `45s` in seconds.
fn duration_secs(u: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in u.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    num.is_empty().then_some(total)
}
