//! Which console runs: `rancher.console` names it (`rancherctl console switch|enable`).
//!
//! - `default` (or unset): the `console` service as configured, the busybox console of the
//!   initrd, rebuilt at every boot like the rest of the root.
//! - a name of `rancher.console_index` (`debian`, `ubuntu`, …: data in os-config.yml), or an
//!   image reference given as is (`docker.io/library/debian:bookworm`): a **full console**.
//!   It is the same `console` service (the same binds, namespaces and privileges) on that image,
//!   started by our own `ros console-start` (bound in from the host, whatever the image's
//!   command), with two things more:
//!   - its writable layer lives on the state partition, in `/var/lib/rancher/console/KEY`
//!     (`upper/`, `work/`), not in the system engine's store (RAM): what a person installs or
//!     edits in it outlives the container, so a reboot, an OS upgrade (the initrd changes, not
//!     this directory) and a new image of the console (the lower layers change under the same
//!     KEY) keep it; `rancherctl console reset NAME` throws it away;
//!   - it says when it serves SSH ([`READY`]): a switch is judged by it, and a full console that
//!     does not get there is replaced by the default one, so the machine stays reachable.
//!
//! Why not RancherOS's way (the console container kept across boots): its users lost installed
//! packages at every OS upgrade, which recreated the container (rancher/os#855, #1594, #2298).
//! A layer of its own, apart from any container, is what survives.

use crate::config::Config;
use crate::services::ServiceSpec;
use std::path::PathBuf;

/// The console that is the `console` service as configured.
pub const DEFAULT: &str = "default";
/// Where full consoles' writable layers are (a persistent directory: `state::mount`).
pub const LAYERS: &str = "/var/lib/rancher/console";
/// Written by `ros consoled` once the console's SSH server takes connections.
pub const READY: &str = "/run/ros/console.ready";
/// The command of a full console: ours, whatever its image's (the host's binary is bound in).
pub const START: [&str; 2] = ["/usr/bin/ros", "console-start"];

/// A console chosen by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What the person typed (`debian`, or a reference).
    pub name: String,
    /// `None`: the default console; else the image reference it runs.
    pub image: Option<String>,
    /// The name of its layer's directory under [`LAYERS`] (empty for the default console).
    pub key: String,
}

impl Choice {
    pub fn is_default(&self) -> bool {
        self.image.is_none()
    }

    /// Its writable layer's directory (`None` for the default console).
    pub fn layer(&self) -> Option<PathBuf> {
        (!self.is_default()).then(|| PathBuf::from(LAYERS).join(&self.key))
    }

    /// The `console` service `base` (as configured) running this console.
    pub fn apply(&self, base: &ServiceSpec) -> ServiceSpec {
        let mut spec = base.clone();
        if let Some(image) = &self.image {
            spec.image = image.clone();
            spec.entrypoint = Some(START.iter().map(|s| s.to_string()).collect());
            spec.command = Some(Vec::new());
            spec.upper = self.layer();
            spec.ready_file = Some(PathBuf::from(READY));
        }
        spec
    }
}

/// Why a name is no console.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0} is not a valid console")]
    NotValid(String),
    #[error("rancher.console_index.{name}: {value:?} is not an image reference: {why}")]
    BadIndex {
        name: String,
        value: String,
        why: String,
    },
}

/// The console `name` stands for under `config`.
pub fn resolve(config: &Config, name: &str) -> Result<Choice, ConsoleError> {
    let name = name.trim();
    if name.is_empty() || name == DEFAULT {
        return Ok(Choice {
            name: DEFAULT.into(),
            image: None,
            key: String::new(),
        });
    }
    if let Some(value) = config.rancher.console_index.get(name) {
        if !is_key(name) {
            return Err(ConsoleError::NotValid(name.into()));
        }
        let image = crate::engine::store::reference::normalize(value).map_err(|e| {
            ConsoleError::BadIndex {
                name: name.into(),
                value: value.clone(),
                why: e.to_string(),
            }
        })?;
        return Ok(Choice {
            name: name.into(),
            image: Some(image),
            key: name.into(),
        });
    }
    // A reference as is: only what looks like one (a tag or a path), so that a mistyped
    // name is not pulled from Docker Hub.
    if !name.contains([':', '/']) {
        return Err(ConsoleError::NotValid(name.into()));
    }
    let image = crate::engine::store::reference::normalize(name)
        .map_err(|_| ConsoleError::NotValid(name.into()))?;
    Ok(Choice {
        name: name.into(),
        key: key_of(&image),
        image: Some(image),
    })
}

/// The console `config` chooses, or why not (then the default one runs).
pub fn configured(config: &Config) -> Result<Choice, ConsoleError> {
    resolve(config, config.rancher.console.as_deref().unwrap_or(DEFAULT))
}

/// A console name usable as a directory name: `[a-z0-9][a-z0-9_.-]*`, at most 64.
fn is_key(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
}

/// The layer directory's name of an image reference (normalized): every character not
/// `[a-z0-9_.-]` becomes `_` (`quay.io/x/y:1` → `quay.io_x_y_1`); a name longer than 64 is cut
/// to 47 and ends with 16 hex digits of the reference's SHA-256, so two long references never
/// share a layer.
fn key_of(image: &str) -> String {
    let k: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let k = if k.starts_with(['.', '_', '-']) {
        format!("x{k}")
    } else {
        k
    };
    if k.len() <= 64 {
        return k;
    }
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(image.as_bytes()));
    format!("{}-{}", &k[..47], &h[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn names_resolve_through_the_index_or_as_references() {
        let c = config(
            "rancher:\n  console_index:\n    debian: ros/debian-console:latest\n    ubuntu: docker.io/rancher/os-ubuntuconsole:v1.5.8\n    Bad: x\n    broken: 'UPPER/case'\n",
        );
        assert!(resolve(&c, "default").unwrap().is_default());
        assert!(resolve(&c, "").unwrap().is_default());
        let d = resolve(&c, "debian").unwrap();
        assert_eq!(d.image.as_deref(), Some("ros/debian-console:latest"));
        assert_eq!(
            d.layer(),
            Some(PathBuf::from("/var/lib/rancher/console/debian"))
        );
        assert_eq!(
            resolve(&c, "ubuntu").unwrap().image.as_deref(),
            Some("rancher/os-ubuntuconsole:v1.5.8")
        );
        let r = resolve(&c, "localhost:5000/my/console:1").unwrap();
        assert_eq!(r.image.as_deref(), Some("localhost:5000/my/console:1"));
        assert_eq!(r.key, "localhost_5000_my_console_1");
        assert_eq!(
            resolve(&c, "nosuch").unwrap_err().to_string(),
            "nosuch is not a valid console"
        );
        assert!(matches!(resolve(&c, "Bad"), Err(ConsoleError::NotValid(_))));
        assert!(matches!(
            resolve(&c, "broken"),
            Err(ConsoleError::BadIndex { .. })
        ));
        // Path tricks are not references.
        for n in ["../../etc:x", "a/../b", "/abs/path", "UP/per"] {
            assert!(resolve(&c, n).is_err(), "{n}");
        }
        assert_eq!(key_of("_x"), "x_x");
        let long = |tag: &str| key_of(&format!("registry.example.com/{}/c:{tag}", "a".repeat(60)));
        assert_eq!(long("1").len(), 64);
        assert_ne!(long("1"), long("2"), "long references keep layers apart");
    }

    #[test]
    fn a_full_console_runs_our_start_on_its_image_with_its_own_layer() {
        let base = ServiceSpec {
            name: "console".into(),
            image: "ros/console:latest".into(),
            ..Default::default()
        };
        let c = config("rancher:\n  console_index:\n    debian: ros/debian-console\n");
        assert_eq!(resolve(&c, "default").unwrap().apply(&base), base);
        let s = resolve(&c, "debian").unwrap().apply(&base);
        assert_eq!(s.image, "ros/debian-console:latest");
        assert_eq!(s.entrypoint.as_deref(), Some(&START.map(String::from)[..]));
        assert_eq!(s.command.as_deref(), Some(&[][..]));
        assert_eq!(
            s.upper,
            Some(PathBuf::from("/var/lib/rancher/console/debian"))
        );
        assert_eq!(s.ready_file, Some(PathBuf::from(READY)));
    }
}
