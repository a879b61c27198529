//! The configuration edited whole, through the system engine's API (the web UI's editor, `ros
//! ui`): what the editor shows (`rancherctl config export`'s tree), a dry run that finds every
//! problem with its line, and the apply.
//!
//! The apply writes only the `rancherctl` layer, atomically, and only when the export it was
//! made from is still the one in force (else 409: two editors never undo each other). Then it
//! applies what a running system can apply at once, as the boot's configuration reload does
//! (hostname, the console's keys and password, sysctl, `write_files`), and restarts `network`
//! when `rancher.network` changed. A network change is on trial: unless confirmed within
//! [`REVERT_AFTER`], the layer it replaced is written back and `network` restarted again, so an
//! edit that cuts the operator off undoes itself (the whole edit: the layer as it was before
//! it). While one waits, other applies are refused (409), so its undoing finds the file as it
//! left it; a file changed meanwhile by `rancherctl config` is left alone, and said so.

use super::SystemServices;
use super::NETWORK;
use crate::config::{atomic, replace, ConfigPaths, Problem};
use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a network change waits for its confirmation.
pub const REVERT_AFTER: Duration = Duration::from_secs(60);
/// The first line of the layer's file (it can be fed back as user data).
const HEADER: &str = "#cloud-config\n";

/// What the editor shows.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigView {
    /// `rancherctl config export` (secrets left out).
    pub text: String,
    /// Names this text: an apply made from another is refused.
    pub version: String,
    /// Seconds left before a network change not confirmed is undone.
    pub revert_in: Option<u64>,
}

/// What an apply (or its dry run) did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// Key paths set or removed.
    pub changed: Vec<String>,
    /// Services restarted to apply them.
    pub restarted: Vec<String>,
    /// Seconds before the change is undone unless confirmed (network changes).
    pub revert_in: Option<u64>,
    /// What could not be applied now (it is saved all the same).
    pub problems: Vec<String>,
}

/// Why an edit was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{} problem(s), nothing applied", .0.len())]
    Invalid(Vec<Problem>),
    #[error("the configuration changed since it was loaded (version {0}): load it again")]
    Stale(String),
    #[error("no change waits for a confirmation")]
    NothingPending,
    #[error("a network change waits for its confirmation ({0} s left): confirm it, or let it be undone, before another change")]
    Pending(u64),
    #[error("{0}")]
    Failed(String),
}

impl EditError {
    pub fn status(&self) -> u16 {
        match self {
            EditError::Invalid(_) => 400,
            EditError::Stale(_) | EditError::Pending(_) => 409,
            EditError::NothingPending => 404,
            EditError::Failed(_) => 500,
        }
    }
}

/// A network change on trial.
pub(super) struct Pending {
    /// Tells this trial from a later one.
    id: u64,
    deadline: Instant,
    /// The layer's file before the change (`None`: there was none).
    before: Option<Vec<u8>>,
    /// What the change wrote (the revert leaves a file changed since alone).
    written: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Edits {
    pending: Option<Pending>,
    next_id: u64,
}

fn loaded(paths: &ConfigPaths) -> crate::config::Loaded {
    let cmdline = crate::cmdline::Cmdline::from_proc().unwrap_or_default();
    crate::config::load_layers(paths, &cmdline)
}

fn view_text(layers: &[crate::config::Layer]) -> Result<String, EditError> {
    let tree = replace::export_view(layers);
    serde_yaml_ng::to_string(&tree)
        .map(|t| format!("{HEADER}{t}"))
        .map_err(|e| EditError::Failed(format!("printing the configuration: {e}")))
}

fn full_text(layers: &[crate::config::Layer]) -> Result<String, EditError> {
    let mut tree = crate::config::merge_layers(layers);
    crate::config::private::hide_private(&mut tree);
    serde_yaml_ng::to_string(&tree)
        .map(|t| format!("{HEADER}{t}"))
        .map_err(|e| EditError::Failed(format!("printing the configuration: {e}")))
}

fn version_of(text: &str) -> String {
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
}

/// The `rancherctl` layer as it is on disk: its raw tree (keys the model dropped included) and
/// its bytes.
fn read_user(paths: &ConfigPaths) -> Result<(Value, Option<Vec<u8>>), EditError> {
    let path = &paths.cloud_config;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Value::Mapping(Mapping::new()), None))
        }
        Err(e) => return Err(EditError::Failed(format!("{}: {e}", path.display()))),
    };
    match serde_yaml_ng::from_slice::<Value>(&bytes) {
        Ok(Value::Null) => Ok((Value::Mapping(Mapping::new()), Some(bytes))),
        Ok(v @ Value::Mapping(_)) => Ok((v, Some(bytes))),
        _ => Err(EditError::Failed(format!(
            "{} does not parse, so it cannot be updated without losing its contents; fix or remove it",
            path.display()
        ))),
    }
}

fn write_user(paths: &ConfigPaths, bytes: Option<&[u8]>) -> Result<(), EditError> {
    let path = &paths.cloud_config;
    let done = match bytes {
        Some(b) => atomic::write_atomic(path, b, 0o600),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    done.map_err(|e| EditError::Failed(format!("writing {}: {e}", path.display())))
}

/// The view, the new layer's bytes and what changed: everything but the writing.
fn plan(
    paths: &ConfigPaths,
    text: &str,
) -> Result<(String, replace::Replaced, Option<Vec<u8>>), EditError> {
    let loaded = loaded(paths);
    let view = view_text(&loaded.layers)?;
    let (raw, bytes) = read_user(paths)?;
    let replaced = replace::replace(&loaded.layers, &raw, text).map_err(EditError::Invalid)?;
    Ok((view, replaced, bytes))
}

fn touches_network(changed: &[String]) -> bool {
    changed
        .iter()
        .any(|k| crate::config::keypath::is_under(k, "rancher.network") || k == "rancher")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EditError> + Send + 'static,
) -> Result<T, EditError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EditError::Failed(format!("config task: {e}")))?
}

impl SystemServices {
    /// What the editor shows now; `full`: with the built-in defaults (read only: an apply
    /// takes the export without them).
    pub async fn config_view(&self, full: bool) -> Result<ConfigView, EditError> {
        let text = blocking(move || {
            let layers = loaded(&ConfigPaths::system()).layers;
            if full {
                full_text(&layers)
            } else {
                view_text(&layers)
            }
        })
        .await?;
        // Not waiting for an apply that restarts the network: its countdown shows next time.
        let revert_in = self
            .edits
            .try_lock()
            .ok()
            .and_then(|e| e.pending.as_ref().map(secs_left));
        Ok(ConfigView {
            version: version_of(&text),
            text,
            revert_in,
        })
    }

    /// Every problem `text` would meet, and what it would change; nothing written.
    pub async fn config_check(&self, text: String) -> Result<Applied, EditError> {
        let (_, replaced, _) = blocking(move || plan(&ConfigPaths::system(), &text)).await?;
        Ok(Applied {
            changed: replaced.changed,
            ..Applied::default()
        })
    }

    /// Save `text` as the configuration (made from the export of `version`) and apply it.
    pub async fn config_apply(
        self: &Arc<Self>,
        text: String,
        version: String,
    ) -> Result<Applied, EditError> {
        let mut edits = self.edits.lock().await;
        // One change on trial at a time: its undoing then finds the file as it left it.
        if let Some(p) = &edits.pending {
            return Err(EditError::Pending(secs_left(p)));
        }
        let paths = ConfigPaths::system();
        let (view, replaced, before) = blocking({
            let paths = paths.clone();
            move || plan(&paths, &text)
        })
        .await?;
        if version_of(&view) != version {
            return Err(EditError::Stale(version));
        }
        let mut applied = Applied {
            changed: replaced.changed.clone(),
            ..Applied::default()
        };
        if replaced.changed.is_empty() {
            return Ok(applied);
        }
        let written = serde_yaml_ng::to_string(&replaced.layer)
            .map(|t| format!("{HEADER}{t}").into_bytes())
            .map_err(|e| EditError::Failed(format!("printing the layer: {e}")))?;
        blocking({
            let (paths, w) = (paths.clone(), written.clone());
            move || write_user(&paths, Some(&w))
        })
        .await?;
        tracing::info!(changed = ?replaced.changed, "config: saved from the editor");
        applied.problems = self.apply_saved().await;
        if touches_network(&replaced.changed) {
            self.restart_network(&mut applied).await;
            edits.next_id += 1;
            let id = edits.next_id;
            edits.pending = Some(Pending {
                id,
                deadline: Instant::now() + REVERT_AFTER,
                before,
                written,
            });
            applied.revert_in = Some(REVERT_AFTER.as_secs());
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REVERT_AFTER).await;
                me.revert(id).await;
            });
        }
        Ok(applied)
    }

    /// Keep the network change on trial.
    pub async fn config_confirm(&self) -> Result<(), EditError> {
        let mut edits = self.edits.lock().await;
        match edits.pending.take() {
            Some(_) => {
                tracing::info!("config: network change confirmed");
                Ok(())
            }
            None => Err(EditError::NothingPending),
        }
    }

    /// Undo trial `id` if it is still waiting.
    async fn revert(self: &Arc<Self>, id: u64) {
        let mut edits = self.edits.lock().await;
        if edits.pending.as_ref().is_none_or(|p| p.id != id) {
            return;
        }
        let Some(p) = edits.pending.take() else {
            return;
        };
        let paths = ConfigPaths::system();
        let now = std::fs::read(&paths.cloud_config).ok();
        if now.as_deref() != Some(&p.written[..]) {
            crate::console::say(
                "config: the network change was not confirmed, but the configuration changed since: left as it is",
            );
            return;
        }
        if let Err(e) = write_user(&paths, p.before.as_deref()) {
            crate::console::say(format!(
                "config: undoing the network change not confirmed: {e}"
            ));
            return;
        }
        crate::console::say(format!(
            "config: the network change was not confirmed within {} s: undone",
            REVERT_AFTER.as_secs()
        ));
        let mut applied = Applied {
            problems: self.apply_saved().await,
            ..Applied::default()
        };
        self.restart_network(&mut applied).await;
        for p in applied.problems {
            crate::console::say(format!("config: {p}"));
        }
    }

    /// Apply the saved configuration to the host, as the boot's reload does.
    async fn apply_saved(&self) -> Vec<String> {
        let done = tokio::task::spawn_blocking(|| {
            let cmdline = crate::cmdline::Cmdline::from_proc().unwrap_or_default();
            let (config, errors) = crate::config::load_system(&cmdline);
            let mut problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            problems.extend(crate::init::apply_to_host(&config, &cmdline));
            (config, problems)
        })
        .await;
        match done {
            Ok((config, problems)) => {
                *super::lock(&self.write_files) = config.write_files.clone();
                problems
            }
            Err(e) => vec![format!("applying: {e}")],
        }
    }

    async fn restart_network(&self, applied: &mut Applied) {
        match self.restart_network_service().await {
            Some(Ok(())) => applied.restarted.push(NETWORK.into()),
            Some(Err(e)) => applied.problems.push(e),
            None => {}
        }
    }

    /// Restart the network service so that it applies `rancher.network` as it is now (a saved
    /// change, or a datasource's at the boot's reload); `None` when it has no container.
    pub(super) async fn restart_network_service(&self) -> Option<Result<(), String>> {
        self.mgr.find(NETWORK).ok()?;
        let mgr = self.mgr.clone();
        Some(
            match tokio::spawn(async move { mgr.restart(NETWORK, None).await }).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("restarting {NETWORK}: {e}")),
                Err(e) => Err(format!("restarting {NETWORK}: {e}")),
            },
        )
    }
}

fn secs_left(p: &Pending) -> u64 {
    p.deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
}
