//! A container's record: what it runs, how, and where its life stands. Kept as
//! `<root>/containers/<id>/record.json`, rewritten atomically at every change of state, so a
//! container outlives a restart of its engine and a reboot. The fields are Docker's (its
//! `config.v2.json` and `hostconfig.json` in one), as both engines speak Docker's API; a
//! request's JSON body reads straight into [`Config`] and [`HostConfig`].

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A container's life cycle (Docker's `State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Removing,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Running => "running",
            Lifecycle::Paused => "paused",
            Lifecycle::Restarting => "restarting",
            Lifecycle::Exited => "exited",
            Lifecycle::Dead => "dead",
            Lifecycle::Removing => "removing",
        }
    }

    /// A process exists (Docker's `State.Running` is true when paused too).
    pub fn is_running(self) -> bool {
        matches!(self, Lifecycle::Running | Lifecycle::Paused)
    }
}

/// `null` reads as the default (Docker's clients send `"Cmd": null`, `"Env": null`, …).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `"sh -c x"` or `["sh", "-c", "x"]` (Docker's `StrSlice`); `null` is empty.
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => Vec::new(),
        Some(S::One(s)) => vec![s],
        Some(S::Many(v)) => v,
    })
}

/// What to run (Docker's container `Config`). Cmd and Entrypoint are the effective ones
/// once created (the image's when the request gave none), as Docker records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    #[serde(deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(deserialize_with = "null_default")]
    pub domainname: String,
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    #[serde(deserialize_with = "null_default")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub image: String,
    #[serde(deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    #[serde(deserialize_with = "null_default")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `--health-cmd` and friends (Docker's `HealthConfig`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
}

/// Docker's `HealthConfig`: `Test` is `["CMD", args…]`, `["CMD-SHELL", "cmd"]` or
/// `["NONE"]`; durations in nanoseconds, 0 for the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    #[serde(deserialize_with = "null_default")]
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

/// A container's health (Docker's `State.Health`), while a health check runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    /// The last five probes.
    pub log: Vec<HealthProbe>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthProbe {
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// `--restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub maximum_retry_count: u32,
}

/// How to run it (Docker's `HostConfig`), the part we honour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    #[serde(deserialize_with = "null_default")]
    pub binds: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub network_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    #[serde(deserialize_with = "null_default")]
    pub cap_add: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    #[serde(deserialize_with = "null_default")]
    pub tmpfs: BTreeMap<String, String>,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    #[serde(deserialize_with = "null_default")]
    pub pids_limit: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `--mount`.
    #[serde(deserialize_with = "null_default")]
    pub mounts: Vec<MountRequest>,
    #[serde(deserialize_with = "null_default")]
    pub volumes_from: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub dns: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub extra_hosts: Vec<String>,
    /// `--pid host` (empty: its own).
    #[serde(deserialize_with = "null_default")]
    pub pid_mode: String,
    /// `--ipc host` (empty, `private` or `shareable`: its own).
    #[serde(deserialize_with = "null_default")]
    pub ipc_mode: String,
    /// `--uts host`.
    #[serde(rename = "UTSMode", deserialize_with = "null_default")]
    pub uts_mode: String,
    /// `--device`.
    #[serde(deserialize_with = "null_default")]
    pub devices: Vec<DeviceRequest>,
    /// `--device-cgroup-rule` (`c 13:* r`).
    #[serde(deserialize_with = "null_default")]
    pub device_cgroup_rules: Vec<String>,
    /// `--security-opt`: `seccomp=unconfined` and `no-new-privileges` are known.
    #[serde(deserialize_with = "null_default")]
    pub security_opt: Vec<String>,
    /// `-p [ip:][host:]container[/proto]`: `"80/tcp": [{"HostIp": "", "HostPort": "8080"}]`.
    #[serde(deserialize_with = "null_default")]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`: every exposed port on a port of the host's choosing.
    pub publish_all_ports: bool,
    /// `--link NAME[:ALIAS]` (the default bridge's only way to find another container by
    /// name: a line in `/etc/hosts`).
    #[serde(deserialize_with = "null_default")]
    pub links: Vec<String>,
}

/// A `--link` as (container, alias); Docker's API form is `/web:/me/alias`.
pub fn parse_link(link: &str) -> (String, String) {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/').to_string();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_string();
    (name, alias)
}

/// One host side of a published port (Docker's `PortBinding`); empty: any address, any port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    #[serde(deserialize_with = "null_default")]
    pub host_ip: String,
    #[serde(deserialize_with = "null_default")]
    pub host_port: String,
}

/// A published port as it is while the container runs: the host's side resolved (a port the
/// host chose is known once bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub udp: bool,
    pub port: u16,
    /// `0.0.0.0` for every address.
    pub host_ip: std::net::Ipv4Addr,
    pub host_port: u16,
}

/// `80/tcp` (or `80`, tcp) as (port, udp); anything else is an error naming it.
pub fn parse_port_key(key: &str) -> Result<(u16, bool), String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let udp = match proto {
        "tcp" => false,
        "udp" => true,
        other => {
            return Err(format!(
                "invalid proto {other:?} in port {key:?}: tcp or udp"
            ))
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((p, udp)),
        _ => Err(format!("invalid port {port:?} in {key:?}: 1 to 65535")),
    }
}

impl PortBinding {
    /// The host's address (`None`: all) and port (`0`: the host's choice).
    pub fn parse(&self) -> Result<(Option<std::net::Ipv4Addr>, u16), String> {
        let ip = match self.host_ip.as_str() {
            "" | "0.0.0.0" => None,
            ip => Some(ip.parse::<std::net::Ipv4Addr>().map_err(|_| {
                format!("invalid host address {ip:?} for a published port: an IPv4 address")
            })?),
        };
        let port = match self.host_port.as_str() {
            "" => 0,
            p => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                format!("invalid host port {p:?}: 1 to 65535 (ranges are not supported)")
            })?,
        };
        Ok((ip, port))
    }
}

/// One `--device` (Docker's `DeviceMapping`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceRequest {
    #[serde(deserialize_with = "null_default")]
    pub path_on_host: String,
    #[serde(deserialize_with = "null_default")]
    pub path_in_container: String,
    #[serde(deserialize_with = "null_default")]
    pub cgroup_permissions: String,
}

impl HostConfig {
    /// The devices as the runtime takes them.
    pub fn device_mappings(&self) -> Result<Vec<crate::engine::runtime::DeviceMapping>, String> {
        self.devices
            .iter()
            .map(|d| {
                let container = if d.path_in_container.is_empty() {
                    &d.path_on_host
                } else {
                    &d.path_in_container
                };
                let access = if d.cgroup_permissions.is_empty() {
                    "rwm"
                } else {
                    &d.cgroup_permissions
                };
                format!("{}:{container}:{access}", d.path_on_host)
                    .parse()
                    .map_err(|e: crate::engine::runtime::RuntimeError| {
                        format!("error gathering device information while adding custom device {:?}: {e}", d.path_on_host)
                    })
            })
            .collect()
    }

    /// The device filter rules as the runtime takes them.
    pub fn device_rules(&self) -> Result<Vec<oci_spec::runtime::LinuxDeviceCgroup>, String> {
        self.device_cgroup_rules
            .iter()
            .map(|r| {
                crate::engine::runtime::devices::parse_rule(r)
                    .map_err(|e| format!("invalid device cgroup rule {r:?}: {e}"))
            })
            .collect()
    }

    /// Whether `--security-opt seccomp=unconfined` is given; any option we do not know is an
    /// error naming it.
    pub fn seccomp_unconfined(&self) -> Result<bool, String> {
        let mut unconfined = false;
        for o in &self.security_opt {
            match o.as_str() {
                "seccomp=unconfined" | "seccomp:unconfined" => unconfined = true,
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {}
                other => {
                    return Err(format!(
                        "security option {other:?} is not supported (seccomp=unconfined, no-new-privileges)"
                    ))
                }
            }
        }
        Ok(unconfined)
    }
}

/// One `--mount` (Docker's `Mount`): the part we honour; the rest is refused at create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountRequest {
    #[serde(rename = "Type", deserialize_with = "null_default")]
    pub typ: String,
    #[serde(deserialize_with = "null_default")]
    pub source: String,
    #[serde(deserialize_with = "null_default")]
    pub target: String,
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    pub no_copy: bool,
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<serde_json::Value>,
}

/// What a container mounts, resolved at create (Docker's `MountPoint`): a host directory or a
/// volume of this engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// The host path (binds only; a volume's is its data directory).
    #[serde(default)]
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// Fill a new, empty volume from the image (not `nocopy`).
    #[serde(default)]
    pub copy: bool,
    /// A tmpfs's options as given (`size=64m,mode=1777`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
}

/// Where its life stands (Docker's `State`, times in unix nanoseconds, 0 = never).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Lifecycle,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: i128,
    pub finished_at: i128,
    pub restart_count: u32,
    /// Stopped by a user (`docker stop`/`kill`): `unless-stopped` and `always` do not bring
    /// it back until it is started again, and `unless-stopped` not even after a reboot.
    pub stopped_by_user: bool,
    /// The cgroup's name under the engine's parent while it runs (an engine that names them
    /// after containers keeps the name of the start here; empty: the id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup: String,
    /// Its health check's findings since it started (none without a health check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Lifecycle::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: 0,
            finished_at: 0,
            restart_count: 0,
            stopped_by_user: false,
            cgroup: String::new(),
            health: None,
        }
    }
}

/// One container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// Unix nanoseconds.
    pub created: i128,
    /// The image's ID (`sha256:…`) when created.
    pub image_id: String,
    pub config: Config,
    pub host: HostConfig,
    pub state: State,
    /// Resolved at create; empty in records of engines before volumes (their binds are
    /// parsed at start instead).
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// Its place on the engine's bridge (see `engine::network`).
    #[serde(default, skip_serializing_if = "Lease::is_empty")]
    pub network: Lease,
    /// Its writable layer's directory when not its own (`CreateRequest::upper`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<std::path::PathBuf>,
}

/// A container's address on the engine's bridge, taken at its first start and kept until it is
/// removed: the records alone say which addresses are in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Its published ports while it runs (rebuilt at each start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Published>,
    /// The user-defined networks it is on, in the order they were given (its network mode's
    /// first): `eth0`, `eth1`… in that order after the default bridge's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<Attach>,
}

impl Lease {
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.ports.is_empty() && self.attached.is_empty()
    }
}

/// A container on a user-defined network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attach {
    /// The network's id.
    pub network: String,
    /// Names it is found by on that network (besides its name and short id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Its address there (taken at its first start on it, kept while it is attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// The address asked for (`--ip`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<std::net::Ipv4Addr>,
}

impl Record {
    /// The process's argv: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.config.entrypoint.clone();
        v.extend(self.config.cmd.iter().cloned());
        v
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::config::atomic::write_atomic(&dir.join(FILE), &json, 0o600)
    }

    pub fn load(dir: &Path) -> Result<Record, String> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The record's file name in the container's directory.
pub const FILE: &str = "record.json";

/// Now, in unix nanoseconds.
pub fn now() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Unix nanoseconds as a `SystemTime` (`None` for 0: never).
pub fn system_time(ns: i128) -> Option<std::time::SystemTime> {
    (ns > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_create_body_reads_with_its_nulls() {
        let body = r#"{"Hostname":"","User":"","AttachStdin":false,"AttachStdout":true,
            "Tty":false,"OpenStdin":false,"Env":null,"Cmd":["echo","hi"],"Image":"busybox",
            "Entrypoint":null,"Labels":{"a":"b"},"Volumes":null,"StopTimeout":3}"#;
        let c: Config = serde_json::from_str(body).unwrap();
        assert_eq!(c.cmd, ["echo", "hi"]);
        assert!(c.entrypoint.is_empty() && c.env.is_empty());
        assert_eq!(c.labels["a"], "b");
        assert_eq!(c.stop_timeout, Some(3));
        let c: Config = serde_json::from_str(r#"{"Entrypoint":"/bin/sh"}"#).unwrap();
        assert_eq!(c.entrypoint, ["/bin/sh"]);
        let h: HostConfig = serde_json::from_str(
            r#"{"Binds":null,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},
                "PidsLimit":null,"Memory":1048576}"#,
        )
        .unwrap();
        assert_eq!(h.restart_policy.name, "on-failure");
        assert_eq!(h.restart_policy.maximum_retry_count, 3);
        assert_eq!(h.memory, 1 << 20);
    }

    #[test]
    fn links_read_in_both_forms() {
        assert_eq!(parse_link("web"), ("web".into(), "web".into()));
        assert_eq!(parse_link("web:site"), ("web".into(), "site".into()));
        assert_eq!(
            parse_link("/web:/probe/site"),
            ("web".into(), "site".into())
        );
    }

    #[test]
    fn records_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record {
            id: "a".repeat(64),
            name: "web".into(),
            upper: None,
            created: now(),
            image_id: "sha256:00".into(),
            config: Config::default(),
            host: HostConfig::default(),
            state: State::default(),
            mounts: vec![MountPoint {
                kind: "volume".into(),
                name: "data".into(),
                source: String::new(),
                destination: "/data".into(),
                rw: true,
                copy: true,
                options: String::new(),
            }],
            network: Lease {
                ip: Some("172.17.0.2".parse().unwrap()),
                ports: vec![Published {
                    udp: false,
                    port: 80,
                    host_ip: std::net::Ipv4Addr::UNSPECIFIED,
                    host_port: 8080,
                }],
                attached: vec![Attach {
                    network: "ab".repeat(32),
                    aliases: vec!["db".into()],
                    ip: Some("172.18.0.2".parse().unwrap()),
                    requested: None,
                }],
            },
        };
        r.save(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), r);
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert!(Record::load(dir.path())
            .unwrap_err()
            .contains("record.json"));
    }
}
