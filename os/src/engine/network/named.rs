//! User-defined networks (`docker network create`): each is a bridge of its own (`br-` and
//! the id's first 12 digits, or the name given with `com.docker.network.bridge.name`) with a
//! subnet of its own, kept as `<root>/networks/<id>.json` (atomic writes) so it outlives the
//! engine and a reboot. Containers on one find each other by name through the engine's DNS
//! (see `dns`); traffic between two networks is dropped by the engine's rules.
//!
//! Subnets come from Docker's default pools (172.18–31.0.0/16, then 192.168.N.0/20) unless
//! the request names one; a subnet that overlaps the default bridge's or another network's is
//! refused, as dockerd refuses it.

use super::ipam::Bip;
use super::Bridge;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// One user-defined network, as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkDef {
    pub id: String,
    pub name: String,
    /// `172.18.0.0/16`.
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// Unix nanoseconds.
    pub created: i128,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// No way out: no masquerade, nothing forwarded but between its own containers.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    /// Whether the subnet was asked for (shown back in `IPAM.Config` either way).
    #[serde(default)]
    pub subnet_given: bool,
}

impl NetworkDef {
    /// The bridge's address and prefix.
    pub fn bip(&self) -> Bip {
        let prefix = self
            .subnet
            .split_once('/')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(16);
        Bip {
            gateway: self.gateway,
            prefix,
        }
    }

    pub fn bridge_name(&self) -> String {
        match self.options.get(BRIDGE_NAME_OPTION) {
            Some(n) => n.clone(),
            None => format!("br-{}", &self.id[..12.min(self.id.len())]),
        }
    }

    /// Its bridge, with namespace files under `run`.
    pub fn bridge(&self, run: &Path) -> Bridge {
        Bridge {
            name: self.bridge_name(),
            bip: self.bip(),
            netns_dir: run.join("netns"),
        }
    }
}

/// The option naming the bridge's interface.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// What `POST /networks/create` asks for, checked.
#[derive(Debug, Clone, Default)]
pub struct NewNetwork {
    pub name: String,
    pub subnet: Option<Bip>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NetError {
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
    #[error("{path}: {why}")]
    Io { path: PathBuf, why: String },
}

/// The engine's user-defined networks.
pub struct Networks {
    dir: PathBuf,
    defs: Mutex<BTreeMap<String, NetworkDef>>,
}

impl Networks {
    /// Read the networks kept in `dir` (missing: none). A file that cannot be read is named
    /// in the log and left out, the others are kept.
    pub fn open(dir: PathBuf) -> Networks {
        let mut defs = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                match std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<NetworkDef>(&b).map_err(|e| e.to_string())
                    })
                    .and_then(|d| check_def(&d).map(|()| d))
                {
                    Ok(d) => {
                        defs.insert(d.id.clone(), d);
                    }
                    Err(why) => {
                        tracing::warn!(file = %path.display(), error = %why, "network definition left out")
                    }
                }
            }
        }
        Networks {
            dir,
            defs: Mutex::new(defs),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, NetworkDef>> {
        self.defs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn list(&self) -> Vec<NetworkDef> {
        self.lock().values().cloned().collect()
    }

    /// By exact id, exact name, or an unambiguous id prefix (as Docker finds networks).
    pub fn find(&self, name_or_id: &str) -> Option<NetworkDef> {
        let defs = self.lock();
        if let Some(d) = defs.get(name_or_id) {
            return Some(d.clone());
        }
        if let Some(d) = defs.values().find(|d| d.name == name_or_id) {
            return Some(d.clone());
        }
        let mut prefixed = defs.values().filter(|d| d.id.starts_with(name_or_id));
        match (prefixed.next(), prefixed.next()) {
            (Some(d), None) if !name_or_id.is_empty() => Some(d.clone()),
            _ => None,
        }
    }

    /// Make a network: its subnet (the one asked for, or the first free default pool, never
    /// overlapping `taken` or another network's), kept on disk before it is returned.
    pub fn create(&self, req: NewNetwork, taken: &[Bip]) -> Result<NetworkDef, NetError> {
        let mut defs = self.lock();
        if defs.values().any(|d| d.name == req.name) {
            return Err(NetError::Exists(req.name));
        }
        let mut used: Vec<Bip> = taken.to_vec();
        used.extend(defs.values().map(|d| d.bip()));
        let bip = match req.subnet {
            Some(b) => {
                if let Some(o) = used.iter().find(|u| overlaps(u, &b)) {
                    return Err(NetError::Invalid(format!(
                        "Pool overlaps with other one on this address space: {} and {}",
                        b.subnet(),
                        o.subnet()
                    )));
                }
                b
            }
            None => default_pools()
                .find(|p| !used.iter().any(|u| overlaps(u, p)))
                .ok_or(NetError::NoPool)?,
        };
        if let Some(n) = req.options.get(BRIDGE_NAME_OPTION) {
            if defs.values().any(|d| d.bridge_name() == *n) || n == "docker0" {
                return Err(NetError::Invalid(format!(
                    "bridge name {n:?} is taken by another network"
                )));
            }
        }
        let def = NetworkDef {
            id: crate::engine::manager::id::new_id(),
            name: req.name,
            subnet: bip.subnet(),
            gateway: bip.gateway,
            created: crate::engine::manager::record::now(),
            labels: req.labels,
            options: req.options,
            internal: req.internal,
            attachable: req.attachable,
            subnet_given: req.subnet.is_some(),
        };
        check_def(&def).map_err(NetError::Invalid)?;
        self.save(&def)?;
        defs.insert(def.id.clone(), def.clone());
        Ok(def)
    }

    /// Forget a network (its file goes first: a crash leaves it gone or whole).
    pub fn remove(&self, id: &str) -> Result<(), NetError> {
        let path = self.dir.join(format!("{id}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(NetError::Io {
                    path,
                    why: e.to_string(),
                })
            }
        }
        self.lock().remove(id);
        Ok(())
    }

    fn save(&self, def: &NetworkDef) -> Result<(), NetError> {
        let io = |path: &Path, e: std::io::Error| NetError::Io {
            path: path.to_path_buf(),
            why: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.dir.join(format!("{}.json", def.id));
        let json = serde_json::to_vec_pretty(def).map_err(|e| NetError::Invalid(e.to_string()))?;
        crate::config::atomic::write_atomic(&path, &json, 0o600).map_err(|e| io(&path, e))
    }
}

/// What a kept definition must be to be used (a file on disk is input too).
fn check_def(d: &NetworkDef) -> Result<(), String> {
    if d.id.len() != 64 || !d.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("id {:?} is not 64 hex digits", d.id));
    }
    check_name(&d.name)?;
    let bip: Bip = format!("{}/{}", d.gateway, d.bip().prefix).parse()?;
    if bip.subnet() != d.subnet {
        return Err(format!(
            "gateway {} is not in subnet {}",
            d.gateway, d.subnet
        ));
    }
    if let Some(n) = d.options.get(BRIDGE_NAME_OPTION) {
        check_ifname(n)?;
    }
    Ok(())
}

/// Docker's rule for network names (those of containers: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a network needs a name".into());
    }
    if name.len() > 128 || !crate::engine::manager::id::valid_name(name) {
        return Err(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ));
    }
    Ok(())
}

/// A Linux interface name: 1–15 bytes of `[a-zA-Z0-9_.-]`.
pub fn check_ifname(n: &str) -> Result<(), String> {
    if n.is_empty()
        || n.len() > 15
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        || n == "."
        || n == ".."
    {
        return Err(format!(
            "{BRIDGE_NAME_OPTION} {n:?} is not an interface name (1 to 15 of [a-zA-Z0-9_.-])"
        ));
    }
    Ok(())
}

/// Whether two subnets share an address.
pub fn overlaps(a: &Bip, b: &Bip) -> bool {
    let p = a.prefix.min(b.prefix);
    let mask = u32::MAX.checked_shl(32 - p as u32).unwrap_or(0);
    u32::from(a.network()) & mask == u32::from(b.network()) & mask
}

/// Docker's default address pools, each with its gateway (the first address).
fn default_pools() -> impl Iterator<Item = Bip> {
    let sixteens = (18..=31u8).map(|b| Bip {
        gateway: Ipv4Addr::new(172, b, 0, 1),
        prefix: 16,
    });
    let twenties = (0..16u8).map(|i| Bip {
        gateway: Ipv4Addr::new(192, 168, i * 16, 1),
        prefix: 20,
    });
    sixteens.chain(twenties)
}

/// `IPAM.Config[0]`: `Subnet` (a network address and prefix), and `Gateway` (default: the
/// first address).
pub fn parse_subnet(subnet: &str, gateway: Option<&str>) -> Result<Bip, String> {
    let (net, prefix) = subnet
        .split_once('/')
        .ok_or_else(|| format!("invalid subnet {subnet:?}: not ADDRESS/PREFIX"))?;
    let net: Ipv4Addr = net
        .parse()
        .map_err(|_| format!("invalid subnet {subnet:?}: only IPv4 subnets are supported"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("invalid subnet {subnet:?}: the prefix must be 8 to 30"))?;
    let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
    if u32::from(net) & !mask != 0 {
        return Err(format!(
            "invalid subnet {subnet:?}: {net} is not the network's address"
        ));
    }
    let gateway = match gateway.filter(|g| !g.is_empty()) {
        Some(g) => g
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("invalid gateway {g:?}"))?,
        None => Ipv4Addr::from(u32::from(net) + 1),
    };
    let bip: Bip = format!("{gateway}/{prefix}").parse()?;
    if bip.network() != net {
        return Err(format!("gateway {gateway} is not in subnet {subnet}"));
    }
    Ok(bip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> NewNetwork {
        NewNetwork {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn networks_get_free_pools_and_are_kept_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path().join("networks"));
        let a = nets.create(req("front"), &[Bip::DEFAULT]).unwrap();
        assert_eq!(a.subnet, "172.18.0.0/16");
        assert_eq!(a.gateway, Ipv4Addr::new(172, 18, 0, 1));
        assert_eq!(a.bridge_name(), format!("br-{}", &a.id[..12]));
        let b = nets.create(req("back"), &[Bip::DEFAULT]).unwrap();
        assert_eq!(b.subnet, "172.19.0.0/16");
        assert_eq!(
            nets.create(req("back"), &[]),
            Err(NetError::Exists("back".into()))
        );
        // Found by name, id and prefix; read back by a new instance.
        assert_eq!(nets.find("front").unwrap().id, a.id);
        assert_eq!(nets.find(&a.id[..5]).unwrap().name, "front");
        let again = Networks::open(dir.path().join("networks"));
        assert_eq!(again.find("back"), Some(b.clone()));
        again.remove(&b.id).unwrap();
        assert!(Networks::open(dir.path().join("networks"))
            .find("back")
            .is_none());
        // The pool freed is used again.
        let c = again.create(req("third"), &[Bip::DEFAULT]).unwrap();
        assert_eq!(c.subnet, "172.19.0.0/16");
    }

    #[test]
    fn asked_subnets_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path().to_path_buf());
        let mut r = req("mine");
        r.subnet = Some(parse_subnet("10.10.0.0/24", None).unwrap());
        let d = nets.create(r, &[Bip::DEFAULT]).unwrap();
        assert_eq!(
            (d.subnet.as_str(), d.gateway),
            ("10.10.0.0/24", Ipv4Addr::new(10, 10, 0, 1))
        );
        let mut r = req("other");
        r.subnet = Some(parse_subnet("10.10.0.0/16", Some("10.10.9.1")).unwrap());
        let e = nets.create(r, &[Bip::DEFAULT]).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        let mut r = req("onbridge");
        r.subnet = Some(parse_subnet("172.17.5.0/24", None).unwrap());
        assert!(nets.create(r, &[Bip::DEFAULT]).is_err());
        for (s, g, says) in [
            ("10.0.0.1/24", None, "not the network's address"),
            ("10.0.0.0", None, "ADDRESS/PREFIX"),
            ("fd00::/64", None, "only IPv4"),
            ("10.0.0.0/31", None, "8 to 30"),
            ("10.0.0.0/24", Some("10.0.1.1"), "not in subnet"),
            ("10.0.0.0/24", Some("x"), "invalid gateway"),
        ] {
            let e = parse_subnet(s, g).unwrap_err();
            assert!(e.contains(says), "{s} {g:?}: {e}");
        }
        let mut r = req("named");
        r.options
            .insert(BRIDGE_NAME_OPTION.into(), "much-too-long-name".into());
        assert!(nets
            .create(r, &[])
            .unwrap_err()
            .to_string()
            .contains("interface name"));
        assert!(check_name("bad/name").is_err());
    }

    #[test]
    fn a_bad_file_is_left_out_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path().to_path_buf());
        nets.create(req("good"), &[]).unwrap();
        std::fs::write(dir.path().join("junk.json"), b"{\"id\": 1}").unwrap();
        let again = Networks::open(dir.path().to_path_buf());
        assert_eq!(again.list().len(), 1);
    }
}
