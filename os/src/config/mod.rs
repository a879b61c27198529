//! The OS configuration: built-in defaults (`os-config.yml` in the initrd) overlaid with
//! `rancher.*` keys from the kernel command line. Later layers (datasources, `rancherctl config`)
//! slot in between the two. Every layer is YAML; layers merge deeply (maps merge key by key, lists
//! and scalars replace), and only then is the result read into the typed [`Config`], so a bad
//! value is caught with the key path and the layer it came from, and the bad key alone is dropped.

mod merge;

pub use merge::{merge, set_path};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Where the initrd keeps the built-in defaults.
pub const DEFAULTS_PATH: &str = "/usr/share/ros/os-config.yml";

/// The typed view of the keys this build of the OS acts on. Keys it does not know are kept in
/// `extra`, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default)]
    pub rancher: Rancher,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rancher.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rancher {
    /// Verbose logging from PID 1.
    #[serde(default)]
    pub debug: bool,
    /// Seconds services get between TERM and KILL at shutdown.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: u64,
    /// The tty that gets a shell without a login (empty: none).
    #[serde(default = "default_autologin")]
    pub autologin: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for Rancher {
    fn default() -> Self {
        Rancher {
            debug: false,
            shutdown_timeout: default_shutdown_timeout(),
            autologin: default_autologin(),
            extra: BTreeMap::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config { hostname: default_hostname(), rancher: Rancher::default(), extra: BTreeMap::new() }
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

/// A configuration problem, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: serde_yaml_ng::Error },
    #[error("kernel command line {key}={value}: {reason}")]
    Cmdline { key: String, value: String, reason: String },
}

/// Read a YAML layer from a file.
pub fn read_layer(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    serde_yaml_ng::from_str::<Value>(&text)
        .map(|v| if v.is_null() { Value::Mapping(Default::default()) } else { v })
        .map_err(|source| ConfigError::Parse { path: path.display().to_string(), source })
}

/// Parse a command-line value the way RancherOS does: as YAML (`true`, `5`, `[a,b]`), falling back
/// to the plain string when it is not valid YAML.
pub fn parse_value(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::String(String::new());
    }
    serde_yaml_ng::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// Overlay `rancher.*` command-line pairs on `base`, one at a time: a pair that makes the
/// configuration invalid is reported and left out, the others apply.
pub fn apply_cmdline<'a>(
    base: &mut Value,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (key, raw) in pairs {
        let mut candidate = base.clone();
        let path: Vec<&str> = key.split('.').collect();
        let reason = match set_path(&mut candidate, &path, parse_value(raw)) {
            Err(e) => Some(e),
            Ok(()) => typed(&candidate).err().map(|e| e.to_string()),
        };
        match reason {
            None => *base = candidate,
            Some(reason) => errors.push(ConfigError::Cmdline {
                key: key.to_string(),
                value: raw.to_string(),
                reason,
            }),
        }
    }
    errors
}

/// Read the merged YAML into the typed view.
pub fn typed(value: &Value) -> Result<Config, serde_yaml_ng::Error> {
    serde_yaml_ng::from_value(value.clone())
}

/// Load the boot configuration: defaults file, then the command line. Returns the best
/// configuration that could be made and every problem met on the way.
pub fn load(defaults: &Path, cmdline: &crate::cmdline::Cmdline) -> (Config, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut value = match read_layer(defaults) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            Value::Mapping(Default::default())
        }
    };
    if let Err(e) = typed(&value) {
        errors.push(ConfigError::Parse { path: defaults.display().to_string(), source: e });
        value = Value::Mapping(Default::default());
    }
    errors.extend(apply_cmdline(&mut value, cmdline.pairs_with_prefix("rancher.")));
    let config = typed(&value).unwrap_or_default();
    (config, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn cmdline_overrides_and_bad_values_are_named() {
        let mut base = yaml("hostname: rancher\nrancher:\n  debug: false\n  keep: 1\n");
        let errs = apply_cmdline(
            &mut base,
            [("rancher.debug", "true"), ("rancher.shutdown_timeout", "soon"), ("rancher.x.y", "[a,b]")],
        );
        assert_eq!(errs.len(), 1);
        let msg = errs[0].to_string();
        assert!(msg.starts_with("kernel command line rancher.shutdown_timeout=soon: "), "{msg}");
        let c = typed(&base).unwrap();
        assert!(c.rancher.debug);
        assert_eq!(c.rancher.shutdown_timeout, 10);
        assert_eq!(c.rancher.extra["keep"], yaml("1"));
        assert_eq!(c.rancher.extra["x"], yaml("y: [a, b]"));
    }

    #[test]
    fn values_are_yaml_typed() {
        assert_eq!(parse_value("5"), yaml("5"));
        assert_eq!(parse_value("[]"), yaml("[]"));
        assert_eq!(parse_value("a: b: c"), Value::String("a: b: c".into()));
        assert_eq!(parse_value(""), Value::String(String::new()));
    }
}
