//! The control API and its CLIs, proven in VMs: PID 1 serves a Docker-shaped API on
//! `/var/run/system-docker.sock`; `system-docker ps|inspect|logs|images` show the system
//! services; `system-docker exec` runs inside a service's container (its pid namespace, its
//! filesystem, its cgroup) and passes the exit code on; `restart` gives a new process, `stop`
//! keeps a service stopped despite `restart: always`, `start` brings it back; `rancherctl
//! service` does the same through the API and `enable|disable` edit the saved configuration.

use harness::vm::{Vm, VmOptions};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(120);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

fn boot(name: &str) -> Vm {
    let mut vm = Vm::boot(VmOptions::new(name).unwrap()).expect("QEMU starts");
    vm.expect(READY, BOOT).unwrap();
    vm
}

/// Run `cmd`; its output and exit code.
fn run(vm: &mut Vm, cmd: &str) -> (String, i32) {
    let (out, rc) = vm.sh(cmd, BOOT).unwrap();
    (out.trim().to_string(), rc)
}

/// Run `cmd`, which must succeed; its output.
fn sh(vm: &mut Vm, cmd: &str) -> String {
    let (out, rc) = run(vm, cmd);
    assert_eq!(rc, 0, "`{cmd}` failed: {out}");
    out
}

/// The first line of `cmd`'s output that is a number alone (PID 1's console notes can land in
/// the middle of the output), or None.
fn number(vm: &mut Vm, cmd: &str) -> Option<u32> {
    let (out, _) = run(vm, cmd);
    out.lines().find_map(|l| l.trim().parse().ok())
}

fn pidof_syslogd(vm: &mut Vm) -> Option<u32> {
    number(vm, "pidof syslogd")
}

/// Wait up to 10 s for syslogd to run with a pid other than `old`.
fn new_syslogd(vm: &mut Vm, old: Option<u32>) -> u32 {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Some(p) = pidof_syslogd(vm).filter(|p| Some(*p) != old) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("syslogd did not come (back) with a new pid (old {old:?})");
}

/// The row of `ps` output for container `name`.
fn ps_row(ps: &str, name: &str) -> Option<String> {
    ps.lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .map(str::to_string)
}

#[test]
fn system_docker_lists_inspects_and_enters_the_system_containers() {
    let mut vm = boot("system_docker_ps_exec");
    assert_eq!(sh(&mut vm, "readlink /var/run"), "/run", "/var/run is /run");
    assert!(sh(&mut vm, "ls -l /var/run/system-docker.sock").starts_with('s'));

    // ps: both default services, running, with their images, in docker's columns.
    let ps = sh(&mut vm, "system-docker ps");
    assert!(ps.contains("CONTAINER ID   IMAGE"), "{ps}");
    for name in ["syslog", "network"] {
        let row = ps_row(&ps, name).unwrap_or_else(|| panic!("no {name} row in:\n{ps}"));
        assert!(row.contains("ros/busybox:latest"), "{row}");
        assert!(row.contains(" Up "), "{row}");
    }
    let images = sh(&mut vm, "system-docker images");
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("ros/busybox") && l.contains("latest")),
        "{images}"
    );

    // inspect: State.Pid is the syslogd the host sees.
    let pid = pidof_syslogd(&mut vm).expect("syslogd runs");
    let inspect = sh(&mut vm, "system-docker inspect syslog");
    let pid_re = regex::Regex::new(r#""Pid": (\d+)"#).unwrap();
    let got: u32 = pid_re.captures(&inspect).expect("State.Pid")[1]
        .parse()
        .unwrap();
    assert_eq!(got, pid, "{inspect}");
    for want in [
        r#""Name": "/syslog""#,
        r#""Running": true"#,
        r#""Image": "ros/busybox:latest""#,
        r#""Name": "always""#,
    ] {
        assert!(inspect.contains(want), "{want} in {inspect}");
    }

    // exec: in syslog's pid namespace and cgroup, on its filesystem.
    let host_ns = sh(&mut vm, "readlink /proc/self/ns/pid");
    let svc_ns = sh(&mut vm, &format!("readlink /proc/{pid}/ns/pid"));
    let exec_ns = sh(
        &mut vm,
        "system-docker exec syslog readlink /proc/self/ns/pid",
    );
    assert!(exec_ns.contains(&svc_ns), "{exec_ns} vs {svc_ns}");
    assert_ne!(svc_ns, host_ns);
    let cmdline = sh(
        &mut vm,
        "system-docker exec syslog cat /proc/1/cmdline | tr '\\0' ' '",
    );
    assert!(
        cmdline.contains("syslogd -n"),
        "pid 1 in there is syslogd: {cmdline}"
    );
    let cgroup = sh(&mut vm, "system-docker exec syslog cat /proc/self/cgroup");
    assert!(cgroup.contains("0::/system/syslog"), "{cgroup}");
    // The host's initrd has /usr/bin/system-docker; the busybox image has not.
    sh(&mut vm, "test -e /usr/bin/system-docker");
    let (out, rc) = run(
        &mut vm,
        "system-docker exec syslog test -e /usr/bin/system-docker",
    );
    assert_eq!(rc, 1, "the container's own filesystem: {out}");
    // With the container's capabilities, not the host's full set.
    let caps = "grep -E '^Cap(Bnd|Eff)' /proc/self/status";
    let inside = sh(&mut vm, &format!("system-docker exec syslog {caps}"));
    let svc_caps = sh(&mut vm, &format!("grep ^CapBnd /proc/{pid}/status"));
    let host_caps = sh(&mut vm, "grep ^CapBnd /proc/self/status");
    assert_ne!(svc_caps, host_caps, "syslog runs with fewer capabilities");
    assert!(inside.contains(&svc_caps), "{inside} vs {svc_caps}");
    let as_nobody = sh(&mut vm, "system-docker exec -u 65534 syslog id -u");
    assert!(
        as_nobody.lines().any(|l| l.trim() == "65534"),
        "{as_nobody}"
    );
    let env = sh(&mut vm, "system-docker exec -e FOO=bar syslog env");
    assert!(
        env.contains("FOO=bar") && env.contains("PATH=/usr/local/sbin"),
        "{env}"
    );

    // stdin with -i; without it the command reads EOF at once.
    let piped = sh(
        &mut vm,
        "printf 'in-%s\\n' put | system-docker exec -i syslog cat",
    );
    assert!(piped.contains("in-put"), "{piped}");
    let (out, rc) = run(&mut vm, "echo ignored | system-docker exec syslog cat");
    assert_eq!(rc, 0, "{out}");
    assert!(
        !out.contains("ignored\n") && !out.lines().any(|l| l == "ignored"),
        "{out}"
    );

    // Exit codes and stderr come through.
    let (_, rc) = run(&mut vm, "system-docker exec syslog sh -c 'exit 3'");
    assert_eq!(rc, 3);
    // The words are built by printf, so no echo of the command line can match them.
    let both =
        r#"system-docker exec syslog sh -c "printf '%s-%s\n' to out; printf '%s-%s\n' to err >&2""#;
    let (out, rc) = run(&mut vm, &format!("{both} 2>/dev/null"));
    assert_eq!(rc, 0);
    assert!(
        out.contains("to-out") && !out.contains("to-err"),
        "stdout only: {out}"
    );
    let (out, _) = run(&mut vm, &format!("{both} 2>&1 >/dev/null"));
    assert!(
        out.contains("to-err") && !out.contains("to-out"),
        "stderr only: {out}"
    );
    let (out, rc) = run(&mut vm, "system-docker exec syslog no-such-command");
    assert_eq!(rc, 127, "{out}");

    // logs: what the container's init writes to its stdout (the log file).
    sh(&mut vm, "system-docker exec syslog sh -c 'echo marker-1 >> /proc/1/fd/1; echo marker-2 >> /proc/1/fd/1'");
    let logs = sh(&mut vm, "system-docker logs syslog");
    assert!(
        logs.contains("marker-1") && logs.contains("marker-2"),
        "{logs}"
    );
    let tail = sh(&mut vm, "system-docker logs --tail 1 syslog");
    assert!(
        tail.contains("marker-2") && !tail.contains("marker-1"),
        "{tail}"
    );

    // logs -f: new lines arrive while it follows.
    sh(
        &mut vm,
        "system-docker logs -f --tail 0 syslog > /tmp/follow & sleep 1",
    );
    sh(
        &mut vm,
        "system-docker exec syslog sh -c 'echo marker-3 >> /proc/1/fd/1'",
    );
    std::thread::sleep(Duration::from_secs(1));
    let followed = sh(&mut vm, "cat /tmp/follow");
    assert!(
        followed.contains("marker-3") && !followed.contains("marker-2"),
        "{followed}"
    );

    // save and load: the initrd's images (shipped unpacked, without their layer blobs) are
    // saved with each layer written back from its tree, every digest checked on the way and
    // again by the load that takes them back.
    sh(
        &mut vm,
        "system-docker save ros/busybox ros/console -o /tmp/images.tar",
    );
    let loaded = sh(&mut vm, "system-docker load -i /tmp/images.tar");
    assert!(
        loaded.contains("Loaded image: ros/busybox:latest")
            && loaded.contains("Loaded image: ros/console:latest"),
        "{loaded}"
    );
    let (out, rc) = run(&mut vm, "echo not-a-tar | system-docker load");
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("Error response from daemon"), "{out}");

    // The engine's log is stamped with seconds since boot, the kernel's and the milestones'
    // clock: its start comes after PID 1's `/init`, before now.
    let first = sh(&mut vm, "head -n 1 /var/log/system-docker.log");
    let stamp = regex::Regex::new(r"^\[\s*(\d+\.\d{3})\]\s+INFO .*dockerd: starting")
        .unwrap()
        .captures(&first)
        .unwrap_or_else(|| panic!("no boot-clock stamp: {first:?}"))[1]
        .parse::<f64>()
        .unwrap();
    let uptime: f64 = sh(&mut vm, "cut -d' ' -f1 /proc/uptime").parse().unwrap();
    assert!(stamp > 0.5 && stamp < uptime, "{stamp} vs uptime {uptime}");

    // The initrd's layers are one squashfs image (compressed in RAM), mounted once and bound
    // onto each layer's diff/ in the store: one squashfs mount per layer, plus the image's —
    // but for the busybox layer, whose one big file is the initramfs's own /bin/busybox: it is
    // kept in the initramfs, that file a hard link (one inode), no mount.
    const LAYERS: &str = "ls /var/lib/system-docker/layers | wc -l";
    const SQUASHFS: &str = "grep -c ' squashfs ' /proc/mounts";
    const SAME_BUSYBOX: &str = "find /var/lib/system-docker/layers -path '*/diff/bin/busybox' \
        -samefile /bin/busybox | wc -l";
    let layers = number(&mut vm, LAYERS).expect("a count of layers");
    let mounts = number(&mut vm, SQUASHFS).expect("a count of mounts");
    let inline = number(&mut vm, SAME_BUSYBOX).expect("a count of hard links");
    assert_eq!(inline, 1, "the busybox layer's busybox is /bin/busybox");
    assert!(layers >= 3, "{layers} layers");
    assert_eq!(
        mounts,
        layers - inline + 1,
        "squashfs mounts: {}",
        sh(&mut vm, "cat /proc/mounts")
    );
    // Removing an image no service runs (the state step's e2fsprogs) lets the store collect its
    // own layers: unbound first, then deleted, the shared ones kept.
    let rmi = sh(&mut vm, "system-docker rmi ros/e2fsprogs");
    assert!(
        rmi.contains("Untagged: ros/e2fsprogs:latest") && rmi.contains("Deleted: sha256:"),
        "{rmi}"
    );
    let (out, rc) = run(&mut vm, "system-docker rmi ros/busybox");
    assert_eq!(rc, 1, "an image its services use stays: {out}");
    assert!(out.contains("conflict"), "{out}");
    let layers_after = number(&mut vm, LAYERS).expect("a count of layers");
    let mounts_after = number(&mut vm, SQUASHFS).expect("a count of mounts");
    assert!(layers_after < layers, "{layers} → {layers_after} layers");
    assert_eq!(
        mounts_after,
        layers_after - inline + 1,
        "{}",
        sh(&mut vm, "cat /proc/mounts")
    );
    let ps = sh(&mut vm, "system-docker exec syslog ls /bin/busybox");
    assert!(
        ps.contains("/bin/busybox"),
        "shared layers still there: {ps}"
    );

    // Unknown containers: a clear error and exit code 1.
    for cmd in [
        "system-docker inspect nosuch",
        "system-docker exec nosuch true",
        "system-docker logs nosuch",
        "system-docker restart nosuch",
    ] {
        let (out, rc) = run(&mut vm, cmd);
        assert_eq!(rc, 1, "`{cmd}`: {out}");
        assert!(out.contains("No such"), "`{cmd}`: {out}");
    }
    let (out, rc) = run(&mut vm, "system-docker -H unix:///run/nothing.sock ps");
    assert_eq!(rc, 1);
    assert!(out.contains("Cannot connect"), "{out}");
}

#[test]
fn stop_keeps_a_service_stopped_and_start_and_restart_bring_it_back() {
    let mut vm = boot("system_docker_lifecycle");
    let first = pidof_syslogd(&mut vm).expect("syslogd runs");

    // restart: a new process.
    let out = sh(&mut vm, "system-docker restart syslog");
    assert!(out.lines().any(|l| l == "syslog"), "{out}");
    let second = new_syslogd(&mut vm, Some(first));

    // stop: gone, and `restart: always` does not bring it back.
    sh(&mut vm, "system-docker stop -t 5 syslog");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(pidof_syslogd(&mut vm), None, "stopped stays stopped");
    let ps = sh(&mut vm, "system-docker ps");
    assert!(ps_row(&ps, "syslog").is_none(), "{ps}");
    let all = sh(&mut vm, "system-docker ps -a");
    let row = ps_row(&all, "syslog").unwrap_or_else(|| panic!("{all}"));
    assert!(row.contains("Exited"), "{row}");
    let (out, rc) = run(&mut vm, "system-docker exec syslog true");
    assert_eq!(rc, 1, "exec into a stopped container: {out}");
    assert!(out.contains("not running"), "{out}");

    // start: back.
    sh(&mut vm, "system-docker start syslog");
    let third = new_syslogd(&mut vm, Some(second));

    // rancherctl service, through the API.
    sh(&mut vm, "rancherctl service stop syslog");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pidof_syslogd(&mut vm), None);
    sh(&mut vm, "rancherctl service start syslog");
    let fourth = new_syslogd(&mut vm, Some(third));
    sh(&mut vm, "rancherctl service restart syslog");
    let fifth = new_syslogd(&mut vm, Some(fourth));

    // enable/disable edit the saved configuration; up follows it.
    sh(&mut vm, "rancherctl service disable syslog");
    assert_eq!(
        sh(
            &mut vm,
            "rancherctl config get rancher.services_include.syslog"
        ),
        "false"
    );
    let (out, rc) = run(&mut vm, "rancherctl service up syslog");
    assert_ne!(rc, 0, "up refuses a disabled service: {out}");
    assert!(out.contains("disabled"), "{out}");
    sh(&mut vm, "rancherctl service enable syslog");
    assert!(sh(&mut vm, "cat /var/lib/rancher/conf/cloud-config.yml").contains("syslog: true"));
    sh(&mut vm, "rancherctl service up syslog");
    new_syslogd(&mut vm, Some(fifth));
    let (out, rc) = run(&mut vm, "rancherctl service stop nosuch");
    assert_ne!(rc, 0);
    assert!(out.contains("No such container: nosuch"), "{out}");

    // A stop that comes before the process takes SIGTERM (the shell sets its trap 3 s in; as
    // its pid namespace's init, the kernel drops a signal it does not handle) is sent again
    // once it does: a clean exit, not KILL at the deadline.
    sh(
        &mut vm,
        "system-docker run -d --name late ros/busybox:latest \
         sh -c 'sleep 3; trap \"exit 0\" TERM; while :; do sleep 0.2; done' >/dev/null",
    );
    let took = sh(
        &mut vm,
        "a=$(cut -d' ' -f1 /proc/uptime); system-docker stop -t 60 late >/dev/null; \
         b=$(cut -d' ' -f1 /proc/uptime); echo \"$a $b\"",
    );
    assert_eq!(
        sh(&mut vm, &exit_code("late")),
        "\"ExitCode\": 0",
        "the trap ran (stop from uptime {took})"
    );
    let log = sh(
        &mut vm,
        "grep -c 'the stop signal came before the process could take it' /var/log/system-docker.log",
    );
    assert_eq!(log, "1", "sent again once");
    eprintln!("stop before the trap: uptime before and after {took}");

    // `ros ntpd` stops on SIGTERM in the middle of a round, not after it: here each server
    // is an address nothing answers from (3 s apiece, as a DNS lookup with no resolver
    // takes seconds on a real network), the round 9 s, a shutdown's share of time less.
    sh(
        &mut vm,
        "system-docker run -d --name sntp --net host -v /usr/bin/ros:/usr/bin/ros:ro \
         ros/busybox:latest /usr/bin/ros ntpd 10.0.2.2:9 10.0.2.2:9 10.0.2.2:9 >/dev/null",
    );
    let logs = vm
        .poll(
            "system-docker logs sntp 2>&1",
            Duration::from_secs(30),
            |o| o.contains("ntpd: servers"),
        )
        .unwrap();
    assert!(logs.contains("ntpd: servers"), "{logs}");
    let took = sh(
        &mut vm,
        "a=$(cut -d' ' -f1 /proc/uptime); system-docker stop -t 60 sntp >/dev/null; \
         b=$(cut -d' ' -f1 /proc/uptime); echo \"$a $b\"",
    );
    let logs = sh(&mut vm, "system-docker logs sntp 2>&1");
    assert!(
        logs.contains("ntpd: SIGTERM: stopping") && !logs.contains("answered"),
        "stopped mid-round (stop from uptime {took}): {logs}"
    );
    assert_eq!(sh(&mut vm, &exit_code("sntp")), "\"ExitCode\": 0");
    eprintln!("ntpd stopped mid-round: uptime before and after {took}");
}

/// A shell command printing a container's `"ExitCode": N`.
fn exit_code(name: &str) -> String {
    format!("system-docker inspect {name} | grep -o '\"ExitCode\": [0-9]*'")
}

/// The pid of the system engine (`ros dockerd --system`, PID 1's child).
fn engine_pid(vm: &mut Vm) -> Option<u32> {
    number(
        vm,
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline | grep -q '^/proc/self/exe dockerd --system' && echo ${p#/proc/}; done",
    )
}

#[test]
fn the_system_engine_is_a_container_manager_that_survives_its_own_crash() {
    let mut vm = boot("system_docker_engine");
    let engine = engine_pid(&mut vm).expect("the system engine runs");
    assert_eq!(
        sh(
            &mut vm,
            &format!("awk '/^PPid/ {{print $2}}' /proc/{engine}/status")
        ),
        "1",
        "PID 1 started it"
    );
    // A system service's container has a 64-hex id and the engine's records; its process is
    // not the engine's child (its shim's), and its log is the plain /var/log/<name>.log.
    let inspect = sh(&mut vm, "system-docker inspect syslog");
    let id_re = regex::Regex::new(r#""Id": "([0-9a-f]{64})""#).unwrap();
    let id = id_re.captures(&inspect).expect("a 64-hex Id")[1].to_string();
    assert!(
        inspect.contains(r#""LogPath": "/var/log/syslog.log""#),
        "{inspect}"
    );
    sh(
        &mut vm,
        &format!("test -f /run/system-docker/containers/{id}/record.json"),
    );
    let syslogd = pidof_syslogd(&mut vm).expect("syslogd runs");
    let parent = sh(
        &mut vm,
        &format!("awk '/^PPid/ {{print $2}}' /proc/{syslogd}/status"),
    );
    assert_ne!(parent, engine.to_string(), "not the engine's child");

    // A boot cut short by the engine's end would leave the boot's CPU weights set (10 for a
    // started service): the new engine gives those the default back and leaves any other.
    let weights =
        "cat /sys/fs/cgroup/system/acpid/cpu.weight /sys/fs/cgroup/system/udev/cpu.weight";
    sh(
        &mut vm,
        "nsenter -t 1 -m -- sh -c 'echo 10 > /sys/fs/cgroup/system/acpid/cpu.weight && \
         echo 37 > /sys/fs/cgroup/system/udev/cpu.weight'",
    );
    // The engine dies: PID 1 says so and starts it again; the services run on untouched and
    // the new engine follows them (stop still works, and learns the exit).
    // PID 1's note can land inside the kill's own output (the engine dies at once): look
    // there first, then wait for it.
    let killed = sh(&mut vm, &format!("kill -9 {engine}"));
    if !killed.contains("system engine exited (killed by SIGKILL); starting it again") {
        vm.expect(
            r"system engine exited \(killed by SIGKILL\); starting it again",
            BOOT,
        )
        .unwrap();
    }
    let t = Instant::now();
    let again = loop {
        if let Some(p) = engine_pid(&mut vm).filter(|p| *p != engine) {
            if run(&mut vm, "system-docker ps").1 == 0 {
                break p;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no new engine");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_ne!(again, engine);
    let t = Instant::now();
    while sh(&mut vm, &format!("nsenter -t 1 -m -- {weights}")) != "100\n37" {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "acpid's boot weight given back, udev's own kept: {}",
            sh(&mut vm, &format!("nsenter -t 1 -m -- {weights}"))
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(pidof_syslogd(&mut vm), Some(syslogd), "syslog ran on");
    let ps = sh(&mut vm, "system-docker ps");
    assert!(
        ps_row(&ps, "syslog").is_some_and(|r| r.contains(" Up ")),
        "{ps}"
    );
    sh(&mut vm, "system-docker stop -t 5 syslog");
    let inspect = sh(&mut vm, "system-docker inspect syslog");
    assert!(inspect.contains(r#""Status": "exited""#), "{inspect}");
    let code_re = regex::Regex::new(r#""ExitCode": (\d+)"#).unwrap();
    let code = &code_re.captures(&inspect).expect("ExitCode")[1];
    assert_ne!(
        code, "255",
        "the new engine heard the exit from the shim: {inspect}"
    );
    sh(&mut vm, "system-docker start syslog");
    new_syslogd(&mut vm, Some(syslogd));

    // The system engine runs more than services: `system-docker run` (create, attach, start,
    // wait) with the exit code passed on, and `rm`.
    let (out, rc) = run(
        &mut vm,
        "system-docker run --rm --name once ros/busybox:latest sh -c 'echo from-system; exit 4'",
    );
    assert_eq!(rc, 4, "{out}");
    assert!(out.contains("from-system"), "{out}");
    let all = sh(&mut vm, "system-docker ps -a");
    assert!(ps_row(&all, "once").is_none(), "--rm removed it: {all}");
}
