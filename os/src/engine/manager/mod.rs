//! The container manager: containers as records with a life cycle, for an engine that is not
//! PID 1 (the user's `ros dockerd`).
//!
//! Why its own module: the system services' life cycle leans on PID 1 (its `waitpid(-1)`
//! reaps every container, their records live in tmpfs); a user engine has neither. Here
//! - a container is a [`Record`] keyed by a random 64-hex id and a unique name, kept in
//!   `<root>/containers/<id>/record.json` (atomic writes), with its log beside it and its
//!   root filesystem (overlay) under it, so it outlives an engine restart and a reboot;
//! - its life is a [`Lifecycle`] and a watch channel that waiters and stoppers follow, with
//!   deadlines, never a blocking wait;
//! - a running container belongs to its shim (`engine::shim`), which reaps it, holds its stdio
//!   and reports its exit code over its socket; the manager keeps one `wait` connection a
//!   running container and hears of every exit that way (or reads `exit.json` when it was not
//!   there to hear it);
//! - every engine instance has its own root, run directory (shims, runtime state, bundles),
//!   cgroup parent, store and volumes ([`Config`]).
//!
//! A file per verb: `create`, `start`, `stop` (stop, kill, restart), `wait`, `remove`, `logs`,
//! `attach` (attach, resize), `exec`, `archive` (`docker cp`), `mounts` (binds and volumes),
//! `pause` (pause, unpause), `top`, `stats`, `weight` (a CPU weight for a while), `restore` (at
//! engine start), `exit` (what happens when a container ends: record, restart policy,
//! auto-remove), `shim_client`.

pub mod archive;
mod attach;
mod create;
mod dns;
pub mod error;
mod exec;
pub mod exit;
mod health;
mod hold;
pub mod id;
pub mod logs;
mod mounts;
mod network;
mod networks;
mod pause;
pub mod record;
mod remove;
mod restore;
mod shim_client;
mod start;
pub mod stats;
mod stop;
mod top;
mod unheard;
mod volumes;
mod wait;
mod weight;

pub use create::CreateRequest;
pub use error::ManagerError;
pub use exec::{ExecConfig, ExecInfo, ExecIo, ExecStarted};
pub use hold::Held;
pub use logs::LogOptions;
pub use network::Endpoint;
pub use networks::{ConnectRequest, CreateNetwork};
pub use record::{Config as ContainerConfig, HostConfig, Lifecycle, MountPoint, Record};
pub use top::TITLES as TOP_TITLES;
pub use wait::WaitCondition;

use crate::engine::store::Store;
use crate::engine::volume::Volumes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

pub type Result<T> = std::result::Result<T, ManagerError>;

/// Where one engine instance keeps what.
#[derive(Debug, Clone)]
pub struct Config {
    /// Records, logs, root filesystems: `<root>/containers/<id>/`; the image store:
    /// `<root>/image`.
    pub root: PathBuf,
    /// Shims' sockets (`<run>/shims/<id>/`), the runtime's state and the bundles (a tmpfs:
    /// none of it outlives a boot).
    pub run: PathBuf,
    /// Every container's cgroup is `<cgroup_parent>/<id>` (`<cgroup_parent>/<name>` with
    /// [`Config::cgroup_by_name`]).
    pub cgroup_parent: String,
    /// The `ros` binary (shims are `ros container-shim`).
    pub exe: PathBuf,
    /// The image store (the user engine's is `<root>/image`).
    pub store: PathBuf,
    /// Plain-text logs, `<log_dir>/<name>.log` (stdout and stderr together, as the system
    /// services have always logged), instead of Docker's json-file log in the container's
    /// directory. Rotation is left to whoever owns the directory (PID 1 for `/var/log`); the
    /// engine's notes on exits and restarts go into the same file and to the console.
    pub log_dir: Option<PathBuf>,
    /// Name each container's cgroup after the container (`/system/ntp`), for an engine whose
    /// containers are known by name (the system services); the leaf used is kept in the record.
    pub cgroup_by_name: bool,
    /// Give every container its own `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` (as
    /// Docker does). The system engine does not: its services bring their own, or share the
    /// host's through their volumes (`/run/resolvconf`), as in RancherOS.
    pub etc_files: bool,
    /// The default bridge (`bridge` network mode); without one a `bridge` container has a
    /// network namespace of its own with loopback only (the system engine's services).
    pub network: Option<crate::engine::network::Bridge>,
}

impl Config {
    /// The user engine's layout under `root`.
    pub fn new(root: PathBuf, run: PathBuf, cgroup_parent: String, exe: PathBuf) -> Config {
        Config {
            store: root.join("image"),
            root,
            run,
            cgroup_parent,
            exe,
            log_dir: None,
            cgroup_by_name: false,
            etc_files: true,
            network: None,
        }
    }
}

/// What an engine may do to a container's root filesystem after it is mounted and before the
/// container is created (the system engine writes `write_files` entries of `container: NAME`).
pub type Prepare = Box<dyn Fn(&Record, &std::path::Path) + Send + Sync>;

/// Something that happened to a container (Docker's event names: create, start, die, destroy,
/// kill, stop, restart, rename, attach, resize…) or to an image (pull, push, tag, untag,
/// delete, load).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `container` or `image` (Docker's event `Type`).
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    pub name: String,
    pub image: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The container's labels (Docker puts them among an event's attributes).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub time: i128,
}

/// How many past events are kept for `GET /events?since=…`.
const HISTORY: usize = 1024;

struct Entry {
    rec: Record,
    /// Bumped at every change of the record; waiters follow it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Attach requests made before the container started: each gets its shim connection at
    /// start.
    pending: Vec<attach::Pending>,
    /// A start, stop or removal is on its way: another one is refused (409) until it is done.
    busy: bool,
}

/// One engine's containers.
pub struct Manager {
    cfg: Config,
    pub store: Store,
    pub volumes: Volumes,
    inner: Mutex<HashMap<String, Entry>>,
    execs: Mutex<HashMap<String, exec::Exec>>,
    events: tokio::sync::broadcast::Sender<Event>,
    history: Mutex<std::collections::VecDeque<Event>>,
    prepare: Mutex<Option<Arc<Prepare>>>,
    /// The userland proxies of the running containers' published ports.
    proxies: Mutex<HashMap<String, crate::engine::network::proxy::Proxy>>,
    /// User-defined networks (`<root>/networks`).
    networks: crate::engine::network::named::Networks,
    /// The embedded DNS servers of the running containers on user-defined networks.
    dns: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Itself, for the tasks it starts from a `&self` (the DNS servers' lookups).
    me: std::sync::Weak<Manager>,
}

impl Manager {
    /// Open (or make) the engine's directories and image store. Containers are read back by
    /// [`Manager::restore`].
    pub fn open(cfg: Config) -> Result<Arc<Manager>> {
        for d in [cfg.root.join("containers"), cfg.run.join("shims")] {
            std::fs::create_dir_all(&d).map_err(|e| ManagerError::io(&d, e))?;
        }
        let store = Store::open(&cfg.store)?;
        let volumes = Volumes::open(cfg.root.join("volumes"))?;
        let (events, _) = tokio::sync::broadcast::channel(256);
        let networks = crate::engine::network::named::Networks::open(cfg.root.join("networks"));
        Ok(Arc::new_cyclic(|me| Manager {
            networks,
            dns: Mutex::new(HashMap::new()),
            me: me.clone(),
            cfg,
            store,
            volumes,
            inner: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            events,
            history: Mutex::new(std::collections::VecDeque::new()),
            prepare: Mutex::new(None),
            proxies: Mutex::new(HashMap::new()),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A container's own directory (record, log, root filesystem).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id)
    }

    /// Where a container's output goes: its json-file log, or `<log_dir>/<name>.log`.
    pub fn log_path(&self, rec: &Record) -> PathBuf {
        match &self.cfg.log_dir {
            Some(d) => d.join(format!("{}.log", rec.name)),
            None => self.dir(&rec.id).join(format!("{}-json.log", rec.id)),
        }
    }

    /// Set what is done to each root filesystem before its container is created.
    pub fn set_prepare(&self, f: Prepare) {
        *self.prepare.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    fn prepare_rootfs(&self, rec: &Record, rootfs: &std::path::Path) {
        let f = self
            .prepare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(f) = f {
            f(rec, rootfs);
        }
    }

    fn shim_dir(&self, id: &str) -> PathBuf {
        self.cfg.run.join("shims").join(id)
    }

    fn runtime_root(&self) -> PathBuf {
        self.cfg.run.join("runtime")
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.cfg.run.join("bundles").join(id)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every change is a whole-record replace: a panic elsewhere leaves no half-change.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The events kept from the past (oldest first, at most [`HISTORY`]), and those to come.
    /// Subscribed before the past is read: an event in both has the same time and is skipped
    /// by a reader that goes on from the last past event's time.
    pub fn subscribe(&self) -> (Vec<Event>, tokio::sync::broadcast::Receiver<Event>) {
        let rx = self.events.subscribe();
        let past = self
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        (past, rx)
    }

    fn emit(&self, rec: &Record, action: &str, exit_code: Option<i32>, signal: Option<i32>) {
        self.publish(Event {
            kind: "container",
            action: action.to_string(),
            id: rec.id.clone(),
            name: rec.name.clone(),
            image: rec.config.image.clone(),
            exit_code,
            signal,
            labels: rec.config.labels.clone(),
            time: record::now(),
        });
    }

    /// An image event: `id` is what Docker's Actor ID says (a reference for pull, push and
    /// load; the image ID for tag, untag and delete), `name` its `name` attribute.
    pub fn emit_image(&self, action: &str, id: &str, name: &str) {
        self.publish(Event {
            kind: "image",
            action: action.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            image: String::new(),
            exit_code: None,
            signal: None,
            labels: Default::default(),
            time: record::now(),
        });
    }

    fn publish(&self, ev: Event) {
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() >= HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.events.send(ev);
    }

    /// The id of the container `name_or_id` names: a full id, a name (`/name` too), or an
    /// unambiguous id prefix.
    pub fn find(&self, name_or_id: &str) -> Result<String> {
        let map = self.lock();
        find_in(&map, name_or_id)
    }

    /// A copy of a container's record.
    pub fn get(&self, name_or_id: &str) -> Result<Record> {
        let map = self.lock();
        let id = find_in(&map, name_or_id)?;
        Ok(map[&id].rec.clone())
    }

    /// Every container's record, newest first.
    pub fn list(&self) -> Vec<Record> {
        let mut v: Vec<Record> = self.lock().values().map(|e| e.rec.clone()).collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.created));
        v
    }

    /// Change a record, save it, and tell its waiters.
    fn update(&self, id: &str, f: impl FnOnce(&mut Record)) -> Result<Record> {
        let mut map = self.lock();
        let e = map
            .get_mut(id)
            .ok_or_else(|| ManagerError::NoSuchContainer(id.to_string()))?;
        f(&mut e.rec);
        let rec = e.rec.clone();
        let dir = self.dir(id);
        let saved = rec.save(&dir);
        e.changed.send_modify(|g| *g += 1);
        drop(map);
        saved.map_err(|err| ManagerError::io(&dir, err))?;
        Ok(rec)
    }

    /// Mark a container busy (start, stop, removal under way) or refuse with 409.
    fn claim(&self, id: &str) -> Result<Record> {
        let mut map = self.lock();
        let e = map
            .get_mut(id)
            .ok_or_else(|| ManagerError::NoSuchContainer(id.to_string()))?;
        if e.busy {
            return Err(ManagerError::Conflict(format!(
                "container {} is being started, stopped or removed; try again",
                e.rec.name
            )));
        }
        e.busy = true;
        Ok(e.rec.clone())
    }

    fn release(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.busy = false;
            // Wakes those waiting for it to be free (`until_idle`).
            e.changed.send_modify(|g| *g += 1);
        }
    }

    /// Wait until no start, stop or removal holds the container (true), or `limit` passed
    /// (false). A stop or a forced removal waits so, rather than failing against a start
    /// its restart policy began a moment before.
    pub(super) async fn until_idle(&self, id: &str, limit: std::time::Duration) -> bool {
        self.until(id, Some(limit), |m| {
            m.lock().get(id).is_none_or(|e| !e.busy)
        })
        .await
    }

    /// Wait, on the container's change channel, until `done` (true; also when the container
    /// is gone) or `limit` passed (false; no limit: for ever).
    pub(super) async fn until(
        &self,
        id: &str,
        limit: Option<std::time::Duration>,
        done: impl Fn(&Manager) -> bool,
    ) -> bool {
        let Some(mut rx) = self.lock().get(id).map(|e| e.changed.subscribe()) else {
            return true;
        };
        let wait = async {
            loop {
                if done(self) || rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match limit {
            Some(l) => tokio::time::timeout(l, wait).await.is_ok(),
            None => {
                wait.await;
                true
            }
        }
    }

    /// Rename (409 when the name is taken).
    pub fn rename(&self, name_or_id: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.trim_start_matches('/');
        if !id::valid_name(new_name) {
            return Err(ManagerError::BadRequest(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let id = self.find(name_or_id)?;
        {
            let map = self.lock();
            if let Some(other) = map.values().find(|e| e.rec.name == new_name) {
                return Err(ManagerError::Conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.rec.id
                )));
            }
        }
        let rec = self.update(&id, |r| r.name = new_name.to_string())?;
        self.emit(&rec, "rename", None, None);
        Ok(())
    }
}

fn find_in(map: &HashMap<String, Entry>, name_or_id: &str) -> Result<String> {
    let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
    if key.is_empty() {
        return Err(ManagerError::NoSuchContainer(name_or_id.to_string()));
    }
    if map.contains_key(key) {
        return Ok(key.to_string());
    }
    if let Some(e) = map.values().find(|e| e.rec.name == key) {
        return Ok(e.rec.id.clone());
    }
    let mut hits = map.keys().filter(|id| id.starts_with(key));
    match (hits.next(), hits.next()) {
        (Some(id), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(ManagerError::Ambiguous(name_or_id.to_string())),
        _ => Err(ManagerError::NoSuchContainer(name_or_id.to_string())),
    }
}
