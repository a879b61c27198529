//! The boot's start of the system services: check, order, start, concurrently: each service as
//! soon as every one it waits on has started (a run-to-completion one: ended), since under TCG
//! a container start is hundreds of milliseconds and a chain of them is the boot. A service that
//! asks for it (`io.rancher.os.reloadconfig`: `cloud-init-save`) is started with only what it
//! waits on; when it has ended the configuration is read again, applied to the host (hostname,
//! console settings, sysctl, `write_files`), and the other services are taken from it, so a
//! datasource can add or change them. A service labelled `io.rancher.os.condition: datasource`
//! (`cloud-init-save`) is skipped, and with it the reload, when no datasource could answer
//! ([`crate::cloudinit::identify`], cloud-init's `ds-identify`). At the end, the services that
//! do not run are named ([`Booted::not_running`]) for PID 1's `ready` or `degraded`.

use super::status::SKIPPED;
use super::{container, lock, parse_all, plan_of, Inner, SystemServices, NETWORK};
use crate::cloudinit::identify::Identified;
use crate::config::Config;
use crate::console::say;
use crate::engine::manager::exit::describe;
use crate::engine::manager::WaitCondition;
use crate::services::spec::Condition;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The CPU weight (cgroup v2 `cpu.weight`; 100 is everyone's) of a service with a ready file
/// from its start until the file is written: the services after it and `[ros] ready` wait on
/// it, while half a dozen others start beside it. Measured (one `rancher.debug` boot each,
/// with [`BACKGROUND_WEIGHT`]): `network`'s lease 205 → 120 ms after its start.
pub(super) const FAVOURED_WEIGHT: u32 = 1000;

/// The CPU weight of each service once started, until `[ros] ready`: what it does then (the
/// user engine's start, the console's, mdev's first scan) is not what ready waits for; the
/// makings, starts and the lease still to come are. Given back before ready is printed.
pub(super) const BACKGROUND_WEIGHT: u32 = 10;

/// The kernel's `cpu.weight` of a cgroup, what a service without `cpu_shares` runs at.
const DEFAULT_WEIGHT: u32 = 100;

/// The end of the boot's start of the services.
#[derive(Debug, Default)]
pub struct Booted {
    /// Every problem met, as said on the console.
    pub problems: Vec<String>,
    /// The services that should run and do not (`name (state: why)`).
    pub not_running: Vec<String>,
}

/// What follows a pass of [`SystemServices::pass`].
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// Every service is handled.
    Done,
    /// A service that asks for it has ended: read the configuration again, then pass again.
    Reload,
    /// That service failed: pass again without a reload.
    Again,
}

/// A service that reads the datasources (`io.rancher.os.reloadconfig`) waits on [`NETWORK`]
/// only when one of them is asked over the network (`needs_network`:
/// [`crate::cloudinit::needs_network`]). With disks only (the default without a
/// `cloud-config-url=`) it runs first, and the network service starts after the reload, as the
/// other services do, with the datasource's `rancher.network` from its first start; the boot's
/// chain is one start and one lease shorter. (RancherOS, too, read such datasources before
/// bringing the network up.) The services whose wait was dropped.
fn local_datasources_first(
    specs: &mut BTreeMap<String, crate::services::spec::ServiceSpec>,
    needs_network: bool,
) -> Vec<String> {
    if needs_network {
        return Vec::new();
    }
    let mut dropped = Vec::new();
    for (name, spec) in specs.iter_mut() {
        if spec.reload_config && spec.after.iter().any(|a| a == NETWORK) {
            spec.after.retain(|a| a != NETWORK);
            dropped.push(name.clone());
        }
    }
    dropped
}

/// How long the boot waits for [`identify_datasources`] (block devices read from PID 1's
/// process: a disk that hangs must not hold the boot); past it the service starts.
const IDENTIFY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a datasource may answer ([`crate::cloudinit::identify`]), for the services labelled
/// `io.rancher.os.condition: datasource`: on a blocking thread, within [`IDENTIFY_WITHIN`].
/// When it cannot tell, the answer is that one may (the service runs, as it always did).
async fn identify_datasources(config: &Config, cmdline: &crate::cmdline::Cmdline) -> Identified {
    let (sources, _) = crate::cloudinit::sources(config);
    let words = cmdline.words().collect::<Vec<_>>().join(" ");
    let look = tokio::task::spawn_blocking(move || {
        crate::cloudinit::identify::here(&sources, &words, std::path::Path::new("/dev"))
    });
    match tokio::time::timeout(IDENTIFY_WITHIN, look).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => Identified::Found(format!("could not look: {e}")),
        Err(_) => Identified::Found(format!(
            "could not tell within {} s",
            IDENTIFY_WITHIN.as_secs()
        )),
    }
}

/// `name` and every service it waits on, directly or not.
fn closure(name: &str, waits_on: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![name.to_string()];
    while let Some(n) = stack.pop() {
        if out.insert(n.clone()) {
            stack.extend(waits_on.get(&n).into_iter().flatten().cloned());
        }
    }
    out
}

impl SystemServices {
    /// After an engine restart (`adopt`): a boot cut short by the engine's end left weights
    /// set; every running service without a `cpu_shares` of its own at one of the boot's
    /// weights gets the kernel's default back.
    pub(super) fn reset_boot_weights(&self, inner: &Inner) {
        for name in &inner.order {
            let own = inner
                .specs
                .get(name)
                .is_some_and(|s| s.cpu_shares.is_some());
            let Ok(rec) = self.mgr.get(name) else {
                continue;
            };
            if own || !rec.state.status.is_running() {
                continue;
            }
            let ours = self
                .mgr
                .cpu_weight(&rec.id)
                .is_some_and(|w| [BACKGROUND_WEIGHT, FAVOURED_WEIGHT].contains(&w));
            if ours {
                self.mgr.set_cpu_weight(&rec.id, DEFAULT_WEIGHT);
            }
        }
    }

    /// Start every service of `config`: the problems met (each also said on the console), and
    /// the services that do not run at the end. Meanwhile each service started goes last for
    /// the CPU ([`BACKGROUND_WEIGHT`]) and one with a ready file first until it is written
    /// ([`FAVOURED_WEIGHT`]); all have their own weight back when this returns.
    pub async fn boot(self: &Arc<Self>, config: Config) -> Booted {
        *lock(&self.background) = Some(Vec::new());
        let booted = self.start_all(config).await;
        // Before `[ros] ready`: every service back to its own weight.
        let background = lock(&self.background).take().unwrap_or_default();
        for (id, weight) in &background {
            self.mgr.set_cpu_weight(id, *weight);
        }
        tracing::info!(
            services = background.len(),
            "the boot's started services back to their CPU weight"
        );
        booted
    }

    async fn start_all(self: &Arc<Self>, mut config: Config) -> Booted {
        let mut inner = self.inner.lock().await;
        let mut problems = Vec::new();
        loop {
            match self.pass(&mut inner, &config, &mut problems).await {
                Pass::Done => break,
                Pass::Again => continue,
                Pass::Reload => {}
            }
            let (new, reload_problems) = tokio::task::spawn_blocking(reload)
                .await
                .unwrap_or_else(|e| (config.clone(), vec![format!("reloading: {e}")]));
            problems.extend(reload_problems);
            self.take_settings(&mut inner, &new);
            // The network service ran before a datasource reached over it was read: what the
            // datasource says of the network applies now, as a saved change would.
            if new.rancher.network != config.rancher.network
                && inner.order.iter().any(|n| n == NETWORK)
            {
                match self.restart_network_service().await {
                    Some(Ok(())) => tracing::info!(
                        service = %NETWORK,
                        "the datasource changed rancher.network: restarted"
                    ),
                    Some(Err(e)) => problems.push(e),
                    None => {}
                }
            }
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
        // (Those of services that did not start are among the preparations' too.)
        let mut unused = std::mem::take(&mut inner.prepared);
        unused.results.append(&mut inner.warm);
        self.drop_preparations(unused).await;
        self.console_fallback(&mut inner, &config, &mut problems)
            .await;
        self.write_status();
        for p in &problems {
            say(format!("service error: {p}"));
        }
        let not_running = self.not_running(&inner);
        Booted {
            problems,
            not_running,
        }
    }

    /// The services handled that do not run now, each as `name (state: why)`: failed,
    /// invalid, ended with an error, or restarting; one that ran once and ended with 0, a
    /// create-only one that was created and one skipped by its condition are as they should be.
    fn not_running(&self, inner: &Inner) -> Vec<String> {
        self.status()
            .into_iter()
            .filter(|st| {
                let fine = match st.state.as_str() {
                    "running" | SKIPPED => true,
                    "created" => inner.specs.get(&st.name).is_some_and(|s| s.create_only),
                    // Run once (waited for or not) and done.
                    "exited" => st.last_exit.as_deref() == Some(&describe(0)),
                    _ => false,
                };
                !fine
            })
            .map(|st| {
                let why = st.error.or(st.last_exit).unwrap_or_default();
                if why.is_empty() {
                    format!("{} ({})", st.name, st.state)
                } else {
                    format!("{} ({}: {why})", st.name, st.state)
                }
            })
            .collect()
    }

    /// One pass: check and order the services not handled yet, start them ([`Pass`] says
    /// what comes next).
    async fn pass(&self, inner: &mut Inner, config: &Config, problems: &mut Vec<String>) -> Pass {
        self.take_settings(inner, config);
        let handled = |inner: &Inner, n: &str| {
            inner.order.iter().any(|o| o == n) || lock(&self.known).failed.contains_key(n)
        };
        let (specs, bad) = {
            let order = inner.order.clone();
            let known = lock(&self.known);
            parse_all(
                config,
                &|n| order.iter().any(|o| o == n) || known.failed.contains_key(n),
                &|i| self.mgr.store.resolve(i).is_ok(),
            )
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
        let cmdline = crate::cmdline::Cmdline::from_proc().unwrap_or_default();
        let conditional: Vec<String> = inner
            .specs
            .iter()
            .filter(|(n, s)| s.condition == Some(Condition::Datasource) && !handled(inner, n))
            .map(|(n, _)| n.clone())
            .collect();
        if !conditional.is_empty() {
            let found = identify_datasources(config, &cmdline).await;
            for name in conditional {
                match &found {
                    Identified::Found(why) => {
                        tracing::info!(service = %name, found = %why, "condition holds: a datasource may answer");
                    }
                    Identified::Nothing(why) => {
                        tracing::info!(service = %name, looked = %why, "condition does not hold: no datasource, skipped");
                        say(format!("service {name} skipped: no datasource ({why})"));
                        let image = image_of(inner, &name);
                        self.mark(&name, &image, SKIPPED, &format!("no datasource: {why}"));
                    }
                }
            }
        }
        let needs_network = crate::cloudinit::needs_network(config, &cmdline);
        for name in local_datasources_first(&mut inner.specs, needs_network) {
            if !handled(inner, &name) {
                tracing::info!(service = %name, "the datasources are disks: not waiting on {NETWORK}");
            }
        }
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
        // This pass: everything not handled yet, or, when a service asks for the configuration
        // to be reloaded, only it and what it waits on (the rest is taken from the configuration
        // as it is after the reload).
        let todo: Vec<String> = p
            .order
            .iter()
            .filter(|n| !handled(inner, n))
            .cloned()
            .collect();
        let reloader = todo.iter().find(|n| {
            inner
                .specs
                .get(*n)
                .is_some_and(|s| s.reload_config && !s.detach && !s.create_only)
        });
        let batch: BTreeSet<String> = match reloader {
            Some(r) => closure(r, &p.waits_on)
                .into_iter()
                .filter(|n| todo.contains(n))
                .collect(),
            None => todo.iter().cloned().collect(),
        };
        let reloader = reloader.cloned();
        self.begin_preparations(inner, &p, &batch, &todo, reloader.is_some());
        let reloaded = self.start_concurrently(inner, &p, batch, problems).await;
        match reloader {
            Some(r) if reloaded.contains(&r) => Pass::Reload,
            Some(_) => Pass::Again,
            None => Pass::Done,
        }
    }

    /// Start `batch`, each service as soon as every one it waits on has started (a
    /// run-to-completion one: ended), several at once. The services that started (and, when
    /// run to completion, ended) without a problem.
    async fn start_concurrently(
        &self,
        inner: &mut Inner,
        p: &crate::services::Plan,
        batch: BTreeSet<String>,
        problems: &mut Vec<String>,
    ) -> BTreeSet<String> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut pending: BTreeMap<String, BTreeSet<String>> = batch
            .iter()
            .map(|n| {
                let deps = p.waits_on.get(n).cloned().unwrap_or_default();
                (n.clone(), deps.intersection(&batch).cloned().collect())
            })
            .collect();
        let mut ok = BTreeSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            // In plan order, so that the console's lines and the status list are the same at
            // every boot when nothing waits.
            let ready: Vec<String> = p
                .order
                .iter()
                .filter(|n| pending.get(*n).is_some_and(BTreeSet::is_empty))
                .cloned()
                .collect();
            for name in ready {
                pending.remove(&name);
                inner.order.push(name.clone());
                let Some(spec) = inner.specs.get(&name).cloned() else {
                    for deps in pending.values_mut() {
                        deps.remove(&name);
                    }
                    continue;
                };
                lock(&self.known).order.push(name.clone());
                lock(&self.known)
                    .images
                    .insert(name.clone(), spec.image.clone());
                let environment = inner.environment.clone();
                let warm = inner.warm.remove(&name);
                running.push(async move {
                    let wait = !spec.detach && !spec.create_only;
                    let result = self.run_warm(&spec, &environment, wait, warm).await;
                    (spec, result)
                });
            }
            let Some((spec, result)) = running.next().await else {
                break;
            };
            match result {
                Ok(()) => {
                    ok.insert(spec.name.clone());
                }
                Err(msg) => {
                    problems.push(format!("service {}: {msg}", spec.name));
                    self.mark(&spec.name, &spec.image, "failed", &msg);
                }
            }
            // A dependency that failed does not hold its dependents back (as before: they
            // start, and say what they miss).
            for deps in pending.values_mut() {
                deps.remove(&spec.name);
            }
        }
        // (A bug in the plan if any: marked failed, so that no later pass tries them forever.)
        for name in pending.keys() {
            tracing::error!(service = %name, "never became ready to start");
            let image = image_of(inner, name);
            self.mark(name, &image, "failed", "never became ready to start");
        }
        ok
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
        // A ready file counts only when written after this start (one left by an earlier run
        // does not; nothing is deleted on the label's word).
        // (Less the kernel's coarse file clock, a few ms behind.)
        let since = std::time::SystemTime::now() - std::time::Duration::from_millis(20);
        self.mgr.start(&rec.id).await.map_err(|e| e.to_string())?;
        tracing::info!(service = %name, id = %rec.id, "service started");
        self.started(spec, &rec.id, ended, since).await;
        Ok(())
    }

    /// After a service's start: the boot's preparations may begin; then wait for a
    /// run-to-completion one to end, or for a ready file written `since` the start.
    pub(super) async fn started(
        &self,
        spec: &crate::services::ServiceSpec,
        id: &str,
        ended: Option<impl std::future::Future<Output = (i32, String)>>,
        since: std::time::SystemTime,
    ) {
        self.kick.send_modify(|n| *n += 1);
        let name = &spec.name;
        if let Some(ended) = ended {
            let (code, _) = ended.await;
            tracing::info!(service = %name, code, "run-to-completion service finished");
        } else if let Some(f) = &spec.ready_file {
            // Others wait on it: it gets the CPU first until then (one with a `cpu_shares` of
            // its own keeps its weight).
            let before = spec
                .cpu_shares
                .is_none()
                .then(|| self.mgr.set_cpu_weight(id, FAVOURED_WEIGHT))
                .flatten();
            self.until_ready(name, id, f, since).await;
            if let Some(weight) = before {
                self.mgr.set_cpu_weight(id, weight);
            }
        } else if spec.cpu_shares.is_none() {
            // Started: what it does next is not what the boot waits for; the makings, starts
            // and leases still to come are.
            let mut background = lock(&self.background);
            if let Some(list) = background.as_mut() {
                if let Some(weight) = self.mgr.set_cpu_weight(id, BACKGROUND_WEIGHT) {
                    list.push((id.to_string(), weight));
                }
            }
        }
    }

    /// Wait until the service's ready file has been written since `since`, its container has
    /// stopped for good (not running, not restarting), or [`READY_WAIT`] has passed (then the
    /// services after it start all the same: said, not failed).
    async fn until_ready(
        &self,
        name: &str,
        id: &str,
        file: &std::path::Path,
        since: std::time::SystemTime,
    ) {
        use crate::engine::manager::Lifecycle;
        use crate::services::spec::READY_WAIT;
        let t = std::time::Instant::now();
        loop {
            let fresh = std::fs::symlink_metadata(file)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= since);
            if fresh {
                tracing::info!(service = %name, waited_ms = t.elapsed().as_millis() as u64, "service ready");
                return;
            }
            let alive = self.mgr.get(id).is_ok_and(|r| {
                matches!(r.state.status, Lifecycle::Running | Lifecycle::Restarting)
            });
            if !alive {
                tracing::warn!(service = %name, "service stopped before it was ready");
                return;
            }
            if t.elapsed() >= READY_WAIT {
                tracing::warn!(service = %name, file = %file.display(), "not ready within {}s; the services after it start anyway", READY_WAIT.as_secs());
                return;
            }
            // Every 5 ms: the boot's last step waits on this file (the network's lease, then
            // ntp, then ready), and a 25 ms poll added 12 ms to it on average; a look is one
            // stat and one record read.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
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

#[cfg(test)]
mod tests {
    use super::{closure, local_datasources_first};
    use crate::services::spec::ServiceSpec;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn a_datasource_reader_waits_on_the_network_only_when_a_datasource_needs_it() {
        let spec = |name: &str, yaml: &str| {
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
            (name.to_string(), ServiceSpec::parse(name, &v).unwrap())
        };
        let specs: BTreeMap<String, ServiceSpec> = [
            spec("network", "image: b\n"),
            spec("ntp", "image: b\nlabels:\n  io.rancher.os.after: network\n"),
            spec(
                "cloud-init-save",
                "image: b\nlabels:\n  io.rancher.os.after: udev, network\n  io.rancher.os.detach: \"false\"\n  io.rancher.os.reloadconfig: \"true\"\n",
            ),
        ]
        .into_iter()
        .collect();
        let mut over_network = specs.clone();
        assert!(local_datasources_first(&mut over_network, true).is_empty());
        assert_eq!(over_network["cloud-init-save"].after, ["udev", "network"]);
        let mut local = specs;
        assert_eq!(
            local_datasources_first(&mut local, false),
            ["cloud-init-save"]
        );
        assert_eq!(
            local["cloud-init-save"].after,
            ["udev"],
            "its other waits stay"
        );
        assert_eq!(local["ntp"].after, ["network"], "not a datasource reader");
    }

    #[test]
    fn a_reloading_service_starts_with_what_it_waits_on_only() {
        let set = |v: &[&str]| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<String>>()
        };
        let waits_on: BTreeMap<String, BTreeSet<String>> = [
            ("syslog", set(&[])),
            ("udev", set(&["syslog"])),
            ("network", set(&["udev"])),
            ("acpid", set(&["udev"])),
            ("cloud-init-save", set(&["network"])),
            ("console", set(&["cloud-init-save"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            closure("cloud-init-save", &waits_on),
            set(&["cloud-init-save", "network", "syslog", "udev"])
        );
        assert_eq!(closure("syslog", &waits_on), set(&["syslog"]));
    }
}
