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

use harness::docker_cli::{boot, text, until};
use harness::vm::Vm;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    assert!(
        d.inspect(
            "{{.NetworkSettings.Networks.bridge.IPAddress}}",
            "sleeper",
            &vm
        )
        .starts_with("172.17.0."),
        "on the default bridge"
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

    // Host namespaces, devices and seccomp, as `docker run` asks for them (the engine's pid
    // and UTS namespaces are the host's: the docker service runs with pid and uts host).
    let host_pid_ns = vm.ssh_ok("readlink /proc/self/ns/pid").unwrap();
    let readlink = ["readlink", "/proc/self/ns/pid"];
    let run_with = |flags: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.push("ros/busybox");
        args.extend_from_slice(cmd);
        d.ok(&args, &vm)
    };
    assert_eq!(run_with(&["--pid", "host"], &readlink), host_pid_ns.trim());
    assert_ne!(run_with(&[], &readlink), host_pid_ns.trim());
    let host_name = vm.ssh_ok("hostname").unwrap();
    assert_eq!(
        run_with(&["--uts", "host"], &["hostname"]),
        host_name.trim()
    );
    assert_eq!(
        run_with(&[], &["grep", "^Seccomp:", "/proc/self/status"]),
        "Seccomp:\t2",
        "Docker's profile by default"
    );
    assert_eq!(
        run_with(
            &["--security-opt", "seccomp=unconfined"],
            &["grep", "^Seccomp:", "/proc/self/status"]
        ),
        "Seccomp:\t0"
    );
    assert_eq!(
        run_with(
            &["--device", "/dev/ttyS1:/dev/serial-in"],
            &["stat", "-c", "%F %t:%T", "/dev/serial-in"]
        ),
        "character special file 4:41"
    );
    for (flags, says) in [
        (&["--security-opt", "apparmor=x"][..], "security option"),
        (&["--device-cgroup-rule", "x 1:2 r"][..], "device cgroup"),
        (&["--device", "/no/such-device"][..], "/no/such-device"),
        (&["--ipc", "container:sleeper"][..], "invalid ipc mode"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["ros/busybox", "true"]);
        let out = d.run(&args);
        assert!(!out.status.success(), "{flags:?} accepted");
        assert!(
            text(&out.stderr).contains(says),
            "{flags:?}: {}",
            text(&out.stderr)
        );
    }

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

    // save: a tar that our load and this machine's dockerd 20.10 (the reference) both take.
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("busybox.tar").display().to_string();
    d.ok(&["save", "-o", &saved, "ros/busybox"], &vm);
    let host = |args: &[&str]| {
        Command::new("docker")
            .args(["-H", "unix:///var/run/docker.sock"])
            .args(args)
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    };
    // `ros/busybox` is a name images.rs gives the reference engine too.
    let reference = harness::reference::lock().unwrap();
    let out = host(&["load", "-i", &saved]);
    assert!(
        out.status.success() && text(&out.stdout).contains("Loaded image: ros/busybox:latest"),
        "dockerd refused our save: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = host(&["run", "--rm", "ros/busybox", "echo", "ran-on-dockerd"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "ran-on-dockerd",
        "{}",
        text(&out.stderr)
    );
    let _ = host(&["rmi", "-f", "ros/busybox"]);
    drop(reference);

    // prune: nothing dangling; then every image no container uses; load brings it back.
    let none = d.ok(&["image", "prune", "-f"], &vm);
    assert!(none.contains("Total reclaimed space: 0B"), "{none}");
    let all = d.ok(&["image", "prune", "-a", "-f"], &vm);
    assert!(all.contains("deleted: sha256:"), "{all}");
    assert_eq!(d.ok(&["images", "-q"], &vm), "");
    d.ok(&["load", "-i", &saved], &vm);
    assert_eq!(
        d.ok(&["run", "--rm", "ros/busybox", "echo", "back"], &vm),
        "back"
    );
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

/// The VM's clock, in unix seconds (the engine stamps events with it).
fn vm_now(vm: &Vm) -> u64 {
    vm.ssh_ok("date +%s").unwrap().trim().parse().unwrap()
}

#[test]
fn exec_top_stats_pause_and_events_on_a_running_container() {
    let (vm, d) = boot("user_docker_exec");
    let since = vm_now(&vm).to_string();
    let id = d.ok(
        &[
            "run",
            "-d",
            "--name",
            "box",
            "-e",
            "FROM_RUN=1",
            "ros/busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
        &vm,
    );

    // Exec: in the container's pid namespace, with its environment; streams kept apart.
    assert_eq!(
        d.ok(
            &[
                "exec",
                "box",
                "sh",
                "-c",
                "echo $FROM_RUN; tr '\\0' ' ' < /proc/1/cmdline"
            ],
            &vm
        ),
        "1\nsh -c trap 'exit 0' TERM; while true; do sleep 1; done"
    );
    let out = d.run(&["exec", "box", "sh", "-c", "echo o; echo e >&2; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "o");
    assert_eq!(text(&out.stderr).trim(), "e");
    let out = d.run_with(
        &["exec", "-i", "box", "sh", "-c", "cat; echo done"],
        b"hello\n",
    );
    assert_eq!(text(&out.stdout), "hello\ndone\n", "{}", text(&out.stderr));
    assert_eq!(
        d.ok(
            &[
                "exec",
                "-u",
                "1000:1000",
                "-w",
                "/tmp",
                "-e",
                "X=y",
                "box",
                "sh",
                "-c",
                "id -u; id -g; pwd; echo $X",
            ],
            &vm
        ),
        "1000\n1000\n/tmp\ny"
    );
    // A terminal of the container's own.
    let out = d.run(&[
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; test -t 0 && echo is-a-tty",
    ]);
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}{}", text(&out.stderr));
    assert!(
        t.starts_with("/dev/pts/") && t.contains("is-a-tty"),
        "{t:?}"
    );
    // What cannot run.
    let out = d.run(&["exec", "box", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no-such-command"),
        "{}",
        text(&out.stderr)
    );
    // Detached.
    d.ok(
        &[
            "exec",
            "-d",
            "box",
            "sh",
            "-c",
            "sleep 1; touch /tmp/detached",
        ],
        &vm,
    );
    until("the detached exec ran", Duration::from_secs(20), || {
        d.run(&["exec", "box", "test", "-e", "/tmp/detached"])
            .status
            .success()
    });

    // Top: ps -ef's columns from /proc.
    let top = d.ok(&["top", "box"], &vm);
    let header: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    assert!(
        top.lines()
            .any(|l| l.starts_with("root") && l.contains("sh -c trap")),
        "{top}"
    );
    let pid = d.inspect("{{.State.Pid}}", "box", &vm);
    assert!(
        top.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(pid.as_str())),
        "{top}"
    );

    // Stats: memory and pids from the container's cgroup.
    let stats = d.ok(
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}",
            "box",
        ],
        &vm,
    );
    let f: Vec<&str> = stats.split('|').collect();
    assert_eq!(f.len(), 4, "{stats}");
    assert_eq!(f[0], "box", "{stats}");
    assert!(
        f[1].contains(" / ") && !f[1].starts_with("0B"),
        "memory: {stats}"
    );
    let pids: u32 = f[2].parse().unwrap_or(0);
    assert!(pids >= 1, "pids: {stats}");
    assert!(f[3].ends_with('%'), "cpu: {stats}");

    // Pause: the cgroup is frozen, exec is refused, ps says so; unpause thaws it.
    d.ok(&["pause", "box"], &vm);
    assert_eq!(
        d.inspect(
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
            "box",
            &vm
        ),
        "paused true true"
    );
    let events = vm
        .ssh_ok(&format!("cat /sys/fs/cgroup/docker/{id}/cgroup.events"))
        .unwrap();
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"], &vm);
    assert!(ps.contains("(Paused)"), "{ps}");
    let out = d.run(&["exec", "box", "true"]);
    assert!(
        text(&out.stderr).contains("is paused, unpause the container before exec"),
        "{}",
        text(&out.stderr)
    );
    let out = d.run(&["pause", "box"]);
    assert!(
        text(&out.stderr).contains("is already paused"),
        "{}",
        text(&out.stderr)
    );
    d.ok(&["unpause", "box"], &vm);
    assert_eq!(d.inspect("{{.State.Status}}", "box", &vm), "running");
    assert_eq!(d.ok(&["exec", "box", "echo", "thawed"], &vm), "thawed");

    // Live events: a reader started now sees the next start as it happens.
    let mut live = d
        .cmd(&[
            "events",
            "--filter",
            "event=start",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    d.ok(
        &["run", "--rm", "--name", "blip", "ros/busybox", "true"],
        &vm,
    );
    let mut live_out = live.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(&mut live_out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(line.as_deref().map(str::trim), Ok("start blip"));

    // --init: our init is the container's PID 1 and passes TERM on (KILL would say 137).
    d.ok(
        &[
            "run",
            "-d",
            "--init",
            "--name",
            "initc",
            "ros/busybox",
            "sleep",
            "300",
        ],
        &vm,
    );
    assert_eq!(
        d.ok(
            &[
                "exec",
                "initc",
                "sh",
                "-c",
                "tr '\\0' ' ' < /proc/1/cmdline"
            ],
            &vm
        ),
        "/sbin/ros-init -- sleep 300"
    );
    d.ok(&["stop", "-t", "30", "initc"], &vm);
    assert_eq!(d.inspect("{{.State.ExitCode}}", "initc", &vm), "143");
    d.ok(&["rm", "initc"], &vm);

    // A stop of a paused container: the TERM trap runs once it is thawed.
    d.ok(&["pause", "box"], &vm);
    d.ok(&["stop", "-t", "20", "box"], &vm);
    assert_eq!(
        d.inspect("{{.State.Status}} {{.State.ExitCode}}", "box", &vm),
        "exited 0"
    );
    let out = d.run(&["exec", "box", "true"]);
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );

    // The past, replayed: since/until bound it, Docker's names and attributes.
    let until_t = (vm_now(&vm) + 1).to_string();
    std::thread::sleep(Duration::from_secs(2));
    let past = d.ok(
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until_t,
            "--filter",
            "container=box",
            "--format",
            "{{json .}}",
        ],
        &vm,
    );
    let actions: Vec<String> = past
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let code = v["Actor"]["Attributes"]["exitCode"].as_str().unwrap_or("");
            format!(
                "{} {} {code}",
                v["Type"].as_str().unwrap(),
                v["Action"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "container create ",
        "container start ",
        "container pause ",
        "container unpause ",
        "container die 0",
        "container stop ",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want:?} not in:\n{past}"
        );
    }
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("container exec_start: sh -c")),
        "{past}"
    );
    assert!(!past.contains("blip"), "{past}");
    d.ok(&["rm", "box"], &vm);

    // A health check: healthy while its test passes, unhealthy after two failures in a row;
    // ps and the events say so.
    let since = vm_now(&vm).to_string();
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "checked",
            "--health-cmd",
            "test ! -e /tmp/sick",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "ros/busybox",
            "sleep",
            "1000",
        ],
        &vm,
    );
    until("healthy", Duration::from_secs(60), || {
        d.inspect("{{.State.Health.Status}}", "checked", &vm) == "healthy"
    });
    let ps = d.ok(
        &["ps", "--filter", "name=checked", "--format", "{{.Status}}"],
        &vm,
    );
    assert!(ps.ends_with("(healthy)"), "{ps}");
    d.ok(&["exec", "checked", "touch", "/tmp/sick"], &vm);
    until("unhealthy", Duration::from_secs(60), || {
        d.inspect("{{.State.Health.Status}}", "checked", &vm) == "unhealthy"
    });
    let last = d.inspect(
        "{{range .State.Health.Log}}{{.ExitCode}} {{end}}{{.State.Health.FailingStreak}}",
        "checked",
        &vm,
    );
    let (codes, streak) = last.rsplit_once(' ').unwrap();
    assert!(
        codes.ends_with('1') && streak.parse::<u32>().unwrap() >= 2,
        "{last}"
    );
    let until_t = (vm_now(&vm) + 1).to_string();
    std::thread::sleep(Duration::from_secs(2));
    let events = d.ok(
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until_t,
            "--filter",
            "container=checked",
            "--format",
            "{{.Action}}",
        ],
        &vm,
    );
    assert!(
        events.contains("health_status: healthy") && events.contains("health_status: unhealthy"),
        "{events}"
    );
    d.ok(&["rm", "-f", "checked"], &vm);
}

#[test]
fn files_volumes_and_docker_cp() {
    let (vm, d) = boot("user_docker_volumes");
    assert_eq!(
        d.ok(&["volume", "create", "--label", "k=v", "data1"], &vm),
        "data1"
    );
    assert_eq!(
        d.ok(
            &[
                "volume",
                "inspect",
                "-f",
                "{{.Driver}} {{.Mountpoint}} {{.Labels.k}}",
                "data1"
            ],
            &vm
        ),
        "local /var/lib/docker/volumes/data1/_data v"
    );
    // What one container writes, the next reads; read-only is read-only.
    d.ok(
        &[
            "run",
            "--rm",
            "-v",
            "data1:/data",
            "ros/busybox",
            "sh",
            "-c",
            "echo persisted > /data/f",
        ],
        &vm,
    );
    assert_eq!(
        d.ok(
            &[
                "run",
                "--rm",
                "-v",
                "data1:/data:ro",
                "ros/busybox",
                "cat",
                "/data/f"
            ],
            &vm
        ),
        "persisted"
    );
    let out = d.run(&[
        "run",
        "--rm",
        "-v",
        "data1:/data:ro",
        "ros/busybox",
        "sh",
        "-c",
        "echo x > /data/g",
    ]);
    assert!(!out.status.success(), "a read-only volume took a write");
    // The data is on the engine's disk, where inspect says (seen from the engine's own
    // container: the console does not have /var/lib/docker).
    assert_eq!(
        vm.ssh_ok("sudo system-docker exec docker cat /var/lib/docker/volumes/data1/_data/f")
            .unwrap(),
        "persisted"
    );
    // --mount makes a missing named volume; a new volume is filled from the image.
    let listing = d.ok(
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=fresh,target=/usr/share/udhcpc",
            "ros/busybox",
            "ls",
            "/usr/share/udhcpc",
        ],
        &vm,
    );
    assert_eq!(listing, "default.script");
    assert!(d
        .ok(&["volume", "ls", "-q"], &vm)
        .lines()
        .any(|l| l == "fresh"));

    // Anonymous: made for the container, shown by inspect, gone with `rm -v`.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "anon",
            "-v",
            "/scratch",
            "ros/busybox",
            "sleep",
            "300",
        ],
        &vm,
    );
    let m = d.inspect(
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
        "anon",
        &vm,
    );
    let f: Vec<&str> = m.split(' ').collect();
    assert!(f.len() == 4 && f[0] == "volume" && f[1].len() == 64, "{m}");
    assert_eq!((f[2], f[3]), ("/scratch", "true"), "{m}");
    let anon = f[1].to_string();
    assert!(d.ok(&["volume", "ls", "-q"], &vm).contains(&anon));
    d.ok(&["rm", "-f", "-v", "anon"], &vm);
    assert!(!d.ok(&["volume", "ls", "-q"], &vm).contains(&anon));
    // --rm takes its anonymous volumes along.
    let before = d.ok(&["volume", "ls", "-q"], &vm);
    d.ok(
        &["run", "--rm", "-v", "/tmpvol", "ros/busybox", "true"],
        &vm,
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"], &vm), before);

    // --volumes-from, and a volume in use is not removed.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "src",
            "-v",
            "data1:/shared",
            "ros/busybox",
            "sleep",
            "300",
        ],
        &vm,
    );
    assert_eq!(
        d.ok(
            &[
                "run",
                "--rm",
                "--volumes-from",
                "src",
                "ros/busybox",
                "cat",
                "/shared/f"
            ],
            &vm
        ),
        "persisted"
    );
    let out = d.run(&["volume", "rm", "data1"]);
    assert!(
        text(&out.stderr).contains("volume is in use"),
        "{}",
        text(&out.stderr)
    );
    // Bad names and duplicate destinations get Docker's words.
    let out = d.run(&["run", "--rm", "-v", "bad$name:/x", "ros/busybox", "true"]);
    assert!(
        text(&out.stderr).contains("includes invalid characters for a local volume name"),
        "{}",
        text(&out.stderr)
    );
    let out = d.run(&[
        "run",
        "--rm",
        "-v",
        "data1:/x",
        "-v",
        "fresh:/x",
        "ros/busybox",
        "true",
    ]);
    assert!(
        text(&out.stderr).contains("Duplicate mount point"),
        "{}",
        text(&out.stderr)
    );

    // An engine restart changes nothing.
    vm.ssh_ok("sudo system-docker restart docker").unwrap();
    until(
        "the user engine answers again",
        Duration::from_secs(60),
        || d.run(&["volume", "ls"]).status.success(),
    );
    assert_eq!(d.ok(&["exec", "src", "cat", "/shared/f"], &vm), "persisted");

    // tmpfs: --tmpfs with its options, --mount type=tmpfs with a size.
    let t = d.ok(
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=1m,mode=1777",
            "ros/busybox",
            "sh",
            "-c",
            "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; \
             dd if=/dev/zero of=/scratch/x bs=1k count=2048 2>/dev/null && echo fit || echo full",
        ],
        &vm,
    );
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines.len() == 3 && lines[0].starts_with("tmpfs /scratch tmpfs "),
        "{t}"
    );
    assert!(
        lines[0].contains("size=1024k") && lines[0].contains("noexec"),
        "{t}"
    );
    assert_eq!((lines[1], lines[2]), ("1777", "full"), "{t}");
    let t = d.ok(
        &[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=2097152",
            "ros/busybox",
            "grep",
            " /t ",
            "/proc/mounts",
        ],
        &vm,
    );
    assert!(t.contains("size=2048k"), "{t}");

    // docker cp, both ways, resolved inside the container.
    let host = tempfile::tempdir().unwrap();
    let h = |p: &str| host.path().join(p).display().to_string();
    d.ok(&["cp", "src:/shared/f", &h("f_out")], &vm);
    assert_eq!(std::fs::read_to_string(h("f_out")).unwrap(), "persisted\n");
    d.ok(&["cp", "src:/usr/share/udhcpc", &h("dir_out")], &vm);
    assert!(std::path::Path::new(&h("dir_out/default.script")).exists());
    std::fs::write(h("hostfile"), "from-the-host\n").unwrap();
    std::os::unix::fs::chown(h("hostfile"), Some(1234), Some(1234)).unwrap();
    d.ok(&["cp", &h("hostfile"), "src:/shared/"], &vm);
    // Written as root's, as Docker does; `-a` keeps the owner.
    assert_eq!(
        d.ok(
            &["exec", "src", "stat", "-c", "%u:%g", "/shared/hostfile"],
            &vm
        ),
        "0:0"
    );
    d.ok(&["cp", "-a", &h("hostfile"), "src:/tmp/"], &vm);
    assert_eq!(
        d.ok(
            &["exec", "src", "stat", "-c", "%u:%g", "/tmp/hostfile"],
            &vm
        ),
        "1234:1234"
    );
    assert_eq!(
        d.ok(&["exec", "src", "cat", "/shared/hostfile"], &vm),
        "from-the-host"
    );
    // A symlink in the container leads inside it, never out to the engine's root.
    d.ok(&["exec", "src", "ln", "-s", "/", "/tmp/escape"], &vm);
    d.ok(&["cp", &h("hostfile"), "src:/tmp/escape/"], &vm);
    assert_eq!(
        d.ok(&["exec", "src", "cat", "/hostfile"], &vm),
        "from-the-host"
    );
    let engine_root = vm
        .ssh("sudo system-docker exec docker test -e /hostfile")
        .unwrap();
    assert!(
        !engine_root.status.success(),
        "docker cp wrote into the engine's root"
    );
    // A tar naming ../ is kept inside the target.
    let evil = {
        let mut b = tar::Builder::new(Vec::new());
        let mut hd = tar::Header::new_gnu();
        let data = b"evil\n";
        hd.set_size(data.len() as u64);
        hd.set_mode(0o644);
        hd.as_gnu_mut().unwrap().name[..15].copy_from_slice(b"../../../evil-x");
        hd.set_cksum();
        b.append(&hd, &data[..]).unwrap();
        b.into_inner().unwrap()
    };
    let _ = d.run_with(&["cp", "-", "src:/tmp"], &evil);
    let escaped = vm
        .ssh("sudo system-docker exec docker test -e /evil-x")
        .unwrap();
    assert!(!escaped.status.success(), "a ../ entry left the container");
    // Not found, in Docker's words.
    let out = d.run(&["cp", "src:/no/such", &h("x")]);
    assert!(
        text(&out.stderr).contains("Could not find the file /no/such in container"),
        "{}",
        text(&out.stderr)
    );
    // A container that is not running: its root filesystem, before its first start.
    d.ok(
        &[
            "create",
            "--name",
            "cpc",
            "ros/busybox",
            "cat",
            "/etc/hostfile",
        ],
        &vm,
    );
    d.ok(&["cp", &h("hostfile"), "cpc:/etc/"], &vm);
    assert_eq!(d.ok(&["start", "-a", "cpc"], &vm), "from-the-host");
    d.ok(&["rm", "cpc"], &vm);

    // system df: what is on the engine's disk, and what is in use.
    let df = d.ok(
        &[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}}",
        ],
        &vm,
    );
    let rows: Vec<&str> = df.lines().collect();
    assert!(rows.contains(&"Containers 1 1"), "{df}");
    assert!(rows.contains(&"Local Volumes 2 1"), "{df}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("Images ") && r.ends_with(" 1")),
        "{df}"
    );

    d.ok(&["rm", "-f", "src"], &vm);
    d.ok(&["volume", "rm", "data1"], &vm);
    let pruned = d.ok(&["volume", "prune", "-f"], &vm);
    assert!(pruned.contains("fresh"), "{pruned}");
    assert_eq!(d.ok(&["volume", "ls", "-q"], &vm), "");
}

#[test]
fn restart_policies_images_and_volumes_hold_across_a_reboot() {
    use harness::disk::Disk;
    use harness::ssh::Key;
    use harness::vm::VmOptions;
    let disk = Disk::blank("user_docker_reboot", 512).unwrap();
    let key = Key::generate("user_docker_reboot").unwrap();
    let opts = VmOptions::new("user_docker_reboot")
        .unwrap()
        .drive(disk.drive())
        .ssh_key(&key)
        .forward(8080)
        .allow_reboot();
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"\[ros\] ready", Duration::from_secs(180))
        .unwrap();
    let d = harness::docker_cli::connect(&vm, &key);
    d.load_initrd_images(&vm);
    let loop_cmd = "echo up; trap 'exit 0' TERM; while true; do sleep 1; done";
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("stopped", "unless-stopped"),
        ("never", "no"),
    ] {
        d.ok(
            &[
                "run",
                "-d",
                "--name",
                name,
                "--restart",
                policy,
                "-v",
                "keep:/keep",
                "ros/busybox",
                "sh",
                "-c",
                loop_cmd,
            ],
            &vm,
        );
    }
    d.ok(&["stop", "stopped"], &vm);
    d.ok(
        &["exec", "always", "sh", "-c", "echo across-reboot > /keep/f"],
        &vm,
    );
    // A server with a published port, on this machine's side of QEMU's forward.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--hostname",
            "web-host",
            "--restart",
            "always",
            "-p",
            "8080:80",
            "ros/busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ],
        &vm,
    );
    let web_ip = d.inspect("{{.NetworkSettings.IPAddress}}", "web", &vm);
    let port = vm.port(8080).unwrap();
    until(
        "the published port answers",
        Duration::from_secs(30),
        || harness::docker_cli::http_get(port, "/hostname").is_ok_and(|b| b == "web-host"),
    );

    let _ = vm.ssh("sudo reboot");
    vm.expect(r"\[ros\] shutdown complete", Duration::from_secs(180))
        .unwrap();
    vm.expect(r"\[ros\] ready", Duration::from_secs(180))
        .unwrap();
    let d = harness::docker_cli::connect(&vm, &key);
    // Images and records are on the state partition: nothing to load again.
    assert!(
        d.ok(&["images", "--format", "{{.Repository}}"], &vm)
            .lines()
            .any(|l| l == "ros/busybox"),
        "the image store did not survive the reboot"
    );
    until(
        "the always and unless-stopped containers run again",
        Duration::from_secs(60),
        || {
            d.inspect("{{.State.Status}}", "always", &vm) == "running"
                && d.inspect("{{.State.Status}}", "unless", &vm) == "running"
        },
    );
    assert_eq!(d.inspect("{{.State.Status}}", "stopped", &vm), "exited");
    assert_eq!(d.inspect("{{.State.Status}}", "never", &vm), "exited");
    // The published port answers again, from the same address on the bridge.
    until(
        "the published port answers after the reboot",
        Duration::from_secs(60),
        || harness::docker_cli::http_get(port, "/hostname").is_ok_and(|b| b == "web-host"),
    );
    assert_eq!(
        d.inspect("{{.NetworkSettings.IPAddress}}", "web", &vm),
        web_ip
    );
    assert_eq!(
        d.ok(&["exec", "always", "cat", "/keep/f"], &vm),
        "across-reboot"
    );
    // A fresh process, logging again into the same log.
    let logs = d.ok(&["logs", "always"], &vm);
    assert_eq!(logs.lines().filter(|l| *l == "up").count(), 2, "{logs}");
    d.ok(
        &["rm", "-f", "always", "unless", "stopped", "never", "web"],
        &vm,
    );
}
