//! The seam between the HTTP layer and whatever runs containers. In PID 1 it is the supervisor
//! (`init::api`): reads come from a snapshot it publishes, actions go to its loop over a channel.
//! In the unit tests it is a fake, so every route is tested without processes or a VM.

use super::error::ApiError;
use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// A container's life cycle in Docker's words (`State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Restarting,
    Exited,
    Dead,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Restarting => "restarting",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
        }
    }
}

/// One container, as the engine sees it at a moment (engine-neutral; `containers.rs` turns it
/// into Docker's JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub name: String,
    /// The image as the service names it (`rancher/os-syslog:v1`).
    pub image: String,
    /// `sha256:…` of the image's manifest, when it resolved.
    pub image_id: String,
    pub state: RunState,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub restart_count: u32,
    /// Unix seconds.
    pub created: i64,
    pub started_at: Option<std::time::SystemTime>,
    pub finished_at: Option<std::time::SystemTime>,
    /// Entrypoint and command as run.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub privileged: bool,
    /// `host` or `default`.
    pub network_mode: String,
    /// `host` or empty.
    pub pid_mode: String,
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    pub restart_policy: String,
    /// Why it is not running, when the engine knows.
    pub error: Option<String>,
    /// Its log file (stdout and stderr together).
    pub log_path: PathBuf,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// `sha256:…`.
    pub id: String,
    pub names: Vec<String>,
    /// Unix seconds (0 when the image does not say).
    pub created: i64,
    pub size: u64,
}

/// What to run in a container (`POST /containers/{id}/exec`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Give it a stdin pipe (`AttachStdin`); otherwise its stdin is `/dev/null`.
    pub stdin: bool,
}

/// A started exec: its output pipes, and its exit code once the supervisor has reaped it
/// (`None` while it runs).
pub struct ExecProcess {
    pub pid: i32,
    /// Its stdin, when asked for.
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub exit: tokio::sync::watch::Receiver<Option<i32>>,
}

/// Everything the API asks of the engine. Reads are plain calls (a snapshot); actions are
/// futures, as they wait for the supervisor's reply.
pub trait Engine: Send + Sync + 'static {
    fn containers(&self) -> Vec<ContainerInfo>;
    fn images(&self) -> Result<Vec<ImageInfo>, ApiError>;
    /// Load `docker save` or OCI-layout tar from `path`; the names loaded.
    fn load(&self, path: PathBuf) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    fn start(&self, name: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Stop and keep stopped (no restart by policy); TERM, then KILL after `timeout` seconds.
    fn stop(
        &self,
        name: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn restart(
        &self,
        name: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Start the service with its current configuration (recreating it if it runs).
    fn up(&self, name: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn exec(
        &self,
        name: &str,
        spec: ExecSpec,
    ) -> impl Future<Output = Result<ExecProcess, ApiError>> + Send;
}

/// Find a container by name, `/name`, full id or unique id prefix.
pub fn find<'a>(all: &'a [ContainerInfo], key: &str) -> Result<&'a ContainerInfo, ApiError> {
    let key = key.strip_prefix('/').unwrap_or(key);
    if let Some(c) = all.iter().find(|c| c.name == key) {
        return Ok(c);
    }
    let matches: Vec<&ContainerInfo> = all
        .iter()
        .filter(|c| !key.is_empty() && container_id(&c.name).starts_with(key))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ApiError::no_container(key)),
        _ => Err(ApiError::bad_request(format!(
            "multiple IDs found with provided prefix: {key}"
        ))),
    }
}

/// A container's id: 64 hex digits, stable for a name (services are named, and a restarted
/// service is the same container to its users, as with `docker restart`).
pub fn container_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("system-docker/{name}").as_bytes(),
    ))
}
