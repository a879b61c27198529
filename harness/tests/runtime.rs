//! The container runtime layer (`os/src/engine/runtime`), proven in VMs: youki's libcontainer,
//! run by the hidden `ros container-helper`, starts a busybox container in its own namespaces
//! and in its cgroup `/system/<id>` with its limits; a detached container's init is reaped by
//! its reaper (the console's shim, a subreaper, or PID 1) when killed from the host; delete
//! removes the cgroup and the state. One more test
//! measures the start latency (a figure printed, not asserted).

use harness::vm::{Vm, VmOptions};
use std::time::Duration;

/// Generous: TCG on a loaded 2-core machine.
const BOOT: Duration = Duration::from_secs(120);
const CMD: Duration = Duration::from_secs(60);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

/// Boot, and build a one-binary rootfs at /run/t/rootfs from the initrd's static busybox.
/// `ros` is our binary under its multi-call name (the initrd has it as /init).
fn boot_with_rootfs(name: &str) -> Vm {
    let mut vm = Vm::boot(VmOptions::new(name).unwrap()).expect("QEMU starts");
    vm.expect(READY, BOOT).unwrap();
    sh_ok(
        &mut vm,
        "ln -sf /init /usr/local/bin/ros && \
         mkdir -p /run/t/rootfs/bin /run/t/rootfs/proc /run/t/rootfs/dev /run/t/rootfs/sys \
         /run/t/rootfs/tmp && cp /bin/busybox /run/t/rootfs/bin/",
    );
    vm
}

/// Run a command on the console shell; it must succeed. Returns its output.
fn sh_ok(vm: &mut Vm, cmd: &str) -> String {
    let (out, rc) = vm.sh(cmd, CMD).unwrap();
    assert_eq!(rc, 0, "`{cmd}` failed ({rc}):\n{out}");
    out
}

fn sh(vm: &mut Vm, cmd: &str) -> String {
    vm.sh(cmd, CMD).unwrap().0
}

/// The `"pid":N` of a helper's JSON reply.
fn reply_pid(reply: &str) -> i32 {
    let re = regex::Regex::new(r#""pid":(\d+)"#).unwrap();
    re.captures(reply)
        .unwrap_or_else(|| panic!("no pid in {reply:?}"))[1]
        .parse()
        .unwrap()
}

fn zombies(vm: &mut Vm) -> String {
    sh(vm, "grep -l '^State:.Z' /proc/[0-9]*/status")
        .trim()
        .to_string()
}

#[test]
fn container_runs_in_its_own_namespaces_and_cgroup() {
    let mut vm = boot_with_rootfs("runtime_namespaces_cgroup");
    let host_pidns = sh_ok(&mut vm, "readlink /proc/1/ns/pid").trim().to_string();
    let host_netns = sh_ok(&mut vm, "readlink /proc/1/ns/net").trim().to_string();
    // For the record: the host's / (PID 1's bind of the initramfs over itself; libcontainer
    // pivots when it has a parent mount, and moves the rootfs when it has none).
    eprintln!("{}", sh_ok(&mut vm, "grep ' / / ' /proc/1/mountinfo"));
    let out = sh_ok(
        &mut vm,
        "ros container-helper run --id t1 --rootfs /run/t/rootfs --memory 64m --pids 64 \
         --hostname box -- /bin/busybox sh -c 'echo hi; echo pid=$$; cat /proc/self/cgroup; \
         readlink /proc/self/ns/pid; readlink /proc/self/ns/net; /bin/busybox hostname; \
         cat /sys/fs/cgroup/system/t1/memory.max /sys/fs/cgroup/system/t1/pids.max; \
         grep -E \"^Sig(Ign|Blk)\" /proc/self/status; ls /dev'",
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines.contains(&"hi"), "{out}");
    assert!(
        lines.contains(&"pid=1"),
        "the container is PID 1 of its namespace:\n{out}"
    );
    assert!(lines.contains(&"0::/system/t1"), "cgroup:\n{out}");
    let pidns = lines
        .iter()
        .find(|l| l.starts_with("pid:["))
        .expect("pid ns");
    assert_ne!(*pidns, host_pidns, "{out}");
    let netns = lines
        .iter()
        .find(|l| l.starts_with("net:["))
        .expect("net ns");
    assert_ne!(*netns, host_netns, "{out}");
    assert!(lines.contains(&"box"), "hostname:\n{out}");
    assert!(lines.contains(&"67108864"), "memory.max:\n{out}");
    assert!(lines.contains(&"64"), "pids.max:\n{out}");
    // A clean signal state: nothing ignored (Rust ignores SIGPIPE) or blocked (PID 1's mask).
    assert!(
        lines.contains(&"SigIgn:\t0000000000000000") || lines.contains(&"SigIgn: 0000000000000000"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SigBlk:") && l.ends_with("0000000000000000")),
        "{out}"
    );
    assert!(
        out.contains("null") && out.contains("urandom"),
        "/dev:\n{out}"
    );

    // The exit code comes through; after `run` the container is deleted: no cgroup, no state.
    let (_, rc) = vm
        .sh(
            "ros container-helper run --id t1 --rootfs /run/t/rootfs -- /bin/busybox sh -c 'exit 7'",
            CMD,
        )
        .unwrap();
    assert_eq!(rc, 7);
    sh_ok(&mut vm, "test ! -e /sys/fs/cgroup/system/t1");
    sh_ok(&mut vm, "test ! -e /run/system-docker/runtime/state/t1");
    sh_ok(&mut vm, "test ! -e /run/system-docker/runtime/bundles/t1");

    // Detached, its limits are visible from the host while it runs.
    let reply = sh_ok(
        &mut vm,
        "ros container-helper run --detach --id t1 --rootfs /run/t/rootfs --memory 32m \
         --cpus 0.5 -- /bin/busybox sleep 1000",
    );
    let pid = reply_pid(&reply);
    assert!(reply.contains(r#""status":"running""#), "{reply}");
    let out = sh_ok(
        &mut vm,
        &format!(
            "cat /sys/fs/cgroup/system/t1/memory.max /sys/fs/cgroup/system/t1/cpu.max \
             /sys/fs/cgroup/system/t1/cgroup.procs /proc/{pid}/cgroup"
        ),
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "33554432",
            "50000 100000",
            &pid.to_string(),
            "0::/system/t1"
        ]
    );
    // `delete --force` kills it; its reaper (the console's shim, or PID 1) reaps it; the cgroup and state go.
    let out = sh_ok(&mut vm, "ros container-helper delete --id t1 --force");
    assert!(out.contains(r#""done":"t1""#), "{out}");
    sh_ok(&mut vm, "sleep 1");
    assert_eq!(zombies(&mut vm), "", "zombies after delete --force");
    sh_ok(&mut vm, &format!("test ! -e /proc/{pid}"));
    sh_ok(&mut vm, "test ! -e /sys/fs/cgroup/system/t1");
    sh_ok(&mut vm, "test ! -e /run/system-docker/runtime/state/t1");
}

#[test]
fn a_killed_container_is_reaped_by_pid1_and_deleted() {
    let mut vm = boot_with_rootfs("runtime_kill_reap");
    let reply = sh_ok(
        &mut vm,
        "ros container-helper run --detach --id t2 --rootfs /run/t/rootfs -- /bin/busybox sleep 1000",
    );
    let pid = reply_pid(&reply);
    // The helper has exited: the container's init now belongs to the nearest subreaper: the
    // shim of the console container this shell runs in (or PID 1 without one).
    let out = sh_ok(&mut vm, &format!("grep '^PPid:' /proc/{pid}/status"));
    let parent = out.split_whitespace().nth(1).unwrap_or("").to_string();
    if parent != "1" {
        let who = sh_ok(&mut vm, &format!("tr '\\0' ' ' < /proc/{parent}/cmdline"));
        assert!(who.contains("container-shim"), "parent {parent}: {who}");
    }
    let out = sh_ok(&mut vm, "ros container-helper state --id t2");
    assert!(out.contains(r#""status":"running""#), "{out}");

    // SIGKILL by pid from the host shell: its reaper reaps it, no zombie is left.
    sh_ok(&mut vm, &format!("kill -9 {pid}; sleep 1"));
    assert_eq!(zombies(&mut vm), "", "zombies after kill -9");
    sh_ok(&mut vm, &format!("test ! -e /proc/{pid}"));
    let out = sh_ok(&mut vm, "ros container-helper state --id t2");
    assert!(out.contains(r#""status":"stopped""#), "{out}");
    let out = sh_ok(&mut vm, "ros container-helper delete --id t2");
    assert!(out.contains(r#""done":"t2""#), "{out}");
    sh_ok(&mut vm, "test ! -e /sys/fs/cgroup/system/t2");
    sh_ok(&mut vm, "test ! -e /run/system-docker/runtime/state/t2");

    // The `kill` verb, then errors as JSON: unknown container, duplicate id.
    let reply = sh_ok(
        &mut vm,
        "ros container-helper run --detach --id t3 --rootfs /run/t/rootfs -- /bin/busybox sleep 1000",
    );
    let pid = reply_pid(&reply);
    let (out, rc) = vm
        .sh(
            "ros container-helper run --detach --id t3 --rootfs /run/t/rootfs -- /bin/busybox true",
            CMD,
        )
        .unwrap();
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains(r#"{"error":"#) && out.contains("already exists"),
        "{out}"
    );
    // … and the running container's bundle was left alone.
    sh_ok(
        &mut vm,
        "grep -q sleep /run/system-docker/runtime/bundles/t3/config.json",
    );
    sh_ok(
        &mut vm,
        "ros container-helper kill --id t3 --signal KILL; sleep 1",
    );
    assert_eq!(zombies(&mut vm), "", "zombies after the kill verb");
    sh_ok(&mut vm, &format!("test ! -e /proc/{pid}"));
    sh_ok(&mut vm, "ros container-helper delete --id t3");
    let (out, rc) = vm.sh("ros container-helper state --id t3", CMD).unwrap();
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains(r#"{"error":"no container \"t3\""}"#), "{out}");
}

/// A benchmark figure, not an assertion: `/bin/busybox true` in a container through the helper,
/// 10 times. The helper's own `--timing` (from its start to the container deleted) gives the
/// median; `/proc/uptime` around the loop gives the mean wall time per run including the
/// helper's exec (10 ms resolution).
#[test]
fn container_start_latency() {
    let mut vm = boot_with_rootfs("runtime_latency");
    // One warm-up run (page cache).
    sh_ok(
        &mut vm,
        "ros container-helper run --id w --rootfs /run/t/rootfs -- /bin/busybox true",
    );
    let out = sh_ok(
        &mut vm,
        "a=$(cut -d\" \" -f1 /proc/uptime); for i in 0 1 2 3 4 5 6 7 8 9; do \
         ros container-helper run --timing --id b$i --rootfs /run/t/rootfs -- /bin/busybox true \
         || exit 1; done 2>&1; b=$(cut -d\" \" -f1 /proc/uptime); echo \"uptime $a $b\"",
    );
    let re =
        regex::Regex::new(r"timing b\d started ([0-9.]+)ms exited ([0-9.]+)ms deleted ([0-9.]+)ms")
            .unwrap();
    let mut started = Vec::new();
    let mut exited = Vec::new();
    let mut deleted = Vec::new();
    for c in re.captures_iter(&out) {
        started.push(c[1].parse::<f64>().unwrap());
        exited.push(c[2].parse::<f64>().unwrap());
        deleted.push(c[3].parse::<f64>().unwrap());
    }
    assert_eq!(deleted.len(), 10, "{out}");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[4] + v[5]) / 2.0
    };
    let up: Vec<f64> = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("uptime "))
        .expect("uptime line")
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    eprintln!(
        "container start latency (TCG, busybox true, median of 10): started {:.1} ms, \
         exited {:.1} ms, deleted {:.1} ms; wall per run incl. helper exec {:.0} ms",
        median(&mut started),
        median(&mut exited),
        median(&mut deleted),
        (up[1] - up[0]) * 1000.0 / 10.0
    );
    assert_eq!(zombies(&mut vm), "");
}
