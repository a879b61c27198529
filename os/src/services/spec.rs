//! One service, checked: [`ServiceSpec::parse`] reads a compose-style YAML map and returns either
//! a spec the engine can run or every problem found, each naming the service and the key
//! (`service ntp: restart: "sometimes" is not one of no, always, on-failure`). Compose keys the
//! engine does not act on are kept in `extra`, never an error.

use super::words;
use crate::config::validate::kind;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Label: `system` (default) or `user`.
pub const LABEL_SCOPE: &str = "io.rancher.os.scope";
/// Label: comma-separated services this one starts after.
pub const LABEL_AFTER: &str = "io.rancher.os.after";
/// Label: comma-separated services this one starts before.
pub const LABEL_BEFORE: &str = "io.rancher.os.before";
/// Label: `"false"` makes the service run to completion before its dependents start.
pub const LABEL_DETACH: &str = "io.rancher.os.detach";
/// Label: `"true"` creates the container but never starts it (volume containers).
pub const LABEL_CREATEONLY: &str = "io.rancher.os.createonly";
/// Label: `"true"` on a run-to-completion service makes PID 1 reload the configuration when it
/// has finished, before the services after it start (`cloud-init-save`).
pub const LABEL_RELOADCONFIG: &str = "io.rancher.os.reloadconfig";
/// Label: a file under `/run` on the host that the service writes once it is of use (the
/// `network` service: an address configured); a start of it (at boot, `service up`, an image
/// upgrade) returns once the file is written after that start, so the services after it wait
/// for it too, for at most [`READY_WAIT`](crate::services::spec::READY_WAIT). The engine only
/// reads the file's time; it never writes or removes it.
pub const LABEL_READYFILE: &str = "io.rancher.os.readyfile";
/// Label: a condition the boot checks before it starts the service, as systemd's
/// `Condition…=`; when it does not hold the service is skipped (state `skipped`, as a
/// run-to-completion service that had nothing to do). One value: `datasource`
/// ([`Condition::Datasource`]).
pub const LABEL_CONDITION: &str = "io.rancher.os.condition";
/// How long the services after one with [`LABEL_READYFILE`] wait for its file at most.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a namespace is the container's own or the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NsMode {
    #[default]
    Private,
    Host,
}

/// What [`LABEL_CONDITION`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// One of `rancher.cloud_init.datasources` may answer (`cloudinit::identify`): a disk
    /// with its label is there, a URL or metadata service is asked, the kernel command line
    /// names a `cloud-config-url=`. Cloud-init's `ds-identify` does this for the same reason:
    /// a boot without a datasource does not pay for looking.
    Datasource,
}

/// Which engine runs the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    System,
    User,
}

/// A `volumes:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    /// `host:container[:ro]`.
    Bind {
        host: String,
        container: String,
        read_only: bool,
    },
    /// `container` alone: an anonymous volume owned by the container.
    Anonymous { container: String },
}

/// A checked service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub privileged: bool,
    pub read_only: bool,
    pub net: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub uts: NsMode,
    pub volumes: Vec<Volume>,
    pub volumes_from: Vec<String>,
    /// `(KEY, Some(value))`, or `(KEY, None)` to take the value from `rancher.environment`.
    pub environment: Vec<(String, Option<String>)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub restart: super::RestartPolicy,
    pub labels: BTreeMap<String, String>,
    pub scope: Scope,
    pub after: Vec<String>,
    pub before: Vec<String>,
    /// False: run to completion before dependents start.
    pub detach: bool,
    pub create_only: bool,
    /// Reload the configuration once this (run-to-completion) service has finished.
    pub reload_config: bool,
    /// The file (under `/run`) whose existence says the service is of use: [`LABEL_READYFILE`].
    pub ready_file: Option<std::path::PathBuf>,
    /// Started only when this holds: [`LABEL_CONDITION`].
    pub condition: Option<Condition>,
    /// Memory limit in bytes (`mem_limit`).
    pub mem_limit: Option<u64>,
    /// `cpu_shares` (relative weight, 1024 = one share).
    pub cpu_shares: Option<u64>,
    /// `cpus`: CPUs' worth of time (`0.5`).
    pub cpus: Option<f64>,
    /// `pids_limit`.
    pub pids_limit: Option<u64>,
    /// `init`: run the command under `ros-init` (signals passed on, orphans reaped), as
    /// Docker's `--init`.
    pub init: bool,
    /// `devices`: host device nodes given to the container (`/dev/fuse[:/dev/fuse[:rwm]]`).
    pub devices: Vec<crate::engine::runtime::DeviceMapping>,
    /// `device_cgroup_rules`: more device filter rules (`c 13:* r`).
    /// (Checked here; kept as written, which is what the engine's API takes.)
    pub device_rules: Vec<String>,
    /// `stop_signal`: what `docker stop` sends first (default: the image's, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `security_opt: [seccomp=unconfined]`: no seccomp filter.
    pub seccomp_unconfined: bool,
    /// Compose keys kept but not acted on.
    pub extra: BTreeMap<String, Value>,
    /// Where the container's writable layer lives (`upper/` and `work/` in it) instead of in
    /// the engine's store: never from the configuration's keys, only set by the console choice
    /// (`crate::consoles`), so that a full console's changes outlive its container.
    pub upper: Option<std::path::PathBuf>,
}

/// A problem with one key of one service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service {service}: {key}: {message}")]
pub struct ServiceError {
    pub service: String,
    pub key: String,
    pub message: String,
}

struct Ctx<'a> {
    service: &'a str,
    errors: Vec<ServiceError>,
}

impl Ctx<'_> {
    fn err(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ServiceError {
            service: self.service.to_string(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn string(&mut self, key: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            other => {
                self.err(key, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    fn bool(&mut self, key: &str, v: &Value) -> bool {
        match v {
            Value::Bool(b) => *b,
            Value::String(s) if s == "true" => true,
            Value::String(s) if s == "false" => false,
            Value::Null => false,
            other => {
                self.err(
                    key,
                    format!("expected true or false, found {}", show(other)),
                );
                false
            }
        }
    }

    /// A string (split into words) or a list of strings.
    fn argv(&mut self, key: &str, v: &Value) -> Option<Vec<String>> {
        match v {
            Value::Null => None,
            Value::String(s) => match words::split(s) {
                Ok(w) => Some(w),
                Err(e) => {
                    self.err(key, e);
                    None
                }
            },
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(&format!("{key}[{i}]"), item) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            other => {
                self.err(
                    key,
                    format!("expected a string or a list, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A list of strings, or one string (taken as a one-item list).
    fn list(&mut self, key: &str, v: &Value) -> Vec<String> {
        match v {
            Value::Null => Vec::new(),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string(&format!("{key}[{i}]"), item))
                .collect(),
            other => self.string(key, other).into_iter().collect(),
        }
    }

    /// A `KEY=value` list or a map, as ordered pairs.
    fn pairs(&mut self, key: &str, v: &Value) -> Vec<(String, Option<String>)> {
        match v {
            Value::Null => Vec::new(),
            Value::Mapping(m) => m
                .iter()
                .filter_map(|(k, val)| {
                    let k = self.string(key, k)?;
                    let val = self.string(&format!("{key}.{k}"), val);
                    Some((k, val))
                })
                .collect(),
            Value::Sequence(_) => self
                .list(key, v)
                .into_iter()
                .map(|item| match item.split_once('=') {
                    Some((k, val)) => (k.to_string(), Some(val.to_string())),
                    None => (item, None),
                })
                .collect(),
            other => {
                self.err(
                    key,
                    format!(
                        "expected a list of KEY=value or a map, found {}",
                        kind(other)
                    ),
                );
                Vec::new()
            }
        }
    }

    fn ns(&mut self, key: &str, v: &Value) -> NsMode {
        match self.string(key, v).as_deref() {
            None | Some("") | Some("private") | Some("none") | Some("bridge") | Some("default") => {
                NsMode::Private
            }
            Some("host") => NsMode::Host,
            Some(other) => {
                self.err(
                    key,
                    format!("{other:?} is not supported (use host, or leave it out)"),
                );
                NsMode::Private
            }
        }
    }

    fn size(&mut self, key: &str, v: &Value) -> Option<u64> {
        let text = self.string(key, v)?;
        match parse_size(&text) {
            Some(n) => Some(n),
            None => {
                self.err(
                    key,
                    format!("{text:?} is not a size (e.g. 64m, 1g, 1048576)"),
                );
                None
            }
        }
    }

    /// A positive decimal (`0.5`, `2`).
    fn fraction(&mut self, key: &str, v: &Value) -> Option<f64> {
        let text = self.string(key, v)?;
        match text.parse::<f64>() {
            Ok(n) if n > 0.0 && n.is_finite() => Some(n),
            _ => {
                self.err(key, format!("{text:?} is not a positive number of CPUs"));
                None
            }
        }
    }

    fn number(&mut self, key: &str, v: &Value) -> Option<u64> {
        let text = self.string(key, v)?;
        match text.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(key, format!("{text:?} is not a whole number"));
                None
            }
        }
    }
}

fn show(v: &Value) -> String {
    serde_yaml_ng::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| kind(v).into())
}

/// `64m`, `1g`, `512k`, `1048576`, `2GB` → bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// A signal as compose and Docker write it: `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, String> {
    use std::str::FromStr;
    let bad = || format!("{text:?} is not a signal (SIGTERM, TERM or 15)");
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

/// Compose keys the engine keeps but does not act on: each gets a warning naming its key path
/// (`services.NAME.KEY`), so that an accepted key never silently does nothing.
pub fn ignored_key_warnings(spec: &ServiceSpec) -> Vec<String> {
    spec.extra
        .keys()
        .map(|k| {
            format!(
                "services.{}.{k}: not supported by the system engine; ignored",
                spec.name
            )
        })
        .collect()
}

impl ServiceSpec {
    /// Check one service. `Err` holds every problem found, each naming the key.
    pub fn parse(name: &str, raw: &Value) -> Result<ServiceSpec, Vec<ServiceError>> {
        let mut cx = Ctx {
            service: name,
            errors: Vec::new(),
        };
        let mut spec = ServiceSpec {
            name: name.to_string(),
            detach: true,
            ..Default::default()
        };
        let map = match raw {
            Value::Mapping(m) => m.clone(),
            Value::Null => Default::default(),
            other => {
                cx.err(
                    "",
                    format!("expected a map of compose keys, found {}", kind(other)),
                );
                return Err(cx.errors);
            }
        };
        for (k, v) in &map {
            let Some(key) = k.as_str() else {
                cx.err(&show(k), "keys must be strings");
                continue;
            };
            match key {
                "image" => spec.image = cx.string(key, v).unwrap_or_default(),
                "command" => spec.command = cx.argv(key, v),
                "entrypoint" => spec.entrypoint = cx.argv(key, v),
                "privileged" => spec.privileged = cx.bool(key, v),
                "read_only" => spec.read_only = cx.bool(key, v),
                "net" | "network_mode" => spec.net = cx.ns(key, v),
                "pid" => spec.pid = cx.ns(key, v),
                "ipc" => spec.ipc = cx.ns(key, v),
                "uts" => spec.uts = cx.ns(key, v),
                "volumes" => {
                    for (i, item) in cx.list(key, v).into_iter().enumerate() {
                        match parse_volume(&item) {
                            Ok(vol) => spec.volumes.push(vol),
                            Err(e) => cx.err(&format!("volumes[{i}]"), e),
                        }
                    }
                }
                "volumes_from" => spec.volumes_from = cx.list(key, v),
                "environment" => spec.environment = cx.pairs(key, v),
                "working_dir" => spec.working_dir = cx.string(key, v),
                "user" => spec.user = cx.string(key, v),
                "cap_add" => spec.cap_add = cx.list(key, v),
                "cap_drop" => spec.cap_drop = cx.list(key, v),
                "restart" => {
                    if let Some(s) = cx.string(key, v) {
                        match s.parse() {
                            Ok(p) => spec.restart = p,
                            Err(e) => cx.err(key, e),
                        }
                    }
                }
                "labels" => {
                    for (k, val) in cx.pairs(key, v) {
                        spec.labels.insert(k, val.unwrap_or_default());
                    }
                }
                "mem_limit" => spec.mem_limit = cx.size(key, v),
                "cpu_shares" => spec.cpu_shares = cx.number(key, v),
                "cpus" => spec.cpus = cx.fraction(key, v),
                "pids_limit" => spec.pids_limit = cx.number(key, v),
                "init" => spec.init = cx.bool(key, v),
                "devices" => {
                    for (i, item) in cx.list(key, v).into_iter().enumerate() {
                        match item.parse() {
                            Ok(d) => spec.devices.push(d),
                            Err(e) => cx.err(&format!("devices[{i}]"), e.to_string()),
                        }
                    }
                }
                "stop_signal" => {
                    if let Some(sig) = cx.string(key, v) {
                        match parse_signal(&sig) {
                            Ok(_) => spec.stop_signal = Some(sig),
                            Err(e) => cx.err(key, e),
                        }
                    }
                }
                "device_cgroup_rules" => {
                    for (i, item) in cx.list(key, v).into_iter().enumerate() {
                        match crate::engine::runtime::devices::parse_rule(&item) {
                            Ok(_) => spec.device_rules.push(item.clone()),
                            Err(e) => cx.err(&format!("device_cgroup_rules[{i}]"), e.to_string()),
                        }
                    }
                }
                "security_opt" => {
                    for (i, item) in cx.list(key, v).into_iter().enumerate() {
                        match item.as_str() {
                            "seccomp=unconfined" | "seccomp:unconfined" => {
                                spec.seccomp_unconfined = true
                            }
                            "no-new-privileges"
                            | "no-new-privileges=true"
                            | "no-new-privileges:true" => {}
                            other => cx.err(
                                &format!("security_opt[{i}]"),
                                format!(
                                    "{other:?} is not supported (seccomp=unconfined, \
                                     no-new-privileges)"
                                ),
                            ),
                        }
                    }
                }
                _ => {
                    spec.extra.insert(key.to_string(), v.clone());
                }
            }
        }
        if spec.image.is_empty() {
            cx.err("image", "missing: every service needs an image");
        }
        let label = |k: &str| spec.labels.get(k).map(String::as_str);
        let scope = label(LABEL_SCOPE).map(str::to_string);
        let after = label(LABEL_AFTER).map(comma_list).unwrap_or_default();
        let before = label(LABEL_BEFORE).map(comma_list).unwrap_or_default();
        let detach = label(LABEL_DETACH).map(str::to_string);
        let create_only = label(LABEL_CREATEONLY).map(str::to_string);
        let reload_config = label(LABEL_RELOADCONFIG).map(str::to_string);
        if let Some(f) = label(LABEL_READYFILE).map(str::to_string) {
            let p = std::path::Path::new(&f);
            let plain = p.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
            if p.starts_with("/run/") && plain && p != std::path::Path::new("/run") {
                spec.ready_file = Some(p.to_path_buf());
            } else {
                cx.err(
                    &format!("labels.{LABEL_READYFILE}"),
                    format!("{f:?} is not a plain absolute path under /run"),
                );
            }
        }
        match label(LABEL_CONDITION) {
            None => {}
            Some("datasource") => spec.condition = Some(Condition::Datasource),
            Some(other) => cx.err(
                &format!("labels.{LABEL_CONDITION}"),
                format!("{other:?} is not a condition (one: datasource)"),
            ),
        }
        spec.after = after;
        spec.before = before;
        match scope.as_deref() {
            None | Some("system") => spec.scope = Scope::System,
            Some("user") => spec.scope = Scope::User,
            Some(other) => cx.err(
                &format!("labels.{LABEL_SCOPE}"),
                format!("{other:?} is not one of system, user"),
            ),
        }
        for (label, value, slot) in [
            (LABEL_DETACH, detach, &mut spec.detach),
            (LABEL_CREATEONLY, create_only, &mut spec.create_only),
            (LABEL_RELOADCONFIG, reload_config, &mut spec.reload_config),
        ] {
            match value.as_deref() {
                None => {}
                Some("true") => *slot = true,
                Some("false") => *slot = false,
                Some(other) => cx.err(
                    &format!("labels.{label}"),
                    format!("{other:?} is not \"true\" or \"false\""),
                ),
            }
        }
        if cx.errors.is_empty() {
            Ok(spec)
        } else {
            Err(cx.errors)
        }
    }

    /// Services this one must start after: `after` labels and `volumes_from`.
    pub fn depends_on(&self) -> impl Iterator<Item = &str> {
        self.after
            .iter()
            .chain(self.volumes_from.iter())
            .map(String::as_str)
    }
}

fn parse_volume(s: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let abs = |p: &str, what: &str| {
        if p.starts_with('/') {
            Ok(p.to_string())
        } else {
            Err(format!("{s:?}: the {what} path must be absolute"))
        }
    };
    match parts.as_slice() {
        [c] => Ok(Volume::Anonymous {
            container: abs(c, "container")?,
        }),
        [h, c] => Ok(Volume::Bind {
            host: abs(h, "host")?,
            container: abs(c, "container")?,
            read_only: false,
        }),
        [h, c, mode] => {
            let read_only = mode.split(',').any(|m| m == "ro");
            if !mode.split(',').all(|m| {
                matches!(
                    m,
                    "ro" | "rw"
                        | "z"
                        | "Z"
                        | "shared"
                        | "rshared"
                        | "slave"
                        | "rslave"
                        | "private"
                        | "rprivate"
                )
            }) {
                return Err(format!("{s:?}: unknown mode {mode:?} (ro or rw)"));
            }
            Ok(Volume::Bind {
                host: abs(h, "host")?,
                container: abs(c, "container")?,
                read_only,
            })
        }
        _ => Err(format!("{s:?} is not host:container[:ro|rw]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_as_docker_writes_them_and_ignored_keys_are_named() {
        use nix::sys::signal::Signal;
        for (text, sig) in [
            ("SIGTERM", Signal::SIGTERM),
            ("quit", Signal::SIGQUIT),
            ("9", Signal::SIGKILL),
        ] {
            assert_eq!(parse_signal(text), Ok(sig), "{text}");
        }
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("999").is_err());
        let s = ServiceSpec::parse(
            "web",
            &yaml("image: x\nstop_signal: SIGINT\nports: ['80:80']\n"),
        )
        .unwrap();
        assert_eq!(s.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(
            ignored_key_warnings(&s),
            ["services.web.ports: not supported by the system engine; ignored"]
        );
        let errs = ServiceSpec::parse("web", &yaml("image: x\nstop_signal: NOPE\n")).unwrap_err();
        assert!(errs[0].to_string().contains("stop_signal"), "{errs:?}");
    }

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn a_condition_is_one_the_boot_knows() {
        let s = ServiceSpec::parse(
            "cloud-init-save",
            &yaml("image: x\nlabels:\n  io.rancher.os.condition: datasource\n"),
        )
        .unwrap();
        assert_eq!(s.condition, Some(Condition::Datasource));
        let errs = ServiceSpec::parse(
            "cloud-init-save",
            &yaml("image: x\nlabels:\n  io.rancher.os.condition: sometimes\n"),
        )
        .unwrap_err();
        let e = errs[0].to_string();
        assert!(
            e.contains("labels.io.rancher.os.condition") && e.contains("\"sometimes\""),
            "{e}"
        );
    }

    #[test]
    fn a_ready_file_is_a_plain_path_under_run() {
        let s = ServiceSpec::parse(
            "network",
            &yaml("image: x\nlabels:\n  io.rancher.os.readyfile: /run/netconf/ready\n"),
        )
        .unwrap();
        assert_eq!(
            s.ready_file.as_deref(),
            Some(std::path::Path::new("/run/netconf/ready"))
        );
        for bad in ["/etc/ready", "/run/../etc/ready", "run/x", "/run"] {
            let errs = ServiceSpec::parse(
                "network",
                &yaml(&format!(
                    "image: x\nlabels:\n  io.rancher.os.readyfile: {bad:?}\n"
                )),
            )
            .unwrap_err();
            assert!(
                errs[0]
                    .to_string()
                    .contains("not a plain absolute path under /run"),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn a_rancheros_service_parses() {
        let raw = yaml(
            r#"
image: rancher/os-ntp:v1
command: ntpd --nofork -g
privileged: true
restart: always
net: host
uts: host
volumes_from: [system-volumes]
volumes: [/etc/ntp.conf:/etc/ntp.conf:ro, /var/log]
environment: [HTTP_PROXY, TZ=UTC]
labels:
  io.rancher.os.scope: system
  io.rancher.os.after: network, syslog
  io.rancher.os.detach: "false"
mem_limit: 64m
init: true
ports: ["123:123"]
"#,
        );
        let s = ServiceSpec::parse("ntp", &raw).unwrap();
        assert!(s.init);
        assert_eq!(s.command.as_deref().unwrap(), ["ntpd", "--nofork", "-g"]);
        assert!(s.privileged && !s.detach && !s.create_only);
        assert_eq!(
            (s.net, s.uts, s.pid),
            (NsMode::Host, NsMode::Host, NsMode::Private)
        );
        assert_eq!(s.restart, crate::services::RestartPolicy::Always);
        assert_eq!(s.after, ["network", "syslog"]);
        assert_eq!(
            s.depends_on().collect::<Vec<_>>(),
            ["network", "syslog", "system-volumes"]
        );
        assert_eq!(
            s.environment,
            [
                ("HTTP_PROXY".into(), None),
                ("TZ".into(), Some("UTC".into()))
            ]
        );
        assert_eq!(s.mem_limit, Some(64 << 20));
        assert_eq!(
            s.volumes,
            [
                Volume::Bind {
                    host: "/etc/ntp.conf".into(),
                    container: "/etc/ntp.conf".into(),
                    read_only: true
                },
                Volume::Anonymous {
                    container: "/var/log".into()
                }
            ]
        );
        assert!(
            s.extra.contains_key("ports"),
            "unknown compose keys are kept"
        );
    }

    #[test]
    fn every_bad_key_is_named() {
        let raw = yaml(
            "command: [a, {b: c}]\nrestart: sometimes\nprivileged: maybe\nnet: container:x\nvolumes: [rel:/x]\nlabels: {io.rancher.os.detach: nope}\nmem_limit: lots\n",
        );
        let errs: Vec<String> = ServiceSpec::parse("bad", &raw)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "service bad: command[1]: expected a string, found a map",
                "service bad: restart: \"sometimes\" is not one of no, always, on-failure",
                "service bad: privileged: expected true or false, found maybe",
                "service bad: net: \"container:x\" is not supported (use host, or leave it out)",
                "service bad: volumes[0]: \"rel:/x\": the host path must be absolute",
                "service bad: mem_limit: \"lots\" is not a size (e.g. 64m, 1g, 1048576)",
                "service bad: image: missing: every service needs an image",
                "service bad: labels.io.rancher.os.detach: \"nope\" is not \"true\" or \"false\"",
            ]
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("2GB"), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
    }
}
