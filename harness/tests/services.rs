//! System services, proven in VMs: PID 1 is the engine and every system service runs in a
//! container of its own (pid namespace, cgroup); a killed service comes back by its restart
//! policy; a bad service is reported while the others run; a run-to-completion service finishes
//! before its dependents start; shutdown stops services in reverse start order; the network
//! service gets the address by DHCP from QEMU's user network and writes resolv.conf; the boot's
//! CPU weights are given back by ready.

use harness::seed::{self, SeedFs};
use harness::vm::{Vm, VmOptions};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(120);
const DEGRADED: &str = r"\[ros\] degraded (\d+\.\d+)\r?\n";

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

/// A NoCloud seed disk with nothing in it but an instance id: a datasource is there, so
/// `cloud-init-save` runs and the configuration is reloaded after it (without one, its
/// condition skips both).
fn with_seed(opts: VmOptions, name: &str) -> VmOptions {
    let files = [
        ("meta-data", "instance-id: i-services\n"),
        ("user-data", "#cloud-config\n{}\n"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    opts.drive(seed::disk(name, SeedFs::Vfat, "cidata", &files).unwrap())
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
        regex::Regex::new(r"service syslog exited \(killed by SIGKILL\); restarting in \d+ms");
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
        log.contains("[system-docker] service syslog exited (killed by SIGKILL)"),
        "{log}"
    );
    let status = sh(&mut vm, "cat /run/system-docker/services.json");
    assert!(status.contains("\"restarts\": 1"), "{status}");
    assert!(
        status.contains("\"last_exit\": \"killed by SIGKILL\""),
        "{status}"
    );
}

#[test]
fn a_first_service_that_cannot_start_holds_no_one_back() {
    // With the default (disk) datasources and a seed disk `cloud-init-save` starts first and everything else
    // waits for its end and the reload; its image does not exist, so no service has started
    // when the others' turn comes: those prepared meanwhile must begin all the same.
    let opts = with_seed(
        VmOptions::new("services_first_fails").unwrap(),
        "services_first_fails",
    );
    let opts = service(opts, "cloud-init-save", &[("image", "nosuch/network:1")]);
    let mut vm = Vm::boot(opts).unwrap();
    let not_running = vm
        .expect_captures(r"\[ros\] not running: ([^\r\n]*)\r?\n", BOOT)
        .unwrap();
    vm.expect(DEGRADED, BOOT).unwrap();
    assert_eq!(
        not_running[1],
        "cloud-init-save (failed: No such image: nosuch/network:1)",
        "serial log: {}",
        vm.log_path().display()
    );
    // (`ps` lists running containers, the name last on each line.)
    let ps = sh(&mut vm, "system-docker ps");
    for name in [
        "acpid", "console", "docker", "network", "ntp", "syslog", "udev",
    ] {
        assert!(
            ps.lines()
                .any(|l| l.trim_end().ends_with(&format!(" {name}"))),
            "{name} runs: {ps}"
        );
    }
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
    vm.expect(
        r"service error: service ghost: No such image: nosuch/image:1",
        BOOT,
    )
    .unwrap();
    // Not `ready`: PID 1 names what does not run, on one line, and says `degraded`.
    let not_running = vm
        .expect_captures(r"\[ros\] not running: ([^\r\n]*)\r?\n", BOOT)
        .unwrap();
    vm.expect(DEGRADED, BOOT).unwrap();
    assert!(
        not_running[1]
            .starts_with("ghost (failed: No such image: nosuch/image:1), typo (invalid: "),
        "{}",
        not_running[1]
    );
    let serial = vm.serial_text();
    assert!(!serial.contains("[ros] ready"), "{serial}");
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
    let opts = with_seed(VmOptions::new("services_order").unwrap(), "services_order");
    let log = ("volumes", "[/var/log:/var/log]");
    let opts = service(
        opts,
        "first",
        &[
            ("image", "ros/busybox:latest"),
            (
                "command",
                "\"sh -c 'sleep 2; echo done > /var/log/first; read u _ < /proc/uptime; echo $u > /var/log/first-end'\"",
            ),
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
    // No dependency: started beside `first`, not after it.
    let opts = service(
        opts,
        "peer",
        &[
            ("image", "ros/busybox:latest"),
            (
                "command",
                "\"sh -c 'read u _ < /proc/uptime; echo $u > /var/log/peer; exec sleep 1000'\"",
            ),
            log,
        ],
    );
    let mut vm = boot(opts);
    assert_eq!(
        sh(&mut vm, "cat /var/log/second"),
        "done",
        "first finished before second started"
    );
    // Services start concurrently: `peer` (no dependency) ran while `first` slept.
    let stamp = |vm: &mut Vm, f: &str| -> f64 {
        let out = sh(vm, &format!("cat /var/log/{f}"));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{f}: {out:?}"))
    };
    let (peer, first_end) = (stamp(&mut vm, "peer"), stamp(&mut vm, "first-end"));
    assert!(
        peer < first_end,
        "peer started at {peer} s, before first ended at {first_end} s"
    );
    // And a service still starts after the (detached) one it depends on, by the engine's own
    // start times (RFC 3339 with nanoseconds, same length: they compare as text).
    let started = |vm: &mut Vm, name: &str| {
        sh(
            vm,
            &format!("system-docker inspect {name} | grep -o '\"StartedAt\": *\"[^\"]*\"'"),
        )
    };
    let (second, third) = (started(&mut vm, "second"), started(&mut vm, "third"));
    assert!(second < third, "second {second}, then third {third}");
    // With the default datasources (disks, no cloud-config-url=) cloud-init-save does not wait
    // on the network: it runs first, and network starts after the reload.
    let (network, save) = (
        started(&mut vm, "network"),
        started(&mut vm, "cloud-init-save"),
    );
    assert!(
        save < network,
        "cloud-init-save {save}, then network {network}"
    );
    // A service after network waits for it to be of use (its first DHCP lease wrote the ready
    // file), not only started, in the engine's own log.
    let log = sh(
        &mut vm,
        "grep -n -e 'service ready' -e 'service started' /var/log/system-docker.log",
    );
    let line_of = |what: &str, svc: &str| {
        log.lines()
            .find(|l| l.contains(what) && l.contains(&format!("service={svc}")))
            .and_then(|l| l.split(':').next()?.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {what:?} of {svc} in {log}"))
    };
    assert!(
        line_of("service ready", "network") < line_of("service started", "ntp"),
        "{log}"
    );
    assert!(sh(&mut vm, "system-docker logs network").contains("network: eth0: lease 10.0.2.15/24"));
    // The services after the reload were prepared while network and cloud-init-save ran, and
    // (the reload changed none of them) their prepared containers were the ones started: the
    // order above holds for them too.
    let count = |vm: &mut Vm, what: &str| -> usize {
        sh(
            vm,
            &format!("grep -c '{what}' /var/log/system-docker.log || true"),
        )
        .trim()
        .parse()
        .unwrap_or(0)
    };
    assert!(
        count(&mut vm, "service started (prepared)") >= 1,
        "{}",
        sh(
            &mut vm,
            "grep -e prepared -e 'service started' /var/log/system-docker.log"
        )
    );
    assert_eq!(
        count(&mut vm, "prepared container not used"),
        0,
        "{}",
        sh(&mut vm, "grep prepared /var/log/system-docker.log")
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
    // what it depends on (`after` labels, transitively), a level at a time (console and docker
    // come after cloud-init-save, a level above network's), and every running service is
    // stopped.
    let at = |name: &str| {
        order
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} was not stopped: {order:?}"))
    };
    for (dependent, dependency) in [
        ("third", "second"),
        ("ntp", "network"),
        ("console", "network"),
        ("docker", "network"),
    ] {
        assert!(
            at(dependent) < at(dependency),
            "{dependent} must stop before {dependency}: {order:?}"
        );
    }
    // The default services (syslog, udev, acpid, network, ntp, console, docker) and the
    // test's second, third and peer (first ran to completion).
    assert_eq!(order.len(), 10, "{order:?}");
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
        resolv.contains("written by the network service from the DHCP lease on eth0"),
        "{resolv}"
    );
    // The built-in client: no udhcpc; the lease as the service's log says it, with its length
    // (QEMU's: a day) and server.
    assert_eq!(sh(&mut vm, "pidof udhcpc || echo none").trim(), "none");
    let log = sh(&mut vm, "cat /var/log/network.log");
    assert!(
        log.contains(
            "network: eth0: lease 10.0.2.15/24 router none dns none (lease 86400 s from 10.0.2.2)"
        ),
        "{log}"
    );
    // (The pattern does not match the shell that runs grep.)
    let pid = sh(
        &mut vm,
        "ps -o pid,args | grep '[/]usr/bin/ros netconf' | awk '{print $1}'",
    );
    assert_eq!(
        sh(&mut vm, &format!("readlink /proc/{pid}/ns/net")),
        sh(&mut vm, "readlink /proc/1/ns/net"),
        "net: host shares the host's network namespace"
    );
    assert_eq!(
        sh(&mut vm, &format!("cat /proc/{pid}/cgroup")),
        "0::/system/network"
    );
    // During the boot each started service went last for the CPU (and `network` first until
    // its lease); by `[ros] ready` every one has its own weight back.
    let weights = sh(&mut vm, "cat /sys/fs/cgroup/system/*/cpu.weight");
    let weights: Vec<&str> = weights.lines().collect();
    assert!(
        weights.len() >= 7 && weights.iter().all(|w| *w == "100"),
        "every service's cpu.weight is back to 100: {weights:?}"
    );
    let engine = sh(
        &mut vm,
        "grep 'back to their CPU weight' /var/log/system-docker.log",
    );
    let n: usize = engine
        .split("services=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{engine}"));
    assert!(
        n >= 6,
        "the boot's started services were put last: {engine}"
    );
}

#[test]
fn dhcp_on_every_eth_interface() {
    // eth0 by the default entry (the built-in client); eth1 by an entry of its own whose
    // dhcp_args ask for busybox udhcpc (those are its arguments: -R releases the lease on exit).
    let opts = VmOptions::new("services_two_nics")
        .unwrap()
        .extra_nic()
        .cmdline("rancher.network.interfaces.eth1.dhcp=true")
        .cmdline("rancher.network.interfaces.eth1.dhcp_args=-R");
    let mut vm = boot(opts);
    for nic in ["eth0", "eth1"] {
        let addr = poll(
            &mut vm,
            &format!("ip -4 addr show {nic} | grep -o 'inet [0-9./]*'"),
            Duration::from_secs(60),
            |o| o.contains("inet 10."),
        );
        // Each card is on its own QEMU user network, whose DHCP server hands out 10.0.2.15.
        assert!(addr.contains("inet 10.0.2.15/24"), "{nic}: {addr}");
    }
    let log = sh(&mut vm, "cat /var/log/network.log");
    assert!(
        log.contains("network: DHCP on eth0\n")
            && log.contains("network: eth0: lease 10.0.2.15/24")
            && log.contains("network: DHCP on eth1 (udhcpc -R)")
            && log.contains("lease: eth1 10.0.2.15/24"),
        "{log}"
    );
    let udhcpc = sh(&mut vm, "ps -o args | grep '^[u]dhcpc'");
    assert!(
        udhcpc.contains("-i eth1") && udhcpc.contains("-R"),
        "{udhcpc}"
    );
    assert!(!udhcpc.contains("eth0"), "{udhcpc}");
}

#[test]
fn static_address_mtu_gateway_and_dns_from_rancher_network() {
    let opts = VmOptions::new("services_static_net")
        .unwrap()
        .extra_nic()
        .cmdline("rancher.network.interfaces.eth1.dhcp=false")
        .cmdline("rancher.network.interfaces.eth1.address=192.168.7.5/24")
        .cmdline("rancher.network.interfaces.eth1.gateway=192.168.7.1")
        .cmdline("rancher.network.interfaces.eth1.mtu=1400")
        .cmdline("rancher.network.dns.nameservers=[10.0.2.3]")
        .cmdline("rancher.network.dns.search=[example.lan]");
    let mut vm = boot(opts);
    let eth1 = poll(&mut vm, "ip addr show eth1", Duration::from_secs(30), |o| {
        o.contains("192.168.7.5")
    });
    assert!(eth1.contains("inet 192.168.7.5/24"), "{eth1}");
    assert!(eth1.contains("mtu 1400"), "{eth1}");
    assert!(eth1.contains(",UP,LOWER_UP>"), "{eth1}");
    // The MTU, then the link's state, set over route netlink by the service itself (eth0's
    // DHCP thread may say something between the two lines).
    let log = sh(&mut vm, "cat /var/log/network.log");
    let mtu = log.find("network: eth1 mtu 1400\n");
    let up = log.find("network: eth1 up\n");
    assert!(matches!((mtu, up), (Some(m), Some(u)) if m < u), "{log}");
    assert!(
        sh(&mut vm, "ip route").contains("default via 192.168.7.1 dev eth1"),
        "gateway"
    );
    // eth0 still takes its address by DHCP (the default eth* entry); its lease does not
    // overwrite the configured DNS.
    let eth0 = poll(
        &mut vm,
        "ip -4 addr show eth0 | grep -o 'inet [0-9./]*'",
        Duration::from_secs(60),
        |o| o.contains("inet 10."),
    );
    assert!(eth0.contains("inet 10.0.2.15/24"), "{eth0}");
    let log = poll(
        &mut vm,
        "cat /var/log/network.log",
        Duration::from_secs(30),
        |o| o.contains("resolv.conf kept"),
    );
    assert!(log.contains("resolv.conf kept: static DNS"), "{log}");
    assert_eq!(
        sh(&mut vm, "grep -v '^#' /etc/resolv.conf"),
        "search example.lan\nnameserver 10.0.2.3"
    );

    // A saved change to rancher.network applies at once: the network service is restarted.
    let out = sh(
        &mut vm,
        "rancherctl config set rancher.network.interfaces.eth1.addresses '[192.168.9.9/24]'",
    );
    assert!(out.contains("the network service was restarted"), "{out}");
    let eth1 = poll(&mut vm, "ip addr show eth1", Duration::from_secs(30), |o| {
        o.contains("192.168.9.9")
    });
    assert!(
        eth1.contains("inet 192.168.9.9/24") && eth1.contains("inet 192.168.7.5/24"),
        "{eth1}"
    );
}

#[test]
fn udev_gives_nodes_their_mode_at_coldplug_and_on_hotplug() {
    let mut vm = boot(VmOptions::new("services_udev").unwrap());
    let pid = sh(&mut vm, "pidof mdev");
    assert_ne!(
        sh(&mut vm, &format!("readlink /proc/{pid}/ns/pid")),
        sh(&mut vm, "readlink /proc/1/ns/pid"),
        "udev runs in a container"
    );
    assert_eq!(
        sh(&mut vm, &format!("cat /proc/{pid}/cgroup")),
        "0::/system/udev"
    );
    // devtmpfs makes serial ports root:root 0600; the rules say group dialout (20), 0660.
    assert_eq!(
        sh(&mut vm, "stat -c '%g %a' /dev/ttyS1"),
        "20 660",
        "coldplug"
    );
    // Hotplug: the node is gone and the kernel announces the device again.
    sh(
        &mut vm,
        "rm /dev/ttyS2 && echo add > /sys/class/tty/ttyS2/uevent",
    );
    let node = poll(
        &mut vm,
        "stat -c '%g %a' /dev/ttyS2",
        Duration::from_secs(10),
        |o| o == "20 660",
    );
    assert_eq!(node, "20 660", "hotplug event handled");
}

#[test]
fn acpid_turns_the_power_button_into_a_clean_poweroff() {
    let mut vm = boot(VmOptions::new("services_acpid").unwrap());
    let pid = sh(&mut vm, "pidof acpid");
    assert_eq!(
        sh(&mut vm, &format!("cat /proc/{pid}/cgroup")),
        "0::/system/acpid"
    );
    assert!(
        !vm.serial_text().contains("PID 1 listens itself"),
        "PID 1 leaves the button to acpid"
    );
    // acpid may still be starting just after ready; press once it holds the button open.
    let fds = poll(
        &mut vm,
        &format!("ls -l /proc/{pid}/fd"),
        Duration::from_secs(30),
        |o| o.contains("/dev/input/event"),
    );
    assert!(fds.contains("/dev/input/event"), "{fds}");
    vm.powerdown().unwrap();
    // acpid's handler runs busybox poweroff, which reaches PID 1 as SIGUSR2; PID 1 heard the
    // press too and left it to acpid.
    let out = vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    assert!(
        out.contains(&format!("power button: pressed; acpid (pid {pid})")),
        "{out}"
    );
    assert!(
        out.contains("shutdown poweroff (SIGUSR2)"),
        "shutdown came through acpid: {out}"
    );
    assert!(out.contains("stopping service acpid"), "{out}");
    assert!(vm.wait_exit(BOOT).unwrap().success());
}

#[test]
fn pid1_takes_the_power_button_when_acpid_does_not_hold_it() {
    let mut vm = boot(VmOptions::new("services_no_acpid").unwrap());
    // acpid ran at boot, so PID 1 did not announce it would listen alone; stopped now, it
    // cannot hear the press, and PID 1 acts on it.
    assert!(!vm.serial_text().contains("PID 1 listens itself"));
    sh(&mut vm, "system-docker stop -t 5 acpid");
    assert_eq!(sh(&mut vm, "pidof acpid || echo none"), "none");
    vm.powerdown().unwrap();
    let out = vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    assert!(out.contains("shutdown poweroff (power button)"), "{out}");
    assert!(!out.contains("acpid (pid"), "{out}");
    assert!(vm.wait_exit(BOOT).unwrap().success());
}

#[test]
fn ntp_without_a_reachable_server_says_so_and_retries() {
    let mut vm = boot(VmOptions::new("services_ntp").unwrap());
    // No DNS and no route leave the test VM: every round fails, politely, and is retried.
    let log = poll(
        &mut vm,
        "grep -c 'no NTP server answered' /var/log/ntp.log",
        Duration::from_secs(60),
        |o| o.parse::<u32>().is_ok_and(|n| n >= 2),
    );
    assert!(
        log.parse::<u32>().is_ok_and(|n| n >= 2),
        "two rounds: {log}"
    );
    let text = sh(&mut vm, "cat /var/log/ntp.log");
    assert!(
        text.contains("no NTP server answered (pool.ntp.org: ") && text.contains("retrying in 5 s"),
        "{text}"
    );
    let status = sh(&mut vm, "cat /run/system-docker/services.json");
    let ntp = status.split("\"name\": \"ntp\"").nth(1).unwrap_or("");
    assert!(
        ntp.contains("\"restarts\": 0"),
        "a failed round is not a crash: {status}"
    );
}

#[test]
fn a_chatty_services_log_is_rotated_by_size() {
    // 3 MB of output at once: over the 1 MiB limit.
    let opts = service(
        VmOptions::new("services_log_rotation").unwrap(),
        "chatty",
        &[
            ("image", "ros/busybox:latest"),
            (
                "command",
                "\"sh -c 'yes xxxxxxxxxxxxxxx | head -c 3000000; exec sleep 1000'\"",
            ),
        ],
    );
    let mut vm = boot(opts);
    // Rotation is checked every 10 s and may catch the writer mid-way: wait until the live
    // log is back under the limit with an old copy beside it.
    let parse = |o: &str| -> Vec<u64> { o.lines().filter_map(|l| l.trim().parse().ok()).collect() };
    let sizes = poll(
        &mut vm,
        "stat -c %s /var/log/chatty.log /var/log/chatty.log.1",
        Duration::from_secs(60),
        |o| matches!(parse(o)[..], [live, _] if live < 1024 * 1024),
    );
    let sizes = parse(&sizes);
    assert_eq!(sizes.len(), 2, "rotated: {sizes:?}");
    assert!(
        sizes[0] < 1024 * 1024,
        "the live log was truncated: {sizes:?}"
    );
    assert!(sizes[1] > 0, "the old copy holds the output: {sizes:?}");
    let listing = sh(&mut vm, "ls /var/log");
    assert!(
        !listing.contains("chatty.log.3"),
        "at most 2 old copies: {listing}"
    );
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
