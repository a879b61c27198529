//! A container's network namespace on a bridge, made before the container exists: a namespace
//! file (`<run>/netns/<id>`, a bind mount of the namespace, as Docker's `SandboxKey`), loopback
//! up, a veth pair whose inner end is `eth0` with the container's address, MAC and default
//! route, and whose outer end (`veth` + the id's first 7 digits) is on the bridge. The
//! container then joins the namespace by path, so it starts with its network in place, never
//! half-wired.
//!
//! Why a helper process (`ros container-helper netns create|remove …`): making and entering
//! namespaces (`unshare`, `setns`) changes the calling thread, which in the engine would be a
//! tokio worker. The helper is single-threaded, does it all, and exits; the engine waits for it
//! in a blocking task. A failure undoes what was done (namespace file, veth) and says which
//! step failed.

use super::rtnl::Rtnl;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Everything the helper needs to wire one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Wiring {
    pub path: PathBuf,
    pub bridge: String,
    pub veth: String,
    /// The inner end's name (`eth0`, `eth1`…).
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The default route, for the container's first network only.
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
}

/// An inner name that asks the helper for the first `ethN` free in the namespace.
pub const NEXT_FREE: &str = "eth+";

/// The outer end's name for a container id on the default bridge (deterministic, so a
/// later remove finds it).
pub fn veth_name(id: &str) -> String {
    format!("veth{}", &id[..id.len().min(7)])
}

/// The outer end's name for a container on another network: `ve` and 11 digits of a digest
/// of both ids (15 bytes at most, as Linux wants; deterministic).
pub fn veth_name_on(id: &str, network_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = hex::encode(Sha256::digest(format!("{id}\0{network_id}")));
    format!("ve{}", &d[..11])
}

impl Wiring {
    /// `create` makes the namespace with this as its first interface; `attach` adds it to
    /// the namespace that is there.
    fn args(&self, verb: &str) -> Vec<String> {
        vec![
            verb.into(),
            self.path.display().to_string(),
            self.bridge.clone(),
            self.veth.clone(),
            self.ifname.clone(),
            format!("{}/{}", self.ip, self.prefix),
            self.gateway.map_or("-".into(), |g| g.to_string()),
            super::ipam::mac_string(self.mac),
        ]
    }

    fn parse(a: &[String]) -> Result<Wiring, String> {
        let [path, bridge, veth, ifname, cidr, gateway, mac] = a else {
            return Err(
                "netns create|attach PATH BRIDGE VETH IFNAME IP/PREFIX GATEWAY|- MAC".into(),
            );
        };
        let (ip, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?} is not IP/PREFIX"))?;
        let mut m = [0u8; 6];
        let parts: Vec<&str> = mac.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("{mac:?} is not a MAC address"));
        }
        for (b, p) in m.iter_mut().zip(parts) {
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("{mac:?} is not a MAC address"))?;
        }
        Ok(Wiring {
            path: path.into(),
            bridge: bridge.clone(),
            veth: veth.clone(),
            ip: ip
                .parse()
                .map_err(|_| format!("{ip:?} is not an address"))?,
            prefix: prefix
                .parse()
                .map_err(|_| format!("{prefix:?} is not a prefix length"))?,
            ifname: ifname.clone(),
            gateway: match gateway.as_str() {
                "-" => None,
                g => Some(
                    g.parse()
                        .map_err(|_| format!("{gateway:?} is not an address"))?,
                ),
            },
            mac: m,
        })
    }
}

/// Run the helper (`exe container-helper netns …`) and wait for it: the engine's side.
pub fn run_helper(exe: &Path, args: &[String]) -> Result<(), String> {
    let out = Command::new(exe)
        .arg0_ros()
        .args(["container-helper", "netns"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("starting the network helper {}: {e}", exe.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

trait Arg0 {
    fn arg0_ros(&mut self) -> &mut Self;
}

impl Arg0 for Command {
    fn arg0_ros(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.arg0("ros")
    }
}

/// Make the container's namespace and wire it (engine side).
pub fn create(exe: &Path, w: &Wiring) -> Result<(), String> {
    run_helper(exe, &w.args("create"))
}

/// Add an interface to a namespace made by [`create`] (a network connected later).
pub fn attach(exe: &Path, w: &Wiring) -> Result<(), String> {
    run_helper(exe, &w.args("attach"))
}

/// Take one interface away (its outer end; the inner one goes with it).
pub fn detach(exe: &Path, veth: &str) -> Result<(), String> {
    run_helper(exe, &["detach".into(), veth.into()])
}

/// Undo [`create`] and [`attach`]: the outer veths (their peers go with them) and the
/// namespace file. Nothing there is fine.
pub fn remove(exe: &Path, path: &Path, veths: &[String]) -> Result<(), String> {
    let mut args = vec!["remove".to_string(), path.display().to_string()];
    args.extend(veths.iter().cloned());
    run_helper(exe, &args)
}

/// `ros container-helper netns create|remove …` (helper side).
pub fn main(args: &[String]) -> ExitCode {
    let r = match args.split_first() {
        Some((verb, rest)) if verb == "create" => Wiring::parse(rest).and_then(|w| {
            let r = wire(&w);
            if r.is_err() {
                let _ = unwire(&w.path, &w.veth);
            }
            r
        }),
        Some((verb, rest)) if verb == "attach" => Wiring::parse(rest).and_then(|w| {
            let r = attach_iface(&w);
            if r.is_err() {
                let _ = delete_veth(&w.veth);
            }
            r
        }),
        Some((verb, [path, veths @ ..])) if verb == "remove" => veths
            .iter()
            .try_for_each(|v| delete_veth(v))
            .and_then(|()| unwire(Path::new(path), "")),
        Some((verb, [veth])) if verb == "detach" => delete_veth(veth),
        _ => Err("netns create …|attach …|remove PATH VETH|detach VETH".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("network: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wire(w: &Wiring) -> Result<(), String> {
    use nix::sched::{unshare, CloneFlags};
    let host = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("/proc/thread-self/ns/net: {e}"))?;
    if let Some(dir) = w.path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // A leftover of an earlier life (a crash between create and remove) goes first.
    unwire(&w.path, &w.veth)?;
    let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
    let bridge = rt
        .index(&w.bridge)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("bridge {} is missing", w.bridge))?;
    drop(rt);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&w.path)
        .map_err(|e| format!("{}: {e}", w.path.display()))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
    nix::mount::mount(
        Some("/proc/thread-self/ns/net"),
        &w.path,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("binding the namespace at {}: {e}", w.path.display()))?;
    // In the container's namespace: loopback, then its first interface.
    let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
    rt.set_link("lo", true, None, None)
        .map_err(|e| e.to_string())?;
    drop(rt);
    iface(w, &host, bridge)
}

/// In the namespace at `w.path`: one more interface.
fn attach_iface(w: &Wiring) -> Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    let host = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("/proc/thread-self/ns/net: {e}"))?;
    let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
    let bridge = rt
        .index(&w.bridge)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("bridge {} is missing", w.bridge))?;
    drop(rt);
    // A leftover of an earlier connection goes first.
    delete_veth(&w.veth)?;
    let ns = File::open(&w.path).map_err(|e| format!("{}: {e}", w.path.display()))?;
    setns(&ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering {}: {e}", w.path.display()))?;
    let mut w = w.clone();
    if w.ifname == NEXT_FREE {
        let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
        let mut n = 0;
        while rt
            .index(&format!("eth{n}"))
            .map_err(|e| e.to_string())?
            .is_some()
        {
            n += 1;
        }
        w.ifname = format!("eth{n}");
    }
    iface(&w, &host, bridge)
}

/// Called in the container's namespace: the veth pair, the inner end named, addressed and
/// up (with the default route when it has the gateway); then, back in the host's, the outer
/// end on the bridge, up.
fn iface(w: &Wiring, host: &File, bridge: u32) -> Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
    rt.add_veth(&w.ifname, &w.veth, host.as_raw_fd())
        .map_err(|e| e.to_string())?;
    rt.set_link(&w.ifname, false, Some(w.mac), None)
        .map_err(|e| e.to_string())?;
    rt.add_address(&w.ifname, w.ip, w.prefix)
        .map_err(|e| e.to_string())?;
    rt.set_link(&w.ifname, true, None, None)
        .map_err(|e| e.to_string())?;
    if let Some(g) = w.gateway {
        rt.add_default_route(g).map_err(|e| e.to_string())?;
    }
    drop(rt);
    setns(host, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns(host): {e}"))?;
    let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
    rt.set_link(&w.veth, false, None, Some(bridge))
        .map_err(|e| e.to_string())?;
    rt.set_link(&w.veth, true, None, None)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn delete_veth(veth: &str) -> Result<(), String> {
    let mut rt = Rtnl::open().map_err(|e| e.to_string())?;
    rt.delete_link(veth).map_err(|e| e.to_string())
}

fn unwire(path: &Path, veth: &str) -> Result<(), String> {
    if !veth.is_empty() {
        delete_veth(veth)?;
    }
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(format!("unmounting {}: {e}", path.display())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiring_goes_through_the_helpers_arguments() {
        let w = Wiring {
            path: "/run/docker/netns/abc".into(),
            bridge: "docker0".into(),
            veth: veth_name("0123456789abcdef"),
            ifname: "eth0".into(),
            ip: Ipv4Addr::new(172, 17, 0, 2),
            prefix: 16,
            gateway: Some(Ipv4Addr::new(172, 17, 0, 1)),
            mac: super::super::ipam::mac(Ipv4Addr::new(172, 17, 0, 2)),
        };
        assert_eq!(w.veth, "veth0123456");
        let a = w.args("create");
        assert_eq!(a[0], "create");
        assert_eq!(Wiring::parse(&a[1..]).unwrap(), w);
        assert!(Wiring::parse(&a[2..]).is_err());
        let second = Wiring {
            gateway: None,
            ifname: "eth1".into(),
            veth: veth_name_on("0123456789abcdef", "fedcba"),
            ..w.clone()
        };
        assert_eq!(second.veth.len(), 13);
        assert_eq!(Wiring::parse(&second.args("attach")[1..]).unwrap(), second);
        let mut bad = a[1..].to_vec();
        bad[6] = "02:42:zz:11:00:02".into();
        assert!(Wiring::parse(&bad).unwrap_err().contains("MAC"));
    }
}
