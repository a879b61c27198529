//! The runtime's errors: one type for both sides, so that the engine can match on what went
//! wrong (a bad spec, an unknown container, the helper failing) without parsing strings.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The [`ContainerSpec`](super::ContainerSpec) cannot be turned into a container.
    #[error("invalid container spec: {0}")]
    Spec(String),
    /// oci-spec's builders refused a value.
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No state for this id under the runtime root.
    #[error("no container {0:?}")]
    NotFound(String),
    /// A container with this id already has state.
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("starting the container helper: {0}")]
    Spawn(#[source] std::io::Error),
    /// The helper ran and reported a failure.
    #[error("container helper {verb}: {message}")]
    Helper { verb: String, message: String },
    /// The helper's reply was not what it should be (it crashed, or printed something else).
    #[error("container helper {verb}: unreadable reply {reply:?}")]
    Reply { verb: String, reply: String },
    /// libcontainer failed (helper side).
    #[error("libcontainer: {0}")]
    Libcontainer(#[from] libcontainer::error::LibcontainerError),
    /// Waiting for the container's process failed (helper side, `run`).
    #[error("waiting for the container: {0}")]
    Wait(#[source] nix::Error),
    /// A bad command line for `ros container-helper`.
    #[error("usage: {0}")]
    Usage(String),
}

impl RuntimeError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
