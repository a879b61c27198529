//! `up`: (re)create one service from the configuration saved now (`rancherctl service up`,
//! `rancherctl console switch`, a service just enabled). A running container of that name is
//! stopped (its stop signal, then KILL after `rancher.shutdown_timeout`) and removed, and a new
//! one is created from the (maybe new) image and started; the service is not waited for, even
//! when it runs to completion.

use super::{lock, SystemServices};
use crate::services::{Scope, ServiceSpec};
use std::sync::Arc;

/// Why an `up` was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("No such service: {0}")]
    NotFound(String),
    #[error("service {0} is disabled (rancher.services_include.{0}: false)")]
    Disabled(String),
    #[error("service {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("service {name}: {message}")]
    Failed { name: String, message: String },
}

impl UpError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            UpError::NotFound(_) => 404,
            UpError::Disabled(_) => 409,
            UpError::Invalid { .. } => 400,
            UpError::Failed { .. } => 500,
        }
    }
}

impl SystemServices {
    pub async fn up(self: &Arc<Self>, name: &str) -> Result<(), UpError> {
        let (config, errors) = tokio::task::spawn_blocking(crate::config::load_running)
            .await
            .map_err(|e| UpError::Failed {
                name: name.to_string(),
                message: format!("reading the configuration: {e}"),
            })?;
        for e in &errors {
            tracing::warn!(error = %e, "config problem (up)");
        }
        if config.rancher.services_include.get(name) == Some(&false) {
            return Err(UpError::Disabled(name.to_string()));
        }
        let raw = config
            .rancher
            .services
            .get(name)
            .ok_or_else(|| UpError::NotFound(name.to_string()))?;
        let value = serde_yaml_ng::to_value(raw).unwrap_or_default();
        let spec = ServiceSpec::parse(name, &value).map_err(|errors| UpError::Invalid {
            name: name.to_string(),
            message: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        if spec.scope != Scope::System {
            return Err(UpError::Invalid {
                name: name.to_string(),
                message: "not a system service (io.rancher.os.scope)".into(),
            });
        }
        let mut inner = self.inner.lock().await;
        self.take_settings(&mut inner, &config);
        inner.specs.insert(name.to_string(), spec.clone());
        if !inner.order.iter().any(|n| n == name) {
            inner.order.push(name.to_string());
            lock(&self.known).order.push(name.to_string());
        }
        lock(&self.known)
            .images
            .insert(name.to_string(), spec.image.clone());
        if let Ok(old) = self.mgr.get(name) {
            let timeout = config.rancher.shutdown_timeout.min(i64::MAX as u64) as i64;
            match self.mgr.stop(&old.id, Some(timeout), None).await {
                Ok(()) | Err(crate::engine::manager::ManagerError::NotModified(_)) => {}
                Err(e) => {
                    return Err(UpError::Failed {
                        name: name.to_string(),
                        message: format!("stopping the old container: {e}"),
                    })
                }
            }
        }
        let environment = inner.environment.clone();
        self.run(&spec, &environment, false)
            .await
            .map_err(|message| {
                self.mark(name, &spec.image, "failed", &message);
                UpError::Failed {
                    name: name.to_string(),
                    message,
                }
            })
    }
}
