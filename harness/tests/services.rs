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
    let mut vm = Vm::boot(opts).expect("QEMU starts");
    vm.expect(READY, BOOT).unwrap();
    vm
}

fn sh(vm: &mut Vm, cmd: &str) -> String {
    let (out, rc) = vm.sh(cmd, BOOT).unwrap();
    assert_eq!(rc, 0, "`{cmd}` failed: {out}");
    out.trim().to_string()
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
    // Start order was first (ran to completion), second, syslog, network (after syslog),
    // console (after network), third: dependencies first, then names break ties.
    assert_eq!(
        order,
        ["third", "console", "network", "syslog", "second"],
        "reverse start order"
    );
    assert!(vm.wait_exit(BOOT).unwrap().success());
}

#[test]
fn network_service_gets_an_address_by_dhcp_and_writes_resolv_conf() {
    let mut vm = boot(VmOptions::new("services_network").unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let out = sh(
            &mut vm,
            "ip -4 addr show eth0 | grep -o 'inet [0-9./]*' || true",
        );
        if out.contains("inet 10.") || Instant::now() >= deadline {
            break out;
        }
        sh(&mut vm, "sleep 1");
    };
    assert!(
        addr.contains("inet 10.0.2.15/24"),
        "QEMU's DHCP gives 10.0.2.15/24: {addr}"
    );
    // QEMU's restricted user network offers no router and no DNS server, so the file holds the
    // lease's header alone; it must be written through the /etc/resolv.conf link all the same.
    let resolv = sh(&mut vm, "cat /etc/resolv.conf");
    assert!(
        resolv.contains("written by the network service (udhcpc) from the lease on eth0"),
        "{resolv}"
    );
    let pid = sh(&mut vm, "pidof udhcpc");
    assert_eq!(
        sh(&mut vm, &format!("readlink /proc/{pid}/ns/net")),
        sh(&mut vm, "readlink /proc/1/ns/net"),
        "net: host shares the host's network namespace"
    );
    assert_eq!(
        sh(&mut vm, &format!("cat /proc/{pid}/cgroup")),
        "0::/system/network"
    );
}
