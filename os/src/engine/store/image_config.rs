//! The parts of an image's config a container runtime needs to start a process from it.
//!
//! The full OCI (or Docker) config JSON stays in `blobs/` under the image ID; this is the
//! parsed, defaulted view of it (no cache file: the blob is small and parsing it is cheap).

use std::collections::BTreeMap;

/// What the image config says about running it (`config` of the OCI image configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings, in order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, as the image says.
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    /// `port/proto` strings.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    /// GOARCH-style (`amd64`, `arm64`).
    pub architecture: String,
    pub os: String,
}

impl From<&oci_spec::image::ImageConfiguration> for ImageConfig {
    fn from(c: &oci_spec::image::ImageConfiguration) -> Self {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let mut out = ImageConfig {
            architecture: c.architecture().to_string(),
            os: c.os().to_string(),
            ..ImageConfig::default()
        };
        if let Some(cfg) = c.config() {
            out.entrypoint = cfg.entrypoint().clone().unwrap_or_default();
            out.cmd = cfg.cmd().clone().unwrap_or_default();
            out.env = cfg.env().clone().unwrap_or_default();
            out.working_dir = non_empty(cfg.working_dir());
            out.user = non_empty(cfg.user());
            out.labels = cfg
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            out.stop_signal = non_empty(cfg.stop_signal());
            out.exposed_ports = cfg.exposed_ports().clone().unwrap_or_default();
            out.volumes = cfg.volumes().clone().unwrap_or_default();
        }
        out
    }
}
