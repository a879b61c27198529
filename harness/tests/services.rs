//! System services, proven in VMs: PID 1 is the engine and every system service runs in a
//! container of its own (pid namespace, cgroup); a killed service comes back by its restart
//! policy; a bad service is reported while the others run; a run-to-completion service finishes
//! before its dependents start; shutdown stops services in reverse start order; the network
//! service gets the address by DHCP from QEMU's user network and writes resolv.conf.

use harness::vm::{Vm, VmOptions};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(120);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

fn boot(opts: VmOptions) -> Vm {
    Vm::boot_ready(opts, BOOT).unwrap()
}

fn sh(vm: &mut Vm, cmd: &str) -> String {
    vm.sh_ok(cmd, BOOT).unwrap()
}

fn poll(vm: &mut Vm, cmd: &str, within: Duration, done: impl Fn(&str) -> bool) -> String {
    vm.poll(cmd, within, done).unwrap()
}

/// A service defined on the kernel command line (one `rancher.services.<name>.<key>=` a key).
fn service(opts: VmOptions, name: &str, keys: &[(&str, &str)]) -> VmOptions {
    keys.iter().fold(opts, |o, (k, v)| {
        o.cmdline(&format!("rancher.services.{name}.{k}={v}"))
    })
}

#[test]
fn syslog_runs_in_its_own_container_and_comes_back_after_kill_9() {
    let mut vm = boot(VmOptions::new("services_syslog").unwrap());
    assert_eq!(sh(&mut vm, "cat /proc/1/comm"), "init");
    let pid = sh(&mut vm, "pidof syslogd");
    let own = sh(&mut vm, &format!("readlink /proc/{pid}/ns/pid"));
    assert_ne!(
        own,
        sh(&mut vm, "readlink /proc/1/ns/pid"),
        "own pid namespace"
    );
    assert_ne!(
        sh(&mut vm, &format!("readlink /proc/{pid}/ns/mnt")),
        sh(&mut vm, "readlink /proc/1/ns/mnt"),
        "own mount namespace"
    );
    assert_eq!(
        sh(&mut vm, &format!("cat /proc/{pid}/cgroup")),
        "0::/system/syslog"
    );
    assert!(sh(&mut vm, "cat /run/system-docker/services.json").contains("\"state\": \"running\""));

    // kill -9 its main process: it is back, with a new pid, within 2 s.
    sh(&mut vm, &format!("kill -9 {pid}"));
    let killed = Instant::now();
    let mut back = None;
    while killed.elapsed() < Duration::from_secs(10) {
        let now = sh(&mut vm, "pidof syslogd || true");
        // PID 1's console notes can land in the middle of the output: take the pid line alone.
        let now = now
            .lines()
            .find(|l| l.trim().parse::<u32>().is_ok())
            .unwrap_or("")
            .trim()
            .to_string();
        if !now.is_empty() && now != pid {
            back = Some(killed.elapsed());
            break;
        }
    }
    let back = back.expect("syslog did not come back within 10 s");
    eprintln!(
        "syslog back after {:.2}s (measured from the host side)",
        back.as_secs_f64()
    );
    assert!(back < Duration::from_secs(2), "back after {back:?}");
    let note =
        regex::Regex::new(r"service syslog exited \(killed by a signal\); restarting in \d+ms");
    assert!(
        note.unwrap().is_match(&vm.serial_text()),
        "the restart is reported on the console"
    );
    let list = sh(&mut vm, "rancherctl service list");
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("syslog "))
        .unwrap_or_else(|| panic!("no syslog row: {list}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[1], row[3]),
        ("running", "1"),
        "state and restarts: {list}"
    );
    let log = sh(&mut vm, "rancherctl service logs syslog");
    assert!(
        log.contains("[system-docker] service syslog exited (killed by a signal)"),
        "{log}"
    );
    let status = sh(&mut vm, "cat /run/system-docker/services.json");
    assert!(status.contains("\"restarts\": 1"), "{status}");
    assert!(
        status.contains("\"last_exit\": \"killed by a signal\""),
        "{status}"
    );
}

#[test]
fn a_bad_service_is_reported_and_the_others_run() {
    let opts = VmOptions::new("services_bad").unwrap();
    let opts = service(opts, "ghost", &[("image", "nosuch/image:1")]);
    let opts = service(
        opts,
        "typo",
        &[("image", "ros/busybox:latest"), ("restart", "sometimes")],
    );
    let opts = service(
        opts,
        "limited",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sleep 1000\""),
            ("cpus", "0.5"),
            ("cpu_shares", "512"),
            ("mem_limit", "64m"),
            ("pids_limit", "50"),
            ("environment", "[GREETING]"),
        ],
    );
    // A service that names an environment key without a value gets rancher.environment's.
    let opts = opts.cmdline("rancher.environment.GREETING=hello");
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"service error: service ghost: image nosuch/image:1", BOOT)
        .unwrap();
    vm.expect(READY, BOOT).unwrap();
    let serial = vm.serial_text();
    assert!(
        serial
            .contains(r#"service typo: restart: "sometimes" is not one of no, always, on-failure"#),
        "the bad key is named"
    );
    assert!(
        !sh(&mut vm, "pidof syslogd").is_empty(),
        "the other services run"
    );
    // The limits of a service are its cgroup's: cpus → cpu.max, cpu_shares 512 → cpu.weight
    // 59 (runc's shares-to-weight curve, which libcgroups follows), mem_limit → memory.max,
    // pids_limit → pids.max.
    assert_eq!(
        sh(
            &mut vm,
            "cd /sys/fs/cgroup/system/limited && cat cpu.max cpu.weight memory.max pids.max"
        ),
        "50000 100000\n59\n67108864\n50"
    );
    let pid = sh(
        &mut vm,
        "cat /sys/fs/cgroup/system/limited/cgroup.procs | head -1",
    );
    assert_eq!(
        sh(
            &mut vm,
            &format!("tr '\\0' '\\n' < /proc/{pid}/environ | grep GREETING")
        ),
        "GREETING=hello"
    );
}

#[test]
fn run_to_completion_first_and_reverse_order_at_shutdown() {
    let opts = VmOptions::new("services_order").unwrap();
    let log = ("volumes", "[/var/log:/var/log]");
    let opts = service(
        opts,
        "first",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sh -c 'sleep 2; echo done > /var/log/first'\""),
            ("labels", "[io.rancher.os.detach=false]"),
            log,
        ],
    );
    let opts = service(
        opts,
        "second",
        &[
            ("image", "ros/busybox:latest"),
            (
                "command",
                "\"sh -c 'cat /var/log/first > /var/log/second; exec sleep 1000'\"",
            ),
            ("labels", "[io.rancher.os.after=first]"),
            log,
        ],
    );
    let opts = service(
        opts,
        "third",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sleep 1000\""),
            ("labels", "[io.rancher.os.after=second]"),
        ],
    );
    let mut vm = boot(opts);
    assert_eq!(
        sh(&mut vm, "cat /var/log/second"),
        "done",
        "first finished before second started"
    );
    let status = sh(&mut vm, "cat /run/system-docker/services.json");
    assert!(
        status.contains("\"last_exit\": \"exit 0\""),
        "first ran to completion: {status}"
    );
    vm.powerdown().unwrap();
    let stops = vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    let order: Vec<&str> = stops
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[ros] stopping service "))
        .collect();
    // Shutdown goes level by level in reverse dependency order: every service stops before
    // what it depends on (`after` labels, transitively: console after cloud-init-save after
    // network), and every running service is stopped.
    let at = |name: &str| {
        order
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} was not stopped: {order:?}"))
    };
    for (dependent, dependency) in [
        ("third", "second"),
        ("udev", "syslog"),
        ("acpid", "udev"),
        ("network", "udev"),
        ("ntp", "network"),
        ("console", "network"),
    ] {
        assert!(
            at(dependent) < at(dependency),
            "{dependent} must stop before {dependency}: {order:?}"
        );
    }
    assert_eq!(order.len(), 8, "{order:?}");
}

#[test]
fn init_true_passes_sigterm_on_and_reaps_orphans() {
    // The same command twice: its subshell leaves an orphan that ends at once, then it becomes
    // `sleep`, which as PID 1 of its namespace ignores SIGTERM and reaps nothing.
    let cmd = ("command", "\"sh -c '(sleep 0.1 &); exec sleep 1000'\"");
    let opts = VmOptions::new("services_init").unwrap();
    let opts = service(opts, "plain", &[("image", "ros/busybox:latest"), cmd]);
    let opts = service(
        opts,
        "inited",
        &[("image", "ros/busybox:latest"), cmd, ("init", "true")],
    );
    let mut vm = boot(opts);
    let state = |vm: &mut Vm, name: &str, field: &str| {
        let inspect = sh(vm, &format!("system-docker inspect {name}"));
        let re = regex::Regex::new(&format!(r#""{field}": (\d+)"#)).unwrap();
        re.captures(&inspect)
            .unwrap_or_else(|| panic!("no {field} in {inspect}"))[1]
            .to_string()
    };
    let pid = |vm: &mut Vm, name: &str| state(vm, name, "Pid");
    let inited = pid(&mut vm, "inited");
    assert_eq!(sh(&mut vm, &format!("cat /proc/{inited}/comm")), "ros-init");
    // Only `plain` keeps a zombie: ros-init reaped the one handed to it.
    let zombies = poll(
        &mut vm,
        "for f in $(grep -l '^State:.Z' /proc/[0-9]*/status); do grep PPid $f; done",
        Duration::from_secs(10),
        |out| !out.is_empty(),
    );
    let plain = pid(&mut vm, "plain");
    assert_eq!(
        zombies.split_whitespace().collect::<Vec<_>>(),
        ["PPid:", plain.as_str()],
        "one zombie, `plain`'s"
    );
    // `docker stop`: ros-init passes SIGTERM on and `sleep` ends (143); plain `sleep` has to
    // be killed after the stop timeout (Docker's 10 s).
    sh(&mut vm, "rancherctl service stop inited");
    sh(&mut vm, "rancherctl service stop plain");
    let serial = vm.serial_text();
    assert!(
        !serial.contains("service inited did not stop"),
        "ros-init did not pass SIGTERM on: {serial}"
    );
    assert!(
        serial.contains("service plain did not stop in 10s; killing it"),
        "{serial}"
    );
    assert_eq!(state(&mut vm, "inited", "ExitCode"), "143");
}
