//! The client's [`Wire`] on a real link: its sockets, the clock, and what a lease does to the
//! host (address, routes, MTU over route netlink; `resolv.conf`; the service's ready file).

use super::client::{Dest, Lease, Wire};
use super::message::{Reply, Request, SERVER_PORT};
use super::socket::{readable, Raw};
use crate::engine::network::rtnl::Rtnl;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// Unreadable answers and bad options logged, at most, per link (a flood must not fill the
/// log).
const BAD_LOGGED: u32 = 10;
/// The metric of a lease's routes: dhcpcd's, 200 + the link's index, so each link has its
/// own default route (the first link's wins) and a static `gateway:` (metric 0) beats them.
const METRIC_BASE: u32 = 200;

/// Where the address of a link's lease is kept while it holds it (`/run/netconf` outlives the
/// service): a client started again takes a different address's place, not beside it.
fn lease_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/run/netconf").join(format!("{name}.lease"))
}

pub struct LinkWire {
    name: String,
    index: u32,
    rtnl: Rtnl,
    /// While the link has no lease.
    raw: Option<Raw>,
    /// While it has one.
    udp: Option<UdpSocket>,
    current: Option<Lease>,
    /// The address of the lease an earlier run of the client held (its lease file).
    earlier: Option<(Ipv4Addr, u8)>,
    /// `rancher.network` sets this link's MTU: the lease's does not change it.
    keep_mtu: bool,
    bad: u32,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LinkWire {
    pub fn open(name: &str, keep_mtu: bool) -> io::Result<LinkWire> {
        let mut rtnl = Rtnl::open().map_err(io_err)?;
        let index = rtnl
            .index(name)
            .map_err(io_err)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {name}")))?;
        let earlier = std::fs::read_to_string(lease_file(name))
            .ok()
            .and_then(|s| {
                let (ip, prefix) = s.trim().split_once('/')?;
                Some((ip.parse().ok()?, prefix.parse().ok().filter(|p| *p <= 32)?))
            });
        Ok(LinkWire {
            name: name.to_string(),
            index,
            rtnl,
            raw: None,
            udp: None,
            current: None,
            earlier,
            keep_mtu,
            bad: 0,
        })
    }

    fn raw(&mut self) -> io::Result<&Raw> {
        if self.raw.is_none() {
            self.raw = Some(Raw::open(self.index as i32)?);
        }
        Ok(self.raw.as_ref().expect("opened above"))
    }

    fn parse(&mut self, bytes: &[u8]) -> Option<Reply> {
        match Reply::parse(bytes) {
            Ok(r) => {
                for e in &r.dropped {
                    self.bad = self.bad.saturating_add(1);
                    if self.bad <= BAD_LOGGED {
                        self.say(&format!("an option of an answer is left out: {e}"));
                    }
                }
                Some(r)
            }
            Err(e) => {
                self.bad = self.bad.saturating_add(1);
                if self.bad <= BAD_LOGGED {
                    self.say(&format!("an unreadable answer is dropped: {e}"));
                }
                None
            }
        }
    }

    /// Apply `lease`; whether `resolv.conf` was kept (static DNS). Only the address is a
    /// must; a route or an MTU the kernel refuses is said, and the lease kept.
    fn configure(&mut self, lease: &Lease) -> io::Result<bool> {
        let i = self.index;
        let old = self
            .current
            .as_ref()
            .map(|l| (l.ip, l.prefix))
            .or(self.earlier.take());
        if let Some((ip, prefix)) = old.filter(|o| *o != (lease.ip, lease.prefix)) {
            self.rtnl.delete_address(i, ip, prefix).map_err(io_err)?;
        }
        self.rtnl
            .replace_address(i, lease.ip, lease.prefix)
            .map_err(io_err)?;
        let file = lease_file(&self.name);
        let text = format!("{}/{}\n", lease.ip, lease.prefix);
        if let Err(e) = crate::config::atomic::write_atomic(&file, text.as_bytes(), 0o644) {
            self.say(&format!("{}: {e}", file.display()));
        }
        if let (Some(mtu), false) = (lease.mtu, self.keep_mtu) {
            if let Err(e) = self.rtnl.set_mtu(i, mtu as u32) {
                self.say(&format!("the lease's MTU is not taken: {e}"));
            }
        }
        if let Some(&router) = lease.routers.first() {
            let metric = METRIC_BASE + i;
            // A router outside the subnet (a /32 lease) is reached on the link itself.
            let on_link = if on_subnet(lease, router) {
                Ok(())
            } else {
                self.rtnl.replace_route(i, metric, Some((router, 32)), None)
            };
            let r = on_link.and_then(|_| self.rtnl.replace_route(i, metric, None, Some(router)));
            if let Err(e) = r {
                self.say(&format!("the lease's route is not taken: {e}"));
            }
        }
        let name = self.name.clone();
        let kept = match super::super::lease_resolv_conf(&name, lease) {
            Ok(written) => !written,
            Err(e) => {
                self.say(&format!("writing resolv.conf: {e}"));
                false
            }
        };
        super::super::write_ready();
        Ok(kept)
    }
}

/// Whether `ip` is on the lease's subnet.
fn on_subnet(lease: &Lease, ip: Ipv4Addr) -> bool {
    let subnet = crate::engine::network::ipam::Bip {
        gateway: lease.ip,
        prefix: lease.prefix,
    };
    subnet.contains(ip)
}

impl Wire for LinkWire {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn xid(&mut self) -> u32 {
        let mut b = [0u8; 4];
        crate::random::fill(&mut b);
        u32::from_ne_bytes(b)
    }

    fn jitter(&mut self) -> Duration {
        let mut b = [0u8; 2];
        crate::random::fill(&mut b);
        Duration::from_millis(u16::from_ne_bytes(b) as u64 % 500)
    }

    fn send(&mut self, req: &Request, to: Dest) -> io::Result<()> {
        let bytes = req.encode();
        match (&self.udp, to) {
            (Some(udp), Dest::Server(ip)) => udp
                .send_to(&bytes, SocketAddrV4::new(ip, SERVER_PORT))
                .map(|_| ()),
            (Some(udp), Dest::Broadcast) => udp
                .send_to(&bytes, SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT))
                .map(|_| ()),
            (None, _) => self.raw()?.send_broadcast(&bytes),
        }
    }

    fn recv(&mut self, until: Instant) -> io::Result<Option<Reply>> {
        loop {
            let bytes = if let Some(udp) = &self.udp {
                if !readable(udp, until)? {
                    return Ok(None);
                }
                let mut buf = vec![0u8; 1500];
                match udp.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        buf.truncate(n);
                        buf
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            } else {
                match self.raw()?.recv(until)? {
                    Some(b) => b,
                    None => return Ok(None),
                }
            };
            if let Some(r) = self.parse(&bytes) {
                return Ok(Some(r));
            }
        }
    }

    fn bound(&mut self, lease: &Lease) -> io::Result<()> {
        let kept = self.configure(lease)?;
        let note = if kept {
            " (resolv.conf kept: static DNS)"
        } else {
            ""
        };
        self.say(&format!("lease {}{note}", lease.describe()));
        self.current = Some(lease.clone());
        if self.udp.is_none() {
            self.udp = Some(super::socket::udp(&self.name)?);
        }
        self.raw = None;
        Ok(())
    }

    fn lost(&mut self, lease: &Lease) {
        if let Err(e) = self.rtnl.delete_address(self.index, lease.ip, lease.prefix) {
            self.say(&format!("{e}"));
        }
        let _ = std::fs::remove_file(lease_file(&self.name));
        self.current = None;
        self.udp = None;
    }

    fn say(&mut self, what: &str) {
        println!("network: {}: {what}", self.name);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnets() {
        use std::net::Ipv4Addr;
        let same_subnet = |a: Ipv4Addr, b: Ipv4Addr, prefix: u8| {
            crate::engine::network::ipam::Bip { gateway: a, prefix }.contains(b)
        };
        let a = Ipv4Addr::new(10, 0, 2, 15);
        assert!(same_subnet(a, Ipv4Addr::new(10, 0, 2, 2), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 0, 3, 2), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 0, 2, 2), 32));
        assert!(same_subnet(a, Ipv4Addr::new(99, 0, 0, 1), 0));
    }
}
