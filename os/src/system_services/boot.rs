//! The boot's start of the system services: check, order, start; a run-to-completion service
//! is waited for before what comes after it, and after one that asks for it
//! (`io.rancher.os.reloadconfig`: `cloud-init-save`) the configuration is read again, applied
//! to the host (hostname, console settings, sysctl, `write_files`), and the services not
//! started yet are taken from it, so a datasource can add or change them.

use super::{container, lock, parse_all, plan_of, Inner, SystemServices};
use crate::config::Config;
use crate::console::say;
use crate::engine::manager::WaitCondition;
use std::sync::Arc;

impl SystemServices {
    /// Start every service of `config`; the problems met (each also said on the console).
    pub async fn boot(self: &Arc<Self>, mut config: Config) -> Vec<String> {
        let mut inner = self.inner.lock().await;
        let mut problems = Vec::new();
        while self.pass(&mut inner, &config, &mut problems).await {
            let (new, reload_problems) = tokio::task::spawn_blocking(reload)
                .await
                .unwrap_or_else(|e| (config.clone(), vec![format!("reloading: {e}")]));
            problems.extend(reload_problems);
            self.take_settings(&mut inner, &new);
            // Containers already running get their files now; the others when they start.
            for name in inner.order.clone() {
                let Ok(rec) = self.mgr.get(&name) else {
                    continue;
                };
                let rootfs = self.mgr.dir(&rec.id).join("rootfs");
                if rec.state.status.is_running() && rootfs.is_dir() {
                    problems.extend(crate::cloudinit::write_files::apply(
                        &new.write_files,
                        Some(&name),
                        &rootfs,
                    ));
                }
            }
            tracing::info!("configuration reloaded");
            config = new;
        }
        self.write_status();
        for p in &problems {
            say(format!("service error: {p}"));
        }
        problems
    }

    /// One pass: check and order the services not handled yet, start them in order. True when
    /// it stopped after a service that asks for the configuration to be reloaded.
    async fn pass(&self, inner: &mut Inner, config: &Config, problems: &mut Vec<String>) -> bool {
        self.take_settings(inner, config);
        let handled = |inner: &Inner, n: &str| {
            inner.order.iter().any(|o| o == n) || lock(&self.known).failed.contains_key(n)
        };
        let (specs, bad) = {
            let order = inner.order.clone();
            let known = lock(&self.known);
            parse_all(config, &|n| {
                order.iter().any(|o| o == n) || known.failed.contains_key(n)
            })
        };
        for (name, image, msg) in bad {
            problems.push(msg.clone());
            self.mark(&name, &image, "invalid", &msg);
        }
        for spec in specs.values() {
            for w in crate::services::spec::ignored_key_warnings(spec) {
                say(format!("service warning: {w}"));
            }
        }
        // A service the new configuration dropped, and not started yet, is not started.
        let order = inner.order.clone();
        inner.specs.retain(|n, _| order.contains(n));
        inner.specs.extend(specs);
        let p = plan_of(&inner.specs);
        for (svc, dep) in &p.missing {
            if !handled(inner, svc) {
                tracing::warn!(service = %svc, dependency = %dep, "dependency is not a system service; ignored");
            }
        }
        for cycle in &p.cycles {
            if cycle.iter().all(|n| handled(inner, n)) {
                continue;
            }
            let why = format!("in dependency cycle {}", cycle.join(" -> "));
            problems.push(format!("dependency cycle: {}", cycle.join(" -> ")));
            for name in cycle {
                let image = image_of(inner, name);
                self.mark(name, &image, "failed", &why);
            }
        }
        for (svc, on) in &p.blocked {
            if handled(inner, svc) {
                continue;
            }
            problems.push(format!(
                "service {svc}: not started: waits on {on}, in a dependency cycle"
            ));
            let image = image_of(inner, svc);
            self.mark(
                svc,
                &image,
                "failed",
                &format!("waits on {on}, in a dependency cycle"),
            );
        }
        for name in p.order {
            if handled(inner, &name) {
                continue;
            }
            inner.order.push(name.clone());
            let Some(spec) = inner.specs.get(&name).cloned() else {
                continue;
            };
            lock(&self.known).order.push(name.clone());
            lock(&self.known)
                .images
                .insert(name.clone(), spec.image.clone());
            let wait = !spec.detach && !spec.create_only;
            if let Err(msg) = self.run(&spec, &inner.environment, wait).await {
                problems.push(format!("service {name}: {msg}"));
                self.mark(&name, &spec.image, "failed", &msg);
                continue;
            }
            if spec.reload_config && wait {
                return true;
            }
        }
        false
    }

    /// Create the service's container (after removing one left by an earlier run) and start
    /// it; `wait`: until it has ended (a run-to-completion service).
    pub(super) async fn run(
        &self,
        spec: &crate::services::ServiceSpec,
        environment: &std::collections::BTreeMap<String, String>,
        wait: bool,
    ) -> Result<(), String> {
        let name = &spec.name;
        if let Ok(old) = self.mgr.get(name) {
            self.mgr
                .remove(&old.id, true, true)
                .await
                .map_err(|e| format!("removing the old container: {e}"))?;
        }
        lock(&self.known).failed.remove(name);
        container::make_bind_sources(spec)?;
        let rec = self
            .mgr
            .create(container::request(spec, environment))
            .map_err(|e| e.to_string())?;
        if spec.create_only {
            return Ok(());
        }
        // Asked before the start, so a quick exit is not missed.
        let ended = if wait {
            Some(
                self.mgr
                    .wait(&rec.id, WaitCondition::NextExit)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        self.mgr.start(&rec.id).await.map_err(|e| e.to_string())?;
        tracing::info!(service = %name, id = %rec.id, "service started");
        if let Some(ended) = ended {
            let (code, _) = ended.await;
            tracing::info!(service = %name, code, "run-to-completion service finished");
        }
        Ok(())
    }

    /// Record a service that has no container to show for it.
    pub(super) fn mark(&self, name: &str, image: &str, state: &str, why: &str) {
        lock(&self.known).failed.insert(
            name.to_string(),
            (image.to_string(), state.to_string(), why.to_string()),
        );
        self.write_status();
    }
}

fn image_of(inner: &Inner, name: &str) -> String {
    inner
        .specs
        .get(name)
        .map(|s| s.image.clone())
        .unwrap_or_default()
}

/// Read the configuration again (the datasource's layers are saved now) and apply it to the
/// host.
fn reload() -> (Config, Vec<String>) {
    let cmdline = crate::cmdline::Cmdline::from_proc().unwrap_or_default();
    let (new, errors) = crate::config::load_system(&cmdline);
    let mut problems: Vec<String> = errors.iter().map(|e| format!("config: {e}")).collect();
    problems.extend(crate::init::apply_to_host(&new, &cmdline));
    (new, problems)
}
