//! `ros netconf`: the `network` system service's main process. It reads `rancher.network` and
//! configures every link of the host's network namespace (the service runs with `net: host`):
//!
//! - an `interfaces` entry picks links by name, glob (`eth*`) or `mac=…`; for a link several
//!   entries match, an exact one (name, MAC) beats a glob. The defaults say `eth*: {dhcp: true}`;
//! - every link it configures is brought up (and given its `mtu`) over route netlink; static
//!   `address`/`addresses` and `gateway` are set with busybox `ip`;
//! - `dhcp: true` runs the built-in DHCP client ([`dhcp`]) on the link, in a thread: it sets
//!   the lease's address, routes and MTU and writes `/run/resolvconf/resolv.conf`. With
//!   `dhcp_args` (busybox `udhcpc` arguments) it runs `udhcpc` in the foreground instead, with
//!   the event script that does the same;
//! - `dns.nameservers`/`dns.search`, when given, are written to that file and beat the leases'
//!   (the event script leaves the file alone while `/run/resolvconf/static` exists).
//!
//! It says it is of use with [`READY`] (the service's `io.rancher.os.readyfile`, which the
//! services after it wait for at boot): written at the first lease, or by
//! itself once the static configuration is done when no link asks for DHCP. So `[ros] ready`
//! comes after the machine has an address, not before its first DHCP request.
//!
//! It then waits: when a DHCP client ends (a `udhcpc`, or a client thread whose socket or
//! netlink request failed), it stops the others and exits with that client's status (1 for a
//! thread), so the supervisor's restart policy starts the whole configuration again; on SIGTERM
//! (it is PID 1 of its container, where signals without a handler are dropped) it stops the
//! clients and exits 0. `rancherctl config set rancher.network…` restarts the service.

pub mod dhcp;

use crate::config::network::{Interface, Network};
use crate::engine::network::rtnl::{Rtnl, RtnlError};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, ExitCode};

const RESOLV: &str = "/run/resolvconf/resolv.conf";
const STATIC_MARK: &str = "/run/resolvconf/static";
const DHCP_SCRIPT: &str = "/usr/share/udhcpc/default.script";
/// The ready file (the event script writes the same path at a lease).
const READY: &str = "/run/netconf/ready";

/// Say the service is of use: [`READY`], written.
fn write_ready() {
    let _ = std::fs::create_dir_all("/run/netconf");
    if let Err(e) = std::fs::write(READY, "") {
        println!("network: writing {READY}: {e}");
    }
}

/// `resolv.conf` from a DHCP lease of `link`, unless `rancher.network.dns` wrote it (then
/// `Ok(false)`: kept).
fn lease_resolv_conf(link: &str, lease: &dhcp::client::Lease) -> std::io::Result<bool> {
    if Path::new(STATIC_MARK).exists() {
        return Ok(false);
    }
    let mut s = format!("# written by the network service from the DHCP lease on {link}\n");
    if let Some(d) = &lease.domain {
        s.push_str(&format!("search {d}\n"));
    }
    for ns in &lease.dns {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    std::fs::create_dir_all("/run/resolvconf")?;
    crate::config::atomic::write_atomic(Path::new(RESOLV), s.as_bytes(), 0o644)?;
    Ok(true)
}

/// A link of the host: name and MAC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub mac: String,
}

/// The links in `/sys/class/net`, loopback aside.
pub fn links(sys: &Path) -> Vec<Link> {
    let mut v: Vec<Link> = std::fs::read_dir(sys)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let mac = std::fs::read_to_string(e.path().join("address"))
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    Link { name, mac }
                })
                .filter(|l| l.name != "lo")
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The entry that applies to `link`: exact selectors first, then globs, each in key order.
pub fn entry_for<'a>(net: &'a Network, link: &Link) -> Option<(&'a str, &'a Interface)> {
    let matching = || {
        net.interfaces
            .iter()
            .filter(|(k, i)| i.selector(k).matches(&link.name, &link.mac))
    };
    matching()
        .find(|(k, i)| i.selector(k).is_exact())
        .or_else(|| matching().next())
        .map(|(k, i)| (k.as_str(), i))
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the link's MTU, over route netlink.
    Mtu { link: String, mtu: u32 },
    /// Bring the link up, over route netlink (an `ip` child for it, its exec under emulation,
    /// cost the boot's path to the first lease ~50 ms).
    Up { link: String },
    /// `ip …` arguments.
    Ip(Vec<String>),
    /// Run a DHCP client on the link.
    Dhcp { link: String, args: Vec<String> },
}

/// What to do for every link, in order.
pub fn plan(net: &Network, links: &[Link]) -> Vec<Action> {
    let ip = |a: &[&str]| Action::Ip(a.iter().map(|s| s.to_string()).collect());
    let mut out = Vec::new();
    for link in links {
        let Some((_, i)) = entry_for(net, link) else {
            continue;
        };
        let n = link.name.as_str();
        if let Some(mtu) = i.mtu {
            out.push(Action::Mtu {
                link: link.name.clone(),
                mtu,
            });
        }
        out.push(Action::Up {
            link: link.name.clone(),
        });
        let statics: Vec<&String> = i.address.iter().chain(i.addresses.iter()).collect();
        if !i.dhcp && !statics.is_empty() {
            // A restart converges on the configuration: addresses no longer in it go.
            out.push(ip(&["addr", "flush", "dev", n]));
        }
        for a in statics {
            out.push(ip(&["addr", "add", a, "dev", n]));
        }
        if let Some(gw) = &i.gateway {
            out.push(ip(&["route", "replace", "default", "via", gw, "dev", n]));
        }
        if i.dhcp {
            out.push(Action::Dhcp {
                link: link.name.clone(),
                args: crate::services::words::split(i.dhcp_args.as_deref().unwrap_or(""))
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// `resolv.conf` from `rancher.network.dns`, when it says anything.
pub fn resolv_conf(net: &Network) -> Option<String> {
    if net.dns.nameservers.is_empty() && net.dns.search.is_empty() {
        return None;
    }
    let mut s = String::from("# written by the network service from rancher.network.dns\n");
    if !net.dns.search.is_empty() {
        s.push_str(&format!("search {}\n", net.dns.search.join(" ")));
    }
    for ns in &net.dns.nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    Some(s)
}

fn load_network() -> Network {
    let (config, errors) = crate::config::load_running();
    for e in errors {
        println!("network: config: {e}");
    }
    config.rancher.network
}

/// `ros netconf`.
pub fn main(_args: &[String]) -> ExitCode {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    // Blocked here, before any thread starts, so that every thread has them blocked and
    // `supervise` takes them all (SIGUSR1: a client thread ended).
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
        Signal::SIGUSR1,
    ] {
        set.add(s);
    }
    if let Err(e) = set.thread_block() {
        println!("network: blocking signals: {e}");
    }
    let _ = std::fs::remove_file(READY);
    let net = load_network();
    match resolv_conf(&net) {
        Some(text) => {
            let _ = std::fs::create_dir_all("/run/resolvconf");
            let w = crate::config::atomic::write_atomic(Path::new(RESOLV), text.as_bytes(), 0o644)
                .and_then(|_| std::fs::write(STATIC_MARK, ""));
            match w {
                Ok(()) => println!("network: DNS from rancher.network.dns written to {RESOLV}"),
                Err(e) => println!("network: writing {RESOLV}: {e}"),
            }
        }
        None => {
            let _ = std::fs::remove_file(STATIC_MARK);
        }
    }
    let links = links(Path::new("/sys/class/net"));
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    println!("network: links {}", names.join(" "));
    let mut clients: BTreeMap<i32, (String, Child)> = BTreeMap::new();
    let (ended_tx, ended_rx) = std::sync::mpsc::channel::<(String, std::io::Error)>();
    let mut threads = 0usize;
    let mut rtnl = None;
    for action in plan(&net, &links) {
        match action {
            Action::Mtu { link, mtu } => match rtnl_of(&mut rtnl)
                .and_then(|r| r.must_index(&link).and_then(|i| r.set_mtu(i, mtu)))
            {
                Ok(()) => println!("network: {link} mtu {mtu}"),
                Err(e) => println!("network: {link}: {e}"),
            },
            Action::Up { link } => {
                match rtnl_of(&mut rtnl).and_then(|r| r.set_link(&link, true, None, None)) {
                    Ok(()) => println!("network: {link} up"),
                    Err(e) => println!("network: {e}"),
                }
            }
            Action::Ip(args) => {
                let st = crate::signals::clean_child(Command::new("ip").args(&args)).status();
                match st {
                    Ok(s) if s.success() => println!("network: ip {}", args.join(" ")),
                    Ok(s) => println!("network: ip {}: {s}", args.join(" ")),
                    Err(e) => println!("network: ip {}: {e}", args.join(" ")),
                }
            }
            Action::Dhcp { link, args } if args.is_empty() => {
                let host_link = links.iter().find(|l| l.name == link);
                let Some(mac) = host_link.and_then(|l| dhcp::parse_mac(&l.mac)) else {
                    println!("network: {link}: no MAC address: no DHCP");
                    continue;
                };
                // The link's own `mtu:` beats the lease's.
                let keep_mtu = host_link
                    .and_then(|l| entry_for(&net, l))
                    .is_some_and(|(_, i)| i.mtu.is_some());
                let ended = ended_tx.clone();
                let name = link.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("dhcp-{link}"))
                    .spawn(move || {
                        // (A panic is an end too: said, and the service started again.)
                        let run = std::panic::catch_unwind(|| dhcp::run(&name, mac, keep_mtu));
                        let e = run.unwrap_or_else(|_| std::io::Error::other("it panicked"));
                        let _ = ended.send((name, e));
                        // Wake `supervise` (the signal is blocked in every thread: it waits).
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::this(),
                            nix::sys::signal::Signal::SIGUSR1,
                        );
                    });
                match spawned {
                    Ok(_) => {
                        println!("network: DHCP on {link}");
                        threads += 1;
                    }
                    Err(e) => println!("network: DHCP client of {link}: {e}"),
                }
            }
            Action::Dhcp { link, args } => {
                let child = crate::signals::clean_child(
                    Command::new("udhcpc")
                        .args(["-f", "-i", &link, "-t", "10", "-T", "2", "-s", DHCP_SCRIPT])
                        .args(&args),
                )
                .spawn();
                match child {
                    Ok(c) => {
                        println!("network: DHCP on {link} (udhcpc {})", args.join(" "));
                        clients.insert(c.id() as i32, (link, c));
                    }
                    Err(e) => println!("network: udhcpc on {link}: {e}"),
                }
            }
        }
    }
    if clients.is_empty() && threads == 0 {
        write_ready();
    }
    supervise(&set, clients, ended_rx)
}

/// The route netlink socket of the service's (the host's) network namespace, opened at the
/// first use.
fn rtnl_of(rtnl: &mut Option<Rtnl>) -> Result<&mut Rtnl, RtnlError> {
    match rtnl {
        Some(r) => Ok(r),
        None => Ok(rtnl.insert(Rtnl::open()?)),
    }
}

/// Wait for a signal: SIGTERM/SIGINT stop everything (exit 0); a client's end stops the rest
/// and exits with its status (a thread's: 1). Without clients it only waits for SIGTERM.
/// Client threads end with the process (the address of a lease stays, as udhcpc leaves it).
fn supervise(
    set: &nix::sys::signal::SigSet,
    mut clients: BTreeMap<i32, (String, Child)>,
    ended: std::sync::mpsc::Receiver<(String, std::io::Error)>,
) -> ExitCode {
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig == Signal::SIGCHLD {
            // Reap whatever ended (the container's orphans too: we are its PID 1).
            while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                let (pid, code) = match st {
                    WaitStatus::Exited(p, c) => (p.as_raw(), c),
                    WaitStatus::Signaled(p, s, _) => (p.as_raw(), 128 + s as i32),
                    _ => break,
                };
                if let Some((link, _)) = clients.remove(&pid) {
                    println!("network: the DHCP client of {link} ended ({code}); stopping");
                    stop(&mut clients);
                    return ExitCode::from(code.clamp(1, 255) as u8);
                }
            }
            continue;
        }
        if sig == Signal::SIGUSR1 {
            if let Ok((link, e)) = ended.try_recv() {
                println!("network: the DHCP client of {link} ended: {e}; stopping");
                stop(&mut clients);
                return ExitCode::from(1);
            }
            continue;
        }
        println!("network: {sig}: stopping");
        stop(&mut clients);
        return ExitCode::SUCCESS;
    }
}

fn stop(clients: &mut BTreeMap<i32, (String, Child)>) {
    for (pid, (_, child)) in clients.iter_mut() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
    }
    clients.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(yaml: &str) -> Network {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn link(name: &str, mac: &str) -> Link {
        Link {
            name: name.into(),
            mac: mac.into(),
        }
    }

    #[test]
    fn exact_entries_beat_globs_and_static_settings_come_before_dhcp() {
        let n = net(
            "interfaces:\n  eth*: {dhcp: true}\n  eth1: {dhcp: false, address: 192.168.7.5/24, gateway: 192.168.7.1, mtu: 1400}\n  mac=52:54:00:aa:*: {dhcp: true, dhcp_args: -b}\n",
        );
        let links = [
            link("eth0", "52:54:00:12:34:56"),
            link("eth1", "52:54:00:12:34:57"),
            link("ens9", "52:54:00:aa:00:01"),
            link("wlan0", "00:11:22:33:44:55"),
        ];
        let p = plan(&n, &links);
        let show: Vec<String> = p
            .iter()
            .map(|a| match a {
                Action::Mtu { link, mtu } => format!("mtu {link} {mtu}"),
                Action::Up { link } => format!("up {link}"),
                Action::Ip(v) => format!("ip {}", v.join(" ")),
                Action::Dhcp { link, args } => format!("dhcp {link} {}", args.join(" ")),
            })
            .collect();
        assert_eq!(
            show,
            [
                "up eth0",
                "dhcp eth0 ",
                "mtu eth1 1400",
                "up eth1",
                "ip addr flush dev eth1",
                "ip addr add 192.168.7.5/24 dev eth1",
                "ip route replace default via 192.168.7.1 dev eth1",
                "up ens9",
                "dhcp ens9 -b",
            ]
        );
    }

    #[test]
    fn dns_settings_make_a_resolv_conf() {
        assert_eq!(resolv_conf(&net("{}")), None);
        assert_eq!(
            resolv_conf(&net("dns: {nameservers: [10.0.2.3, 8.8.8.8], search: [lan]}")).unwrap(),
            "# written by the network service from rancher.network.dns\nsearch lan\nnameserver 10.0.2.3\nnameserver 8.8.8.8\n"
        );
    }
}
