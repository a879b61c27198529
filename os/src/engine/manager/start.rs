//! `start`: mount the root filesystem, write the bundle, start the shim (which creates the
//! container), connect the attach requests that were waiting, then let the process run and
//! follow it until it exits.
//!
//! Network: on an engine with a bridge (the user engine), `bridge` (the default) is a namespace
//! wired to it before the container is created (see `network`); `none`, and `bridge` on an
//! engine without one, a namespace of its own with loopback only; `host` the host's.

use super::hold::Held;
use super::record::{self, Lifecycle, Record};
use super::{shim_client, Manager, ManagerError, Result};
use crate::engine::runtime::{BindMount, ContainerSpec, Namespace};
use crate::engine::shim::protocol::{Reply, Request};
use crate::engine::shim::Args as ShimArgs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Manager {
    /// Start a created or exited container (304 when it runs already).
    pub async fn start(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        let id = self.find(name_or_id)?;
        let rec = self.claim(&id)?;
        let auto_remove = rec.host.auto_remove;
        let r = self.start_claimed(rec).await;
        self.release(&id);
        if r.is_err() && auto_remove {
            // As dockerd: a `--rm` container that cannot start is removed with its anonymous
            // volumes (`docker run --rm` waits for that removal before it reports the error).
            if let Err(e) = self.remove(&id, true, true).await {
                tracing::warn!(id = %id, error = %e, "removing a --rm container that did not start");
            }
        }
        r
    }

    pub(super) async fn start_claimed(self: &Arc<Self>, rec: Record) -> Result<()> {
        let created = self.create_claimed(rec, 0).await?;
        self.run_created(created).await
    }

    /// The first half of a start, on a claimed container: everything up to a shim holding the
    /// created container (ports published, root filesystem mounted, bundle written); the shim
    /// creates it at `nice`.
    pub(super) async fn create_claimed(self: &Arc<Self>, rec: Record, nice: i32) -> Result<Held> {
        if rec.state.status.is_running() {
            return Err(ManagerError::NotModified(format!(
                "container {} is already running",
                rec.name
            )));
        }
        let id = rec.id.clone();
        let leaf = if self.cfg.cgroup_by_name {
            rec.name.clone()
        } else {
            String::new()
        };
        if let Err(e) = self.publish_ports(&id).await {
            self.start_failed(&id, &e);
            self.network_down_id(&id).await;
            return Err(e);
        }
        let me = self.clone();
        let spawned = tokio::task::spawn_blocking(move || me.spawn_shim(&rec, nice))
            .await
            .map_err(|e| ManagerError::Shim(format!("start task: {e}")))?;
        match spawned {
            Ok(pid) => Ok(Held {
                id,
                pid,
                leaf,
                at: std::time::Instant::now(),
            }),
            Err(e) => {
                self.start_failed(&id, &e);
                self.network_down_id(&id).await;
                Err(e)
            }
        }
    }

    /// The second half: connect the attach requests that were waiting, let the process run,
    /// and follow it.
    pub(super) async fn run_created(self: &Arc<Self>, created: Held) -> Result<()> {
        let Held { id, pid, leaf, .. } = created;
        let shim = self.shim_dir(&id);
        let pending = self
            .lock()
            .get_mut(&id)
            .map(|e| std::mem::take(&mut e.pending))
            .unwrap_or_default();
        for p in pending {
            let r = shim_client::connect(&shim, &p.req).await;
            let _ = p.tx.send(r);
        }
        if let Err(e) = shim_client::call_ok(&shim, &Request::Start).await {
            let _ = shim_client::call(&shim, &Request::Kill { signal: 9 }).await;
            self.start_failed(&id, &e);
            self.network_down_id(&id).await;
            return Err(e);
        }
        let rec = self.update(&id, |r| {
            r.state.status = Lifecycle::Running;
            r.state.cgroup = leaf;
            r.state.pid = pid;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.started_at = record::now();
            r.state.stopped_by_user = false;
            r.state.health = None;
        })?;
        self.watch_health(&rec);
        self.emit(&rec, "start", None, None);
        tracing::info!(id = %id, name = %rec.name, pid, "started");
        if self.on_a_network(&rec) {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.refresh_rules()).await;
        }
        self.follow(id);
        Ok(())
    }

    /// Follow a running container's shim until it reports the exit.
    pub(super) fn follow(self: &Arc<Self>, id: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let dir = me.shim_dir(&id);
            let code = match shim_client::call(&dir, &Request::Wait).await {
                Ok(Some(Reply::Exit { exit_code })) => Some(exit_code),
                _ => None,
            };
            me.exited(&id, code).await;
        });
    }

    fn start_failed(&self, id: &str, e: &ManagerError) {
        let msg = e.to_string();
        // Attach requests waiting for this start get the error (their clients then end).
        let pending = self
            .lock()
            .get_mut(id)
            .map(|e| std::mem::take(&mut e.pending))
            .unwrap_or_default();
        for p in pending {
            let _ = p.tx.send(Err(ManagerError::Conflict(msg.clone())));
        }
        let _ = std::fs::remove_dir_all(self.shim_dir(id));
        // Docker's codes: 127 when the command is not found, 126 when it cannot be run.
        let code = if msg.contains("No such file") || msg.contains("not found") {
            127
        } else {
            126
        };
        let _ = self.update(id, |r| {
            r.state.status = if r.state.started_at > 0 {
                Lifecycle::Exited
            } else {
                Lifecycle::Created
            };
            r.state.exit_code = code;
            r.state.error = msg.clone();
        });
        let dir = self.dir(id);
        let _ = crate::engine::rootfs::unmount(&dir);
    }

    /// Blocking: everything up to a shim holding a created container; its pid.
    fn spawn_shim(&self, rec: &Record, nice: i32) -> Result<i32> {
        let t0 = std::time::Instant::now();
        let image = self.store.resolve(&rec.image_id)?;
        let lowers = self.store.lower_dirs(&image)?;
        let dir = self.dir(&rec.id);
        let rootfs =
            crate::engine::rootfs::mount(&dir, rec.upper.as_deref(), &lowers, !rec.host.privileged)
                .map_err(|e| ManagerError::io(&dir, e))?;
        self.prepare_rootfs(rec, &rootfs);
        let t1 = t0.elapsed();
        let netns = self.wire(rec)?;
        // With its lease, if it just got one.
        let rec = &self.get(&rec.id)?;
        let mut spec = self.spec(rec, &rootfs)?;
        if let Some(path) = netns {
            spec.namespace_paths.insert(Namespace::Net, path);
        }
        let bundle = self.bundle(&rec.id);
        spec.write_bundle(&bundle)?;
        self.make_cgroup_parent();
        let shim = self.shim_dir(&rec.id);
        let _ = std::fs::remove_dir_all(&shim);
        let args = ShimArgs {
            root: self.runtime_root(),
            id: rec.id.clone(),
            bundle,
            dir: shim,
            log: self.log_path(rec),
            log_plain: self.cfg.log_dir.is_some(),
            tty: rec.config.tty,
            stdin: rec.config.open_stdin,
            stdin_once: rec.config.stdin_once,
            cgroup: Some(format!(
                "{}-shims",
                self.cfg.cgroup_parent.trim_end_matches('/')
            )),
            nice,
        };
        let t2 = t0.elapsed();
        let r = shim_client::spawn(&self.cfg.exe, &args, &self.cfg.run.join("shim.log"));
        tracing::debug!(id = %rec.id, rootfs_ms = t1.as_millis() as u64, bundle_ms = (t2 - t1).as_millis() as u64, shim_ms = (t0.elapsed() - t2).as_millis() as u64, "container made");
        r
    }

    /// Make the containers' cgroup parent (`/sys/fs/cgroup/system`, `/docker`) if it is not
    /// there. Why here: libcontainer makes each level of a container's cgroup path by
    /// "exists? else mkdir", so the first two containers made at once (the boot's concurrent
    /// starts, a failed first service leaving no parent behind) raced on it and one failed
    /// with "File exists". `create_dir_all` takes a directory made meanwhile as made; the
    /// controllers are still enabled on it by libcontainer. Only on a cgroup2 mount (the
    /// guest's); an error is left for libcontainer to say.
    fn make_cgroup_parent(&self) {
        let root = Path::new("/sys/fs/cgroup");
        if !root.join("cgroup.controllers").exists() {
            return;
        }
        let parent = root.join(self.cfg.cgroup_parent.trim_start_matches('/'));
        if let Err(e) = std::fs::create_dir_all(&parent) {
            tracing::debug!(parent = %parent.display(), error = %e, "making the cgroup parent");
        }
    }

    /// The runtime spec of a record.
    fn spec(&self, rec: &Record, rootfs: &Path) -> Result<ContainerSpec> {
        let c = &rec.config;
        let h = &rec.host;
        let mut s = ContainerSpec::new(&rec.id, rootfs, rec.argv());
        if h.init == Some(true) {
            // `--init`: our own binary as the container's PID 1 (`crate::containerinit`),
            // bound read-only at its path; it passes signals on and reaps orphans.
            s.args = [crate::containerinit::PATH.to_string(), "--".to_string()]
                .into_iter()
                .chain(rec.argv())
                .collect();
        }
        s.env = c.env.clone();
        if !c.working_dir.is_empty() {
            s.cwd = PathBuf::from(&c.working_dir);
        }
        // With the host's UTS namespace the hostname is the host's.
        s.hostname = Some(c.hostname.clone()).filter(|h| !h.is_empty() && h_uts_own(rec));
        for (mode, ns) in [
            (&h.network_mode, Namespace::Net),
            (&h.pid_mode, Namespace::Pid),
            (&h.ipc_mode, Namespace::Ipc),
            (&h.uts_mode, Namespace::Uts),
        ] {
            if mode == "host" {
                s.host_namespaces.insert(ns);
            }
        }
        s.devices = h.device_mappings().map_err(ManagerError::BadRequest)?;
        s.device_rules = h.device_rules().map_err(ManagerError::BadRequest)?;
        s.seccomp = !h.seccomp_unconfined().map_err(ManagerError::BadRequest)?;
        s.privileged = h.privileged;
        s.cap_add = h.cap_add.clone();
        s.cap_drop = h.cap_drop.clone();
        s.read_only_rootfs = h.readonly_rootfs;
        s.binds = self.mount_binds(rec, rootfs)?;
        if h.init == Some(true) {
            s.binds.push(BindMount {
                source: self.cfg.exe.clone(),
                destination: crate::containerinit::PATH.into(),
                read_only: true,
            });
        }
        s.tmpfs = self.tmpfs_mounts(rec)?;
        if self.cfg.etc_files {
            s.binds.extend(self.etc_files(rec, rootfs)?);
        }
        if !c.user.is_empty() {
            let ids = crate::cloudinit::write_files::user_ids(rootfs, &c.user).map_err(|e| {
                ManagerError::BadRequest(format!("unable to find user {}: {e}", c.user))
            })?;
            s.user = Some(ids);
        }
        s.limits.memory_bytes = (h.memory > 0).then_some(h.memory);
        s.limits.cpus = (h.nano_cpus > 0).then(|| h.nano_cpus as f64 / 1e9);
        s.limits.cpu_shares = (h.cpu_shares > 0).then_some(h.cpu_shares as u64);
        s.limits.pids = (h.pids_limit > 0).then_some(h.pids_limit);
        s.terminal = c.tty;
        s.cgroup_parent = self.cfg.cgroup_parent.clone();
        if self.cfg.cgroup_by_name {
            s.cgroup_leaf = Some(rec.name.clone());
        }
        Ok(s)
    }

    /// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` of the container's own, kept in
    /// its directory and bound in (as Docker does).
    fn etc_files(&self, rec: &Record, rootfs: &Path) -> Result<Vec<BindMount>> {
        let targets = bind_targets(rootfs).map_err(|e| ManagerError::io(rootfs, e))?;
        // In another container's network namespace: that one's hosts and resolv.conf (as
        // Docker shares them), its own hostname.
        if let Some(target) = rec.host.network_mode.strip_prefix("container:") {
            let other = self.dir(&self.find(target)?);
            let mut binds = Vec::new();
            for file in ["hosts", "resolv.conf"] {
                let dest = format!("/etc/{file}");
                if targets.contains(&file) && !rec.mounts.iter().any(|m| m.destination == dest) {
                    binds.push(BindMount {
                        source: other.join(file),
                        destination: PathBuf::from(dest),
                        read_only: false,
                    });
                }
            }
            return Ok(binds);
        }
        let dir = self.dir(&rec.id);
        let host_net = rec.host.network_mode == "host";
        let hostname = if host_net {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            rec.config.hostname.clone()
        };
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        let ifaces = self.ifaces(rec);
        match ifaces.first().and_then(|i| i.ip) {
            Some(ip) => hosts.push_str(&format!("{ip}\t{hostname}\n")),
            None if !host_net => hosts.push_str(&format!("127.0.1.1\t{hostname}\n")),
            None => {}
        }
        // Links: the linked container's address, by alias, id and name (while it runs).
        for l in &rec.host.links {
            let (target, alias) = super::record::parse_link(l);
            let Ok(other) = self.find(&target).and_then(|id| self.get(&id)) else {
                continue;
            };
            if let Some(ip) = other.network.ip.filter(|_| other.state.status.is_running()) {
                let names = if alias == other.name {
                    format!("{alias} {}", &other.id[..12])
                } else {
                    format!("{alias} {} {}", &other.id[..12], other.name)
                };
                hosts.push_str(&format!("{ip}\t{names}\n"));
            }
        }
        for e in &rec.host.extra_hosts {
            if let Some((name, ip)) = e.split_once(':') {
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = if host_net {
            host_resolv
        } else if ifaces.iter().any(|i| i.user_defined()) {
            // The engine's DNS server answers, and forwards to the resolvers it would have had.
            embedded_resolv_conf(&host_resolv)
        } else {
            resolv_conf(&host_resolv, &rec.host.dns)
        };
        let mut binds = Vec::new();
        for (file, text) in [
            ("hostname", format!("{hostname}\n")),
            ("hosts", hosts),
            ("resolv.conf", resolv),
        ] {
            let path = dir.join(file);
            crate::config::atomic::write_atomic(&path, text.as_bytes(), 0o644)
                .map_err(|e| ManagerError::io(&path, e))?;
            let dest = format!("/etc/{file}");
            // A file the container mounts itself is its own (Docker leaves it alone too).
            if !targets.contains(&file) || rec.mounts.iter().any(|m| m.destination == dest) {
                continue;
            }
            binds.push(BindMount {
                source: path,
                destination: PathBuf::from("/etc").join(file),
                read_only: false,
            });
        }
        Ok(binds)
    }
}

/// A container's `/etc/resolv.conf` from the host's, as dockerd makes it: the host's
/// nameservers except loopback ones (they would be the container's own loopback), Google's
/// public resolvers when none is left, `--dns` in place of them all; search and options kept.
fn resolv_conf(host: &str, dns: &[String]) -> String {
    let mut out = String::new();
    let mut servers = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next() {
                    let loopback = ip
                        .parse::<std::net::IpAddr>()
                        .map(|a| a.is_loopback())
                        .unwrap_or(true);
                    if !loopback {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some(_) => {
                out.push_str(line);
                out.push('\n');
            }
            None => {}
        }
    }
    if !dns.is_empty() {
        servers = dns.to_vec();
    } else if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// A `/etc/resolv.conf` naming the embedded DNS server alone, as dockerd's on a user-defined
/// network: the host's search and options kept, `ndots:0` added.
fn embedded_resolv_conf(host: &str) -> String {
    let mut out = format!("nameserver {}\n", crate::engine::network::dns::ADDRESS);
    let mut options = false;
    for line in host.lines() {
        match line.split_whitespace().next() {
            Some("search") | Some("domain") => out.push_str(&format!("{line}\n")),
            Some("options") => {
                options = true;
                out.push_str(&format!("{line} ndots:0\n"));
            }
            _ => {}
        }
    }
    if !options {
        out.push_str("options ndots:0\n");
    }
    out
}

/// Whether the container has a UTS namespace (and so a hostname) of its own.
fn h_uts_own(rec: &Record) -> bool {
    rec.host.uts_mode != "host"
}

/// Which of `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` can take a bind mount in the
/// image's tree: each becomes a plain file in the container's upper layer when it is missing or
/// a symlink (an image's `resolv.conf` often links to a runtime path that is not there; the
/// runtime creates a bind target with `O_EXCL|O_NOFOLLOW`). The tree is the image's, so it is
/// walked without following any symlink: an `/etc` that is not a directory gets no binds.
fn bind_targets(rootfs: &Path) -> std::io::Result<Vec<&'static str>> {
    use crate::dirfd::{Dir, Kind};
    use std::ffi::OsStr;
    let root = Dir::open(rootfs)?;
    let etc = OsStr::new("etc");
    match root.lstat(etc)? {
        None => root.mkdir(etc, 0o755)?,
        Some(Kind::Dir) => {}
        Some(_) => return Ok(Vec::new()),
    }
    let etc = root.child_dir(etc)?;
    let mut ok = Vec::new();
    for name in ["hostname", "hosts", "resolv.conf"] {
        let n = OsStr::new(name);
        match etc.lstat(n)? {
            Some(Kind::Dir) => continue,
            Some(Kind::Symlink) => {
                etc.unlink(n)?;
                drop(etc.create_new(n, 0o644)?);
            }
            None => drop(etc.create_new(n, 0o644)?),
            Some(_) => {}
        }
        ok.push(name);
    }
    Ok(ok)
}

/// `SRC:DST[:ro|rw]` from `-v` in a record made before volumes (bind mounts only).
pub(super) fn parse_bind(b: &str) -> Result<BindMount> {
    let src = b.split(':').next().unwrap_or_default();
    if !src.starts_with('/') {
        return Err(ManagerError::BadRequest(format!(
            "invalid mount config for type \"bind\": named volumes are not supported yet: {b:?}"
        )));
    }
    let m: BindMount = b
        .parse()
        .map_err(|e: crate::engine::runtime::RuntimeError| {
            ManagerError::BadRequest(format!("invalid volume specification: '{b}': {e}"))
        })?;
    if !m.source.exists() {
        return Err(ManagerError::BadRequest(format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            m.source.display()
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::resolv_conf;

    #[test]
    fn a_containers_resolv_conf_drops_loopback_resolvers() {
        let host = "# from dhcp\nsearch lan\nnameserver 127.0.0.53\nnameserver 10.0.2.3\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host, &[]),
            "# from dhcp\nsearch lan\noptions ndots:2\nnameserver 10.0.2.3\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &[]),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            resolv_conf(host, &["1.1.1.1".into()]),
            "# from dhcp\nsearch lan\noptions ndots:2\nnameserver 1.1.1.1\n"
        );
    }
}
