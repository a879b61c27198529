//! `rancher.network`: interfaces, DNS and proxies, and how an `interfaces:` key picks the links it
//! applies to.
//!
//! Its own module because interface keys are a small language of their own in RancherOS: a name
//! (`eth0`), a glob (`eth*`), or a MAC address (`mac=52:54:00:*`), possibly overridden by a
//! `match:` field. The network step of boot only has to ask [`Selector::matches`].

use super::lenient::{map_or_default, or_default};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// `rancher.network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(
        default,
        deserialize_with = "map_or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub interfaces: BTreeMap<String, Interface>,
    #[serde(default, deserialize_with = "or_default")]
    pub dns: Dns,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pre_cmds: Vec<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub post_cmds: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.network.dns`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nameservers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One entry of `rancher.network.interfaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// Overrides the entry's key as the selector.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub dhcp: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_args: Option<String>,
    /// CIDR, e.g. `192.168.1.10/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, deserialize_with = "or_default")]
    pub ipv4ll: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub bond_opts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlans: Option<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pre_up: Vec<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub post_up: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Interface {
    /// Which links this entry (stored under `key`) applies to.
    pub fn selector(&self, key: &str) -> Selector {
        Selector::parse(self.match_.as_deref().unwrap_or(key))
    }
}

/// How an `interfaces:` key selects links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Exactly this link name.
    Name(String),
    /// A shell-style pattern over link names (`*`, `?`).
    Glob(String),
    /// `mac=…`: the link's MAC address, case-insensitive, globs allowed.
    Mac(String),
}

impl Selector {
    pub fn parse(key: &str) -> Selector {
        if let Some(mac) = key.strip_prefix("mac=") {
            Selector::Mac(mac.to_ascii_lowercase())
        } else if key.contains(['*', '?']) {
            Selector::Glob(key.to_string())
        } else {
            Selector::Name(key.to_string())
        }
    }

    /// Does the link `name` with MAC address `mac` match?
    pub fn matches(&self, name: &str, mac: &str) -> bool {
        match self {
            Selector::Name(n) => n == name,
            Selector::Glob(g) => glob(g.as_bytes(), name.as_bytes()),
            Selector::Mac(m) => glob(m.as_bytes(), mac.to_ascii_lowercase().as_bytes()),
        }
    }

    /// Exact names beat globs, so `eth0:` overrides `eth*:` for eth0.
    pub fn is_exact(&self) -> bool {
        !matches!(self, Selector::Glob(_))
    }
}

/// `*` matches any run of characters, `?` any one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let eth = Selector::parse("eth*");
        assert!(eth.matches("eth0", "") && eth.matches("eth", "") && !eth.matches("wlan0", ""));
        assert!(!eth.is_exact());
        let name = Selector::parse("eth1");
        assert!(name.matches("eth1", "") && !name.matches("eth10", ""));
        let mac = Selector::parse("mac=52:54:00:*");
        assert!(mac.matches("ens3", "52:54:00:12:34:56"));
        assert!(mac.matches("ens3", "52:54:00:AB:CD:EF"));
        assert!(!mac.matches("ens3", "52:55:00:12:34:56"));
        assert_eq!(Selector::parse("e?h0"), Selector::Glob("e?h0".into()));
    }

    #[test]
    fn match_field_overrides_key() {
        let i = Interface {
            match_: Some("mac=aa:bb:cc:dd:ee:ff".into()),
            ..Interface::default()
        };
        assert_eq!(
            i.selector("public"),
            Selector::Mac("aa:bb:cc:dd:ee:ff".into())
        );
    }
}
