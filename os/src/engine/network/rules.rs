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

use super::ipam::Bip;
use super::nft::{Base, Chain, ChainType, Family, Hook, Proto, Rule, Table};
use super::PortMap;
use std::net::Ipv4Addr;

/// The table's name (family `ip`).
pub const TABLE: &str = "ros-docker";

pub fn table(bridge: &str, bip: Bip, ports: &[PortMap]) -> Table {
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
    let mut forward = vec![Rule::new().oifname(true, bridge).ct_established().accept()];
    let mut input = vec![Rule::new().iifname(true, bridge).ct_established().accept()];
    for p in ports {
        let mut r = Rule::new().iifname(false, bridge);
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
                .oifname(true, bridge)
                .daddr(true, p.ip, 32)
                .l4proto(proto(p))
                .dport(p.port)
                .accept(),
        );
        input.push(
            Rule::new()
                .iifname(true, bridge)
                .l4proto(proto(p))
                .dport(p.host_port)
                .accept(),
        );
    }
    forward.push(Rule::new().iifname(true, bridge).accept());
    forward.push(Rule::new().oifname(true, bridge).drop());
    input.push(Rule::new().iifname(true, bridge).drop());
    let net = bip.network();
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
                vec![Rule::new()
                    .saddr(true, net, bip.prefix)
                    .oifname(false, bridge)
                    .masquerade()],
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
        let bip = Bip::DEFAULT;
        let none = table("docker0", bip, &[]);
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
            },
            PortMap {
                udp: true,
                host_ip: Some(Ipv4Addr::new(10, 0, 2, 15)),
                host_port: 5353,
                ip: Ipv4Addr::new(172, 17, 0, 3),
                port: 53,
                container: "dns".into(),
            },
        ];
        let t = table("docker0", bip, &ports);
        assert_eq!(count(&t), 8 + 2 * 3);
        assert_eq!(t.chains[0].rules.len(), 2);
        assert_eq!(
            t.chains[0].rules[0].comment.as_deref(),
            Some("web tcp 8080:80")
        );
    }
}
