//! User Docker, proven in a VM with the real docker CLI (this machine's, CLI 28) over
//! `DOCKER_HOST=ssh://rancher@…`: the CLI runs `docker system dial-stdio` in the console over
//! SSH, which joins it to the `docker` system service's socket (`ros dockerd`).
//!
//! Proven here: load, run (output, stdout and stderr apart, exit codes, `-i` streams byte for
//! byte, `-t`), detached containers with ps, logs, stop (the stop signal, then the exit code),
//! rm (409 while running), name conflicts, bad mounts, unknown images, restart policies, a
//! container that outlives a restart of its engine; and isolation: the user's containers and
//! the system's are disjoint sets, a user container's cgroup is `/docker/<id>`, and it sees
//! neither the system engine's socket nor its store.

use harness::ssh::Key;
use harness::vm::{Vm, VmOptions};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(180);

/// This machine's docker CLI, pointed at the VM over SSH with the VM's key.
struct Docker {
    host: String,
    path: String,
    config: tempfile::TempDir,
    _bin: tempfile::TempDir,
}

impl Docker {
    fn new(vm: &Vm, key: &Key) -> Docker {
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

    fn cmd(&self, args: &[&str]) -> Command {
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
    fn run_with(&self, args: &[&str], input: &[u8]) -> Output {
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

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker runs")
    }

    /// Must succeed: its stdout, trimmed.
    fn ok(&self, args: &[&str], vm: &Vm) -> String {
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
    fn inspect(&self, format: &str, name: &str, vm: &Vm) -> String {
        self.ok(&["inspect", "-f", format, name], vm)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn boot(name: &str) -> (Vm, Docker) {
    let key = Key::generate(name).unwrap();
    let vm = Vm::boot_ready(VmOptions::new(name).unwrap().ssh_key(&key), BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    let d = Docker::new(&vm, &key);
    // The docker service may still be starting.
    until("the user engine answers", Duration::from_secs(60), || {
        d.run(&["version", "--format", "{{.Server.APIVersion}}"])
            .status
            .success()
    });
    // The test image: the initrd's own images (ros/busybox among them), as a tar from the VM.
    let tar = vm.ssh("tar -C /usr/share/ros/images -cf - .").unwrap();
    assert!(tar.status.success(), "{}", text(&tar.stderr));
    let loaded = d.run_with(&["load"], &tar.stdout);
    assert!(
        loaded.status.success()
            && text(&loaded.stdout).contains("Loaded image: ros/busybox:latest"),
        "{}{}",
        text(&loaded.stdout),
        text(&loaded.stderr)
    );
    (vm, d)
}

#[test]
fn the_real_docker_cli_runs_containers_on_the_user_engine_over_ssh() {
    let (vm, d) = boot("user_docker_run");
    assert_eq!(
        d.ok(&["version", "--format", "{{.Server.APIVersion}}"], &vm),
        "1.41"
    );
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"], &vm);
    assert!(
        images.lines().any(|l| l == "ros/busybox:latest"),
        "{images}"
    );

    // Output, kept apart.
    let out = d.run(&[
        "run",
        "--rm",
        "ros/busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "to-out");
    assert_eq!(text(&out.stderr).trim(), "to-err");

    // Exit codes, with stdin attached and not.
    let out = d.run(&[
        "run",
        "-a",
        "stdin",
        "--rm",
        "ros/busybox",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let out = d.run(&["run", "--rm", "ros/busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // --rm removed them all.
    assert_eq!(d.ok(&["ps", "-aq"], &vm), "");

    // A large stream through `cat`, byte for byte (every byte value, 2 MiB).
    let data: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 7 + i / 251) as u8).collect();
    let out = d.run_with(&["run", "-i", "--rm", "ros/busybox", "cat"], &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "cat's output differs from its input");

    // A terminal.
    let out = d.run(&[
        "run",
        "-t",
        "--rm",
        "ros/busybox",
        "sh",
        "-c",
        "tty; stty size",
    ]);
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}{}", text(&out.stderr));
    assert!(t.starts_with("/dev/"), "{t}");

    // Detached: ps, logs, inspect, the cgroup, stop with the stop signal, rm.
    let id = d.ok(
        &[
            "run",
            "-d",
            "--name",
            "sleeper",
            "ros/busybox",
            "sh",
            "-c",
            "echo started; trap 'echo got-term; exit 0' TERM; while true; do sleep 1; done",
        ],
        &vm,
    );
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"], &vm);
    assert!(ps.lines().any(|l| l.starts_with("sleeper Up")), "{ps}");
    until(
        "the log has the first line",
        Duration::from_secs(20),
        || d.ok(&["logs", "sleeper"], &vm).contains("started"),
    );
    assert_eq!(d.inspect("{{.State.Status}}", "sleeper", &vm), "running");
    assert_eq!(
        d.inspect("{{.HostConfig.NetworkMode}}", "sleeper", &vm),
        "bridge"
    );
    assert_eq!(
        d.inspect("{{len .NetworkSettings.Networks}}", "sleeper", &vm),
        "0"
    );
    let pid = d.inspect("{{.State.Pid}}", "sleeper", &vm);
    let cgroup = vm.ssh_ok(&format!("cat /proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup, format!("0::/docker/{id}"));
    // Namespaces of its own (pid, mount, net).
    for ns in ["pid", "mnt", "net"] {
        let (a, b) = (
            vm.ssh_ok(&format!("sudo readlink /proc/{pid}/ns/{ns}"))
                .unwrap(),
            vm.ssh_ok(&format!("sudo readlink /proc/1/ns/{ns}"))
                .unwrap(),
        );
        assert_ne!(a, b, "{ns} namespace shared with the host");
    }

    // Isolation: two disjoint sets, and the system engine out of sight.
    let sys = vm
        .ssh_ok("sudo system-docker ps --format '{{.Names}}' 2>/dev/null || sudo system-docker ps")
        .unwrap();
    assert!(sys.contains("console") && !sys.contains("sleeper"), "{sys}");
    let user = d.ok(&["ps", "-a", "--format", "{{.Names}}"], &vm);
    assert_eq!(user, "sleeper");
    let out = d.run(&[
        "run", "--rm", "ros/busybox", "sh", "-c",
        "for p in /run/system-docker.sock /var/run/system-docker.sock /var/lib/system-docker /run/docker /var/lib/docker; do test -e $p && echo FOUND $p; done; echo checked",
    ]);
    assert_eq!(text(&out.stdout).trim(), "checked", "{}", text(&out.stderr));

    // Docker's errors, as the CLI prints them.
    let out = d.run(&["run", "-d", "--name", "sleeper", "ros/busybox", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Conflict. The container name \"/sleeper\" is already in use"),
        "{}",
        text(&out.stderr)
    );
    let out = d.run(&["rm", "sleeper"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("You cannot remove a running container"),
        "{}",
        text(&out.stderr)
    );
    let out = d.run(&[
        "run",
        "--rm",
        "-v",
        "/no/such/dir:/x",
        "ros/busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bind source path does not exist: /no/such/dir"),
        "{}",
        text(&out.stderr)
    );
    let out = d.run(&["create", "no/such-image"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no/such-image"),
        "{}",
        text(&out.stderr)
    );

    // Stop: the trap runs, the exit code is recorded, the log keeps its lines.
    d.ok(&["stop", "sleeper"], &vm);
    assert_eq!(
        d.inspect("{{.State.Status}} {{.State.ExitCode}}", "sleeper", &vm),
        "exited 0"
    );
    let logs = d.ok(&["logs", "sleeper"], &vm);
    assert!(
        logs.contains("started") && logs.contains("got-term"),
        "{logs}"
    );
    d.ok(&["rm", "sleeper"], &vm);
    assert_eq!(d.ok(&["ps", "-aq"], &vm), "");
}

#[test]
fn restart_policies_and_an_engine_restart_keep_containers_going() {
    let (vm, d) = boot("user_docker_restart");

    // The console's own docker CLI (our code) on the same engine.
    let out = vm
        .ssh("docker run --rm ros/busybox sh -c 'echo console-cli; echo err >&2; exit 5'")
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "console-cli");
    assert_eq!(text(&out.stderr).trim(), "err");
    assert_eq!(
        vm.ssh_ok("echo through-stdin | docker run -i --rm ros/busybox cat")
            .unwrap(),
        "through-stdin"
    );
    vm.ssh_ok("docker run -d --name c1 ros/busybox sleep 100")
        .unwrap();
    assert!(vm.ssh_ok("docker ps").unwrap().contains(" c1"));
    let out = vm.ssh("docker rm c1").unwrap();
    assert!(
        !out.status.success()
            && text(&out.stderr).contains("You cannot remove a running container"),
        "{}",
        text(&out.stderr)
    );
    vm.ssh_ok("docker rm -f c1").unwrap();
    assert_eq!(d.ok(&["ps", "-aq"], &vm), "");

    // on-failure:2: two restarts, then it stays exited with its code.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            "ros/busybox",
            "sh",
            "-c",
            "exit 3",
        ],
        &vm,
    );
    until(
        "flaky restarted twice and stopped",
        Duration::from_secs(60),
        || {
            d.inspect(
                "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
                "flaky",
                &vm,
            ) == "2 exited 3"
        },
    );

    // always: killed from inside, it comes back.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "steady",
            "--restart",
            "always",
            "ros/busybox",
            "sh",
            "-c",
            "sleep 1000",
        ],
        &vm,
    );
    let first = d.inspect("{{.State.Pid}}", "steady", &vm);
    vm.ssh_ok(&format!("sudo kill -9 {first}")).unwrap();
    until("steady is running again", Duration::from_secs(30), || {
        let s = d.inspect(
            "{{.State.Status}} {{.State.Pid}} {{.RestartCount}}",
            "steady",
            &vm,
        );
        s.starts_with("running ") && !s.contains(&format!(" {first} ")) && s.ends_with(" 1")
    });

    // The engine restarts; the container does not: same pid, still followed, and its exit
    // code reaches the new engine.
    let pid = d.inspect("{{.State.Pid}}", "steady", &vm);
    vm.ssh_ok("sudo system-docker restart docker").unwrap();
    until(
        "the user engine answers again",
        Duration::from_secs(60),
        || d.run(&["version"]).status.success(),
    );
    assert_eq!(
        d.inspect("{{.State.Status}} {{.State.Pid}}", "steady", &vm),
        format!("running {pid}")
    );
    d.ok(&["stop", "-t", "1", "steady"], &vm);
    assert_eq!(
        d.inspect("{{.State.Status}} {{.State.ExitCode}}", "steady", &vm),
        "exited 137"
    );
    // Stopped by the user: `always` does not bring it back.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.inspect("{{.State.Status}}", "steady", &vm), "exited");
}
