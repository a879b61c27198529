//! System services in PID 1: every enabled `rancher.services.<name>` of scope `system` runs as a
//! container of the system engine. At boot the images shipped in the initrd are loaded into the
//! store, the services are checked ([`crate::services::ServiceSpec`]), ordered, and started; a
//! run-to-completion service (`io.rancher.os.detach: "false"`) finishes before its dependents
//! start. Afterwards the supervisor hands every reaped pid to [`SystemServices::on_exit`], which
//! restarts by policy with backoff. Stops are deadlines, never waits ([`stop`]); at shutdown
//! services stop level by level in reverse dependency order.
//!
//! The state of every service is written to [`STATUS_PATH`] (atomically) for `rancherctl
//! service list`.

use crate::config::Config;
use crate::console::say;
use crate::engine::runtime::{BindMount, ContainerSpec, Limits, Namespace, Runtime};
use crate::engine::store::{LoadOptions, Store};
use crate::services::{plan, Backoff, NsMode, Scope, ServiceSpec, Volume};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

mod stop;
pub use stop::deadline;

/// The system engine's image store.
pub const STORE_ROOT: &str = "/var/lib/system-docker";
/// The images shipped in the initrd (an OCI layout).
pub const INITRD_IMAGES: &str = "/usr/share/ros/images";
/// Per-container root filesystems (overlay mounts).
const CONTAINERS: &str = "/run/system-docker/containers";
/// The os binary on the host, bound into `init: true` containers as their init.
const OS_BINARY: &str = "/usr/bin/ros";
/// Service status, for `rancherctl service list`.
pub const STATUS_PATH: &str = "/run/system-docker/services.json";

/// One service's life so far.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub image: String,
    /// `running`, `exited`, `restarting`, `failed`, `created`, `invalid`.
    pub state: String,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub error: Option<String>,
    #[serde(skip)]
    started: Option<Instant>,
    #[serde(skip)]
    restart_at: Option<Instant>,
    #[serde(skip)]
    backoff_count: u32,
    /// Stopped through the API (`docker stop`): the restart policy leaves it alone until it is
    /// started again.
    #[serde(skip)]
    user_stopped: bool,
    /// A stop (or restart) in progress.
    #[serde(skip)]
    stopping: Option<stop::Stopping>,
    /// What a stop sends first (`stop_signal`, the image's `StopSignal`, or SIGTERM).
    #[serde(skip)]
    stop_signal: Option<nix::sys::signal::Signal>,
    /// What the control API shows (`docker inspect`).
    #[serde(skip)]
    created: Option<SystemTime>,
    #[serde(skip)]
    started_at: Option<SystemTime>,
    #[serde(skip)]
    finished_at: Option<SystemTime>,
    #[serde(skip)]
    exit_code: Option<i32>,
    #[serde(skip)]
    image_id: String,
    #[serde(skip)]
    args: Vec<String>,
    #[serde(skip)]
    env: Vec<String>,
}

impl ServiceStatus {
    fn new(name: &str, image: &str, state: &str) -> Self {
        ServiceStatus {
            name: name.into(),
            image: image.into(),
            state: state.into(),
            pid: None,
            restarts: 0,
            last_exit: None,
            error: None,
            started: None,
            restart_at: None,
            backoff_count: 0,
            user_stopped: false,
            stopping: None,
            stop_signal: None,
            created: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            image_id: String::new(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// The system services and their supervisor state.
#[derive(Default)]
pub struct SystemServices {
    store: Option<Store>,
    runtime: Runtime,
    specs: BTreeMap<String, ServiceSpec>,
    order: Vec<String>,
    status: BTreeMap<String, ServiceStatus>,
    environment: BTreeMap<String, String>,
    backoff: Backoff,
    stopping: bool,
    /// `write_files` of the configuration; those with `container: NAME` are written into that
    /// container's root filesystem when it starts.
    write_files: Vec<crate::config::write_files::WriteFile>,
    /// Boot is over: a run-to-completion service is no longer waited for in place (that would
    /// stall the supervisor loop, which reaps and serves the API); its exit is seen by
    /// [`SystemServices::on_exit`] like any other.
    booted: bool,
    /// Stop tickets done, with their outcome, for the control API to answer.
    completed: Vec<(u64, Result<(), ServiceOpError>)>,
    /// Services whose next start makes a new root filesystem (`up`), not the boot's.
    recreate: std::collections::BTreeSet<String>,
    /// Each started service's volumes (binds and its own anonymous ones), for `volumes_from`.
    volumes: BTreeMap<String, Vec<BindMount>>,
}

impl SystemServices {
    /// Boot step: open the store and load the initrd's images into it.
    pub fn load_images(&mut self) -> anyhow::Result<()> {
        let store = Store::open(STORE_ROOT).with_context(|| format!("opening {STORE_ROOT}"))?;
        let loaded = store
            .load(Path::new(INITRD_IMAGES), &LoadOptions::default())
            .with_context(|| format!("loading {INITRD_IMAGES}"))?;
        for l in &loaded {
            tracing::debug!(image = ?l.image.names, unpacked = l.layers_unpacked, reused = l.layers_reused, "image loaded");
        }
        self.store = Some(store);
        Ok(())
    }

    /// The unpacked layers of `image`, top-most first (for tools run straight from an image).
    pub fn image_layers(&self, image: &str) -> anyhow::Result<Vec<PathBuf>> {
        let store = self
            .store
            .as_ref()
            .context("no image store (system-images failed)")?;
        let img = store
            .resolve(image)
            .with_context(|| format!("image {image}"))?;
        Ok(store.lower_dirs(&img)?)
    }

    /// Boot step: check, order and start every system service. After every run-to-completion
    /// service labelled `io.rancher.os.reloadconfig` (`cloud-init-save`), `reload` loads the
    /// configuration again and applies it to the host (hostname, `write_files`), and the
    /// services not started yet are checked and ordered again from it, so a datasource can add
    /// or change them. Returns the outcome and the configuration the boot ended with.
    pub fn start_all(
        &mut self,
        mut config: Config,
        reload: &mut dyn FnMut() -> (Config, Vec<String>),
    ) -> (anyhow::Result<()>, Config) {
        let mut problems = Vec::new();
        while self.start_pass(&config, &mut problems) {
            let (new, reload_problems) = reload();
            problems.extend(reload_problems);
            // Containers already running get their files now; the others when they start.
            for name in self.order.clone() {
                let rootfs = Path::new(CONTAINERS).join(&name).join("rootfs");
                if self.is_running(&name) && rootfs.is_dir() {
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
        self.booted = true;
        self.write_status();
        for p in &problems {
            say(format!("service error: {p}"));
        }
        let result = if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{} problem(s); the other services run",
                problems.len()
            ))
        };
        (result, config)
    }

    /// Whether `name` was already handled (started, or reported) in an earlier pass.
    fn handled(&self, name: &str) -> bool {
        self.order.iter().any(|n| n == name) || self.status.contains_key(name)
    }

    /// One pass: check and order the services not handled yet, start them in order. True when
    /// it stopped after a service that asks for the configuration to be reloaded.
    fn start_pass(&mut self, config: &Config, problems: &mut Vec<String>) -> bool {
        self.environment = config.rancher.environment.clone().into_iter().collect();
        self.write_files = config.write_files.clone();
        for (name, raw) in &config.rancher.services {
            if self.handled(name) {
                continue;
            }
            if config.rancher.services_include.get(name) == Some(&false) {
                tracing::info!(service = %name, "disabled by rancher.services_include; not started");
                continue;
            }
            let value = serde_yaml_ng::to_value(raw).unwrap_or_default();
            match ServiceSpec::parse(name, &value) {
                Ok(spec) if spec.scope == Scope::System => {
                    for w in crate::services::spec::ignored_key_warnings(&spec) {
                        say(format!("service warning: {w}"));
                    }
                    self.specs.insert(name.clone(), spec);
                }
                Ok(_) => {} // user-scope services belong to the user engine
                Err(errors) => {
                    let msg: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    let mut st =
                        ServiceStatus::new(name, raw.image.as_deref().unwrap_or(""), "invalid");
                    st.error = Some(msg.join("; "));
                    self.status.insert(name.clone(), st);
                    problems.extend(msg);
                }
            }
        }
        // A service the new configuration dropped, and not started yet, is not started.
        let handled: Vec<String> = self.order.clone();
        self.specs
            .retain(|n, _| handled.contains(n) || config.rancher.services.contains_key(n));
        let after: BTreeMap<String, Vec<String>> = self
            .specs
            .iter()
            .map(|(n, s)| (n.clone(), s.depends_on().map(String::from).collect()))
            .collect();
        let before: BTreeMap<String, Vec<String>> = self
            .specs
            .iter()
            .map(|(n, s)| (n.clone(), s.before.clone()))
            .collect();
        let p = plan(&after, &before);
        for (svc, dep) in &p.missing {
            if !self.handled(svc) {
                tracing::warn!(service = %svc, dependency = %dep, "dependency is not a system service; ignored");
            }
        }
        for cycle in &p.cycles {
            if cycle.iter().all(|n| self.handled(n)) {
                continue;
            }
            problems.push(format!("dependency cycle: {}", cycle.join(" -> ")));
            for name in cycle {
                self.mark_failed(name, &format!("in dependency cycle {}", cycle.join(" -> ")));
            }
        }
        for (svc, on) in &p.blocked {
            if self.handled(svc) {
                continue;
            }
            problems.push(format!(
                "service {svc}: not started: waits on {on}, in a dependency cycle"
            ));
            self.mark_failed(svc, &format!("waits on {on}, in a dependency cycle"));
        }
        for name in p.order {
            if self.handled(&name) {
                continue;
            }
            self.order.push(name.clone());
            if let Err(e) = self.start(&name) {
                let msg = format!("{e:#}");
                problems.push(format!("service {name}: {msg}"));
                self.mark_failed(&name, &msg);
                continue;
            }
            let reload = self
                .specs
                .get(&name)
                .is_some_and(|s| s.reload_config && !s.detach && !s.create_only);
            if reload {
                return true;
            }
        }
        false
    }

    fn mark_failed(&mut self, name: &str, why: &str) {
        let image = self
            .specs
            .get(name)
            .map(|s| s.image.clone())
            .unwrap_or_default();
        let st = self
            .status
            .entry(name.to_string())
            .or_insert_with(|| ServiceStatus::new(name, &image, "failed"));
        st.state = "failed".into();
        st.error = Some(why.to_string());
    }

    /// Start (or restart) one service.
    fn start(&mut self, name: &str) -> anyhow::Result<()> {
        let spec = self.specs.get(name).context("unknown service")?.clone();
        let store = self
            .store
            .as_ref()
            .context("no image store (system-images failed)")?;
        let image = store
            .resolve(&spec.image)
            .with_context(|| format!("image {}", spec.image))?;
        let lowers = store.lower_dirs(&image)?;
        let img = store.image_config(&image)?;
        if self.recreate.remove(name) {
            discard_rootfs(name)?;
        }
        let rootfs = mount_rootfs(name, &lowers, !spec.privileged)?;
        for problem in crate::cloudinit::write_files::apply(&self.write_files, Some(name), &rootfs)
        {
            say(format!("service {name}: {problem}"));
        }
        let mut args: Vec<String> = spec.entrypoint.clone().unwrap_or(img.entrypoint.clone());
        let cmd = match (&spec.command, &spec.entrypoint) {
            (Some(c), _) => c.clone(),
            (None, Some(_)) => Vec::new(),
            (None, None) => img.cmd.clone(),
        };
        args.extend(cmd);
        let mut env = img.env.clone();
        for (k, v) in &spec.environment {
            match v.clone().or_else(|| self.environment.get(k).cloned()) {
                Some(v) => env.push(format!("{k}={v}")),
                None => tracing::debug!(service = name, key = %k, "environment key has no value"),
            }
        }
        let mut c = ContainerSpec::new(name, &rootfs, args);
        // The kernel command line without PID 1's arguments (after `--`), when it had some.
        if Path::new(crate::cmdline::SANITIZED_PATH).exists() {
            c.binds.push(BindMount {
                source: crate::cmdline::SANITIZED_PATH.into(),
                destination: "/proc/cmdline".into(),
                read_only: true,
            });
        }
        c.env = env;
        if let Some(w) = spec.working_dir.clone().or(img.working_dir.clone()) {
            c.cwd = PathBuf::from(w);
        }
        for (mode, ns) in [
            (spec.net, Namespace::Net),
            (spec.pid, Namespace::Pid),
            (spec.ipc, Namespace::Ipc),
            (spec.uts, Namespace::Uts),
        ] {
            if mode == NsMode::Host {
                c.host_namespaces.insert(ns);
            }
        }
        c.privileged = spec.privileged;
        c.cap_add = spec.cap_add.clone();
        c.cap_drop = spec.cap_drop.clone();
        c.devices = spec.devices.clone();
        c.device_rules = spec.device_rules.clone();
        c.seccomp = !spec.seccomp_unconfined;
        c.read_only_rootfs = spec.read_only;
        if let Some(u) = spec.user.clone().or(img.user.clone()) {
            let (uid, gid) = crate::cloudinit::write_files::user_ids(&rootfs, &u)
                .map_err(|e| anyhow::anyhow!("user {u:?}: {e}"))?;
            c.user = Some((uid, gid));
        }
        let stop_signal = match spec.stop_signal.as_deref().or(img.stop_signal.as_deref()) {
            Some(s) => Some(
                crate::services::spec::parse_signal(s)
                    .map_err(|e| anyhow::anyhow!("stop_signal: {e}"))?,
            ),
            None => None,
        };
        let volumes = self.volume_mounts(name, &spec, &img.volumes, &rootfs)?;
        c.binds.extend(volumes.iter().cloned());
        self.volumes.insert(name.to_string(), volumes);
        c.limits = Limits {
            memory_bytes: spec.mem_limit.map(|m| m as i64),
            cpus: spec.cpus,
            cpu_shares: spec.cpu_shares,
            pids: spec.pids_limit.map(|p| p as i64),
        };
        let log = PathBuf::from(format!("/var/log/{name}.log"));
        std::fs::create_dir_all("/var/log").ok();
        c.stdout = Some(log.clone());
        c.stderr = Some(log);
        // A leftover from a previous run of this service is cleaned away first (only when there
        // is one: each runtime call is a helper process, and boot time counts).
        if self.runtime.root().join("state").join(name).exists() {
            let _ = self.runtime.delete(name, true);
        }
        let (args, env) = (c.args.clone(), c.env.clone());
        if spec.init {
            // `init: true`: our own binary as the container's PID 1 (crate::containerinit).
            c.binds.push(BindMount {
                source: OS_BINARY.into(),
                destination: crate::containerinit::PATH.into(),
                read_only: true,
            });
            c.args = [crate::containerinit::PATH.to_string(), "--".to_string()]
                .into_iter()
                .chain(args.iter().cloned())
                .collect();
        }
        let st = if spec.create_only {
            self.runtime.create(&c)?
        } else {
            self.runtime.run(&c)?
        };
        let entry = self
            .status
            .entry(name.to_string())
            .or_insert_with(|| ServiceStatus::new(name, &spec.image, "running"));
        entry.image.clone_from(&spec.image);
        entry.image_id = image.id.to_string();
        entry.stop_signal = stop_signal;
        entry.args = args;
        entry.env = env;
        entry.created.get_or_insert_with(SystemTime::now);
        entry.started_at = Some(SystemTime::now());
        entry.user_stopped = false;
        entry.pid = st.pid;
        entry.started = Some(Instant::now());
        entry.restart_at = None;
        entry.error = None;
        entry.state = if spec.create_only {
            "created"
        } else {
            "running"
        }
        .into();
        tracing::info!(service = name, pid = ?st.pid, "service started");
        if !spec.detach && !spec.create_only && !self.booted {
            if let Some(pid) = st.pid {
                let code = wait_for(pid);
                self.finished(name, code);
            }
        }
        Ok(())
    }

    /// A run-to-completion service ended at boot.
    fn finished(&mut self, name: &str, code: Option<i32>) {
        let _ = self.runtime.delete(name, true);
        if let Some(st) = self.status.get_mut(name) {
            st.pid = None;
            st.state = "exited".into();
            st.last_exit = Some(describe(code));
            st.finished_at = Some(SystemTime::now());
            st.exit_code = code;
        }
        tracing::info!(service = name, exit = ?code, "run-to-completion service finished");
    }

    /// The supervisor reaped `pid` with `code` (None: killed by a signal). True when it was a
    /// service's.
    pub fn on_exit(&mut self, pid: i32, code: Option<i32>) -> bool {
        let Some(name) = self
            .status
            .values()
            .find(|s| s.pid == Some(pid))
            .map(|s| s.name.clone())
        else {
            return false;
        };
        if self.status.get(&name).is_some_and(|s| s.stopping.is_some()) {
            self.stop_finished(&name, code);
            return true;
        }
        let _ = self.runtime.delete(&name, true);
        let spec = self.specs.get(&name).cloned();
        let Some(st) = self.status.get_mut(&name) else {
            return true;
        };
        st.pid = None;
        st.last_exit = Some(describe(code));
        st.finished_at = Some(SystemTime::now());
        st.exit_code = code.or(Some(137));
        let wants = !self.stopping
            && !st.user_stopped
            && spec.is_some_and(|s| s.restart.wants_restart(code));
        if wants {
            let ran = st.started.map(|t| t.elapsed()).unwrap_or_default();
            let (delay, n) = self.backoff.next(st.backoff_count, ran);
            st.backoff_count = n;
            st.restart_at = Some(Instant::now() + delay);
            st.state = "restarting".into();
            let note = format!(
                "service {name} exited ({}); restarting in {}ms",
                describe(code),
                delay.as_millis()
            );
            append_log(&name, &note);
            say(note);
        } else {
            st.state = "exited".into();
            tracing::info!(service = %name, exit = ?code, "service exited");
        }
        self.write_status();
        true
    }

    /// Whether service `name` is running now.
    pub fn is_running(&self, name: &str) -> bool {
        self.status
            .get(name)
            .is_some_and(|s| s.state == "running" && s.pid.is_some())
    }

    /// When the next restart or stop deadline is due.
    pub fn next_due(&self) -> Option<Instant> {
        let restart = self.status.values().filter_map(|s| s.restart_at).min();
        [restart, self.next_stop_due()].into_iter().flatten().min()
    }

    /// Act on stop deadlines that have passed, and restart every service whose time has come.
    pub fn due(&mut self) {
        self.stop_deadlines();
        let now = Instant::now();
        let due: Vec<String> = self
            .status
            .values()
            .filter(|s| s.restart_at.is_some_and(|t| t <= now))
            .map(|s| s.name.clone())
            .collect();
        for name in due {
            if let Some(st) = self.status.get_mut(&name) {
                st.restarts += 1;
                st.restart_at = None;
            }
            if let Err(e) = self.start(&name) {
                let msg = format!("{e:#}");
                say(format!("service {name}: restart failed: {msg}"));
                self.mark_failed(&name, &msg);
                // Try again later, with the backoff growing.
                if let Some(st) = self.status.get_mut(&name) {
                    let (delay, n) = self.backoff.next(st.backoff_count, Duration::ZERO);
                    st.backoff_count = n;
                    st.restart_at = Some(Instant::now() + delay);
                }
            }
        }
        self.write_status();
    }

    /// `docker start`: start a stopped service (a no-op when it runs).
    pub fn start_service(&mut self, name: &str) -> Result<(), ServiceOpError> {
        if !self.specs.contains_key(name) {
            return Err(ServiceOpError::NotFound(name.to_string()));
        }
        if self.status.get(name).is_some_and(|s| s.pid.is_some()) {
            return Ok(());
        }
        if let Some(st) = self.status.get_mut(name) {
            st.restart_at = None;
            st.backoff_count = 0;
        }
        let result = self.start(name).map_err(|e| {
            let msg = format!("{e:#}");
            self.mark_failed(name, &msg);
            ServiceOpError::Start {
                name: name.to_string(),
                message: msg,
            }
        });
        self.write_status();
        result
    }

    /// `rancherctl service up NAME`: take the service's definition from `config` (the
    /// configuration now on disk), and (re)create it with it.
    pub fn up(
        &mut self,
        name: &str,
        config: &Config,
        timeout: Duration,
        ticket: u64,
    ) -> Result<(), ServiceOpError> {
        let raw = config
            .rancher
            .services
            .get(name)
            .ok_or_else(|| ServiceOpError::NotFound(name.to_string()))?;
        let value = serde_yaml_ng::to_value(raw).unwrap_or_default();
        let spec = ServiceSpec::parse(name, &value).map_err(|errors| ServiceOpError::Invalid {
            name: name.to_string(),
            message: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        if spec.scope != Scope::System {
            return Err(ServiceOpError::Invalid {
                name: name.to_string(),
                message: "not a system service (io.rancher.os.scope)".into(),
            });
        }
        self.environment = config.rancher.environment.clone().into_iter().collect();
        self.specs.insert(name.to_string(), spec);
        if !self.order.iter().any(|n| n == name) {
            self.order.push(name.to_string());
        }
        // A new container: a fresh root filesystem on the (maybe new) image's layers.
        self.recreate.insert(name.to_string());
        if !self.status.contains_key(name) {
            let result = self.start_service(name);
            self.completed.push((ticket, result));
            return Ok(());
        }
        self.begin_stop(name, timeout, true, ticket)
    }

    /// Run `spec` inside service `name`'s container: a `container-helper exec` process joins
    /// its namespaces and cgroup. Returns the helper's pid (the supervisor reaps it), its stdin
    /// pipe when asked for, and its stdout and stderr pipes.
    pub fn exec(
        &self,
        name: &str,
        spec: &crate::engine::api::ExecSpec,
    ) -> Result<ExecPipes, ServiceOpError> {
        use std::process::{Command, Stdio};
        let pid = self
            .status
            .get(name)
            .ok_or_else(|| ServiceOpError::NotFound(name.to_string()))?
            .pid
            .ok_or_else(|| ServiceOpError::NotRunning(name.to_string()))?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.args(["container-helper", "exec", "--pid", &pid.to_string()]);
        // The container's seccomp profile applies to what runs in it.
        cmd.arg("--seccomp-from")
            .arg(self.runtime.bundle_config(name));
        for e in &spec.env {
            cmd.args(["--env", e]);
        }
        if let Some(u) = &spec.user {
            cmd.args(["--user", u]);
        }
        if let Some(w) = &spec.working_dir {
            cmd.args(["--cwd", w]);
        }
        cmd.arg("--").args(&spec.cmd);
        let stdin = if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ServiceOpError::Start {
                name: name.to_string(),
                message: format!("spawning the exec helper: {e}"),
            })?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ServiceOpError::Start {
                name: name.to_string(),
                message: "exec helper without pipes".into(),
            });
        };
        let helper = child.id() as i32;
        tracing::debug!(service = name, helper, cmd = ?spec.cmd, "exec started");
        let stdin = child.stdin.take().map(Into::into);
        // `child` is dropped without a wait: the supervisor's waitpid(-1) reaps it.
        Ok((helper, stdin, out.into(), err.into()))
    }

    /// The volumes of service `name`: its `volumes:` binds; its anonymous volumes and the
    /// image's `Volumes` as directories of its own under [`VOLUMES`] (filled from the image's
    /// content at that path when new, as Docker does); and every volume of the services in
    /// `volumes_from`. A destination given twice keeps its first source.
    fn volume_mounts(
        &self,
        name: &str,
        spec: &ServiceSpec,
        image_volumes: &[String],
        rootfs: &Path,
    ) -> anyhow::Result<Vec<BindMount>> {
        let mut out: Vec<BindMount> = Vec::new();
        let mut anonymous: Vec<String> = Vec::new();
        for v in &spec.volumes {
            match v {
                Volume::Bind {
                    host,
                    container,
                    read_only,
                } => {
                    std::fs::create_dir_all(host).ok();
                    out.push(BindMount {
                        source: host.into(),
                        destination: container.into(),
                        read_only: *read_only,
                    });
                }
                Volume::Anonymous { container } => anonymous.push(container.clone()),
            }
        }
        anonymous.extend(image_volumes.iter().cloned());
        for from in &spec.volumes_from {
            match self.volumes.get(from) {
                Some(theirs) => out.extend(theirs.iter().cloned()),
                None => say(format!(
                    "service {name}: volumes_from {from}: it has not started; no volumes shared"
                )),
            }
        }
        for path in anonymous {
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                anyhow::bail!("volume {path:?}: not an absolute path inside the container");
            }
            let dir = Path::new(VOLUMES)
                .join(name)
                .join(hex::encode(path.as_bytes()));
            if !dir.exists() {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("mkdir {}", dir.display()))?;
                if let Err(e) = crate::engine::rootfs::copy_up(rootfs, &path, &dir) {
                    say(format!("volume {path}: copying the image's content: {e}"));
                }
            }
            out.push(BindMount {
                source: dir,
                destination: path.into(),
                read_only: false,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|b| seen.insert(b.destination.clone()));
        Ok(out)
    }

    /// Every service as the control API shows it.
    pub fn snapshot(&self) -> Vec<crate::engine::api::ContainerInfo> {
        use crate::engine::api::{ContainerInfo, RunState};
        self.status
            .values()
            .map(|st| {
                let spec = self.specs.get(&st.name);
                let state = match st.state.as_str() {
                    "running" => RunState::Running,
                    "restarting" => RunState::Restarting,
                    "created" => RunState::Created,
                    "failed" | "invalid" => RunState::Dead,
                    _ => RunState::Exited,
                };
                let host = |m: Option<NsMode>| m == Some(NsMode::Host);
                ContainerInfo {
                    name: st.name.clone(),
                    image: st.image.clone(),
                    image_id: st.image_id.clone(),
                    state,
                    pid: st.pid,
                    exit_code: st.exit_code,
                    restart_count: st.restarts,
                    created: crate::engine::api::time::unix(st.created),
                    started_at: st.started_at,
                    finished_at: st.finished_at,
                    cmd: st.args.clone(),
                    env: st.env.clone(),
                    labels: spec.map(|s| s.labels.clone()).unwrap_or_default(),
                    privileged: spec.is_some_and(|s| s.privileged),
                    network_mode: if host(spec.map(|s| s.net)) {
                        "host".into()
                    } else {
                        "default".into()
                    },
                    pid_mode: if host(spec.map(|s| s.pid)) {
                        "host".into()
                    } else {
                        String::new()
                    },
                    restart_policy: spec
                        .map(|s| s.restart.to_string())
                        .unwrap_or_else(|| "no".into()),
                    error: st.error.clone(),
                    log_path: PathBuf::from(format!("/var/log/{}.log", st.name)),
                }
            })
            .collect()
    }

    fn write_status(&self) {
        let list: Vec<&ServiceStatus> = self.status.values().collect();
        if let Ok(json) = serde_json::to_vec_pretty(&list) {
            if let Err(e) =
                crate::config::atomic::write_atomic(Path::new(STATUS_PATH), &json, 0o644)
            {
                tracing::warn!(error = %e, "writing service status");
            }
        }
    }
}

/// An exec helper: its pid, stdin (if asked for), stdout, stderr.
pub type ExecPipes = (
    i32,
    Option<std::os::fd::OwnedFd>,
    std::os::fd::OwnedFd,
    std::os::fd::OwnedFd,
);

/// Why an action on one service (from the control API) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceOpError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("service {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("service {name}: {message}")]
    Start { name: String, message: String },
}

/// Add an engine line to the service's log, beside its own output.
fn append_log(name: &str, line: &str) {
    use std::io::Write;
    let path = format!("/var/log/{name}.log");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    if let Ok(mut f) = f {
        let _ = writeln!(f, "[system-docker] {line}");
    }
}

/// `exit 0`, `exit 3`, `killed by a signal`.
fn describe(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".into(),
    }
}

/// Anonymous volumes of the system services (RAM: they last a boot, like the services).
const VOLUMES: &str = "/run/system-docker/volumes";

/// Unmount and remove a container's root filesystem and its upper layer.
fn discard_rootfs(name: &str) -> anyhow::Result<()> {
    let dir = Path::new(CONTAINERS).join(name);
    let merged = dir.join("rootfs");
    match nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => anyhow::bail!("unmount {}: {e}", merged.display()),
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("remove {}: {e}", dir.display())),
    }
}

/// Overlay the image's layers with a per-container upper dir (kept across restarts in a boot).
fn mount_rootfs(name: &str, lowers: &[PathBuf], nodev: bool) -> anyhow::Result<PathBuf> {
    let dir = Path::new(CONTAINERS).join(name);
    crate::engine::rootfs::mount(&dir, lowers, nodev).context("mounting the root filesystem")
}

/// Block until `pid` exits; its exit code (None: a signal).
fn wait_for(pid: i32) -> Option<i32> {
    wait_until(pid, Instant::now() + Duration::from_secs(24 * 3600)).flatten()
}

/// Wait for `pid` until `deadline`: `Some(exit code)` when it ended (the code is None after a
/// signal), `None` when it still runs.
fn wait_until(pid: i32, deadline: Instant) -> Option<Option<i32>> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let p = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Some(Some(c)),
            Ok(WaitStatus::Signaled(..)) => return Some(None),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return Some(None), // not our child any more: gone
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
