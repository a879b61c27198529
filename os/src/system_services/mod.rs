//! The system services: every enabled `rancher.services.<name>` of scope `system`, as a thin
//! layer over the system engine's container manager (`engine::manager`, the same one the user
//! engine runs on). A service is a compose entry ([`crate::services::ServiceSpec`]) turned into a
//! container of that name ([`container::request`]) with its restart policy; the manager owns
//! its life from then on (its shim reaps it, the policy restarts it, stops are deadlines).
//!
//! What the layer adds is what compose and RancherOS add over a container engine:
//! - order: services start after their `io.rancher.os.after`, `before` and `volumes_from`
//!   ([`crate::services::plan`]), each as soon as those have started, several at once; a
//!   run-to-completion service (`io.rancher.os.detach: "false"`) ends before its dependents
//!   start; a service labelled `io.rancher.os.reloadconfig` (`cloud-init-save`) starts with
//!   only what it waits on, then the configuration is read again and applied to the host,
//!   and every other service is taken from it ([`boot`]); the services that do not run at the
//!   end are PID 1's `[ros] degraded`;
//! - `write_files` entries with `container: NAME`, written into that container's root
//!   filesystem before each start (the manager's prepare hook);
//! - `up` (recreate from the configuration now saved: `rancherctl service up`, console
//!   switching) ([`up`]);
//! - `upgrade` onto another image, watched, and back to the old one when it does not hold
//!   ([`upgrade`]; the images kept for the next boots: [`preload`]);
//! - shutdown level by level, in reverse dependency order ([`shutdown`]);
//! - the status file `rancherctl service list` reads ([`status`]).
//!
//! It runs in the system engine's process (`ros dockerd --system`), not in PID 1: PID 1 only
//! starts that process and waits for the boot's services to be up.

mod boot;
mod config_edit;
mod console;
pub mod container;
pub mod preload;
mod shutdown;
pub mod status;
mod up;
mod upgrade;
mod warm;

pub use boot::Booted;
pub use config_edit::{Applied, ConfigView, EditError, REVERT_AFTER};
pub use console::Switched;
pub use status::STATUS_PATH;
pub use up::UpError;
pub use upgrade::{Upgraded, MAX_STABLE, STABLE};

use crate::config::write_files::WriteFile;
use crate::config::Config;
use crate::engine::manager::Manager;
use crate::services::{Scope, ServiceSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The system services of one system engine.
pub struct SystemServices {
    mgr: Arc<Manager>,
    /// Boot, `up` and shutdown one at a time.
    inner: tokio::sync::Mutex<Inner>,
    /// What the status file lists, readable without waiting for a boot or an `up`.
    known: Arc<Mutex<status::Known>>,
    /// The configuration's `write_files`, for the prepare hook.
    write_files: Arc<Mutex<Vec<WriteFile>>>,
    /// The configuration editor's saves, one at a time, and a network change on trial.
    edits: tokio::sync::Mutex<config_edit::Edits>,
    /// The boot's preparations begin when this changes: at the first service started (not
    /// before, to leave the CPU to it), or when a start waits for one (see `warm`).
    kick: tokio::sync::watch::Sender<u64>,
    /// During the boot (`Some`): the services started so far, put last for the CPU until
    /// `[ros] ready`, with the weight each had (`boot::BACKGROUND_WEIGHT`).
    background: Mutex<Option<Vec<(String, u32)>>>,
}

#[derive(Default)]
struct Inner {
    specs: BTreeMap<String, ServiceSpec>,
    /// Services handled, in start order.
    order: Vec<String>,
    /// `rancher.environment`: values for `environment` keys given without one.
    environment: BTreeMap<String, String>,
    /// The boot's preparations under way (see `warm`).
    prepared: warm::Preparations,
    /// Prepared containers of the services this pass starts.
    warm: BTreeMap<String, tokio::sync::oneshot::Receiver<Option<warm::Warm>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SystemServices {
    /// The layer over `mgr`; installs the prepare hook and starts the status writer.
    pub fn new(mgr: Arc<Manager>) -> Arc<SystemServices> {
        let write_files: Arc<Mutex<Vec<WriteFile>>> = Arc::default();
        let files = write_files.clone();
        mgr.set_prepare(Box::new(move |rec, rootfs| {
            let files = lock(&files).clone();
            for problem in crate::cloudinit::write_files::apply(&files, Some(&rec.name), rootfs) {
                crate::console::say(format!("service {}: {problem}", rec.name));
            }
        }));
        let me = Arc::new(SystemServices {
            mgr,
            inner: tokio::sync::Mutex::new(Inner::default()),
            known: Arc::default(),
            write_files,
            edits: Default::default(),
            kick: tokio::sync::watch::Sender::new(0),
            background: Mutex::new(None),
        });
        me.watch_status();
        me
    }

    /// Take `config`'s environment and `write_files`.
    fn take_settings(&self, inner: &mut Inner, config: &Config) {
        inner.environment = environment(config);
        *lock(&self.write_files) = config.write_files.clone();
    }

    /// After a restart of the engine (not a boot): the services are read from the
    /// configuration and the containers the manager found again are theirs; nothing starts
    /// here (their restart policies already did what they do).
    pub async fn adopt(&self, config: &Config) {
        let mut inner = self.inner.lock().await;
        self.take_settings(&mut inner, config);
        let (mut specs, _) = parse_all(config, &|_| false, &|i| self.mgr.store.resolve(i).is_ok());
        // The console that runs, not the one chosen: after a boot's fallback, or an `enable`, the
        // two differ (its writable layer tells them apart).
        if let (Some(spec), Ok(rec)) = (specs.get(console::SERVICE), self.mgr.get(console::SERVICE))
        {
            // (Between two full consoles the chosen one's spec stays: rebuilding another's
            // from its layer's name alone is not worth an engine restart after an `enable`.)
            if spec.upper.is_some() && rec.upper.is_none() {
                if let Ok(base) = console::base_spec(config) {
                    specs.insert(console::SERVICE.to_string(), base);
                }
            }
        }
        let order: Vec<String> = plan_of(&specs).order;
        inner.order = order
            .into_iter()
            .filter(|n| self.mgr.find(n).is_ok())
            .collect();
        {
            let mut k = lock(&self.known);
            k.order = inner.order.clone();
            for n in &inner.order {
                if let Some(s) = specs.get(n) {
                    k.images.insert(n.clone(), s.image.clone());
                }
            }
        }
        inner.specs = specs;
        self.reset_boot_weights(&inner);
        self.write_status();
    }
}

/// Services of the built-in configuration that are off unless their key says so.
pub const OPT_IN: &[&str] = &["ui"];

/// The service that applies `rancher.network`.
pub(crate) const NETWORK: &str = "network";

/// Whether service `name` is to run: not switched off by `rancher.services_include.NAME:
/// false`; an opt-in one ([`OPT_IN`]) only when `rancher.services_include.NAME: true` or its
/// own key (`rancher.ui.enabled`) says so.
pub fn enabled(config: &Config, name: &str) -> bool {
    match config.rancher.services_include.get(name) {
        Some(on) => *on,
        None if name == "ui" => config.rancher.ui.enabled,
        None => !OPT_IN.contains(&name),
    }
}

/// A service that does not check: its name, its image, every problem in it (joined).
type Invalid = (String, String, String);

/// Every system service of `config` not `skip`ped, checked: the good ones, and the others.
/// The `console` service is the console `rancher.console` chooses, when its image is one the
/// store `has_image`.
fn parse_all(
    config: &Config,
    skip: &dyn Fn(&str) -> bool,
    has_image: &dyn Fn(&str) -> bool,
) -> (BTreeMap<String, ServiceSpec>, Vec<Invalid>) {
    let mut specs = BTreeMap::new();
    let mut bad = Vec::new();
    for (name, raw) in &config.rancher.services {
        if skip(name) {
            continue;
        }
        if !enabled(config, name) {
            tracing::info!(service = %name, "not enabled (rancher.services_include, rancher.ui.enabled); not started");
            continue;
        }
        let value = serde_yaml_ng::to_value(raw).unwrap_or_default();
        match ServiceSpec::parse(name, &value) {
            Ok(spec) if spec.scope == Scope::System => {
                let spec = if name == console::SERVICE {
                    console::chosen(config, &spec, has_image)
                } else {
                    spec
                };
                specs.insert(name.clone(), spec);
            }
            Ok(_) => {} // user-scope services belong to the user engine
            Err(errors) => {
                let msg: Vec<String> = errors.iter().map(ToString::to_string).collect();
                bad.push((
                    name.clone(),
                    raw.image.clone().unwrap_or_default(),
                    msg.join("; "),
                ));
            }
        }
    }
    (specs, bad)
}

/// The start plan of `specs`.
fn plan_of(specs: &BTreeMap<String, ServiceSpec>) -> crate::services::Plan {
    let after: BTreeMap<String, Vec<String>> = specs
        .iter()
        .map(|(n, s)| (n.clone(), s.depends_on().map(String::from).collect()))
        .collect();
    let before: BTreeMap<String, Vec<String>> = specs
        .iter()
        .map(|(n, s)| (n.clone(), s.before.clone()))
        .collect();
    crate::services::plan(&after, &before)
}

/// The values of `environment` keys a service lists without one: `rancher.environment`, then
/// the proxies of `rancher.network` (`http_proxy`, `https_proxy`, `no_proxy`) under both
/// spellings programs read (`HTTP_PROXY` and `http_proxy`), unless `rancher.environment`
/// sets them itself, as RancherOS did.
pub fn environment(config: &Config) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> =
        config.rancher.environment.clone().into_iter().collect();
    let net = &config.rancher.network;
    for (key, value) in [
        ("HTTP_PROXY", &net.http_proxy),
        ("HTTPS_PROXY", &net.https_proxy),
        ("NO_PROXY", &net.no_proxy),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            for k in [key.to_string(), key.to_lowercase()] {
                env.entry(k).or_insert_with(|| v.clone());
            }
        }
    }
    env
}

#[cfg(test)]
mod environment_tests {
    #[test]
    fn network_proxies_reach_the_services_environment() {
        let config: crate::config::Config = serde_yaml_ng::from_str(
            "rancher:\n  network:\n    http_proxy: http://proxy:3128\n    no_proxy: localhost\n  environment:\n    NO_PROXY: mine\n",
        )
        .unwrap();
        let env = super::environment(&config);
        assert_eq!(env["HTTP_PROXY"], "http://proxy:3128");
        assert_eq!(env["http_proxy"], "http://proxy:3128");
        assert_eq!(env["NO_PROXY"], "mine");
        assert_eq!(env["no_proxy"], "localhost");
        assert!(!env.contains_key("HTTPS_PROXY"));
    }
}
