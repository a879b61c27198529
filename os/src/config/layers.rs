//! Where the configuration layers live and how each is read: the file locations (under a root
//! prefix, so tests use a temporary directory), the order of the layers, and the kernel command
//! line turned into a layer of its own. How layers then combine is `merge.rs`'s business.

use super::edit::apply_cmdline;
use super::error::{ConfigError, ConfigWarning};
use super::validate::{check_builtin, check_merged, check_text, check_value};
use crate::cmdline::Cmdline;
use serde_yaml_ng::{Mapping, Value};
use std::path::{Path, PathBuf};

/// The files of the configuration layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPaths {
    /// Built-in defaults, in the initrd.
    pub defaults: PathBuf,
    /// The OEM's configuration, in the initrd or on the OEM partition.
    pub oem: PathBuf,
    /// One file per datasource (`*.yml`), read in name order.
    pub cloud_config_d: PathBuf,
    /// The layer `rancherctl config set|merge` writes.
    pub cloud_config: PathBuf,
}

impl ConfigPaths {
    /// The files under `root` (`/` on a running system).
    pub fn under(root: impl AsRef<Path>) -> ConfigPaths {
        let root = root.as_ref();
        ConfigPaths {
            defaults: root.join("usr/share/ros/os-config.yml"),
            oem: root.join("usr/share/ros/oem/oem-config.yml"),
            cloud_config_d: root.join("var/lib/rancher/conf/cloud-config.d"),
            cloud_config: root.join("var/lib/rancher/conf/cloud-config.yml"),
        }
    }

    /// The files of the running system.
    pub fn system() -> ConfigPaths {
        ConfigPaths::under("/")
    }
}

/// The layers, lowest first (the derived order is the precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerKind {
    Defaults,
    Oem,
    Datasource,
    User,
    Cmdline,
}

/// One layer, checked: bad keys are already left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kind: LayerKind,
    /// The file, or "kernel command line".
    pub source: String,
    pub value: Value,
}

/// What reading the layers produced.
#[derive(Debug, Default)]
pub struct ReadLayers {
    pub layers: Vec<Layer>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

/// Name used for the command-line layer in messages.
pub const CMDLINE_SOURCE: &str = "kernel command line";

/// Read every layer, lowest first. Missing optional files are skipped silently; a missing defaults
/// file is an error (the initrd is broken), but reading goes on.
pub fn read_layers(paths: &ConfigPaths, cmdline: &Cmdline) -> ReadLayers {
    let mut out = ReadLayers::default();
    out.read_file(LayerKind::Defaults, &paths.defaults, true);
    out.read_file(LayerKind::Oem, &paths.oem, false);
    match datasource_files(&paths.cloud_config_d) {
        Ok(files) => {
            for f in files {
                out.read_file(LayerKind::Datasource, &f, false);
            }
        }
        Err(e) => out.errors.push(ConfigError::Read {
            path: paths.cloud_config_d.display().to_string(),
            source: e,
        }),
    }
    out.read_file(LayerKind::User, &paths.cloud_config, false);
    let (value, errors) = cmdline_layer(cmdline);
    out.errors.extend(errors);
    let checked = check_value(CMDLINE_SOURCE, value);
    out.errors.extend(checked.errors);
    out.warnings.extend(checked.warnings);
    out.layers.push(Layer {
        kind: LayerKind::Cmdline,
        source: CMDLINE_SOURCE.to_string(),
        value: checked.value,
    });
    out
}

impl ReadLayers {
    fn read_file(&mut self, kind: LayerKind, path: &Path, required: bool) {
        let source = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return,
            Err(e) => {
                self.errors.push(ConfigError::Read {
                    path: source,
                    source: e,
                });
                return;
            }
        };
        let checked = if kind == LayerKind::Defaults {
            match super::parsed::tree_of(path, &text) {
                // The same check the YAML's tree gets in `check_builtin`.
                Some(value @ Value::Mapping(_)) => check_merged(&source, value),
                _ => check_builtin(&source, &text),
            }
        } else {
            check_text(&source, &text)
        };
        self.errors.extend(checked.errors);
        self.warnings.extend(checked.warnings);
        self.layers.push(Layer {
            kind,
            source,
            value: checked.value,
        });
    }
}

/// `*.yml` files of the datasource directory, by name (a missing directory has none).
fn datasource_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let visible = path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'));
        if visible && path.extension().is_some_and(|e| e == "yml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The `rancher.*` and `cc.*` words of the command line, both sides of `--`, as a layer. A bare
/// word (`rancher.debug`) means `true`, as in RancherOS.
pub fn cmdline_layer(cmdline: &Cmdline) -> (Value, Vec<ConfigError>) {
    let pairs = cmdline.words().filter_map(|w| {
        let (k, v) = w.split_once('=').unwrap_or((w, "true"));
        (k.starts_with("rancher.") || k.starts_with("cc.")).then_some((k, v))
    });
    let mut layer = Value::Mapping(Mapping::new());
    let errors = apply_cmdline(&mut layer, pairs);
    (layer, errors)
}
