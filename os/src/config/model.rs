//! The typed model of a RancherOS cloud-config: the keys this OS reads, with their types.
//!
//! It exists to catch bad values early, with the key path and line (a string where a number
//! belongs, a bad file mode), and to give the rest of the OS plain Rust fields to read. It is not
//! the source of truth for what gets saved or exported: that is the YAML tree of each layer, so
//! keys the model does not know survive untouched. Every struct keeps such keys in `extra`, and
//! [`Config::unknown_keys`] lists them for a warning. Every field has a default, so one layer alone
//! (a user file with two keys) is a valid `Config`.

use super::lenient::{map_or_default, or_default};
use super::network::Network;
use super::runcmd::{commands, Command};
use super::write_files::WriteFile;
use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// A whole cloud-config: top-level cloud-init keys and `rancher.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default = "default_hostname", deserialize_with = "hostname")]
    pub hostname: String,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ssh_authorized_keys: Vec<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub write_files: Vec<WriteFile>,
    #[serde(
        default,
        deserialize_with = "commands",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub runcmd: Vec<Command>,
    #[serde(
        default,
        deserialize_with = "commands",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub bootcmd: Vec<Command>,
    /// fstab-like rows: `[device, mountpoint, fstype, options]`.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<Vec<String>>,
    #[serde(default, deserialize_with = "or_default")]
    pub rancher: Rancher,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rancher {
    /// Verbose logging from PID 1.
    #[serde(default, deserialize_with = "or_default")]
    pub debug: bool,
    /// Seconds services get between TERM and KILL at shutdown.
    #[serde(
        default = "default_shutdown_timeout",
        deserialize_with = "shutdown_timeout"
    )]
    pub shutdown_timeout: u64,
    /// The ttys (comma- or space-separated) where the console logs `rancher` in without a
    /// prompt; every other console tty gets a login prompt (empty: prompts everywhere).
    #[serde(default = "default_autologin", deserialize_with = "or_default")]
    pub autologin: String,
    /// Recovery console: PID 1 itself runs a root shell on the first autologin tty (or the
    /// first console tty), for when the console container cannot start.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub recovery: bool,
    /// Send system logs to the console as well.
    #[serde(default, deserialize_with = "or_default")]
    pub log: bool,
    /// The console container (`default`, `debian`, a name of `console_index`, or an image
    /// reference): `crate::consoles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<String>,
    /// Console names and the images they stand for (`rancherctl console list`).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub console_index: BTreeMap<String, String>,
    /// Password of the `rancher` user. Private: hidden from `export` unless `--private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Environment given to every system service.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment: BTreeMap<String, String>,
    /// `sysctl -w key=value` at boot (`vm.max_map_count: 262144`).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sysctl: BTreeMap<String, String>,
    /// Kernel modules to load.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub modules: Vec<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub network: Network,
    /// System services, compose style, keyed by name.
    #[serde(
        default,
        deserialize_with = "map_or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub services: BTreeMap<String, Service>,
    /// Services switched on or off by name (`rancherctl service enable|disable NAME`, as in
    /// RancherOS); a service set to `false` is not started.
    #[serde(
        default,
        deserialize_with = "map_or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub services_include: BTreeMap<String, bool>,
    /// The user Docker engine.
    #[serde(default, deserialize_with = "or_default")]
    pub docker: Docker,
    /// The system Docker engine (RancherOS's; kept so those files validate).
    #[serde(default, deserialize_with = "or_default")]
    pub system_docker: Docker,
    #[serde(default, deserialize_with = "or_default")]
    pub state: State,
    #[serde(default, deserialize_with = "or_default")]
    pub upgrade: Upgrade,
    #[serde(default, deserialize_with = "or_default")]
    pub ui: Ui,
    /// What the bootloader says about this boot (`rancher.boot.slot=SLOT_A` from GRUB).
    #[serde(default, deserialize_with = "or_default")]
    pub boot: Boot,
    /// SSH host keys saved across reboots. Private.
    #[serde(default, deserialize_with = "or_default")]
    pub ssh: Ssh,
    #[serde(default, deserialize_with = "or_default")]
    pub cloud_init: CloudInit,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.docker` / `rancher.system_docker`: engine arguments and TLS material.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Docker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The full command line of the engine.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_args: Vec<String>,
    /// The user engine also serves its API on TCP 2376 with mutual TLS: a client needs a
    /// certificate signed by the CA (`ca_cert`, `server_cert`, `server_key` below, or made at
    /// first start in /var/lib/docker/tls; see os/src/dockerd/remote).
    #[serde(default, deserialize_with = "or_default")]
    pub tls: bool,
    /// Without `tls`: the user engine also serves its API on TCP 2375 in plain HTTP, to
    /// anyone who can reach the port (root on the machine, in effect). Said loudly on the
    /// console at each start. Ignored when `tls` is on.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_tcp: bool,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tls_args: Vec<String>,
    /// PEM (the certificate, then any intermediates) of the TLS server; private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cert: Option<String>,
    /// PEM; private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_key: Option<String>,
    /// PEM: the CA that signs the clients' certificates; private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// PEM; private (not needed to serve: only to sign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub environment: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_context: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub exec: bool,
    // Engine options RancherOS turned into flags.
    /// The default bridge's address and prefix (`172.17.0.1/16`, dockerd's `--bip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub host: Vec<String>,
    /// Registries spoken to in plain HTTP: `host[:port]` or an IP range (`10.0.0.0/8`).
    #[serde(
        default,
        alias = "insecure_registries",
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub insecure_registry: Vec<String>,
    /// PEM certificates trusted, beside the system's bundle, by the user engine's registry
    /// client (and by cloud-init's HTTPS datasources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_restore: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub log_opts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_mirror: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userland_proxy: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.state`: the persistent partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `LABEL=RANCHER_STATE`, `/dev/sda1`, `UUID=…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// How long to look for the device (seconds; RancherOS's `true` is [`Wait::LONG`]).
    #[serde(default, deserialize_with = "wait")]
    pub wait: Wait,
    /// Fail boot when it does not.
    #[serde(default, deserialize_with = "or_default")]
    pub required: bool,
    /// Disks that may be formatted when they hold nothing.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub autoformat: Vec<String>,
    /// Sub-directory of the partition to use as the state root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub mdadm_scan: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oem_dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oem_fstype: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.state.wait`: seconds to look for the state device before running from RAM.
///
/// The default is none: disks the kernel probes as it boots (virtio, SATA, NVMe) are there before
/// `/init` runs, and any wait is paid in full by every boot without a state disk (1 s measured
/// that way under TCG). Slow disks (USB) want more: RancherOS's `wait: true` means [`Wait::LONG`]
/// seconds, `false` none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Wait(pub u64);

impl Wait {
    /// Seconds for `wait: true`.
    pub const LONG: u64 = 10;
    pub fn seconds(self) -> u64 {
        self.0
    }
}

fn wait<'de, D: Deserializer<'de>>(d: D) -> Result<Wait, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Wait;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number of seconds or a boolean")
        }
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Wait, E> {
            Ok(Wait(if b { Wait::LONG } else { 0 }))
        }
        fn visit_u64<E: serde::de::Error>(self, s: u64) -> Result<Wait, E> {
            Ok(Wait(s))
        }
        fn visit_i64<E: serde::de::Error>(self, s: i64) -> Result<Wait, E> {
            u64::try_from(s)
                .map(Wait)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(s), &self))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Wait, E> {
            Ok(Wait::default())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Wait, E> {
            Ok(Wait::default())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Wait, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

/// `rancher.boot`: set by the bootloader on the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    /// The slot this system was booted from (`SLOT_A` or `SLOT_B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.ui`: the local web UI (`ros ui`, the `ui` system service).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ui {
    /// The `ui` service runs only when this is true (or `rancher.services_include.ui`).
    #[serde(default, deserialize_with = "or_default")]
    pub enabled: bool,
    /// Where it listens (HTTPS): `0.0.0.0:9443` when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
}

/// `rancher.upgrade`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Upgrade {
    /// Where the list of releases is fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Without `url`: the repository (`rancher/os`) whose version tags are the releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.ssh`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ssh {
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub keys: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.cloud_init`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudInit {
    /// `configdrive:/media/config-2`, `url:http://…`, `ec2`, …
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub datasources: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One compose-style service. Only the keys the OS reads are typed; every other compose key
/// (`ports`, `volumes_from`, `links`, …) is kept in `extra` without a warning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A string or an argv list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// A string or an argv list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Value>,
    /// A `KEY=value` list or a map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// A `key=value` list or a map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for Rancher {
    fn default() -> Self {
        Rancher {
            debug: false,
            shutdown_timeout: default_shutdown_timeout(),
            autologin: default_autologin(),
            recovery: false,
            log: false,
            console: None,
            console_index: BTreeMap::new(),
            password: None,
            environment: BTreeMap::new(),
            sysctl: BTreeMap::new(),
            modules: Vec::new(),
            network: Network::default(),
            services: BTreeMap::new(),
            services_include: BTreeMap::new(),
            docker: Docker::default(),
            system_docker: Docker::default(),
            state: State::default(),
            upgrade: Upgrade::default(),
            ui: Ui::default(),
            boot: Boot::default(),
            ssh: Ssh::default(),
            cloud_init: CloudInit::default(),
            extra: BTreeMap::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: default_hostname(),
            ssh_authorized_keys: Vec::new(),
            write_files: Vec::new(),
            runcmd: Vec::new(),
            bootcmd: Vec::new(),
            mounts: Vec::new(),
            rancher: Rancher::default(),
            extra: BTreeMap::new(),
        }
    }
}

fn default_hostname() -> String {
    "rancher".into()
}
fn default_shutdown_timeout() -> u64 {
    10
}
fn default_autologin() -> String {
    "ttyS0".into()
}

/// `hostname:` left empty keeps the default rather than naming the machine "".
fn hostname<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|h| !h.is_empty())
        .unwrap_or_else(default_hostname))
}

fn shutdown_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or_else(default_shutdown_timeout))
}

/// A key kept in an `extra` map, by path; `warn` is false for keys that are expected to be
/// untyped (compose keys of a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extra {
    pub path: String,
    pub warn: bool,
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn extras_of(map: &BTreeMap<String, Value>, at: &str, warn: bool, out: &mut Vec<Extra>) {
    out.extend(map.keys().map(|k| Extra {
        path: join(at, k),
        warn,
    }));
}

impl Config {
    /// Every key kept in an `extra` map, by path.
    pub(crate) fn extras(&self) -> Vec<Extra> {
        let mut out = Vec::new();
        extras_of(&self.extra, "", true, &mut out);
        for (i, f) in self.write_files.iter().enumerate() {
            extras_of(&f.extra, &format!("write_files[{i}]"), true, &mut out);
        }
        let r = &self.rancher;
        extras_of(&r.extra, "rancher", true, &mut out);
        let n = &r.network;
        extras_of(&n.extra, "rancher.network", true, &mut out);
        extras_of(&n.dns.extra, "rancher.network.dns", true, &mut out);
        for (name, i) in &n.interfaces {
            let at = format!("rancher.network.interfaces.{name}");
            extras_of(&i.extra, &at, true, &mut out);
        }
        for (name, s) in &r.services {
            extras_of(
                &s.extra,
                &format!("rancher.services.{name}"),
                false,
                &mut out,
            );
        }
        extras_of(&r.docker.extra, "rancher.docker", true, &mut out);
        extras_of(
            &r.system_docker.extra,
            "rancher.system_docker",
            true,
            &mut out,
        );
        extras_of(&r.state.extra, "rancher.state", true, &mut out);
        extras_of(&r.upgrade.extra, "rancher.upgrade", true, &mut out);
        extras_of(&r.ssh.extra, "rancher.ssh", true, &mut out);
        extras_of(&r.cloud_init.extra, "rancher.cloud_init", true, &mut out);
        out
    }

    /// Keys the model does not know (kept, but nothing acts on them), by path.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.extras()
            .into_iter()
            .filter(|e| e.warn)
            .map(|e| e.path)
            .collect()
    }

    /// Whether `path` is a key the model types (not one kept as raw YAML in an `extra` map).
    pub fn is_typed_key(&self, path: &str) -> bool {
        !self
            .extras()
            .iter()
            .any(|e| super::keypath::is_under(path, &e.path))
    }

    /// The `image:` of every service, by service name.
    pub fn images(&self) -> Vec<&str> {
        self.rancher
            .services
            .values()
            .filter_map(|s| s.image.as_deref())
            .collect()
    }
}
