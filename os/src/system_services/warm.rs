//! The boot's later services prepared while the earlier ones run. Before the configuration is
//! reloaded (after `cloud-init-save`), the services that start only after that reload are
//! known as the configuration saved by the last boot gives them, and in almost every boot the
//! reload changes none of them. Their containers are then made up to the runtime's created
//! state ([`Manager::hold`]: root filesystem, bundle, namespaces, mounts, cgroup; most of a
//! start under TCG) while `network` waits for its lease and `cloud-init-save` runs, one or two
//! at a time, beginning once the first of the earlier services has started, so that they do
//! not slow it down.
//!
//! A prepared container is started only if nothing it was made from changed: the service as
//! the reloaded configuration defines it, the image its name resolves to, the environment
//! values it resolves, the `write_files` entries for it, and every bind source that is not a
//! directory (a file replaced by another is not what the bind holds). Otherwise it is
//! abandoned and the service is created again, as without this; the dependency order of the
//! starts is unchanged (a prepared container's process runs only when everything it waits on
//! has started). Not prepared, so as to change nothing a dependency may still make: a service
//! with a bind source that does not exist yet (its start makes a directory there) or with
//! `volumes_from` (another container's volumes, resolved at creation). A mount made on the host
//! under a bound directory after the preparation is not seen in the container (as for one made
//! after a start).

use super::{container, SystemServices};
use crate::config::write_files::WriteFile;
use crate::engine::manager::{Held, Manager};
use crate::services::{ServiceSpec, Volume};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// Preparations at once. Each runs at a lower priority than the boot's critical path (the
/// shim's nice value), so two fill both vCPUs when that path waits (a DHCP exchange) without
/// taking them from it.
const LANES: usize = 2;

/// A prepared container older than this is made again: its shim kills a container not
/// started within [`crate::engine::shim::START_WITHIN`] (a long datasource wait).
const MAX_AGE: Duration = Duration::from_secs(40);

/// What a service's container is made from, as far as a preparation can go stale.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    spec: ServiceSpec,
    /// The image ID its image's name resolves to.
    image: Option<String>,
    /// The environment as resolved with `rancher.environment`.
    env: Vec<String>,
    /// The `write_files` entries for its container.
    files: Vec<WriteFile>,
    /// Bind sources that are not directories: path, device, inode.
    binds: Vec<(PathBuf, u64, u64)>,
}

impl Made {
    fn now(
        spec: &ServiceSpec,
        image: Option<String>,
        environment: &BTreeMap<String, String>,
        files: &[WriteFile],
    ) -> Made {
        Made {
            image,
            env: container::request(spec, environment).config.env,
            files: files_for(files, &spec.name),
            binds: file_binds(spec),
            spec: spec.clone(),
        }
    }

    /// Why a container made from `self` is not one made from `now` (`None`: it is).
    fn differs(&self, now: &Made) -> Option<&'static str> {
        if self.spec != now.spec {
            Some("the service's definition changed")
        } else if self.image != now.image {
            Some("its image name resolves to another image")
        } else if self.env != now.env {
            Some("its environment changed")
        } else if self.files != now.files {
            Some("its write_files changed")
        } else if self.binds != now.binds {
            Some("a file it binds was replaced")
        } else {
            None
        }
    }
}

/// A service's container prepared, and what it was made from.
pub(super) struct Warm {
    made: Made,
    prepared: Held,
}

/// The preparations of one pass: each service's result as it comes.
#[derive(Default)]
pub(super) struct Preparations {
    pub results: BTreeMap<String, oneshot::Receiver<Option<Warm>>>,
    stop: Option<Arc<(AtomicBool, Notify)>>,
    begun: Arc<Mutex<Begun>>,
}

/// Which preparations of a pass have begun, and whether it stopped beginning them: under one
/// lock, so that one counted as not begun at the stop never begins.
#[derive(Debug, Default)]
struct Begun {
    stopped: bool,
    names: BTreeSet<String>,
}

impl Begun {
    /// Whether `name`'s preparation may begin (counted as begun if so).
    fn begin(&mut self, name: &str) -> bool {
        !self.stopped && self.names.insert(name.to_string())
    }
}

impl Preparations {
    /// Begin no further preparation (those under way end and are kept).
    pub fn stop(&mut self) {
        super::lock(&self.begun).stopped = true;
        if let Some(s) = self.stop.take() {
            s.0.store(true, Ordering::SeqCst);
            s.1.notify_one();
        }
    }

    /// [`Preparations::stop`], and forget the preparations that had not begun: they never
    /// will, and their services are free to be prepared by the next pass (one that waits
    /// there, as `cloud-init-execute` on the console) or made at their start.
    fn stop_and_forget_unbegun(&mut self) {
        self.stop();
        let begun = super::lock(&self.begun);
        self.results.retain(|name, _| begun.names.contains(name));
    }
}

/// The `write_files` entries meant for `name`'s container.
fn files_for(files: &[WriteFile], name: &str) -> Vec<WriteFile> {
    files
        .iter()
        .filter(|f| f.container.as_deref() == Some(name))
        .cloned()
        .collect()
}

/// Device and inode of every bind source of `spec` that exists and is not a directory.
fn file_binds(spec: &ServiceSpec) -> Vec<(PathBuf, u64, u64)> {
    spec.volumes
        .iter()
        .filter_map(|v| match v {
            Volume::Bind { host, .. } => {
                let m = std::fs::metadata(host).ok()?;
                (!m.is_dir()).then(|| (PathBuf::from(host), m.dev(), m.ino()))
            }
            Volume::Anonymous { .. } => None,
        })
        .collect()
}

/// Prepare each of `specs` (in that order, [`LANES`] at a time) once `kick` changes (see
/// `SystemServices::kick`), or not at all when stopped before; nothing for a create-only
/// service, one with `volumes_from`, or one whose container exists already.
/// `specs` in the order to prepare them: first a service with a ready file (its start is
/// followed by the longest wait of the boot, a DHCP lease, which the services after it wait
/// out too), then those that wait on one (they start the moment the file is there), then the
/// rest, each group in the order given (the plan's). `all`: every service, to know which have
/// a ready file.
fn urgent_first(
    mut specs: Vec<ServiceSpec>,
    all: &BTreeMap<String, ServiceSpec>,
) -> Vec<ServiceSpec> {
    let has_file = |n: &str| all.get(n).is_some_and(|s| s.ready_file.is_some());
    specs.sort_by_key(|s| {
        if s.ready_file.is_some() {
            0
        } else if s.after.iter().any(|a| has_file(a)) {
            1
        } else {
            2
        }
    });
    specs
}

fn prepare_all(
    mgr: Arc<Manager>,
    specs: Vec<ServiceSpec>,
    environment: BTreeMap<String, String>,
    files: Vec<WriteFile>,
    mut kick: tokio::sync::watch::Receiver<u64>,
) -> Preparations {
    let stop: Arc<(AtomicBool, Notify)> = Arc::new((AtomicBool::new(false), Notify::new()));
    let begun = Arc::new(Mutex::new(Begun::default()));
    let mut out = Preparations {
        results: BTreeMap::new(),
        stop: Some(stop.clone()),
        begun: begun.clone(),
    };
    let mut jobs = Vec::new();
    for spec in specs {
        if spec.create_only || mgr.find(&spec.name).is_ok() || !spec.volumes_from.is_empty() {
            continue;
        }
        let (tx, rx) = oneshot::channel();
        out.results.insert(spec.name.clone(), rx);
        jobs.push((spec, tx));
    }
    if jobs.is_empty() {
        return out;
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = kick.changed() => {}
            _ = stop.1.notified() => {}
        }
        in_lanes(jobs, LANES, &stop, |(spec, tx)| {
            let (mgr, env, files) = (mgr.clone(), environment.clone(), files.clone());
            let begins = super::lock(&begun).begin(&spec.name);
            async move {
                if !begins {
                    return; // (stopped: its sender dropped, its start reads no preparation)
                }
                let warm = prepare_one(&mgr, spec, &env, &files).await;
                // (A receiver gone: the boot ended; nothing waits for it.)
                if let Err(Some(w)) = tx.send(warm) {
                    let id = w.prepared.id().to_string();
                    mgr.abandon(w.prepared).await;
                    let _ = mgr.remove(&id, true, true).await;
                }
            }
        })
        .await;
    });
    out
}

/// Run `work` on each of `jobs` in order, `lanes` at a time, until `stop` is set: then the jobs
/// not begun are dropped at once (a job holds the sender its service's start waits on, which
/// then reads no preparation and makes the container itself, instead of waiting for the ones
/// under way to end), and those under way are run to their end.
async fn in_lanes<J, F, Fut>(jobs: Vec<J>, lanes: usize, stop: &(AtomicBool, Notify), work: F)
where
    F: Fn(J) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut running = FuturesUnordered::new();
    let mut jobs = Some(jobs.into_iter());
    loop {
        if stop.0.load(Ordering::SeqCst) {
            jobs = None;
        }
        while running.len() < lanes {
            let Some(job) = jobs.as_mut().and_then(Iterator::next) else {
                break;
            };
            running.push(work(job));
        }
        tokio::select! {
            done = running.next() => if done.is_none() {
                break;
            },
            _ = stop.1.notified(), if jobs.is_some() => jobs = None,
        }
    }
}

/// The image ID `spec`'s image name resolves to now.
fn image_id(mgr: &Manager, spec: &ServiceSpec) -> Option<String> {
    mgr.store
        .resolve(&spec.image)
        .ok()
        .map(|i| i.id.to_string())
}

async fn prepare_one(
    mgr: &Arc<Manager>,
    spec: ServiceSpec,
    environment: &BTreeMap<String, String>,
    files: &[WriteFile],
) -> Option<Warm> {
    let name = spec.name.clone();
    let t = std::time::Instant::now();
    // (Looked at now, when the services started so far have made theirs.)
    let missing = spec.volumes.iter().find_map(|v| match v {
        Volume::Bind { host, .. } => (!std::path::Path::new(host).exists()).then_some(host),
        Volume::Anonymous { .. } => None,
    });
    if let Some(host) = missing {
        tracing::info!(service = %name, source = %host, "not prepared: a bind source is not there yet");
        return None;
    }
    let made = Made::now(&spec, image_id(mgr, &spec), environment, files);
    let rec = match mgr.create(container::request(&spec, environment)) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(service = %name, error = %e, "not prepared");
            return None;
        }
    };
    match mgr.hold(&rec.id).await {
        Ok(prepared) => {
            tracing::info!(service = %name, id = %rec.id, ms = t.elapsed().as_millis() as u64, "service prepared");
            Some(Warm { made, prepared })
        }
        Err(e) => {
            // Its start will say it again, as a start.
            tracing::debug!(service = %name, error = %e, "not prepared");
            let _ = mgr.remove(&rec.id, true, true).await;
            None
        }
    }
}

impl SystemServices {
    /// At the start of a pass that starts `batch` (of `todo`, what is not handled yet): take
    /// the last pass's preparations of `batch` for its starts (nothing more of them begins),
    /// and begin this pass's: first the services of `batch` that wait on another of it, then,
    /// when the pass ends in a reload, those after it, as the configuration read so far gives
    /// them.
    pub(super) fn begin_preparations(
        &self,
        inner: &mut super::Inner,
        p: &crate::services::Plan,
        batch: &std::collections::BTreeSet<String>,
        todo: &[String],
        reloading: bool,
    ) {
        inner.prepared.stop_and_forget_unbegun();
        let mut earlier = std::mem::take(&mut inner.prepared);
        let waits = |n: &String| {
            p.waits_on
                .get(n)
                .is_some_and(|d| d.iter().any(|d| batch.contains(d)))
        };
        let mut names: Vec<&String> = p
            .order
            .iter()
            .filter(|n| batch.contains(*n) && waits(n) && !earlier.results.contains_key(*n))
            .collect();
        if reloading {
            names.extend(
                todo.iter()
                    .filter(|n| !batch.contains(*n) && !earlier.results.contains_key(*n)),
            );
        }
        let specs = urgent_first(
            names
                .into_iter()
                .filter_map(|n| inner.specs.get(n).cloned())
                .collect(),
            &inner.specs,
        );
        let files = super::lock(&self.write_files).clone();
        inner.prepared = prepare_all(
            self.mgr.clone(),
            specs,
            inner.environment.clone(),
            files,
            self.kick.subscribe(),
        );
        for name in batch {
            for from in [&mut earlier.results, &mut inner.prepared.results] {
                if let Some(rx) = from.remove(name) {
                    inner.warm.insert(name.clone(), rx);
                }
            }
        }
        for (name, rx) in earlier.results {
            inner.prepared.results.entry(name).or_insert(rx);
        }
    }

    /// Start `spec`'s prepared container when it is still what the service would be now;
    /// otherwise (or without one) create and start it as [`SystemServices::run`] does.
    pub(super) async fn run_warm(
        &self,
        spec: &ServiceSpec,
        environment: &BTreeMap<String, String>,
        wait: bool,
        warm: Option<oneshot::Receiver<Option<Warm>>>,
    ) -> Result<(), String> {
        let warm = match warm {
            Some(rx) => {
                // The preparations may still wait for a first start (every service before
                // this one failed): they begin now.
                self.kick.send_modify(|n| *n += 1);
                self.hurried(&spec.name, rx).await
            }
            None => None,
        };
        if let Some(w) = warm {
            let files = super::lock(&self.write_files).clone();
            let now = Made::now(spec, image_id(&self.mgr, spec), environment, &files);
            let why = match w.made.differs(&now) {
                None if w.prepared.age() > MAX_AGE => Some("prepared too long ago"),
                why => why,
            };
            match why {
                None => match self.start_warm(spec, w.prepared, wait).await {
                    // (Its shim may have given up on it: made again below, as without it.)
                    Err(e) => {
                        tracing::warn!(service = %spec.name, error = %e, "prepared container did not start; made again")
                    }
                    ok => return ok,
                },
                Some(why) => {
                    tracing::info!(service = %spec.name, why, "prepared container not used; made again");
                    self.mgr.abandon(w.prepared).await;
                }
            }
        }
        self.run(spec, environment, wait).await
    }

    /// The preparation `rx` of `name`, which the boot now waits on: one still under way is
    /// brought to the boot's priority (its shim made it at nice 10, and on one vCPU the starts
    /// around it left it so little time that it ended 0.3-0.45 s after the reload).
    async fn hurried(&self, name: &str, mut rx: oneshot::Receiver<Option<Warm>>) -> Option<Warm> {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                r = &mut rx => return r.ok().flatten(),
                _ = tick.tick() => if self.mgr.hurry(name) {
                    return rx.await.ok().flatten();
                },
            }
        }
    }

    async fn start_warm(
        &self,
        spec: &ServiceSpec,
        prepared: Held,
        wait: bool,
    ) -> Result<(), String> {
        super::lock(&self.known).failed.remove(&spec.name);
        let id = prepared.id().to_string();
        let ended = if wait {
            match self
                .mgr
                .wait(&id, crate::engine::manager::WaitCondition::NextExit)
            {
                Ok(e) => Some(e),
                Err(e) => {
                    self.mgr.abandon(prepared).await;
                    return Err(e.to_string());
                }
            }
        } else {
            None
        };
        let since = std::time::SystemTime::now() - std::time::Duration::from_millis(20);
        self.mgr
            .start_held(prepared)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(service = %spec.name, id = %id, "service started (prepared)");
        self.started(spec, &id, ended, since).await;
        Ok(())
    }

    /// Throw away every preparation not used (the services the reload dropped).
    pub(super) async fn drop_preparations(&self, mut p: Preparations) {
        p.stop();
        for (name, rx) in p.results {
            if let Ok(Some(w)) = rx.await {
                tracing::info!(service = %name, "prepared container not used; removed");
                let id = w.prepared.id().to_string();
                self.mgr.abandon(w.prepared).await;
                if let Err(e) = self.mgr.remove(&id, true, true).await {
                    tracing::warn!(service = %name, error = %e, "removing a prepared container");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system_services::lock;

    fn spec(yaml: &str) -> ServiceSpec {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        ServiceSpec::parse("svc", &v).unwrap()
    }

    #[test]
    fn the_service_with_a_ready_file_is_prepared_first_then_those_that_wait_on_it() {
        let named = |name: &str, yaml: &str| {
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
            ServiceSpec::parse(name, &v).unwrap()
        };
        let given = vec![
            named("acpid", "image: b\n"),
            named("console", "image: b\n"),
            named("ntp", "image: b\nlabels:\n  io.rancher.os.after: network\n"),
            named(
                "network",
                "image: b\nlabels:\n  io.rancher.os.readyfile: /run/network/ready\n",
            ),
            named("udev", "image: b\n"),
        ];
        let all: BTreeMap<String, ServiceSpec> =
            given.iter().map(|s| (s.name.clone(), s.clone())).collect();
        let names = |v: Vec<ServiceSpec>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(urgent_first(given.clone(), &all)),
            ["network", "ntp", "acpid", "console", "udev"]
        );
        // The one with the file among the earlier services: its followers still come first.
        let later: Vec<ServiceSpec> = given.into_iter().filter(|s| s.name != "network").collect();
        assert_eq!(
            names(urgent_first(later, &all)),
            ["ntp", "acpid", "console", "udev"]
        );
    }

    fn file(path: &str, container: Option<&str>) -> WriteFile {
        serde_yaml_ng::from_str::<WriteFile>(&format!("path: {path}\ncontent: x\n"))
            .map(|mut f| {
                f.container = container.map(String::from);
                f
            })
            .unwrap()
    }

    const BASE: &str =
        "image: ros/busybox:latest\nenvironment: [FROM_ENV]\nlabels: {io.rancher.os.scope: system}";

    /// A stop drops the jobs not begun at once (their receivers read none), while the one
    /// under way runs to its end; before it, `lanes` run at a time, in order.
    #[tokio::test]
    async fn a_stop_lets_the_jobs_not_begun_go_at_once() {
        let stop = Arc::new((AtomicBool::new(false), Notify::new()));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let begun = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut rxs = Vec::new();
        let mut jobs = Vec::new();
        for i in 0..4 {
            let (tx, rx) = oneshot::channel::<usize>();
            rxs.push(rx);
            jobs.push((i, tx));
        }
        let (s, b) = (stop.clone(), begun.clone());
        let task = tokio::spawn(async move {
            in_lanes(jobs, 1, &s, |(i, tx)| {
                let (mut gate, b) = (gate_rx.clone(), b.clone());
                async move {
                    b.lock().unwrap().push(i);
                    // The first job waits for the gate; the others would end at once.
                    if i == 0 {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    let _ = tx.send(i);
                }
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*begun.lock().unwrap(), vec![0], "one lane");
        stop.0.store(true, Ordering::SeqCst);
        stop.1.notify_one();
        let mut rxs = rxs.into_iter();
        let first = rxs.next().unwrap();
        for rx in rxs {
            let r = tokio::time::timeout(Duration::from_secs(5), rx).await;
            assert!(
                matches!(r, Ok(Err(_))),
                "a job not begun is dropped at once"
            );
        }
        gate_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap(), 0, "the one under way ends");
        task.await.unwrap();
        assert_eq!(*begun.lock().unwrap(), vec![0]);
    }

    /// At a pass's stop, the preparations not begun are forgotten (the next pass may prepare
    /// their services), those begun are kept, and none begins after it.
    #[test]
    fn a_stop_forgets_the_preparations_not_begun_and_no_more_begin() {
        let mut p = Preparations::default();
        let mut senders = Vec::new();
        for name in ["begun", "waiting"] {
            let (tx, rx) = oneshot::channel();
            senders.push(tx);
            p.results.insert(name.to_string(), rx);
        }
        assert!(lock(&p.begun).begin("begun"));
        assert!(!lock(&p.begun).begin("begun"), "once");
        p.stop_and_forget_unbegun();
        assert_eq!(p.results.keys().collect::<Vec<_>>(), ["begun"]);
        assert!(
            !lock(&p.begun).begin("waiting"),
            "nothing begins after the stop"
        );
    }

    #[test]
    fn a_preparation_is_stale_when_anything_it_was_made_from_changed() {
        let env: BTreeMap<String, String> = [("FROM_ENV".into(), "1".into())].into();
        let files = vec![file("/etc/a", Some("svc")), file("/etc/b", Some("other"))];
        let made = Made::now(&spec(BASE), None, &env, &files);
        assert_eq!(made.files.len(), 1, "only the entries for its container");
        assert_eq!(
            made.differs(&Made::now(&spec(BASE), None, &env, &files)),
            None
        );
        // Another service's files, or an environment value it does not use, change nothing.
        let more = [files.clone(), vec![file("/etc/c", None)]].concat();
        let mut env2 = env.clone();
        env2.insert("UNUSED".into(), "x".into());
        assert_eq!(
            made.differs(&Made::now(&spec(BASE), None, &env2, &more)),
            None
        );
        let changed = spec(&format!("{BASE}\ncommand: sleep 1"));
        assert_eq!(
            made.differs(&Made::now(&changed, None, &env, &files)),
            Some("the service's definition changed")
        );
        env2.insert("FROM_ENV".into(), "2".into());
        assert_eq!(
            made.differs(&Made::now(&spec(BASE), None, &env2, &files)),
            Some("its environment changed")
        );
        assert_eq!(
            made.differs(&Made::now(
                &spec(BASE),
                Some("sha256:1".into()),
                &env,
                &files
            )),
            Some("its image name resolves to another image")
        );
        let mine = [files.clone(), vec![file("/etc/c", Some("svc"))]].concat();
        assert_eq!(
            made.differs(&Made::now(&spec(BASE), None, &env, &mine)),
            Some("its write_files changed")
        );
    }

    #[test]
    fn a_bind_source_replaced_by_another_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hosts");
        std::fs::write(&f, "a").unwrap();
        let s = spec(&format!(
            "{BASE}\nvolumes: [\"{}:/etc/hosts:ro\", \"{}:/d\"]",
            f.display(),
            dir.path().display()
        ));
        let env = BTreeMap::new();
        let made = Made::now(&s, None, &env, &[]);
        assert_eq!(
            made.binds.len(),
            1,
            "the directory is not compared: {made:?}"
        );
        // Written in place: the same file, which the bind shows.
        std::fs::write(&f, "b").unwrap();
        assert_eq!(made.differs(&Made::now(&s, None, &env, &[])), None);
        // Replaced (a rename over it): the bind would still show the old one.
        let tmp = dir.path().join("hosts.new");
        std::fs::write(&tmp, "c").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert_eq!(
            made.differs(&Made::now(&s, None, &env, &[])),
            Some("a file it binds was replaced")
        );
    }
}
