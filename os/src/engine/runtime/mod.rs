//! The container runtime layer of the engine: create, start, kill and delete containers with
//! youki's `libcontainer`, always in a short-lived helper process, never in PID 1.
//!
//! Why a helper: libcontainer `clone(2)`s without `exec` (an intermediate process, then the
//! container's init) and runs Rust code in the children. In a multi-threaded process (tokio
//! workers, or a PID 1 with threads) a clone copies only the calling thread, so locks held by
//! the other threads (the allocator's, stdio's, tracing's) stay locked forever in the child:
//! it hangs. So the engine (PID 1 side, [`Runtime`]) writes the OCI bundle with oci-spec's
//! builders ([`ContainerSpec::to_oci`]) and re-executes our own binary,
//! `/proc/self/exe container-helper <verb> …` ([`helper`]), a fresh single-threaded process
//! that does one libcontainer call, prints one JSON line and exits.
//!
//! Who reaps what: the container's init is the helper's child (libcontainer clones it with
//! `CLONE_PARENT`). When the helper exits, init is re-parented to PID 1, which stays the one
//! owner of `waitpid(-1)` and reaps it like every other orphan. The engine learns about the
//! exit from libcontainer's state (`state`: a dead or zombie pid reads as `stopped`).
//!
//! Cgroups: `linux.cgroupsPath` is always set (`/system/<id>`), libcontainer always runs with
//! `with_systemd(false)`: libcgroups writes the cgroup v2 files itself, creating `/system` and
//! enabling the controllers on the way down. Built with the `v1`, `v2` and `libseccomp`
//! features (Docker's seccomp profile, [`seccomp`]): no systemd; the cgroup v2 device filter is
//! our own ([`devices`]), attached by the helper between create and start.
//!
//! State lives under [`DEFAULT_ROOT`] (`/run/system-docker/runtime`): libcontainer's under
//! `state/<id>`, the bundles we write under `bundles/<id>`, the helpers' stderr in `helper.log`.

pub mod container_archive;
mod container_create;
mod container_delete;
mod container_exec;
mod container_kill;
mod container_run;
mod container_start;
pub mod devices;
pub mod error;
pub mod helper;
pub mod seccomp;
pub mod spec;
pub mod state;

pub use container_create::root_has_parent;
pub(crate) use container_create::{create_with, Stdio as ContainerStdio};
pub use error::RuntimeError;
pub use spec::{BindMount, ContainerSpec, DeviceMapping, Limits, Namespace, TmpfsMount};
pub use state::{ContainerState, Status};

use state::Reply;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the runtime keeps its state (a tmpfs: containers do not outlive a boot).
pub const DEFAULT_ROOT: &str = "/run/system-docker/runtime";

/// How long one helper may take before it is killed and the call fails: its one libcontainer
/// call takes a fraction of a second (300 ms under TCG); a helper stuck longer must not hold
/// the supervisor that waits for it.
pub const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The layout under the runtime root (helper side too).
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Paths { root: root.into() }
    }

    /// libcontainer's root: `<root>/state/<id>/state.json`.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The bundle (`config.json`) we write for a container.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.root.join("bundles").join(id)
    }

    /// Fail with [`RuntimeError::Exists`] if the id is taken.
    pub fn ensure_new(&self, id: &str) -> Result<(), RuntimeError> {
        spec::validate_id(id)?;
        if self.state().join(id).exists() {
            return Err(RuntimeError::Exists(id.to_string()));
        }
        Ok(())
    }

    /// Load a container's libcontainer state.
    pub fn load(&self, id: &str) -> Result<libcontainer::container::Container, RuntimeError> {
        spec::validate_id(id)?;
        let dir = self.state().join(id);
        if !dir.join("state.json").exists() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Ok(libcontainer::container::Container::load(dir)?)
    }
}

/// The engine's handle on the runtime (PID 1 side). Every call runs one helper process and
/// waits for its reply; none of them calls libcontainer in this process.
#[derive(Debug, Clone)]
pub struct Runtime {
    exe: PathBuf,
    paths: Paths,
    timeout: std::time::Duration,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Runtime {
    /// Helpers are this very binary (`/proc/self/exe`); state under [`DEFAULT_ROOT`].
    pub fn new() -> Self {
        Runtime {
            exe: PathBuf::from("/proc/self/exe"),
            paths: Paths {
                root: PathBuf::from(DEFAULT_ROOT),
            },
            timeout: HELPER_TIMEOUT,
        }
    }

    /// Give helpers another time limit.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keep state elsewhere.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.paths.root = root.into();
        self
    }

    /// Run another binary as the helper.
    pub fn with_exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.exe = exe.into();
        self
    }

    pub fn root(&self) -> &Path {
        &self.paths.root
    }

    /// The `config.json` of container `id`'s bundle (what `exec` reads its seccomp profile
    /// from).
    pub fn bundle_config(&self, id: &str) -> PathBuf {
        self.paths.bundle(id).join("config.json")
    }

    /// Write the bundle and create the container: its init process exists, in its namespaces
    /// and cgroup, and waits for [`Runtime::start`].
    pub fn create(&self, spec: &ContainerSpec) -> Result<ContainerState, RuntimeError> {
        self.create_with(spec, false)
    }

    /// Create and start in one helper run.
    pub fn run(&self, spec: &ContainerSpec) -> Result<ContainerState, RuntimeError> {
        self.create_with(spec, true)
    }

    fn create_with(
        &self,
        spec: &ContainerSpec,
        start: bool,
    ) -> Result<ContainerState, RuntimeError> {
        // Before writing anything: the bundle of a live container with this id is not ours.
        self.paths.ensure_new(&spec.id)?;
        let bundle = self.paths.bundle(&spec.id);
        spec.write_bundle(&bundle)?;
        let mut args: Vec<String> = vec![
            "--id".into(),
            spec.id.clone(),
            "--bundle".into(),
            bundle.display().to_string(),
        ];
        for (flag, path) in [("--stdout", &spec.stdout), ("--stderr", &spec.stderr)] {
            if let Some(p) = path {
                args.extend([flag.to_string(), p.display().to_string()]);
            }
        }
        if start {
            args.push("--start".into());
        }
        match self.call("create", &args) {
            Ok(r) => self.expect_state("create", r),
            Err(e) => {
                // libcontainer cleaned up its own state; the bundle is ours.
                let _ = std::fs::remove_dir_all(&bundle);
                Err(e)
            }
        }
    }

    /// Let a created container's init exec its command.
    pub fn start(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let r = self.call("start", &["--id".into(), id.into()])?;
        self.expect_state("start", r)
    }

    /// Send `signal` (a number or a name: `9`, `KILL`, `SIGTERM`) to the container's init, or
    /// with `all` to every process in its cgroup.
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<ContainerState, RuntimeError> {
        let mut args = vec![
            "--id".to_string(),
            id.into(),
            "--signal".into(),
            signal.into(),
        ];
        if all {
            args.push("--all".into());
        }
        let r = self.call("kill", &args)?;
        self.expect_state("kill", r)
    }

    /// Remove the container's state, cgroup and bundle; `force` kills it first if it runs.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args = vec!["--id".to_string(), id.into()];
        if force {
            args.push("--force".into());
        }
        match self.call("delete", &args)? {
            Reply::Done { .. } => Ok(()),
            other => Err(unexpected("delete", &other)),
        }
    }

    /// The container's current state.
    pub fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let r = self.call("state", &["--id".into(), id.into()])?;
        self.expect_state("state", r)
    }

    fn expect_state(&self, verb: &str, r: Reply) -> Result<ContainerState, RuntimeError> {
        match r {
            Reply::State(s) => Ok(s),
            other => Err(unexpected(verb, &other)),
        }
    }

    /// Run one helper and read its reply. Its stdout is read to EOF (the container never holds
    /// it: its stdio is `/dev/null` or a log file); its stderr goes to `<root>/helper.log`.
    fn call(&self, verb: &str, args: &[String]) -> Result<Reply, RuntimeError> {
        let root = &self.paths.root;
        std::fs::create_dir_all(root).map_err(|e| RuntimeError::io(root, e))?;
        let log_path = root.join("helper.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| RuntimeError::io(&log_path, e))?;
        let mut child = Command::new(&self.exe)
            .arg("container-helper")
            .arg("--root")
            .arg(root)
            .arg(verb)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(RuntimeError::Spawn)?;
        let read = match child.stdout.take() {
            Some(s) => read_until(s, self.timeout),
            None => Ok(Some(String::new())),
        };
        let out = match read {
            Ok(Some(out)) => out,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RuntimeError::Helper {
                    verb: verb.to_string(),
                    message: format!("no reply within {}s; killed it", self.timeout.as_secs()),
                });
            }
            Err(e) => {
                let _ = child.wait();
                return Err(RuntimeError::Spawn(e));
            }
        };
        // In PID 1 the supervisor's `waitpid(-1)` may reap the helper first: then this wait
        // fails with ECHILD, which is fine, as the reply alone says how it went.
        let _ = child.wait();
        parse_reply(verb, &out)
    }
}

/// Read `pipe` to its end, or give up when `timeout` has passed (`Ok(None)`).
fn read_until(
    pipe: std::process::ChildStdout,
    timeout: std::time::Duration,
) -> std::io::Result<Option<String>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let end = std::time::Instant::now() + timeout;
    let mut pipe = pipe;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(Some(String::from_utf8_lossy(&out).into_owned())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn parse_reply(verb: &str, out: &str) -> Result<Reply, RuntimeError> {
    let line = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match serde_json::from_str::<Reply>(line) {
        Ok(Reply::Error { error }) => Err(RuntimeError::Helper {
            verb: verb.to_string(),
            message: error,
        }),
        Ok(r) => Ok(r),
        Err(_) => Err(RuntimeError::Reply {
            verb: verb.to_string(),
            reply: out.to_string(),
        }),
    }
}

fn unexpected(verb: &str, r: &Reply) -> RuntimeError {
    RuntimeError::Reply {
        verb: verb.to_string(),
        reply: serde_json::to_string(r).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_into_states_and_errors() {
        let s = parse_reply(
            "create",
            r#"{"id":"t1","pid":42,"status":"running","bundle":"/b"}"#,
        )
        .unwrap();
        match s {
            Reply::State(s) => {
                assert_eq!(
                    (s.id.as_str(), s.pid, s.status),
                    ("t1", Some(42), Status::Running)
                )
            }
            other => panic!("{other:?}"),
        }
        let e = parse_reply("kill", "{\"error\":\"no container \\\"x\\\"\"}\n").unwrap_err();
        assert!(matches!(e, RuntimeError::Helper { .. }), "{e}");
        assert!(matches!(
            parse_reply("delete", r#"{"done":"t1"}"#).unwrap(),
            Reply::Done { .. }
        ));
        assert!(matches!(
            parse_reply("state", "thread 'main' panicked").unwrap_err(),
            RuntimeError::Reply { .. }
        ));
    }

    /// The PID 1 side against a stand-in helper: the bundle is written, the helper gets the
    /// verb and flags, its JSON reply becomes the state.
    #[test]
    fn create_writes_the_bundle_and_reads_the_helpers_reply() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("helper");
        let argv = dir.path().join("argv");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\necho \"$@\" > {}\necho noise >&2\n\
                 echo '{{\"id\":\"t1\",\"pid\":7,\"status\":\"created\",\"bundle\":\"/b\"}}'\n",
                argv.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        let rt = Runtime::new().with_root(&root).with_exe(&helper);
        let mut spec = ContainerSpec::new("t1", "/rootfs", vec!["/bin/true".into()]);
        spec.stdout = Some("/var/log/t1.log".into());
        let st = rt.create(&spec).unwrap();
        assert_eq!((st.pid, st.status), (Some(7), Status::Created));
        let bundle = root.join("bundles/t1");
        let argv = std::fs::read_to_string(argv).unwrap();
        assert_eq!(
            argv.trim(),
            format!(
                "container-helper --root {} create --id t1 --bundle {} --stdout /var/log/t1.log",
                root.display(),
                bundle.display()
            )
        );
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["linux"]["cgroupsPath"], "/system/t1");
        assert!(std::fs::read_to_string(root.join("helper.log"))
            .unwrap()
            .contains("noise"));
    }

    #[test]
    fn an_existing_id_is_refused_before_its_bundle_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new().with_root(dir.path()).with_exe("/bin/false");
        std::fs::create_dir_all(rt.paths.state().join("t1")).unwrap();
        let bundle = rt.paths.bundle("t1");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(bundle.join("config.json"), "{}").unwrap();
        let spec = ContainerSpec::new("t1", "/rootfs", vec!["/bin/true".into()]);
        assert!(matches!(rt.run(&spec), Err(RuntimeError::Exists(_))));
        assert_eq!(
            std::fs::read_to_string(bundle.join("config.json")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_helper_that_hangs_is_killed_at_the_time_limit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("helper");
        std::fs::write(&helper, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rt = Runtime::new()
            .with_root(dir.path().join("root"))
            .with_exe(&helper)
            .with_timeout(std::time::Duration::from_millis(300));
        let t = std::time::Instant::now();
        let e = rt.state("t1").unwrap_err();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
        assert!(e.to_string().contains("no reply within"), "{e}");
    }

    #[test]
    fn a_missing_helper_is_a_spawn_error_and_the_bundle_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new()
            .with_root(dir.path())
            .with_exe(dir.path().join("no-such-helper"));
        let spec = ContainerSpec::new("t1", "/rootfs", vec!["/bin/true".into()]);
        assert!(matches!(rt.run(&spec), Err(RuntimeError::Spawn(_))));
        assert!(!rt.paths.bundle("t1").exists());
    }
}
