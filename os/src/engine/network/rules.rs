//! The user engine's rule set, made from what runs: one nftables table (`ip ros-docker`)
//! replaced whole after every change (see [`super::nft`]), so the rules are always a function
//! of the records and no stale rule outlives its container.
//!
//! What it says, as dockerd's iptables rules do for the default bridge:
//! - `postrouting`: the bridge's subnet leaving by another interface is masqueraded.
//! - `prerouting` / `output`: traffic to a local address (`fib daddr type local`; from the host
//!   itself not to loopback, which the userland proxy serves) goes through `ports`, whose
//!   rules DNAT each published port to its container, unless it comes from the bridge (those
//!   go through the proxy too, as in Docker).
//! - `forward`: answers to the containers' own connections come back; published ports are
//!   let in; containers may go out and talk to each other; anything else towards the bridge is
//!   dropped.
//! - `input`: from the bridge, the host takes answers and the published ports (the proxy) and
//!   nothing else: a container cannot reach the host's SSH or any other service on the
//!   bridge's address.

use super::nft::{Base, Chain, ChainType, Family, Hook, Proto, Rule, Table};
use super::{PortMap, Segment};
use std::net::Ipv4Addr;

/// The table's name (family `ip`).
pub const TABLE: &str = "ros-docker";

pub fn table(segments: &[Segment], ports: &[PortMap]) -> Table {
    let base = |hook, priority, kind| {
        Some(Base {
            hook,
            priority,
            kind,
            policy_accept: true,
        })
    };
    let chain = |name: &str, base, rules| Chain {
        name: name.into(),
        base,
        rules,
    };
    let proto = |p: &PortMap| if p.udp { Proto::Udp } else { Proto::Tcp };
    let mut dnat = Vec::new();
    let mut masquerade = Vec::new();
    let mut forward = Vec::new();
    let mut input = Vec::new();
    for s in segments {
        forward.push(
            Rule::new()
                .oifname(true, &s.bridge)
                .ct_established()
                .accept(),
        );
        input.push(
            Rule::new()
                .iifname(true, &s.bridge)
                .ct_established()
                .accept(),
        );
        if !s.internal {
            masquerade.push(
                Rule::new()
                    .saddr(true, s.bip.network(), s.bip.prefix)
                    .oifname(false, &s.bridge)
                    .masquerade(),
            );
        }
    }
    for p in ports {
        let mut r = Rule::new().iifname(false, &p.bridge);
        if let Some(ip) = p.host_ip.filter(|ip| !ip.is_unspecified()) {
            r = r.daddr(true, ip, 32);
        }
        dnat.push(
            r.l4proto(proto(p))
                .dport(p.host_port)
                .dnat(p.ip, Some(p.port))
                .comment(&p.comment()),
        );
        forward.push(
            Rule::new()
                .oifname(true, &p.bridge)
                .daddr(true, p.ip, 32)
                .l4proto(proto(p))
                .dport(p.port)
                .accept(),
        );
        // From a bridge, the host's side of a published port is the userland proxy.
        input.push(Rule::new().l4proto(proto(p)).dport(p.host_port).accept());
    }
    // Isolation: nothing goes from one network to another.
    for a in segments {
        for b in segments.iter().filter(|b| b.bridge != a.bridge) {
            forward.push(
                Rule::new()
                    .iifname(true, &a.bridge)
                    .oifname(true, &b.bridge)
                    .drop(),
            );
        }
    }
    for s in segments {
        let out = Rule::new().iifname(true, &s.bridge);
        forward.push(if s.internal { out.drop() } else { out.accept() });
    }
    for s in segments {
        forward.push(Rule::new().oifname(true, &s.bridge).drop());
        input.push(Rule::new().iifname(true, &s.bridge).drop());
    }
    Table {
        family: Family::Ip,
        name: TABLE.into(),
        chains: vec![
            chain("ports", None, dnat),
            chain(
                "prerouting",
                base(Hook::Prerouting, -100, ChainType::Nat),
                vec![Rule::new().fib_daddr_local().jump("ports")],
            ),
            chain(
                "output",
                base(Hook::Output, -100, ChainType::Nat),
                vec![Rule::new()
                    .daddr(false, Ipv4Addr::new(127, 0, 0, 0), 8)
                    .fib_daddr_local()
                    .jump("ports")],
            ),
            chain(
                "postrouting",
                base(Hook::Postrouting, 100, ChainType::Nat),
                masquerade,
            ),
            chain(
                "forward",
                base(Hook::Forward, 0, ChainType::Filter),
                forward,
            ),
            chain("input", base(Hook::Input, 0, ChainType::Filter), input),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_port_has_its_dnat_forward_and_input_rule() {
        let seg = |name: &str, bip: &str, internal| Segment {
            bridge: name.into(),
            bip: bip.parse().unwrap(),
            internal,
        };
        let default = [seg("docker0", "172.17.0.1/16", false)];
        let none = table(&default, &[]);
        let count = |t: &Table| t.chains.iter().map(|c| c.rules.len()).sum::<usize>();
        assert_eq!(count(&none), 8);
        let ports = [
            PortMap {
                udp: false,
                host_ip: None,
                host_port: 8080,
                ip: Ipv4Addr::new(172, 17, 0, 2),
                port: 80,
                container: "web".into(),
                bridge: "docker0".into(),
            },
            PortMap {
                udp: true,
                host_ip: Some(Ipv4Addr::new(10, 0, 2, 15)),
                host_port: 5353,
                ip: Ipv4Addr::new(172, 17, 0, 3),
                port: 53,
                container: "dns".into(),
                bridge: "docker0".into(),
            },
        ];
        let t = table(&default, &ports);
        assert_eq!(count(&t), 8 + 2 * 3);
        assert_eq!(t.chains[0].rules.len(), 2);
        assert_eq!(
            t.chains[0].rules[0].comment.as_deref(),
            Some("web tcp 8080:80")
        );
        // Two more networks, one internal: each its established, way out (or not), drop;
        // masquerade for those that go out; a drop for each ordered pair of networks.
        let three = [
            default[0].clone(),
            seg("br-a", "172.18.0.1/16", false),
            seg("br-b", "172.19.0.1/16", true),
        ];
        let t = table(&three, &[]);
        assert_eq!(count(&t), 2 + 2 + 3 * 5 + 6);
        let post = t.chains.iter().find(|c| c.name == "postrouting").unwrap();
        assert_eq!(post.rules.len(), 2);
    }
}
