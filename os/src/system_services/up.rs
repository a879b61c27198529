//! `up`: (re)create one service from the configuration saved now (`rancherctl service up`,
//! `rancherctl console switch`, a service just enabled). A running container of that name is
//! stopped (its stop signal, then KILL after `rancher.shutdown_timeout`) and removed, and a new
//! one is created from the (maybe new) image and started; the service is not waited for, even
//! when it runs to completion.

use super::{lock, Inner, SystemServices};
use crate::config::Config;
use crate::services::{Scope, ServiceSpec};
use std::sync::Arc;

/// Why an `up` was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("No such service: {0}")]
    NotFound(String),
    #[error("service {0} is disabled (rancher.services_include.{0}; for ui: rancher.ui.enabled)")]
    Disabled(String),
    #[error("service {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("service {name}: {message}")]
    Failed { name: String, message: String },
    #[error(
        "service {0}: no such image in the system engine's store: {1} (load or pull it first)"
    )]
    NoImage(String, String),
    /// A console verb refused (`NAME is not a valid console`, …).
    #[error("{0}")]
    Console(String),
    /// Refused for what is running now.
    #[error("{0}")]
    Conflict(String),
}

impl UpError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            UpError::NotFound(_) | UpError::NoImage(..) => 404,
            UpError::Disabled(_) | UpError::Conflict(_) => 409,
            UpError::Invalid { .. } | UpError::Console(_) => 400,
            UpError::Failed { .. } => 500,
        }
    }
}

impl SystemServices {
    pub async fn up(self: &Arc<Self>, name: &str) -> Result<(), UpError> {
        let (config, spec) = configured(name).await?;
        let spec = if name == super::console::SERVICE {
            super::console::chosen(&config, &spec, &|i| self.mgr.store.resolve(i).is_ok())
        } else {
            spec
        };
        let mut inner = self.inner.lock().await;
        self.take_settings(&mut inner, &config);
        self.adopt_spec(&mut inner, &spec);
        self.stop_current(name, &config).await?;
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

    /// Make `spec` the service's (its place in the order, its image in the status).
    pub(super) fn adopt_spec(&self, inner: &mut Inner, spec: &ServiceSpec) {
        let name = &spec.name;
        inner.specs.insert(name.clone(), spec.clone());
        if !inner.order.iter().any(|n| n == name) {
            inner.order.push(name.clone());
            lock(&self.known).order.push(name.clone());
        }
        lock(&self.known)
            .images
            .insert(name.clone(), spec.image.clone());
    }

    /// Stop the service's container, if it has one (its stop signal, then KILL after
    /// `rancher.shutdown_timeout`).
    pub(super) async fn stop_current(&self, name: &str, config: &Config) -> Result<(), UpError> {
        let Ok(old) = self.mgr.get(name) else {
            return Ok(());
        };
        let timeout = config.rancher.shutdown_timeout.min(i64::MAX as u64) as i64;
        match self.mgr.stop(&old.id, Some(timeout), None).await {
            Ok(()) | Err(crate::engine::manager::ManagerError::NotModified(_)) => Ok(()),
            Err(e) => Err(UpError::Failed {
                name: name.to_string(),
                message: format!("stopping the old container: {e}"),
            }),
        }
    }
}

/// The configuration saved now and the service `name` in it: enabled, valid, of system scope.
pub(super) async fn configured(name: &str) -> Result<(Config, ServiceSpec), UpError> {
    let (config, errors) = tokio::task::spawn_blocking(crate::config::load_running)
        .await
        .map_err(|e| UpError::Failed {
            name: name.to_string(),
            message: format!("reading the configuration: {e}"),
        })?;
    for e in &errors {
        tracing::warn!(error = %e, "config problem (up)");
    }
    if !super::enabled(&config, name) {
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
    Ok((config, spec))
}
