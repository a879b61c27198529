//! The manager's side of the bridge network (`engine::network`): a container on the bridge
//! gets its lease at its first start, its namespace wired before its shim creates it, and the
//! engine's rule set is made again from the running containers after every start and exit.
//! The wiring runs in a helper process and the netlink calls block, so each runs on tokio's
//! blocking pool, never on the runtime's thread.

use super::record::{self, Published, Record};
use super::{Manager, ManagerError, Result};
use crate::engine::network::proxy::{self, Want};
use crate::engine::network::{Bridge, PortMap};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

impl Manager {
    /// The bridge this container is on, if it is on one.
    pub(super) fn bridge_of(&self, rec: &Record) -> Option<&Bridge> {
        let b = self.cfg.network.as_ref()?;
        matches!(rec.host.network_mode.as_str(), "" | "default" | "bridge").then_some(b)
    }

    /// At engine start, before the records are read back: the bridge, forwarding, the rules.
    pub fn setup_network(&self) -> Result<()> {
        if let Some(b) = &self.cfg.network {
            b.setup()
                .map_err(|e| ManagerError::Shim(format!("bridge {}: {e}", b.name)))?;
            tracing::info!(bridge = %b.name, bip = %b.bip, "bridge network up");
        }
        Ok(())
    }

    /// The container's address: its lease, or the lowest free one, kept in its record.
    pub(super) fn lease(&self, id: &str, bridge: &Bridge) -> Result<Ipv4Addr> {
        let mut map = self.lock();
        let used: BTreeSet<Ipv4Addr> = map
            .iter()
            .filter(|(k, _)| k.as_str() != id)
            .filter_map(|(_, e)| e.rec.network.ip)
            .collect();
        let e = map
            .get_mut(id)
            .ok_or_else(|| ManagerError::NoSuchContainer(id.to_string()))?;
        if let Some(ip) = e.rec.network.ip {
            if bridge.bip.contains(ip) && !used.contains(&ip) {
                return Ok(ip);
            }
        }
        let ip = bridge.bip.allocate(&used).ok_or_else(|| {
            ManagerError::Conflict(format!(
                "no free address left on {} ({})",
                bridge.name,
                bridge.bip.subnet()
            ))
        })?;
        e.rec.network.ip = Some(ip);
        let dir = self.dir(id);
        e.rec
            .save(&dir)
            .map_err(|err| ManagerError::io(&dir, err))?;
        Ok(ip)
    }

    /// Wire a container about to start (blocking): the namespace file it joins, or `None`
    /// when it is not on the bridge.
    pub(super) fn wire(&self, rec: &Record) -> Result<Option<PathBuf>> {
        let Some(bridge) = self.bridge_of(rec) else {
            return Ok(None);
        };
        let ip = self.lease(&rec.id, bridge)?;
        let w = bridge.wiring(&rec.id, ip);
        crate::engine::network::sandbox::create(&self.cfg.exe, &w).map_err(|e| {
            ManagerError::Shim(format!("connecting {} to {}: {e}", rec.name, bridge.name))
        })?;
        Ok(Some(w.path))
    }

    /// At engine start, for a container that ran on while no engine was there: its published
    /// ports bound again (the same host ports) and the rules made again from every record.
    pub(super) async fn republish(self: &Arc<Self>, rec: &Record) {
        let Some(ip) = rec.network.ip.filter(|_| self.bridge_of(rec).is_some()) else {
            return;
        };
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
        if let Some(bridge) = self.bridge_of(rec) {
            if let Err(e) = bridge.unwire(&self.cfg.exe, &rec.id) {
                tracing::warn!(id = %rec.id, error = %e, "disconnecting from the bridge");
            }
        }
    }

    /// The published ports of the running containers on the bridge.
    fn published(&self) -> Vec<PortMap> {
        let map = self.lock();
        let mut out = Vec::new();
        for e in map.values() {
            let r = &e.rec;
            let Some(ip) = r.network.ip else { continue };
            if !r.state.status.is_running() || self.bridge_of(r).is_none() {
                continue;
            }
            for p in &r.network.ports {
                out.push(PortMap {
                    udp: p.udp,
                    host_ip: Some(p.host_ip),
                    host_port: p.host_port,
                    ip,
                    port: p.port,
                    container: r.name.clone(),
                });
            }
        }
        out.sort_by_key(|p| (p.host_port, p.udp));
        out
    }

    /// Before a container on the bridge starts: its lease, and its published ports bound by
    /// the userland proxy (kept until it exits), recorded with the ports the host chose.
    /// A port that is taken fails the start with dockerd's words.
    pub(super) async fn publish_ports(self: &Arc<Self>, id: &str) -> Result<()> {
        let rec = self.get(id)?;
        let Some(bridge) = self.bridge_of(&rec) else {
            return Ok(());
        };
        let ip = self.lease(id, bridge)?;
        let mut wants = Vec::new();
        let h = &rec.host;
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

    /// Make the rule set again from what runs now (blocking).
    pub(super) fn refresh_rules(&self) {
        if let Some(b) = &self.cfg.network {
            if let Err(e) = b.apply(&self.published()) {
                tracing::warn!(error = %e, "writing the network rules");
            }
        }
    }

    /// After an exit or a removal: unwire, then the rules (on the blocking pool).
    pub(super) async fn network_down(self: &Arc<Self>, rec: &Record) {
        if self.cfg.network.is_none() || rec.network.ip.is_none() {
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

    /// Where a running container is on the bridge (`None`: not on it, or not running).
    pub fn endpoint(&self, rec: &Record) -> Option<Endpoint> {
        let bridge = self.bridge_of(rec)?;
        let ip = rec.network.ip.filter(|_| rec.state.status.is_running())?;
        Some(Endpoint {
            network: "bridge",
            ip,
            prefix: bridge.bip.prefix,
            gateway: bridge.bip.gateway,
            mac: crate::engine::network::ipam::mac_string(crate::engine::network::ipam::mac(ip)),
            sandbox: bridge.netns(&rec.id),
        })
    }
}

/// A running container's place on a network (what `inspect` shows).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The network's name (`bridge`).
    pub network: &'static str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The namespace file (Docker's `SandboxKey`).
    pub sandbox: PathBuf,
}
