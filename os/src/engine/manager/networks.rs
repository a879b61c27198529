//! The verbs on user-defined networks (`docker network create|rm|connect|disconnect|prune`)
//! and a container's networks at create: a network's bridge exists from its creation to its
//! removal; connecting a running container adds an interface to its namespace at once (and
//! starts its DNS server), disconnecting takes it away; the rules follow each change.

use super::record::{Attach, HostConfig, Record};
use super::{Event, Manager, ManagerError, Result};
use crate::engine::network::named::{self, NetError, NetworkDef, NewNetwork};
use crate::engine::network::sandbox;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The networks every engine with a bridge has.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// `POST /networks/create`, as the API read it.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
}

/// A container's endpoint on a network, as asked at create or connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    pub aliases: Vec<String>,
    pub ipv4_address: Option<Ipv4Addr>,
}

fn net_error(e: NetError) -> ManagerError {
    match e {
        NetError::Exists(_) => ManagerError::Conflict(e.to_string()),
        NetError::Invalid(_) => ManagerError::BadRequest(e.to_string()),
        NetError::NoPool => ManagerError::Forbidden(e.to_string()),
        NetError::Io { .. } => ManagerError::Network(e.to_string()),
    }
}

impl Manager {
    fn no_bridge(&self) -> Result<()> {
        if self.cfg.network.is_none() {
            return Err(ManagerError::Forbidden(
                "this engine has no bridge networks".into(),
            ));
        }
        Ok(())
    }

    fn emit_network(&self, action: &str, def: &NetworkDef, container: Option<&str>) {
        let mut labels = BTreeMap::from([("type".to_string(), "bridge".to_string())]);
        if let Some(c) = container {
            labels.insert("container".into(), c.to_string());
        }
        self.publish(Event {
            kind: "network",
            action: action.into(),
            id: def.id.clone(),
            name: def.name.clone(),
            image: String::new(),
            exit_code: None,
            signal: None,
            labels,
            time: super::record::now(),
        });
    }

    /// Make a network and its bridge.
    pub async fn create_network(self: &Arc<Self>, req: CreateNetwork) -> Result<NetworkDef> {
        self.no_bridge()?;
        if PREDEFINED.contains(&req.name.as_str()) {
            return Err(ManagerError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        named::check_name(&req.name).map_err(ManagerError::BadRequest)?;
        if !matches!(req.driver.as_str(), "" | "bridge") {
            return Err(ManagerError::NoSuchNetwork(format!(
                "driver {:?} (only the bridge driver exists here)",
                req.driver
            )));
        }
        if req.enable_ipv6 {
            return Err(ManagerError::BadRequest(
                "IPv6 networks are not supported by this engine".into(),
            ));
        }
        if req.ip_range.as_deref().is_some_and(|r| !r.is_empty()) {
            return Err(ManagerError::BadRequest(
                "IPAM IPRange is not supported by this engine: give the subnet alone".into(),
            ));
        }
        for (k, v) in req.options.iter().chain(&req.labels) {
            if k.len() > 256 || v.len() > 4096 {
                return Err(ManagerError::BadRequest(format!(
                    "option or label {:?} is too long",
                    &k[..k.len().min(64)]
                )));
            }
        }
        let subnet = match &req.subnet {
            Some(s) if !s.is_empty() => Some(
                named::parse_subnet(s, req.gateway.as_deref()).map_err(ManagerError::BadRequest)?,
            ),
            _ => None,
        };
        let taken: Vec<_> = self.cfg.network.iter().map(|b| b.bip).collect();
        let def = self
            .networks
            .create(
                NewNetwork {
                    name: req.name,
                    subnet,
                    labels: req.labels,
                    options: req.options,
                    internal: req.internal,
                    attachable: req.attachable,
                },
                &taken,
            )
            .map_err(net_error)?;
        let me = self.clone();
        let d = def.clone();
        let made = tokio::task::spawn_blocking(move || {
            let r = d.bridge(&me.cfg.run).ensure();
            if r.is_ok() {
                me.refresh_rules();
            }
            r
        })
        .await
        .map_err(|e| ManagerError::Network(format!("network task: {e}")))?;
        if let Err(e) = made {
            let _ = self.networks.remove(&def.id);
            return Err(ManagerError::Network(format!(
                "making the bridge {} of network {}: {e}",
                def.bridge_name(),
                def.name
            )));
        }
        tracing::info!(network = %def.name, id = %def.id, subnet = %def.subnet, "network created");
        self.emit_network("create", &def, None);
        Ok(def)
    }

    /// The containers attached to a network (`running` ones only, or all).
    fn attached_to(&self, network_id: &str, running: bool) -> Vec<Record> {
        self.list()
            .into_iter()
            .filter(|r| !running || r.state.status.is_running())
            .filter(|r| r.network.attached.iter().any(|a| a.network == network_id))
            .collect()
    }

    /// Remove a network that no running container is on, and its bridge.
    pub async fn remove_network(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        if PREDEFINED.contains(&name_or_id) {
            return Err(ManagerError::Forbidden(format!(
                "{name_or_id} is a pre-defined network and cannot be removed"
            )));
        }
        let def = self
            .networks
            .find(name_or_id)
            .ok_or_else(|| ManagerError::NoSuchNetwork(name_or_id.to_string()))?;
        if !self.attached_to(&def.id, true).is_empty() {
            return Err(ManagerError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                def.name, def.id
            )));
        }
        self.networks.remove(&def.id).map_err(net_error)?;
        let me = self.clone();
        let d = def.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = d.bridge(&me.cfg.run).remove() {
                tracing::warn!(network = %d.name, error = %e, "removing its bridge");
            }
            me.refresh_rules();
        })
        .await;
        tracing::info!(network = %def.name, id = %def.id, "network removed");
        self.emit_network("destroy", &def, None);
        Ok(())
    }

    /// Remove the networks no container is attached to (`keep` says which of them to keep:
    /// the prune filters); their names.
    pub async fn prune_networks(
        self: &Arc<Self>,
        keep: impl Fn(&NetworkDef) -> bool,
    ) -> Vec<String> {
        let mut gone = Vec::new();
        for def in self.networks.list() {
            if keep(&def) || !self.attached_to(&def.id, false).is_empty() {
                continue;
            }
            match self.remove_network(&def.id).await {
                Ok(()) => gone.push(def.name),
                Err(e) => tracing::warn!(network = %def.name, error = %e, "prune"),
            }
        }
        gone
    }

    /// A container's user-defined networks at create: its network mode's (when it names
    /// one) with the endpoint settings given for it, then the other endpoints given.
    pub(super) fn attach_at_create(
        &self,
        host: &HostConfig,
        endpoints: &BTreeMap<String, ConnectRequest>,
    ) -> Result<Vec<Attach>> {
        let mode = host.network_mode.as_str();
        let mut out: Vec<Attach> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let predefined = |m: &str| {
            matches!(m, "" | "default" | "bridge" | "none" | "host") || m.starts_with("container:")
        };
        if !predefined(mode) {
            names.push(mode);
        }
        for k in endpoints.keys() {
            if !names.contains(&k.as_str()) && !predefined(k) {
                names.push(k);
            }
        }
        if !names.is_empty() && predefined(mode) && !matches!(mode, "" | "default" | "bridge") {
            return Err(ManagerError::BadRequest(format!(
                "container cannot be connected to network in {mode} mode and to other networks"
            )));
        }
        for (k, e) in endpoints {
            if predefined(k) && !e.aliases.is_empty() {
                return Err(ManagerError::BadRequest(
                    "network-scoped aliases are only supported for user-defined networks".into(),
                ));
            }
        }
        for n in names {
            // As dockerd: a network it does not have is not found (404), bridge or not.
            if self.cfg.network.is_none() {
                return Err(ManagerError::NoSuchNetwork(n.to_string()));
            }
            let def = self
                .networks
                .find(n)
                .ok_or_else(|| ManagerError::NoSuchNetwork(n.to_string()))?;
            if out.iter().any(|a| a.network == def.id) {
                continue;
            }
            let req = endpoints
                .get(n)
                .or_else(|| endpoints.get(&def.name))
                .or_else(|| endpoints.get(&def.id))
                .cloned()
                .unwrap_or_default();
            out.push(attach_of(&def, req)?);
        }
        Ok(out)
    }

    /// Connect a container to a network (at once when it runs).
    pub async fn connect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        req: ConnectRequest,
    ) -> Result<()> {
        self.no_bridge()?;
        let rec = self.get(container)?;
        let def = self.network_for_verb(network)?;
        match rec.host.network_mode.as_str() {
            "host" => {
                return Err(ManagerError::Forbidden(
                    "container cannot be disconnected from host network or connected to host network".into(),
                ))
            }
            "none" => {
                return Err(ManagerError::Forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
                ))
            }
            m if m.starts_with("container:") => {
                return Err(ManagerError::Forbidden(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            _ => {}
        }
        if rec.network.attached.iter().any(|a| a.network == def.id) {
            return Err(ManagerError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, def.name
            )));
        }
        let attach = attach_of(&def, req)?;
        let running = rec.state.status.is_running();
        let had_any = self.on_a_network(&rec);
        if running && !had_any {
            return Err(ManagerError::Forbidden(format!(
                "container {} runs without a network namespace of ours: stop it, connect, start it",
                rec.name
            )));
        }
        self.update(&rec.id, |r| r.network.attached.push(attach))?;
        if running {
            let me = self.clone();
            let id = rec.id.clone();
            let def2 = def.clone();
            let r = tokio::task::spawn_blocking(move || me.hot_connect(&id, &def2))
                .await
                .map_err(|e| ManagerError::Network(format!("network task: {e}")))?;
            if let Err(e) = r {
                let _ = self.update(&rec.id, |r| {
                    r.network.attached.retain(|a| a.network != def.id)
                });
                return Err(e);
            }
        }
        self.emit_network("connect", &def, Some(&rec.id));
        Ok(())
    }

    /// Blocking: a running container's new interface, its DNS server, the rules.
    fn hot_connect(&self, id: &str, def: &NetworkDef) -> Result<()> {
        let ifaces = self.lease(id)?;
        let i = ifaces
            .iter()
            .find(|i| i.network_id == def.id)
            .ok_or_else(|| ManagerError::Network("the new interface is missing".into()))?;
        let ip =
            i.ip.ok_or_else(|| ManagerError::Network("no lease".into()))?;
        let path = ifaces[0].bridge.netns(id);
        // Named by the helper: the first `ethN` free in the namespace (a disconnect may have
        // left a gap, so the place in the list is not the name).
        let mut w = i
            .bridge
            .wiring(id, ip, i.veth.clone(), sandbox::NEXT_FREE.into(), false);
        w.path = path.clone();
        sandbox::attach(&self.cfg.exe, &w).map_err(|e| {
            ManagerError::Network(format!("connecting to network {}: {e}", def.name))
        })?;
        // Its server answers for every network it is on: one is enough.
        if !self.dns_running(id) {
            self.start_dns(id, &path)?;
        }
        self.refresh_rules();
        Ok(())
    }

    /// Disconnect a container from a network (at once when it runs).
    pub async fn disconnect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        self.no_bridge()?;
        let rec = self.get(container)?;
        let def = match self.network_for_verb(network) {
            Ok(d) => d,
            Err(e) if force => {
                // A network that is gone: its attachment goes anyway.
                let _ = self.update(&rec.id, |r| {
                    r.network.attached.retain(|a| a.network != network)
                });
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if !rec.network.attached.iter().any(|a| a.network == def.id) {
            return Err(ManagerError::Forbidden(format!(
                "container {} is not connected to network {}",
                rec.id, def.name
            )));
        }
        let running = rec.state.status.is_running();
        let veth = sandbox::veth_name_on(&rec.id, &def.id);
        self.update(&rec.id, |r| {
            r.network.attached.retain(|a| a.network != def.id)
        })?;
        if running {
            let me = self.clone();
            let id = rec.id.clone();
            let r = tokio::task::spawn_blocking(move || {
                let r = sandbox::detach(&me.cfg.exe, &veth);
                let still = me
                    .get(&id)
                    .map(|r| me.ifaces(&r).iter().any(|i| i.user_defined()))
                    .unwrap_or(false);
                if !still {
                    me.stop_dns(&id);
                }
                me.refresh_rules();
                r
            })
            .await
            .map_err(|e| ManagerError::Network(format!("network task: {e}")))?;
            r.map_err(|e| ManagerError::Network(format!("disconnecting from {}: {e}", def.name)))?;
        }
        self.emit_network("disconnect", &def, Some(&rec.id));
        Ok(())
    }

    /// The user-defined network a connect or disconnect names (the predefined ones cannot
    /// be connected to after create here).
    fn network_for_verb(&self, network: &str) -> Result<NetworkDef> {
        if PREDEFINED.contains(&network) {
            return Err(ManagerError::Forbidden(format!(
                "connecting to or disconnecting from the predefined network {network} after create is not supported by this engine"
            )));
        }
        self.networks
            .find(network)
            .ok_or_else(|| ManagerError::NoSuchNetwork(network.to_string()))
    }
}

/// An attachment from an endpoint request, checked against its network.
fn attach_of(def: &NetworkDef, req: ConnectRequest) -> Result<Attach> {
    for a in &req.aliases {
        if !super::id::valid_name(a) || a.len() > 253 {
            return Err(ManagerError::BadRequest(format!(
                "invalid alias {a:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    if let Some(ip) = req.ipv4_address {
        let bip = def.bip();
        if !def.subnet_given {
            return Err(ManagerError::BadRequest(
                "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
            ));
        }
        if !bip.contains(ip) || ip == bip.gateway || ip == bip.network() {
            return Err(ManagerError::BadRequest(format!(
                "invalid IPv4 address {ip}: not a free host address of {}",
                def.subnet
            )));
        }
    }
    let mut aliases = Vec::new();
    for a in req.aliases {
        if !aliases.contains(&a) {
            aliases.push(a);
        }
    }
    Ok(Attach {
        network: def.id.clone(),
        aliases,
        ip: None,
        requested: req.ipv4_address,
    })
}
