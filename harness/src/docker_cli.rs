//! A client of the user engine from this machine, over SSH: the docker CLI (and any client
//! that shells out to `ssh` as it does: the Python `docker` library with `use_ssh_client`,
//! `docker-compose`) given `DOCKER_HOST=ssh://rancher@127.0.0.1:PORT`. The remote side runs
//! `docker system dial-stdio` in the console. A wrapper named `ssh` first on `PATH` adds the
//! VM's key and host-key policy, so the clients run unmodified.

use crate::ssh::Key;
use crate::vm::{Vm, VmOptions};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(180);

/// This machine's docker CLI, pointed at the VM over SSH with the VM's key.
pub struct Docker {
    /// `ssh://rancher@127.0.0.1:PORT`.
    pub host: String,
    /// `PATH` with the ssh wrapper first.
    pub path: String,
    /// An empty `DOCKER_CONFIG` directory.
    pub config: tempfile::TempDir,
    _bin: tempfile::TempDir,
}

impl Docker {
    pub fn new(vm: &Vm, key: &Key) -> Docker {
        let cli = Command::new("docker").arg("--version").output();
        assert!(
            cli.is_ok_and(|o| o.status.success()),
            "the docker CLI is missing: `cargo harness setup` installs docker.io"
        );
        let port = vm.port(22).expect("port 22 forwarded");
        let bin = tempfile::tempdir().unwrap();
        let known = bin.path().join("known_hosts");
        // The CLI runs plain `ssh`: a wrapper adds the VM's key and host-key policy.
        let wrapper = bin.path().join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
                 -o StrictHostKeyChecking=no -o UserKnownHostsFile={} -o LogLevel=ERROR \"$@\"\n",
                key.private.display(),
                known.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Docker {
            host: format!("ssh://rancher@127.0.0.1:{port}"),
            path,
            config: tempfile::tempdir().unwrap(),
            _bin: bin,
        }
    }

    /// Any command (`program`) with the client environment: the wrapper first on `PATH`,
    /// the empty config, `DOCKER_HOST`.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", &self.path)
            .env("DOCKER_CONFIG", self.config.path())
            .env("DOCKER_HOST", &self.host)
            .env_remove("DOCKER_CONTEXT");
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(["-H", &self.host])
            .args(args)
            .env("PATH", &self.path)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// Run with `input` on stdin.
    pub fn run_with(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker runs");
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker runs")
    }

    /// Must succeed: its stdout, trimmed.
    pub fn ok(&self, args: &[&str], vm: &Vm) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\n{}{}\nserial log: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            vm.log_path().display()
        );
        text(&out.stdout).trim().to_string()
    }

    /// `docker inspect -f FORMAT NAME`.
    pub fn inspect(&self, format: &str, name: &str, vm: &Vm) -> String {
        self.ok(&["inspect", "-f", format, name], vm)
    }
}

/// This machine's own dockerd (the reference engine, used to push images to test registries),
/// addressed explicitly so that no `DOCKER_HOST` reaches our engines; panics with its output
/// when the command fails.
pub fn host_docker(args: &[&str]) {
    let out = Command::new("docker")
        .args(["-H", "unix:///var/run/docker.sock"])
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("docker runs (cargo harness setup installs docker.io)");
    assert!(
        out.status.success(),
        "dockerd: docker {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, as through a VM's forward): the body, trimmed,
/// or why there is none.
pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .ok_or_else(|| format!("no HTTP answer: {out:?}"))
}

/// Poll `f` every half second until it holds; panics after `within`.
pub fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Boot a VM with an SSH key, wait for the user engine to answer, and load the initrd's own
/// images (`ros/busybox` among them) into it.
pub fn boot(name: &str) -> (Vm, Docker) {
    boot_with(name, |o| o)
}

/// [`boot`] with more VM options (forwards, guestfwd services, kernel arguments).
pub fn boot_with(name: &str, opts: impl FnOnce(VmOptions) -> VmOptions) -> (Vm, Docker) {
    let key = Key::generate(name).unwrap();
    let vm = Vm::boot_ready(opts(VmOptions::new(name).unwrap().ssh_key(&key)), BOOT).unwrap();
    let d = connect(&vm, &key);
    d.load_initrd_images(&vm);
    (vm, d)
}

/// Once the VM is ready: wait for SSH and for the user engine to answer.
pub fn connect(vm: &Vm, key: &Key) -> Docker {
    vm.wait_ssh(BOOT).unwrap();
    let d = Docker::new(vm, key);
    // The docker service may still be starting.
    d.wait_engine();
    d
}

impl Docker {
    /// Until the user engine answers (it may be starting or restarting).
    pub fn wait_engine(&self) {
        until("the user engine answers", Duration::from_secs(60), || {
            self.run(&["version", "--format", "{{.Server.APIVersion}}"])
                .status
                .success()
        });
    }

    /// `docker load` the initrd's own images (`ros/busybox` among them), saved by the system
    /// engine in the VM.
    pub fn load_initrd_images(&self, vm: &Vm) {
        let tar = vm
            .ssh("sudo system-docker save ros/busybox ros/console")
            .unwrap();
        assert!(tar.status.success(), "{}", text(&tar.stderr));
        let loaded = self.run_with(&["load"], &tar.stdout);
        assert!(
            loaded.status.success()
                && text(&loaded.stdout).contains("Loaded image: ros/busybox:latest"),
            "{}{}",
            text(&loaded.stdout),
            text(&loaded.stderr)
        );
    }
}
