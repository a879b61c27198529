//! Names on user-defined networks: each running container on one has its own embedded DNS
//! server (`engine::network::dns`), started when its namespace is wired and stopped when it is
//! taken down, which asks the manager about names. A container finds, on each user-defined
//! network it shares with it, a running container by name, alias, short id or
//! `NAME.NETWORK`; and, in reverse, an address of such a network by `NAME.NETWORK`. The
//! default bridge has no names (as in Docker: `--link` writes them into `/etc/hosts`).

use super::network::Iface;
use super::{Manager, ManagerError, Result};
use crate::engine::network::dns::{self, Answer};
use crate::engine::network::dnsmsg;
use std::path::Path;
use std::sync::Arc;

impl Manager {
    /// Start the container's DNS server in its namespace (blocking: called while wiring).
    pub(super) fn start_dns(&self, id: &str, netns: &Path) -> Result<()> {
        self.stop_dns(id);
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| ManagerError::Network(format!("DNS server: {e}")))?;
        let sock = dns::bind_in(netns)
            .map_err(|e| ManagerError::Network(format!("the container's DNS server: {e}")))?;
        let _guard = rt.enter();
        let sock = tokio::net::UdpSocket::from_std(sock)
            .map_err(|e| ManagerError::Network(format!("the container's DNS server: {e}")))?;
        let upstreams = dns::upstreams(&self.upstream_resolv(id));
        let me = self.me.clone();
        let asker = id.to_string();
        let lookup: dns::Lookup = Arc::new(move |name, qtype| match me.upgrade() {
            Some(m) => m.resolve(&asker, name, qtype),
            None => Answer::Forward,
        });
        let task = rt.spawn(dns::serve(sock, lookup, upstreams));
        self.dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), task.abort_handle());
        tracing::debug!(id, "dns server up");
        Ok(())
    }

    pub(super) fn dns_running(&self, id: &str) -> bool {
        self.dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|h| !h.is_finished())
    }

    pub(super) fn stop_dns(&self, id: &str) {
        if let Some(h) = self
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            h.abort();
        }
    }

    /// The resolvers a container's queries go to when they are not ours: its `--dns`, or the
    /// host's (loopback ones included: they are asked from the engine's side).
    fn upstream_resolv(&self, id: &str) -> String {
        match self.get(id) {
            Ok(r) if !r.host.dns.is_empty() => r
                .host
                .dns
                .iter()
                .map(|d| format!("nameserver {d}\n"))
                .collect(),
            _ => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        }
    }

    /// What `asker` gets for `name`.
    fn resolve(&self, asker: &str, name: &str, qtype: u16) -> Answer {
        let Ok(me) = self.get(asker) else {
            return Answer::Forward;
        };
        let mine: Vec<Iface> = self
            .ifaces(&me)
            .into_iter()
            .filter(Iface::user_defined)
            .collect();
        if mine.is_empty() {
            return Answer::Forward;
        }
        if qtype == dnsmsg::TYPE_PTR {
            return self.reverse(&mine, name);
        }
        let mut ips = Vec::new();
        for other in self.list() {
            if !other.state.status.is_running() {
                continue;
            }
            for i in self.ifaces(&other) {
                let Some(net) = mine.iter().find(|m| m.network_id == i.network_id) else {
                    continue;
                };
                let Some(ip) = i.ip else { continue };
                let bare = name
                    .strip_suffix(&format!(".{}", net.network.to_ascii_lowercase()))
                    .unwrap_or(name);
                let aliases = i
                    .attach
                    .as_ref()
                    .map(|a| a.aliases.as_slice())
                    .unwrap_or(&[]);
                let known = other.name.eq_ignore_ascii_case(bare)
                    || other.id[..12] == *bare
                    || aliases.iter().any(|a| a.eq_ignore_ascii_case(bare));
                if known && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        if ips.is_empty() {
            Answer::Forward
        } else {
            Answer::Addresses(ips)
        }
    }

    /// `d.c.b.a.in-addr.arpa` of an address on one of the asker's networks: `NAME.NETWORK`.
    fn reverse(&self, mine: &[Iface], name: &str) -> Answer {
        let Some(ip) = dnsmsg::reverse_v4(name) else {
            return Answer::Forward;
        };
        if !mine.iter().any(|m| m.bridge.bip.contains(ip)) {
            return Answer::Forward;
        }
        let mut names = Vec::new();
        for other in self.list() {
            if !other.state.status.is_running() {
                continue;
            }
            for i in self.ifaces(&other) {
                if i.ip == Some(ip) && mine.iter().any(|m| m.network_id == i.network_id) {
                    names.push(format!("{}.{}", other.name, i.network));
                }
            }
        }
        if names.is_empty() {
            Answer::Forward
        } else {
            Answer::Names(names)
        }
    }
}
