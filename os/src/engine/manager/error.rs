//! What can go wrong in the manager, worded as Docker words it (the user engine passes the
//! message on as `{"message": …}`; its HTTP status comes from the variant).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// 404: a path in a container (`docker cp`).
    #[error("{0}")]
    NoSuchPath(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 304 (start of a running container, stop of a stopped one).
    #[error("{0}")]
    NotModified(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::engine::store::StoreError),
    #[error(transparent)]
    Volume(#[from] crate::engine::volume::VolumeError),
    #[error(transparent)]
    Runtime(#[from] crate::engine::runtime::RuntimeError),
    /// The shim could not make the container, or did not answer.
    #[error("{0}")]
    Shim(String),
    /// 404.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// 403 (what Docker refuses about networks: a predefined one, active endpoints…).
    #[error("{0}")]
    Forbidden(String),
    /// Plumbing that failed (a bridge, a veth, the rules).
    #[error("{0}")]
    Network(String),
}

impl ManagerError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ManagerError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The HTTP status Docker answers with.
    pub fn status(&self) -> u16 {
        use crate::engine::store::StoreError;
        match self {
            ManagerError::NoSuchContainer(_)
            | ManagerError::NoSuchImage(_)
            | ManagerError::NoSuchExec(_)
            | ManagerError::NoSuchPath(_)
            | ManagerError::NoSuchNetwork(_) => 404,
            ManagerError::Forbidden(_) => 403,
            ManagerError::Ambiguous(_) | ManagerError::BadRequest(_) => 400,
            ManagerError::Conflict(_) => 409,
            ManagerError::NotModified(_) => 304,
            ManagerError::Store(StoreError::NotFound(_)) => 404,
            ManagerError::Volume(v) => {
                use crate::engine::volume::VolumeError as V;
                match v {
                    V::NotFound(_) => 404,
                    V::Io { .. } | V::Record { .. } => 500,
                    _ => 400,
                }
            }
            ManagerError::Runtime(crate::engine::runtime::RuntimeError::Spec(_)) => 400,
            _ => 500,
        }
    }
}
