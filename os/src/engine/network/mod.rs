//! The user engine's default bridge network, as dockerd's: a bridge (`docker0`, its address
//! `rancher.docker.bip`, 172.17.0.1/16 by default), a veth pair per container whose inner end
//! is the container's `eth0` with an address of the subnet ([`ipam`], kept in the container's
//! record), forwarding on, and one nftables table of the engine's own ([`rules`], through
//! [`nft`]) that masquerades the subnet's outbound traffic and DNATs published ports.
//!
//! Why this shape:
//! - The container's network namespace is made and wired *before* the container is created
//!   ([`sandbox`], in a helper process), and the container joins it by path: it never runs
//!   half-wired, and a failure to wire it is a failed start with the reason, like any other.
//! - The rule set is a function of the running containers, replaced whole in one kernel
//!   transaction after each start and exit: nothing to diff, nothing stale, and an engine that
//!   restarts rebuilds it from its records.
//! - Route netlink and nf_tables are spoken directly ([`rtnl`], [`nft`]): no `ip`, `iptables`
//!   or `nft` binary in the engine's image, no C library.
//!
//! The system engine has no bridge: its services use the host's network or none.

pub mod dns;
pub mod dnsmsg;
pub mod ipam;
pub mod named;
pub mod nft;
pub mod proxy;
pub mod rtnl;
mod rules;
pub mod sandbox;

use ipam::Bip;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// One published port, resolved to its container's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub udp: bool,
    /// The host address it is published on (`None` or `0.0.0.0`: all of them).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The container's name (the rule's comment, for whoever lists the table).
    pub container: String,
    /// The bridge the container is reached on.
    pub bridge: String,
}

/// A bridge as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub bridge: String,
    pub bip: Bip,
    /// Nothing goes out of an internal network.
    pub internal: bool,
}

impl PortMap {
    fn comment(&self) -> String {
        let proto = if self.udp { "udp" } else { "tcp" };
        format!(
            "{} {proto} {}:{}",
            self.container, self.host_port, self.port
        )
    }
}

/// An engine's default bridge.
#[derive(Debug, Clone)]
pub struct Bridge {
    /// `docker0`.
    pub name: String,
    pub bip: Bip,
    /// Where the containers' namespace files are (`/run/docker/netns`).
    pub netns_dir: PathBuf,
}

impl Bridge {
    pub fn new(bip: Bip, run: &Path) -> Bridge {
        Bridge {
            name: "docker0".into(),
            bip,
            netns_dir: run.join("netns"),
        }
    }

    /// The bridge with its address (made again if it has another one: the bip changed), up.
    pub fn ensure(&self) -> Result<(), String> {
        let mut rt = rtnl::Rtnl::open().map_err(|e| e.to_string())?;
        rt.ensure_bridge(&self.name).map_err(|e| e.to_string())?;
        let have = rt.addresses(&self.name).map_err(|e| e.to_string())?;
        let want = (self.bip.gateway, self.bip.prefix);
        if !have.contains(&want) {
            if !have.is_empty() {
                tracing::warn!(bridge = %self.name, ?have, bip = %self.bip, "the bridge has other addresses; making it again");
                rt.delete_link(&self.name).map_err(|e| e.to_string())?;
                rt.ensure_bridge(&self.name).map_err(|e| e.to_string())?;
            }
            rt.add_address(&self.name, self.bip.gateway, self.bip.prefix)
                .map_err(|e| e.to_string())?;
        }
        rt.set_link(&self.name, true, None, None)
            .map_err(|e| e.to_string())
    }

    /// The bridge gone (its network was removed); not there is fine.
    pub fn remove(&self) -> Result<(), String> {
        let mut rt = rtnl::Rtnl::open().map_err(|e| e.to_string())?;
        rt.delete_link(&self.name).map_err(|e| e.to_string())
    }

    /// At engine start: the bridge, IPv4 forwarding on, the rules for no published port yet.
    pub fn setup(&self) -> Result<(), String> {
        self.ensure()?;
        host_setup()?;
        apply(&[self.segment(false)], &[])
    }

    pub fn segment(&self, internal: bool) -> Segment {
        Segment {
            bridge: self.name.clone(),
            bip: self.bip,
            internal,
        }
    }

    /// A container's namespace file.
    pub fn netns(&self, id: &str) -> PathBuf {
        self.netns_dir.join(id)
    }

    /// How the container `id` with address `ip` is wired: `veth` outside, `ifname` inside,
    /// the default route through this bridge when `route`.
    pub fn wiring(
        &self,
        id: &str,
        ip: Ipv4Addr,
        veth: String,
        ifname: String,
        route: bool,
    ) -> sandbox::Wiring {
        sandbox::Wiring {
            path: self.netns(id),
            bridge: self.name.clone(),
            veth,
            ifname,
            ip,
            prefix: self.bip.prefix,
            gateway: route.then_some(self.bip.gateway),
            mac: ipam::mac(ip),
        }
    }
}

/// IPv4 forwarding on, and bridged frames kept away from the IP hooks.
pub fn host_setup() -> Result<(), String> {
    let fwd = "/proc/sys/net/ipv4/ip_forward";
    std::fs::write(fwd, "1").map_err(|e| format!("{fwd}: {e}"))?;
    // Frames bridged between a bridge's ports are not shown to the IP hooks: the rules
    // match routed traffic by interface (`iifname docker0`), containers on one bridge may
    // talk to each other anyway, and each packet a container sends would otherwise go
    // through conntrack and the chains twice (measured: `harness bench network`).
    for f in [
        "bridge-nf-call-iptables",
        "bridge-nf-call-ip6tables",
        "bridge-nf-call-arptables",
    ] {
        let path = format!("/proc/sys/net/bridge/{f}");
        if let Err(e) = std::fs::write(&path, "0") {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path, error = %e, "bridge netfilter");
            }
        }
    }
    Ok(())
}

/// The rule set for these bridges and published ports, in place of the one before.
pub fn apply(segments: &[Segment], ports: &[PortMap]) -> Result<(), String> {
    nft::replace(&rules::table(segments, ports)).map_err(|e| e.to_string())
}

#[cfg(test)]
pub(crate) use tests::in_new_netns;

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use nix::sched::CloneFlags;

    /// Runs `test` on a thread of its own in a new network namespace (unshare applies to the
    /// calling thread only), so the host's firewall is never touched; commands it spawns
    /// inherit that namespace.
    pub(crate) fn in_new_netns(test: impl FnOnce() + Send + 'static) {
        let thread = std::thread::spawn(move || {
            if let Err(errno) = nix::sched::unshare(CloneFlags::CLONE_NEWNET) {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                if errno == Errno::EPERM && !ci {
                    eprintln!("skipped: unshare(CLONE_NEWNET) needs root: {errno}");
                    return;
                }
                panic!("unshare(CLONE_NEWNET): {errno}");
            }
            test();
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn the_bridge_is_set_up_once_and_made_again_for_another_bip() {
        in_new_netns(|| {
            let run = tempfile::tempdir().unwrap();
            let b = Bridge::new(Bip::DEFAULT, run.path());
            b.setup().unwrap();
            b.setup().unwrap();
            let mut rt = rtnl::Rtnl::open().unwrap();
            assert_eq!(
                rt.addresses("docker0").unwrap(),
                [(Ipv4Addr::new(172, 17, 0, 1), 16)]
            );
            assert_eq!(
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
                "1\n"
            );
            assert_eq!(
                nft::rule_count(nft::Family::Ip, rules::TABLE).unwrap(),
                Some(8)
            );
            let other = Bridge::new("10.200.0.1/24".parse().unwrap(), run.path());
            other.setup().unwrap();
            assert_eq!(
                rt.addresses("docker0").unwrap(),
                [(Ipv4Addr::new(10, 200, 0, 1), 24)]
            );
        });
    }
}
