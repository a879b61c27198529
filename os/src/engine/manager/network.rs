//! The manager's side of the networks (`engine::network`): a container's interfaces (the
//! default bridge's when its mode is `bridge`, then each user-defined network it is attached
//! to), their leases taken at its first start and kept in its record, its namespace wired
//! before its shim creates it, its embedded DNS server when it is on a user-defined network,
//! and the engine's rule set made again from the running containers after every start, exit,
//! connect and disconnect. The wiring runs in a helper process and the netlink calls block,
//! so each runs on tokio's blocking pool, never on the runtime's thread.
//!
//! The verbs on networks themselves (create, remove, connect, disconnect, prune) are in
//! `networks`.

use super::record::{self, Attach, Published, Record};
use super::{Manager, ManagerError, Result};
use crate::engine::network::named::NetworkDef;
use crate::engine::network::proxy::{self, Want};
use crate::engine::network::{sandbox, Bridge, PortMap, Segment};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

/// One of a container's interfaces, as planned from its record.
#[derive(Debug, Clone)]
pub(super) struct Iface {
    /// The network's id and name (`bridge` for the default one).
    pub network_id: String,
    pub network: String,
    pub bridge: Bridge,
    /// `None` for the default bridge; the attachment for a user-defined network.
    pub attach: Option<Attach>,
    pub ip: Option<Ipv4Addr>,
    pub veth: String,
}

impl Iface {
    pub fn user_defined(&self) -> bool {
        self.attach.is_some()
    }
}

impl Manager {
    /// The id of a predefined network (`bridge`, `host`, `none`): a digest of the engine's
    /// root and the name, so it is stable across restarts.
    pub fn builtin_network_id(&self, name: &str) -> String {
        hex::encode(Sha256::digest(format!(
            "{}\0network\0{name}",
            self.cfg.root.display()
        )))
    }

    /// Whether the container's mode puts it on the default bridge.
    fn on_default_bridge(&self, rec: &Record) -> Option<&Bridge> {
        let b = self.cfg.network.as_ref()?;
        matches!(rec.host.network_mode.as_str(), "" | "default" | "bridge").then_some(b)
    }

    /// The container's interfaces in order (`eth0` first); those of networks that are gone
    /// are left out.
    pub(super) fn ifaces(&self, rec: &Record) -> Vec<Iface> {
        let mut out = Vec::new();
        if let Some(b) = self.on_default_bridge(rec) {
            out.push(Iface {
                network_id: self.builtin_network_id("bridge"),
                network: "bridge".into(),
                bridge: b.clone(),
                attach: None,
                ip: rec.network.ip,
                veth: sandbox::veth_name(&rec.id),
            });
        }
        if self.cfg.network.is_none() {
            return out;
        }
        for a in &rec.network.attached {
            let Some(def) = self.networks.find(&a.network) else {
                continue;
            };
            out.push(Iface {
                network_id: def.id.clone(),
                network: def.name.clone(),
                bridge: def.bridge(&self.cfg.run),
                attach: Some(a.clone()),
                ip: a.ip,
                veth: sandbox::veth_name_on(&rec.id, &def.id),
            });
        }
        out
    }

    /// At engine start, before the records are read back: the bridges, forwarding, the rules.
    pub fn setup_network(&self) -> Result<()> {
        let Some(b) = &self.cfg.network else {
            return Ok(());
        };
        b.ensure()
            .map_err(|e| ManagerError::Network(format!("bridge {}: {e}", b.name)))?;
        for def in self.networks.list() {
            let nb = def.bridge(&self.cfg.run);
            if let Err(e) = nb.ensure() {
                tracing::warn!(network = %def.name, bridge = %nb.name, error = %e, "bridge of a network");
            }
        }
        crate::engine::network::host_setup().map_err(ManagerError::Network)?;
        self.refresh_rules();
        tracing::info!(bridge = %b.name, bip = %b.bip, networks = self.networks.list().len(), "bridge networks up");
        Ok(())
    }

    /// Every interface of the container with its address: its lease, or the one asked for,
    /// or the lowest free one, kept in its record. One hold of the records' lock from the
    /// addresses in use to the record saved: two starts never take the same address.
    pub(super) fn lease(&self, id: &str) -> Result<Vec<Iface>> {
        let rec = self.get(id)?;
        let mut ifaces = self.ifaces(&rec);
        let mut map = self.lock();
        let mut changed = false;
        for i in &mut ifaces {
            let net = i.attach.as_ref().map(|a| a.network.clone());
            let used: BTreeSet<Ipv4Addr> = map
                .iter()
                .filter(|(k, _)| k.as_str() != id)
                .flat_map(|(_, e)| match &net {
                    None => e.rec.network.ip.into_iter().collect::<Vec<_>>(),
                    Some(n) => e
                        .rec
                        .network
                        .attached
                        .iter()
                        .filter(|a| a.network == *n)
                        .filter_map(|a| a.ip)
                        .collect(),
                })
                .collect();
            let bip = i.bridge.bip;
            let keep =
                i.ip.filter(|ip| bip.contains(*ip) && !used.contains(ip) && *ip != bip.gateway);
            if keep.is_some() {
                continue;
            }
            let ip = match i.attach.as_ref().and_then(|a| a.requested) {
                Some(ip) if used.contains(&ip) => {
                    return Err(ManagerError::Forbidden(format!(
                        "Address already in use: {ip} on network {}",
                        i.network
                    )))
                }
                Some(ip) => ip,
                None => bip.allocate(&used).ok_or_else(|| {
                    ManagerError::Conflict(format!(
                        "no free address left on network {} ({})",
                        i.network,
                        bip.subnet()
                    ))
                })?,
            };
            i.ip = Some(ip);
            changed = true;
        }
        if changed {
            let e = map
                .get_mut(id)
                .ok_or_else(|| ManagerError::NoSuchContainer(id.to_string()))?;
            for i in &ifaces {
                match &i.attach {
                    None => e.rec.network.ip = i.ip,
                    Some(a) => {
                        if let Some(x) = e
                            .rec
                            .network
                            .attached
                            .iter_mut()
                            .find(|x| x.network == a.network)
                        {
                            x.ip = i.ip;
                        }
                    }
                }
            }
            let dir = self.dir(id);
            e.rec
                .save(&dir)
                .map_err(|err| ManagerError::io(&dir, err))?;
            e.changed.send_modify(|g| *g += 1);
        }
        Ok(ifaces)
    }

    /// Wire a container about to start (blocking): the namespace file it joins, or `None`
    /// when it is on no network of ours (host, none, or nothing attached). A container in
    /// another one's namespace (`container:NAME`) joins that one's.
    pub(super) fn wire(&self, rec: &Record) -> Result<Option<PathBuf>> {
        if let Some(target) = rec.host.network_mode.strip_prefix("container:") {
            return self.shared_netns(rec, target).map(Some);
        }
        let mode = rec.host.network_mode.as_str();
        if !matches!(mode, "" | "default" | "bridge" | "none" | "host")
            && self.cfg.network.is_some()
            && self.networks.find(mode).is_none()
        {
            return Err(ManagerError::NoSuchNetwork(mode.to_string()));
        }
        let ifaces = self.lease(&rec.id)?;
        let Some(first) = ifaces.first() else {
            return Ok(None);
        };
        let path = first.bridge.netns(&rec.id);
        for (n, i) in ifaces.iter().enumerate() {
            let ip =
                i.ip.ok_or_else(|| ManagerError::Network("no lease".into()))?;
            let w = i
                .bridge
                .wiring(&rec.id, ip, i.veth.clone(), format!("eth{n}"), n == 0);
            let r = if n == 0 {
                sandbox::create(&self.cfg.exe, &w)
            } else {
                sandbox::attach(&self.cfg.exe, &w)
            };
            r.map_err(|e| {
                if n > 0 {
                    self.unwire(rec);
                }
                ManagerError::Network(format!(
                    "connecting {} to network {}: {e}",
                    rec.name, i.network
                ))
            })?;
        }
        if ifaces.iter().any(Iface::user_defined) {
            if let Err(e) = self.start_dns(&rec.id, &path) {
                self.unwire(rec);
                return Err(e);
            }
        }
        Ok(Some(path))
    }

    /// The namespace of the running container `target` (for `container:NAME`).
    fn shared_netns(&self, rec: &Record, target: &str) -> Result<PathBuf> {
        let other = self.get(target)?;
        if !other.state.status.is_running() || other.state.pid <= 0 {
            return Err(ManagerError::Conflict(format!(
                "cannot join network of a non running container: {}",
                other.id
            )));
        }
        if other.id == rec.id {
            return Err(ManagerError::BadRequest(
                "cannot join own network namespace".into(),
            ));
        }
        match self.ifaces(&other).first() {
            Some(i) => Ok(i.bridge.netns(&other.id)),
            None => Ok(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid))),
        }
    }

    /// At engine start, for a container that ran on while no engine was there: its DNS
    /// server, its published ports bound again (the same host ports), the rules.
    pub(super) async fn republish(self: &Arc<Self>, rec: &Record) {
        let ifaces = self.ifaces(rec);
        let Some(ip) = ifaces.first().and_then(|i| i.ip) else {
            return;
        };
        if ifaces.iter().any(Iface::user_defined) {
            let path = ifaces[0].bridge.netns(&rec.id);
            if let Err(e) = self.start_dns(&rec.id, &path) {
                tracing::warn!(id = %rec.id, error = %e, "its DNS server again");
            }
        }
        let wants: Vec<Want> = rec
            .network
            .ports
            .iter()
            .map(|p| Want {
                udp: p.udp,
                host_ip: p.host_ip,
                host_port: p.host_port,
                ip,
                port: p.port,
            })
            .collect();
        if !wants.is_empty() {
            match proxy::publish(&wants).await {
                Ok((proxy, _)) => {
                    self.proxies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(rec.id.clone(), proxy);
                }
                Err(e) => tracing::warn!(id = %rec.id, error = %e, "publishing its ports again"),
            }
        }
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.refresh_rules()).await;
    }

    /// Undo a container's wiring (blocking); a failure is logged, nothing more can be done.
    pub(super) fn unwire(&self, rec: &Record) {
        self.stop_dns(&rec.id);
        let ifaces = self.ifaces(rec);
        let Some(first) = ifaces.first() else {
            return;
        };
        let veths: Vec<String> = ifaces.iter().map(|i| i.veth.clone()).collect();
        if let Err(e) = sandbox::remove(&self.cfg.exe, &first.bridge.netns(&rec.id), &veths) {
            tracing::warn!(id = %rec.id, error = %e, "disconnecting from its networks");
        }
    }

    /// The published ports of the running containers, on their first network.
    fn published(&self) -> Vec<PortMap> {
        let recs: Vec<Record> = self
            .lock()
            .values()
            .filter(|e| e.rec.state.status.is_running() && !e.rec.network.ports.is_empty())
            .map(|e| e.rec.clone())
            .collect();
        let mut out = Vec::new();
        for r in recs {
            let Some(first) = self.ifaces(&r).into_iter().next() else {
                continue;
            };
            let Some(ip) = first.ip else { continue };
            for p in &r.network.ports {
                out.push(PortMap {
                    udp: p.udp,
                    host_ip: Some(p.host_ip),
                    host_port: p.host_port,
                    ip,
                    port: p.port,
                    container: r.name.clone(),
                    bridge: first.bridge.name.clone(),
                });
            }
        }
        out.sort_by_key(|p| (p.host_port, p.udp));
        out
    }

    /// Before a container on a network starts: its leases, and its published ports bound by
    /// the userland proxy (kept until it exits), recorded with the ports the host chose.
    /// A port that is taken fails the start with dockerd's words.
    pub(super) async fn publish_ports(self: &Arc<Self>, id: &str) -> Result<()> {
        let rec = self.get(id)?;
        let h = &rec.host;
        if h.port_bindings.is_empty() && !h.publish_all_ports {
            return Ok(());
        }
        let ifaces = self.lease(id)?;
        let Some(ip) = ifaces.first().and_then(|i| i.ip) else {
            return Ok(());
        };
        let mut wants = Vec::new();
        for (key, bindings) in &h.port_bindings {
            let (port, udp) = record::parse_port_key(key).map_err(ManagerError::BadRequest)?;
            let bindings = if bindings.is_empty() {
                vec![Default::default()]
            } else {
                bindings.clone()
            };
            for b in bindings {
                let (host_ip, host_port) = b.parse().map_err(ManagerError::BadRequest)?;
                wants.push(Want {
                    udp,
                    host_ip: host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    host_port,
                    ip,
                    port,
                });
            }
        }
        if h.publish_all_ports {
            for key in rec.config.exposed_ports.keys() {
                let (port, udp) = record::parse_port_key(key).map_err(ManagerError::BadRequest)?;
                if !wants.iter().any(|w| w.port == port && w.udp == udp) {
                    wants.push(Want {
                        udp,
                        host_ip: Ipv4Addr::UNSPECIFIED,
                        host_port: 0,
                        ip,
                        port,
                    });
                }
            }
        }
        if wants.is_empty() {
            return Ok(());
        }
        let (proxy, ports) = proxy::publish(&wants).await.map_err(|e| {
            let taken = self.lock().values().any(|o| {
                o.rec.id != rec.id
                    && o.rec.state.status.is_running()
                    && o.rec
                        .network
                        .ports
                        .iter()
                        .any(|p| p.host_port == e.addr.port() && p.udp == (e.proto == "udp"))
            });
            let why = if taken {
                format!("Bind for {} failed: port is already allocated", e.addr)
            } else {
                format!("Error starting userland proxy: {e}")
            };
            ManagerError::Shim(format!(
                "driver failed programming external connectivity on endpoint {} ({}): {why}",
                rec.name, rec.id
            ))
        })?;
        let published: Vec<Published> = wants
            .iter()
            .zip(ports)
            .map(|(w, host_port)| Published {
                udp: w.udp,
                port: w.port,
                host_ip: w.host_ip,
                host_port,
            })
            .collect();
        self.proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), proxy);
        self.update(id, |r| r.network.ports = published)?;
        Ok(())
    }

    /// The bridges as the rules see them: the default one, then each network's.
    fn segments(&self) -> Vec<Segment> {
        let mut out = Vec::new();
        if let Some(b) = &self.cfg.network {
            out.push(b.segment(false));
            for def in self.networks.list() {
                out.push(def.bridge(&self.cfg.run).segment(def.internal));
            }
        }
        out
    }

    /// Make the rule set again from what runs now (blocking).
    pub(super) fn refresh_rules(&self) {
        if self.cfg.network.is_some() {
            if let Err(e) = crate::engine::network::apply(&self.segments(), &self.published()) {
                tracing::warn!(error = %e, "writing the network rules");
            }
        }
    }

    /// After an exit or a removal: unwire, then the rules (on the blocking pool).
    pub(super) async fn network_down(self: &Arc<Self>, rec: &Record) {
        if self.cfg.network.is_none() || self.ifaces(rec).is_empty() {
            return;
        }
        drop(
            self.proxies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&rec.id),
        );
        if !rec.network.ports.is_empty() {
            let _ = self.update(&rec.id, |r| r.network.ports.clear());
        }
        let me = self.clone();
        let rec = rec.clone();
        let _ = tokio::task::spawn_blocking(move || {
            me.unwire(&rec);
            me.refresh_rules();
        })
        .await;
    }

    /// [`Manager::network_down`] by id.
    pub(super) async fn network_down_id(self: &Arc<Self>, id: &str) {
        if let Ok(rec) = self.get(id) {
            self.network_down(&rec).await;
        }
    }

    /// Whether this engine has a bridge.
    pub fn has_bridge(&self) -> bool {
        self.cfg.network.is_some()
    }

    /// Whether the container is on any network of ours (it has a namespace file).
    pub(super) fn on_a_network(&self, rec: &Record) -> bool {
        !self.ifaces(rec).is_empty()
    }

    /// Where the container is on each of its networks, in order (addresses only while it
    /// runs; the names, ids and aliases always).
    pub fn endpoints(&self, rec: &Record) -> Vec<Endpoint> {
        let running = rec.state.status.is_running();
        self.ifaces(rec)
            .into_iter()
            .map(|i| {
                let ip = i.ip.filter(|_| running);
                let mut aliases = i.attach.as_ref().map(|a| a.aliases.clone());
                if let (Some(a), true) = (aliases.as_mut(), running) {
                    // As dockerd: the short id is an alias on a user-defined network.
                    let short = rec.id[..12].to_string();
                    if !a.contains(&short) {
                        a.push(short);
                    }
                }
                Endpoint {
                    network: i.network,
                    network_id: i.network_id,
                    ip,
                    prefix: i.bridge.bip.prefix,
                    gateway: i.bridge.bip.gateway,
                    mac: ip
                        .map(|ip| {
                            crate::engine::network::ipam::mac_string(
                                crate::engine::network::ipam::mac(ip),
                            )
                        })
                        .unwrap_or_default(),
                    aliases,
                    sandbox: i.bridge.netns(&rec.id),
                }
            })
            .collect()
    }

    /// The user-defined networks.
    pub fn networks(&self) -> Vec<NetworkDef> {
        self.networks.list()
    }

    pub fn find_network(&self, name_or_id: &str) -> Option<NetworkDef> {
        self.networks.find(name_or_id)
    }
}

/// A container's place on a network (what `inspect` shows).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The network's name (`bridge`, or a user-defined one's).
    pub network: String,
    pub network_id: String,
    /// While it runs.
    pub ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// `None` on the default bridge (Docker's `null`).
    pub aliases: Option<Vec<String>>,
    /// The namespace file (Docker's `SandboxKey`).
    pub sandbox: PathBuf,
}
