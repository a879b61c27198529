//! The `console` service as `rancher.console` chooses it ([`crate::consoles`]), and the
//! console's verbs (`rancherctl console`, `POST /rancheros/console/{verb}?name=NAME`):
//!
//! - `switch`: the console now. The chosen console's container replaces the running one, must
//!   say it serves SSH (its ready file, written once port 22 answers) within 10 s, run unbroken
//!   for [`STABLE`] and still answer on port 22; only then is its image saved for the next
//!   boots ([`super::preload::save_console`]) and `rancher.console` written (the commit, as for
//!   a service upgrade). A console that does not hold is removed and the default console runs
//!   again, `rancher.console` unchanged: the machine stays reachable.
//! - `enable`: the name resolved and its image found (nothing started), the image saved and
//!   `rancher.console` written; the console changes at the next boot.
//! - `reset`: a full console's own layer thrown away (not while a container of it exists).
//!
//! Everything from the first look at the store to the commit holds the services' lock, so two
//! verbs (or a verb and an `up`) never interleave. At the end of a boot, a full console that is
//! not running, has restarted, or does not answer on port 22 is replaced by the default one
//! (one look, after its ready file or 10 s: [`SystemServices::boot`]).
//! Every verb runs in the system engine, to its end even when its client goes away (the SSH
//! session that asked for a switch ends with the old console).

use super::up::{configured, UpError};
use super::SystemServices;
use crate::config::Config;
use crate::consoles::{self, Choice};
use crate::services::ServiceSpec;
use std::sync::Arc;
use std::time::Duration;

/// The console service's name.
pub const SERVICE: &str = "console";
/// How long a new console must run unbroken once it serves SSH.
pub const STABLE: Duration = Duration::from_secs(3);

/// What a switch or an enable did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Switched {
    pub console: String,
    /// The image it runs (the `console` service's own for the default console).
    pub image: String,
    /// Where its image was saved for the next boots (empty for the default console).
    pub saved: String,
}

/// The `console` service `base` (as configured) as `config`'s console, when its image is one
/// the store `has_image`; else `base` (said in the engine's log; the boot says it on the
/// console when the console that runs is not the one chosen).
pub(super) fn chosen(
    config: &Config,
    base: &ServiceSpec,
    has_image: &dyn Fn(&str) -> bool,
) -> ServiceSpec {
    match consoles::configured(config) {
        Ok(c) => match &c.image {
            None => base.clone(),
            Some(image) if has_image(image) => c.apply(base),
            Some(image) => {
                tracing::warn!(console = %c.name, image = %image, "the console's image is not in the store; the default console runs");
                base.clone()
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "rancher.console; the default console runs");
            base.clone()
        }
    }
}

fn refused(e: impl ToString) -> UpError {
    UpError::Console(e.to_string())
}

impl SystemServices {
    /// `switch` (`now`) or `enable` the console `name`.
    pub async fn console_switch(
        self: &Arc<Self>,
        name: &str,
        now: bool,
    ) -> Result<Switched, UpError> {
        let (config, base) = configured(SERVICE).await?;
        let choice = consoles::resolve(&config, name).map_err(refused)?;
        // One console verb (and no boot, `up` or upgrade) at a time, from the first look at the
        // store to the commit: two switches never commit out of order.
        let mut inner = self.inner.lock().await;
        let image = match &choice.image {
            Some(reference) => Some(self.console_image(&choice.key, reference).await?),
            None => None,
        };
        let next = choice.apply(&base);
        if now {
            self.take_settings(&mut inner, &config);
            tracing::info!(console = %choice.name, image = %next.image, "console switch");
            self.stop_current(SERVICE, &config).await?;
            let environment = inner.environment.clone();
            // The ready file counts only when written after this start.
            let since = std::time::SystemTime::now() - Duration::from_millis(20);
            let verdict = match self.run(&next, &environment, false).await {
                // (The default console's service has no ready-file label: waited for here.)
                Ok(()) if !until_fresh(consoles::READY, since).await => {
                    Err("it did not serve SSH within 10 s".to_string())
                }
                Ok(()) => match self.watch(SERVICE, true, STABLE).await {
                    Ok(()) if !serves_ssh().await => {
                        Err("port 22 does not answer after it held".to_string())
                    }
                    other => other,
                },
                Err(e) => Err(format!("it did not start: {e}")),
            };
            if let Err(why) = verdict {
                tracing::warn!(console = %choice.name, why = %why, "console switch failed; the default console again");
                self.stop_current(SERVICE, &config).await?;
                let back = self.run(&base, &environment, false).await;
                self.adopt_spec(&mut inner, &base);
                let outcome = match back {
                    Ok(()) => "the default console runs again".to_string(),
                    Err(e) => {
                        self.mark(SERVICE, &base.image, "failed", &e);
                        format!("and the default console did not start either: {e}")
                    }
                };
                return Err(UpError::Failed {
                    name: SERVICE.into(),
                    message: format!(
                        "console {} ({}) did not hold: {why}; {outcome} (rancher.console unchanged)",
                        choice.name, next.image
                    ),
                });
            }
            self.adopt_spec(&mut inner, &next);
            super::lock(&self.known).failed.remove(SERVICE);
            self.write_status();
        }
        let saved = match (&image, &choice.image) {
            (Some(img), Some(reference)) => {
                let store = self.mgr.store.clone();
                let (img, r, key) = (img.clone(), reference.clone(), choice.key.clone());
                tokio::task::spawn_blocking(move || {
                    super::preload::save_console(&store, &img, &r, &key)
                })
                    .await
                    .map_err(|e| refused(format!("save task: {e}")))?
                    .map_err(|e| UpError::Failed {
                        name: SERVICE.into(),
                        message: format!(
                            "{}saving {reference} for the next boots: {e:#} (rancher.console unchanged)",
                            if now { "it runs, but " } else { "" }
                        ),
                    })?
                    .display()
                    .to_string()
            }
            _ => String::new(),
        };
        commit(&choice).await?;
        drop(inner);
        Ok(Switched {
            console: choice.name.clone(),
            image: next.image,
            saved,
        })
    }

    /// The console's image from the store, else from where a switch saved it (a boot loads only
    /// the image of the console it runs).
    async fn console_image(
        &self,
        key: &str,
        reference: &str,
    ) -> Result<crate::engine::store::index::Image, UpError> {
        if let Ok(i) = self.mgr.store.resolve(reference) {
            return Ok(i);
        }
        let store = self.mgr.store.clone();
        let k = key.to_string();
        let loaded =
            tokio::task::spawn_blocking(move || super::preload::load_console(&store, &k)).await;
        match loaded {
            Ok(Ok(names)) => {
                tracing::info!(images = ?names, "console image loaded from the state partition")
            }
            Ok(Err(e)) => tracing::debug!(error = %format!("{e:#}"), "no saved console image"),
            Err(e) => tracing::warn!(error = %e, "console image load task"),
        }
        self.mgr
            .store
            .resolve(reference)
            .map_err(|_| UpError::NoImage(SERVICE.into(), reference.to_string()))
    }

    /// `reset`: throw away the console `name`'s own layer; the directory removed.
    pub async fn console_reset(&self, name: &str) -> Result<String, UpError> {
        let (config, _) = configured(SERVICE).await?;
        let choice = consoles::resolve(&config, name).map_err(refused)?;
        let Some(layer) = choice.layer() else {
            return Err(refused(
                "the default console keeps no changes: it is rebuilt at every boot",
            ));
        };
        let _inner = self.inner.lock().await;
        if let Ok(rec) = self.mgr.get(SERVICE) {
            // Whatever its state: a restarting console mounts its layer again any moment.
            if rec.upper.as_deref() == Some(layer.as_path()) {
                return Err(UpError::Conflict(format!(
                    "{} is the console now ({}): switch to another one first",
                    choice.name,
                    rec.state.status.as_str()
                )));
            }
        }
        let dir = layer.clone();
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
        .map_err(|e| refused(format!("reset task: {e}")))?
        .map_err(|e| UpError::Failed {
            name: SERVICE.into(),
            message: format!("removing {}: {e}", layer.display()),
        })?;
        tracing::info!(console = %choice.name, layer = %layer.display(), "console reset");
        Ok(layer.display().to_string())
    }
}

/// The `console` service as configured (the default console), or why it does not check.
pub(super) fn base_spec(config: &Config) -> Result<ServiceSpec, String> {
    let raw = config
        .rancher
        .services
        .get(SERVICE)
        .ok_or("rancher.services.console is missing")?;
    let value = serde_yaml_ng::to_value(raw).map_err(|e| e.to_string())?;
    ServiceSpec::parse(SERVICE, &value).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Whether `file` is written at `since` or later within the services' ready wait.
async fn until_fresh(file: &str, since: std::time::SystemTime) -> bool {
    let t = std::time::Instant::now();
    loop {
        let fresh = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= since);
        if fresh {
            return true;
        }
        if t.elapsed() >= crate::services::spec::READY_WAIT {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether something answers on port 22 of this host (every console shares its network).
async fn serves_ssh() -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 22));
    matches!(
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// `rancher.console: NAME` in the saved configuration.
async fn commit(choice: &Choice) -> Result<(), UpError> {
    // A JSON string is a YAML string: the name is stored as text, whatever it looks like.
    let value = serde_json::to_string(&choice.name).expect("a string serializes");
    let paths = crate::config::ConfigPaths::system();
    tokio::task::spawn_blocking(move || {
        crate::rancherctl::config::set(&paths, "rancher.console", &value)
    })
    .await
    .map_err(|e| refused(format!("config task: {e}")))?
    .map_err(|e| UpError::Failed {
        name: SERVICE.into(),
        message: format!("the configuration was not saved: {e}"),
    })
}

impl SystemServices {
    /// At the end of the boot: say when the console that runs is not the one chosen, and put
    /// the default console in place of a full console that does not run well.
    pub(super) async fn console_fallback(
        &self,
        inner: &mut super::Inner,
        config: &Config,
        problems: &mut Vec<String>,
    ) {
        let Some(spec) = inner.specs.get(SERVICE).cloned() else {
            return;
        };
        match consoles::configured(config) {
            Ok(c) if spec.upper.is_none() => {
                if let Some(image) = c.image {
                    problems.push(format!(
                        "console {}: its image {image} is not in the system engine's store (`system-docker load` it, or `rancherctl console switch {}` to pull it); the default console runs",
                        c.name, c.name
                    ));
                }
                return;
            }
            Err(e) => {
                problems.push(format!("rancher.console: {e}; the default console runs"));
                return;
            }
            Ok(_) => {}
        }
        use crate::engine::manager::Lifecycle;
        let state = self.mgr.get(SERVICE).map(|r| r.state);
        let why = match &state {
            Ok(s) if s.status == Lifecycle::Running && s.restart_count == 0 => {
                if serves_ssh().await {
                    return;
                }
                "port 22 does not answer".to_string()
            }
            Ok(s) if s.restart_count > 0 => format!("it restarted (exit code {})", s.exit_code),
            Ok(s) => format!("it is {} (exit code {})", s.status.as_str(), s.exit_code),
            Err(e) => format!("it has no container: {e}"),
        };
        let base = match base_spec(config) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!(
                    "console {} did not hold ({why}), and the default console's definition does not check: {e}",
                    config.rancher.console.as_deref().unwrap_or_default()
                ));
                return;
            }
        };
        let name = config.rancher.console.clone().unwrap_or_default();
        let _ = self.stop_current(SERVICE, config).await;
        let environment = inner.environment.clone();
        match self.run(&base, &environment, false).await {
            Ok(()) => problems.push(format!(
                "console {name} did not hold ({why}): the default console runs instead"
            )),
            Err(e) => {
                problems.push(format!(
                    "console {name} did not hold ({why}), and the default console did not start: {e}"
                ));
                self.mark(SERVICE, &base.image, "failed", &e);
            }
        }
        self.adopt_spec(inner, &base);
    }
}
