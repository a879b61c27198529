//! Addresses on a bridge's subnet: the bridge's own (`bip`, as dockerd's `--bip`) and one per
//! container, the lowest free one, kept in the container's record for as long as the container
//! exists (so a restart or a reboot gives it the same address, and the records alone say which
//! are taken). MAC addresses follow the address, as Docker's do (`02:42` then the four bytes).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A bridge's address with its prefix length (`172.17.0.1/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bip {
    pub gateway: Ipv4Addr,
    pub prefix: u8,
}

impl Bip {
    pub const DEFAULT: Bip = Bip {
        gateway: Ipv4Addr::new(172, 17, 0, 1),
        prefix: 16,
    };

    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0)
    }

    /// The subnet's first address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) & self.mask())
    }

    /// `172.17.0.0/16`.
    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network(), self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// The lowest address of the subnet that is neither the network's, the broadcast's, the
    /// gateway's nor in `used`.
    pub fn allocate(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let net = u32::from(self.network());
        let broadcast = net | !self.mask();
        (net + 1..broadcast)
            .map(Ipv4Addr::from)
            .find(|ip| *ip != self.gateway && !used.contains(ip))
    }
}

impl FromStr for Bip {
    type Err = String;

    /// `ADDRESS/PREFIX`, the address being the bridge's own: a private-use or shared range, a
    /// prefix from 8 to 30 (room for the gateway and one container), not the network's or the
    /// broadcast address.
    fn from_str(s: &str) -> Result<Bip, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX (e.g. 172.17.0.1/16)"))?;
        let gateway: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} in {s:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("prefix {prefix:?} in {s:?} is not between 8 and 30"))?;
        let bip = Bip { gateway, prefix };
        if gateway.is_loopback() || gateway.is_multicast() || gateway.is_unspecified() {
            return Err(format!("{s:?}: {gateway} cannot be a bridge's address"));
        }
        let host = u32::from(gateway) & !bip.mask();
        if host == 0 || host == !bip.mask() {
            return Err(format!(
                "{s:?}: {gateway} is the subnet's network or broadcast address"
            ));
        }
        Ok(bip)
    }
}

impl std::fmt::Display for Bip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.gateway, self.prefix)
    }
}

/// Docker's MAC address for an IPv4 address: `02:42:` then the address's bytes.
pub fn mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_the_lowest_free_ones_of_the_subnet() {
        let bip: Bip = "172.17.0.1/16".parse().unwrap();
        assert_eq!(bip.subnet(), "172.17.0.0/16");
        let mut used = BTreeSet::new();
        let a = bip.allocate(&used).unwrap();
        assert_eq!(a, Ipv4Addr::new(172, 17, 0, 2));
        used.insert(a);
        assert_eq!(bip.allocate(&used), Some(Ipv4Addr::new(172, 17, 0, 3)));
        used.remove(&a);
        assert_eq!(bip.allocate(&used), Some(a));
        // A gateway in the middle is skipped; a full /30 has room for one.
        let small: Bip = "10.9.0.2/30".parse().unwrap();
        assert_eq!(
            small.allocate(&BTreeSet::new()),
            Some(Ipv4Addr::new(10, 9, 0, 1))
        );
        let full = [Ipv4Addr::new(10, 9, 0, 1)].into_iter().collect();
        assert_eq!(small.allocate(&full), None);
        assert!(bip.contains(Ipv4Addr::new(172, 17, 255, 254)));
        assert!(!bip.contains(Ipv4Addr::new(172, 18, 0, 1)));
        assert_eq!(mac_string(mac(a)), "02:42:ac:11:00:02");
    }

    #[test]
    fn bad_bips_say_what_is_wrong() {
        for (bad, says) in [
            ("172.17.0.1", "ADDRESS/PREFIX"),
            ("172.17.0.x/16", "not an IPv4 address"),
            ("172.17.0.1/31", "between 8 and 30"),
            ("172.17.0.1/-1", "between 8 and 30"),
            ("172.17.0.0/16", "network or broadcast"),
            ("172.17.255.255/16", "network or broadcast"),
            ("127.0.0.1/8", "cannot be a bridge's address"),
        ] {
            let e = bad.parse::<Bip>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
