//! The OS configuration, RancherOS style: `#cloud-config` YAML in layers (built-in defaults, OEM,
//! datasources, the `rancherctl config` file, the kernel command line), merged into one tree and
//! read into the typed [`Config`].
//!
//! Users bring existing RancherOS cloud-configs, so every layer is accepted as it is: keys the
//! model does not know are kept (and exported) with a warning; a bad value is reported with its
//! file, line and key path, and that key alone is left out. Merge rules: `merge.rs`.
//!
//! Modules, one concern each: [`layers`] (where the files are, reading them), [`merge`] (the merge
//! rules), [`validate`] (checking a layer, finding lines), [`edit`] (setting a key from a string),
//! [`model`], [`network`], [`write_files`], [`runcmd`] (the typed model), [`private`] (secrets),
//! [`keypath`] (`a.b[0].c` paths), [`atomic`] (crash-safe writes), [`parsed`] (the built-in
//! defaults' JSON copy, made at build time), [`error`].

pub mod atomic;
pub mod edit;
pub mod error;
pub mod fingerprint;
pub mod keypath;
pub mod layers;
mod lenient;
mod merge;
pub mod model;
pub mod network;
pub mod parsed;
pub mod private;
pub mod replace;
pub mod runcmd;
pub mod validate;
pub mod write_files;

pub use edit::{apply_cmdline, parse_value, set_key};
pub use error::{ConfigError, ConfigWarning, Location, Problem};
pub use fingerprint::Fingerprint;
pub use layers::{read_layers, ConfigPaths, Layer, LayerKind};
pub use merge::{merge, set_path};
pub use model::{CloudInit, Config, Docker, Rancher, Service, Ssh, State, Upgrade, Wait};
pub use network::{Dns, Interface, Network, Selector};
pub use runcmd::Command;
pub use validate::{check_text, check_value, typed, Checked};
pub use write_files::{Encoding, Mode, WriteFile};

use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

/// Where the initrd keeps the built-in defaults.
pub const DEFAULTS_PATH: &str = "/usr/share/ros/os-config.yml";

/// The configuration in force, and how it came about.
#[derive(Debug)]
pub struct Loaded {
    /// The typed view of [`Loaded::value`].
    pub config: Config,
    /// All layers merged (what `rancherctl config export --full --private` prints).
    pub value: Value,
    /// Each layer as read, lowest first.
    pub layers: Vec<Layer>,
    /// Problems met: every one left out a key, a layer, or a command-line word.
    pub errors: Vec<ConfigError>,
    /// Unknown keys, kept.
    pub warnings: Vec<ConfigWarning>,
}

impl Loaded {
    /// The layers from `from` upward, merged (`export` without `--full` starts at
    /// [`LayerKind::Oem`], leaving out the built-in defaults).
    pub fn merged_from(&self, from: LayerKind) -> Value {
        merge_layers(self.layers.iter().filter(|l| l.kind >= from))
    }
}

/// Merge layers, lowest first, into one tree.
pub fn merge_layers<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Value {
    let mut value = Value::Mapping(Mapping::new());
    for layer in layers {
        merge(&mut value, layer.value.clone());
    }
    value
}

/// Read, check and merge every layer. Never fails: the result is the best configuration that
/// could be made, with every problem met on the way.
pub fn load_layers(paths: &ConfigPaths, cmdline: &crate::cmdline::Cmdline) -> Loaded {
    let read = read_layers(paths, cmdline);
    let mut errors = read.errors;
    // Each layer passed on its own; a merge of valid layers is valid, but check rather than trust.
    let checked = validate::check_merged("merged configuration", merge_layers(&read.layers));
    errors.extend(checked.errors);
    Loaded {
        config: checked.config,
        value: checked.value,
        layers: read.layers,
        errors,
        warnings: read.warnings,
    }
}

/// Load the boot configuration: every layer of the running system, with the built-in defaults
/// read from `defaults`. Unknown keys are logged as warnings, not returned as errors.
pub fn load(defaults: &Path, cmdline: &crate::cmdline::Cmdline) -> (Config, Vec<ConfigError>) {
    let paths = ConfigPaths {
        defaults: defaults.to_path_buf(),
        ..ConfigPaths::system()
    };
    let loaded = load_layers(&paths, cmdline);
    for w in &loaded.warnings {
        tracing::warn!("config: {w}");
    }
    (loaded.config, loaded.errors)
}

/// [`load`] with the built-in defaults of the initrd ([`DEFAULTS_PATH`]).
pub fn load_system(cmdline: &crate::cmdline::Cmdline) -> (Config, Vec<ConfigError>) {
    load(Path::new(DEFAULTS_PATH), cmdline)
}

/// [`load_system`] with the kernel command line as the running system has it (the words after
/// `--` too, when PID 1 kept them for root).
pub fn load_running() -> (Config, Vec<ConfigError>) {
    load_system(&crate::cmdline::Cmdline::from_proc().unwrap_or_default())
}

/// Read a YAML layer from a file, unchecked (an empty file is an empty map).
pub fn read_layer(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(Value::Null) => Ok(Value::Mapping(Mapping::new())),
        Ok(v) => Ok(v),
        Err(e) => Err(check_text(&path.display().to_string(), &text)
            .errors
            .into_iter()
            .next()
            .unwrap_or(ConfigError::Read {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })),
    }
}

#[cfg(test)]
mod tests;
