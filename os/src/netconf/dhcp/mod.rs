//! The network service's DHCP client: one thread per link, in the `ros` binary itself.
//!
//! It replaced busybox `udhcpc` and its shell event script on the boot's critical path: the
//! services after `network` wait for its first lease, and under emulation the client's exec,
//! the script's shell and its `ifconfig`/`route` children took most of the 0.4–0.5 s between
//! the service's start and its lease. Here the exchange is four packets and three netlink
//! requests. `udhcpc` still runs for a link whose `dhcp_args` ask for it (those are its
//! arguments).
//!
//! [`message`] reads and builds DHCP messages, [`client`] is the client's life (RFC 2131)
//! over a [`client::Wire`], [`wire`] is that wire on a real link, [`socket`] its sockets.

pub mod client;
pub mod message;
mod socket;
mod wire;

/// Run the client of link `name` (MAC `mac`) until its wire fails; the error says why.
/// `keep_mtu`: the configuration sets the link's MTU, the lease's does not change it.
pub fn run(name: &str, mac: [u8; 6], keep_mtu: bool) -> std::io::Error {
    let mut w = match wire::LinkWire::open(name, keep_mtu) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let settings = client::Settings {
        mac,
        hostname: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok()),
    };
    client::run(&mut w, &settings)
}

/// A MAC address as `/sys/class/net/*/address` writes it.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs() {
        assert_eq!(
            super::parse_mac("52:54:00:12:34:56\n"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(super::parse_mac("52:54:00:12:34"), None);
        assert_eq!(super::parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(super::parse_mac("zz:54:00:12:34:56"), None);
    }
}
