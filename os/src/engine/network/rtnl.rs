//! Links, addresses and routes over route netlink, synchronously: the few requests the bridge
//! network needs (a bridge, a veth pair with one end in another namespace, an address, a
//! default route, a link up or gone) and those of the network service's DHCP client (an
//! address and routes replaced or taken away, an MTU). Blocking on purpose: these run in the
//! engine's short-lived network helper (`ros container-helper netns`, one thread, which moves
//! between namespaces with `setns`), at engine start, and in the DHCP client's own thread;
//! never on a tokio worker.
//!
//! Every request asks for an acknowledgement and waits for it (5 s at most), so an error is
//! the kernel's own (`EEXIST`, `ENODEV`…) with what was asked.

use netlink_packet_core::{
    ErrorBuffer, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, Parseable, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage,
    LinkMessageBuffer,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("{what}: {errno}")]
    Kernel {
        what: String,
        errno: nix::errno::Errno,
    },
    #[error("{what}: {why}")]
    Reply { what: String, why: String },
    #[error("no network interface {0:?}")]
    NoLink(String),
}

pub type Result<T> = std::result::Result<T, RtnlError>;

/// How long one request waits for the kernel's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A route netlink socket in the calling thread's network namespace (at the time it is opened).
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(RtnlError::Socket)?;
        socket.bind_auto().map_err(RtnlError::Socket)?;
        let tv = nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0);
        // SAFETY: the socket's fd is open for the lifetime of `socket`.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(|e| RtnlError::Socket(e.into()))?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Send one request and collect its answers, decoded: the messages of a dump, or nothing
    /// for an acknowledged change.
    fn call(
        &mut self,
        what: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(what, msg, flags, |header, payload| {
            RouteNetlinkMessage::deserialize(header, payload).map_err(|e| e.to_string())
        })
    }

    /// Send one request and hand each answer of ours (its header and its payload's bytes) to
    /// `decode`, until the acknowledgement, the end of a dump, or a get's one answer. Callers
    /// that need a message's header only decode that: netlink-packet-route formats the bytes
    /// of many attributes into its error context as it parses them, whether or not they are
    /// bad (for a bridge, its whole `IFLA_INFO_DATA` once per attribute in it), which made
    /// looking up `docker0` cost as much as the rest of the user engine's start under TCG.
    fn exchange<T>(
        &mut self,
        what: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
        mut decode: impl FnMut(&NetlinkHeader, &[u8]) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(RtnlError::Socket)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let bad = |why: String| RtnlError::Reply {
            what: what.to_string(),
            why,
        };
        let mut out = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let n = self
                .socket
                .recv(&mut &mut rx[..], 0)
                .map_err(|e| bad(format!("no answer: {e}")))?;
            let mut off = 0;
            while off < n {
                let nl = NetlinkBuffer::new_checked(&rx[off..n])
                    .map_err(|e| bad(format!("unreadable answer: {e}")))?;
                let len = nl.length() as usize;
                if len == 0 {
                    return Err(bad("a message of length 0".into()));
                }
                off += (len + 3) & !3;
                if nl.sequence_number() != self.seq {
                    continue;
                }
                match nl.message_type() {
                    NLMSG_ERROR => {
                        let e = ErrorBuffer::new_checked(nl.payload())
                            .map_err(|e| bad(format!("unreadable error: {e}")))?;
                        return match e.code() {
                            None => Ok(out),
                            Some(code) => Err(RtnlError::Kernel {
                                what: what.to_string(),
                                errno: nix::errno::Errno::from_raw(-code.get()),
                            }),
                        };
                    }
                    NLMSG_DONE => return Ok(out),
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => {
                        let header = NetlinkHeader::parse(&nl)
                            .map_err(|e| bad(format!("unreadable answer: {e}")))?;
                        out.push(
                            decode(&header, nl.payload())
                                .map_err(|e| bad(format!("unreadable answer: {e}")))?,
                        );
                        if !dump {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// A link's index by name (`None`: no such link). Only the answer's link header is read.
    pub fn index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let answers = self.exchange(
            &format!("looking up {name}"),
            RouteNetlinkMessage::GetLink(m),
            0,
            |header, payload| {
                if header.message_type != libc::RTM_NEWLINK {
                    return Ok(None);
                }
                let buf = LinkMessageBuffer::new_checked(payload).map_err(|e| e.to_string())?;
                LinkHeader::parse(&buf)
                    .map(|h| Some(h.index))
                    .map_err(|e| e.to_string())
            },
        );
        match answers {
            Ok(v) => Ok(v.into_iter().flatten().next()),
            Err(RtnlError::Kernel {
                errno: nix::errno::Errno::ENODEV,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of link `name`; [`RtnlError::NoLink`] when there is none.
    pub fn must_index(&mut self, name: &str) -> Result<u32> {
        self.index(name)?
            .ok_or_else(|| RtnlError::NoLink(name.to_string()))
    }

    /// A bridge named `name`, unless a link of that name exists (whatever it is: the caller
    /// checks its addresses). Whether it was made now.
    pub fn ensure_bridge(&mut self, name: &str) -> Result<bool> {
        if self.index(name)?.is_some() {
            return Ok(false);
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.call(
            &format!("creating bridge {name}"),
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(true)
    }

    /// A veth pair: `name` here, `peer` in the network namespace of `peer_ns` (an open
    /// `/proc/…/ns/net`).
    pub fn add_veth(&mut self, name: &str, peer: &str, peer_ns: RawFd) -> Result<()> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::NetNsFd(peer_ns));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.call(
            &format!("creating veth pair {name}/{peer}"),
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Change a link: up, its MAC address, its bridge.
    pub fn set_link(
        &mut self,
        name: &str,
        up: bool,
        mac: Option<[u8; 6]>,
        master: Option<u32>,
    ) -> Result<()> {
        let index = self.must_index(name)?;
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        if let Some(mac) = mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(master) = master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        self.call(
            &format!("setting up {name}"),
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
        )?;
        Ok(())
    }

    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let Some(index) = self.index(name)? else {
            return Ok(());
        };
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.call(
            &format!("deleting {name}"),
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
        ) {
            // Gone meanwhile (a veth goes with its peer's namespace).
            Err(RtnlError::Kernel {
                errno: nix::errno::Errno::ENODEV,
                ..
            }) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// The IPv4 addresses of a link, with their prefix lengths.
    pub fn addresses(&mut self, name: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
        let index = self.must_index(name)?;
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        let all = self.call(
            &format!("listing the addresses of {name}"),
            RouteNetlinkMessage::GetAddress(m),
            NLM_F_DUMP,
        )?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some((*ip, a.header.prefix_len)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Add `ip/prefix` to a link (`EEXIST` when it has it).
    pub fn add_address(&mut self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let index = self.must_index(name)?;
        self.call(
            &format!("adding {ip}/{prefix} to {name}"),
            RouteNetlinkMessage::NewAddress(Self::address_message(index, ip, prefix)),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// The default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        let m = Self::route_message(RouteProtocol::Boot, None, Some(gateway));
        self.call(
            &format!("adding the default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// A main-table route to `dest` (`None`: default) through `gateway`, or on the link when
    /// there is none.
    fn route_message(
        protocol: RouteProtocol,
        dest: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
    ) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header = RouteHeader {
            address_family: AddressFamily::Inet,
            table: RouteHeader::RT_TABLE_MAIN,
            protocol,
            scope: if gateway.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            },
            kind: RouteType::Unicast,
            destination_prefix_length: dest.map_or(0, |(_, p)| p),
            ..Default::default()
        };
        if let Some((ip, _)) = dest {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(ip)));
        }
        if let Some(gw) = gateway {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        }
        m
    }

    fn address_message(index: u32, ip: Ipv4Addr, prefix: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        let bits = if prefix >= 32 { 0 } else { u32::MAX >> prefix };
        m.attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::from(
                u32::from(ip) | bits,
            )));
        m
    }

    /// Give the link `index` the address `ip/prefix`, whether or not it has it already.
    pub fn replace_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        self.call(
            &format!("setting {ip}/{prefix} on link {index}"),
            RouteNetlinkMessage::NewAddress(Self::address_message(index, ip, prefix)),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Take `ip/prefix` from the link `index` (and with it the routes through it); gone
    /// already is fine.
    pub fn delete_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        match self.call(
            &format!("removing {ip}/{prefix} from link {index}"),
            RouteNetlinkMessage::DelAddress(Self::address_message(index, ip, prefix)),
            NLM_F_ACK,
        ) {
            Err(RtnlError::Kernel {
                errno: nix::errno::Errno::EADDRNOTAVAIL,
                ..
            }) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// A route out of link `index` with metric `metric`, made or replaced: to `dest/prefix`
    /// (`None`: the default route) through `gateway`, or on the link itself when there is
    /// none. (The kernel finds the route to replace by destination and metric, not by link:
    /// a metric per link keeps two links' default routes apart.)
    pub fn replace_route(
        &mut self,
        index: u32,
        metric: u32,
        dest: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let mut m = Self::route_message(RouteProtocol::Dhcp, dest, gateway);
        m.attributes.push(RouteAttribute::Oif(index));
        m.attributes.push(RouteAttribute::Priority(metric));
        let what = match (dest, gateway) {
            (None, Some(gw)) => format!("the default route via {gw}"),
            (Some((ip, p)), None) => format!("the route to {ip}/{p} on link {index}"),
            (d, g) => format!("a route to {d:?} via {g:?}"),
        };
        self.call(
            &what,
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Set the MTU of link `index`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.call(
            &format!("setting the MTU of link {index} to {mtu}"),
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The link's index from its header alone agrees with the fully decoded answer, for a
    /// bridge (the link whose attributes cost most to decode) and `lo`; a missing link is
    /// `None`, and a change to it names it.
    #[test]
    fn a_link_index_is_read_from_the_header_alone() {
        crate::engine::network::in_new_netns(|| {
            let mut rt = Rtnl::open().unwrap();
            assert_eq!(rt.index("lo").unwrap(), Some(1));
            assert!(rt.ensure_bridge("t0").unwrap());
            let got = rt.must_index("t0").unwrap();
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName("t0".into()));
            let full = rt.call("t0", RouteNetlinkMessage::GetLink(m), 0).unwrap();
            let [RouteNetlinkMessage::NewLink(link)] = &full[..] else {
                panic!("one link expected: {full:?}");
            };
            assert_eq!(link.header.index, got);
            assert!(link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n == "t0")));
            assert_eq!(rt.index("nope0").unwrap(), None);
            let e = rt.set_link("nope0", true, None, None).unwrap_err();
            assert!(e.to_string().contains("nope0"), "{e}");
        });
    }
}
