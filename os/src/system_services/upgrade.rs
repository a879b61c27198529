//! `upgrade`: a system service onto another image, with a way back
//! (`rancherctl service upgrade NAME IMAGE`, `POST /rancheros/services/{name}/upgrade`).
//!
//! The new image must be whole in the system engine's store before anything stops (loaded or
//! pulled first: a half-fetched image is never switched to). Then the service's container is
//! recreated on it and watched: it must run, or for a run-once service exit 0, its health check
//! (when the image or service has one) must say healthy, and it must neither exit nor restart
//! for [`STABLE`] (within [`DEADLINE`]). If it does not, the new container goes and the old
//! image (by ID, so a tag moved meanwhile does not matter) runs again, and the configuration is
//! left as it was.
//!
//! Only a healthy switch is kept, in this order: the image is saved to
//! [`super::preload::DIR`] (the state partition: PID 1 loads it at every boot, since the
//! system engine's store lives in RAM), then `rancher.services.NAME.image` is written to the
//! saved configuration. The configuration is the commit: a power cut before it boots the old
//! image, after it the new one, which is then on disk.

use super::up::{configured, UpError};
use super::{lock, SystemServices};
use crate::engine::manager::record::Lifecycle;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the service must run unbroken on the new image.
pub const STABLE: Duration = Duration::from_secs(10);
/// How long past [`STABLE`] it has to get there (a health check's first probes, a slow start).
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Longest stability a caller may ask for.
pub const MAX_STABLE: Duration = Duration::from_secs(600);

/// A switch that held.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Upgraded {
    pub service: String,
    pub image: String,
    pub image_id: String,
    pub previous: String,
    /// Where the image was saved for the next boots.
    pub saved: String,
}

impl SystemServices {
    pub async fn upgrade(
        self: &Arc<Self>,
        name: &str,
        image: &str,
        stable: Duration,
    ) -> Result<Upgraded, UpError> {
        let failed = |message: String| UpError::Failed {
            name: name.to_string(),
            message,
        };
        let (config, spec) = configured(name).await?;
        if name == super::console::SERVICE {
            if let Ok(c) = crate::consoles::configured(&config) {
                if !c.is_default() {
                    return Err(UpError::Conflict(format!(
                        "the console is {} (rancher.console): a service upgrade changes the default console's image; `rancherctl console switch default` first, or switch to the new image as a console",
                        c.name
                    )));
                }
            }
        }
        let store = &self.mgr.store;
        let new = store
            .resolve(image)
            .map_err(|_| UpError::NoImage(name.to_string(), image.to_string()))?;
        let mut inner = self.inner.lock().await;
        self.take_settings(&mut inner, &config);
        let previous = inner
            .specs
            .get(name)
            .cloned()
            .unwrap_or_else(|| spec.clone());
        // The image the service runs now, by ID; without a container, what its spec names.
        let old_image = self
            .mgr
            .get(name)
            .map(|r| r.image_id)
            .unwrap_or_else(|_| previous.image.clone());
        let mut next = spec.clone();
        next.image = image.to_string();
        tracing::info!(service = %name, from = %old_image, to = %image, "service upgrade");
        self.stop_current(name, &config).await?;
        let environment = inner.environment.clone();
        let verdict = match self.run(&next, &environment, false).await {
            Ok(()) => self.watch(name, next.detach, stable).await,
            Err(e) => Err(format!("it did not start: {e}")),
        };
        if let Err(why) = verdict {
            tracing::warn!(service = %name, image = %image, why = %why, "upgrade failed; going back");
            // By its name when the name still means that image (what `ps` shows), else by ID.
            let mut back = previous.clone();
            if store
                .resolve(&previous.image)
                .map(|i| i.id.to_string())
                .ok()
                != Some(old_image.clone())
            {
                back.image = old_image.clone();
            }
            self.stop_current(name, &config).await?;
            let restored = self.run(&back, &environment, false).await;
            self.adopt_spec(&mut inner, &previous);
            let outcome = match restored {
                Ok(()) => format!("back on {}", previous.image),
                Err(e) => {
                    self.mark(name, &previous.image, "failed", &e);
                    format!("and {} did not start again: {e}", previous.image)
                }
            };
            return Err(failed(format!(
                "{image} failed its check ({why}); {outcome}"
            )));
        }
        let saved = super::preload::save(store, &new, image, name).map_err(|e| {
            failed(format!(
                "{image} runs, but saving it failed ({e:#}); the configuration still names {}",
                previous.image
            ))
        })?;
        let key = format!("rancher.services.{name}.image");
        // A JSON string is a YAML string: the reference is stored as text, whatever it looks like.
        let value = serde_json::to_string(image).expect("a string serializes");
        let paths = crate::config::ConfigPaths::system();
        tokio::task::spawn_blocking(move || crate::rancherctl::config::set(&paths, &key, &value))
            .await
            .map_err(|e| failed(format!("config task: {e}")))?
            .map_err(|e| {
                failed(format!(
                    "{image} runs, but the configuration was not saved: {e}"
                ))
            })?;
        self.adopt_spec(&mut inner, &next);
        lock(&self.known).failed.remove(name);
        self.write_status();
        Ok(Upgraded {
            service: name.to_string(),
            image: image.to_string(),
            image_id: new.id.to_string(),
            previous: previous.image,
            saved: saved.display().to_string(),
        })
    }

    /// Wait until the service has been well for `stable`; why not, if it is not by the deadline
    /// or it breaks (exits, restarts, turns unhealthy).
    pub(super) async fn watch(
        &self,
        name: &str,
        detach: bool,
        stable: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        let deadline = start + stable + DEADLINE;
        let mut well_since: Option<(Instant, i32)> = None;
        loop {
            let rec = self
                .mgr
                .get(name)
                .map_err(|e| format!("its container is gone: {e}"))?;
            let st = &rec.state;
            if st.restart_count > 0 {
                return Err(format!("it restarted (exit code {})", st.exit_code));
            }
            match st.status {
                Lifecycle::Exited if !detach && st.exit_code == 0 => return Ok(()),
                Lifecycle::Exited | Lifecycle::Dead | Lifecycle::Restarting => {
                    return Err(format!("it exited with code {}", st.exit_code))
                }
                _ => {}
            }
            let health = st.health.as_ref().map(|h| h.status.as_str());
            if health == Some("unhealthy") {
                return Err("its health check says unhealthy".into());
            }
            let well = st.status == Lifecycle::Running && matches!(health, None | Some("healthy"));
            well_since = match (well, well_since) {
                (false, _) => None,
                (true, Some((t, pid))) if pid == st.pid => Some((t, pid)),
                (true, _) => Some((Instant::now(), st.pid)),
            };
            if let Some((t, _)) = well_since {
                if t.elapsed() >= stable && detach {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not well for {}s within {}s (state {}{})",
                    stable.as_secs(),
                    (stable + DEADLINE).as_secs(),
                    st.status.as_str(),
                    health.map(|h| format!(", {h}")).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
