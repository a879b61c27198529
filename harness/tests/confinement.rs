//! Containers that stay in their box, proven in VMs the way an attacker would try it:
//!
//! - a static probe (written here in C without libc, built with the host's gcc, typed into
//!   the VM in base64) runs as root with `system-docker exec` in the non-privileged `ntp`
//!   service: the classic chroot escape lands back on the container's own root (PID 1 left the
//!   initramfs, so containers get a real `pivot_root`); syscalls Docker's seccomp profile
//!   refuses fail with EPERM; a block device it makes with `mknod` (CAP_MKNOD is granted, as
//!   in Docker) cannot be opened; its mountinfo lists only its root and what its spec binds;
//! - the same probe in the privileged `console` reaches all of that;
//! - booted with `-- rancher.password=…`, user `rancher` finds the password nowhere: not in
//!   `/proc/1/cmdline`, `/proc/cmdline`, `dmesg` or any log;
//! - hostile API values are refused with 400/413, and the loop that supervises stays free: a
//!   stop of a TERM-ignoring service in progress does not delay another service's restart.

use harness::disk::Disk;
use harness::vm::{Vm, VmOptions};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(180);

/// The probe: each line `name=<syscall result>` (a negative errno on failure: -1 EPERM).
const PROBE_C: &str = r#"
typedef long L;
static L sys(L n, L a, L b, L c, L d) {
    L r;
    register L r10 __asm__("r10") = d;
    register L r8 __asm__("r8") = 0;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return r;
}
static void out(const char *s) { L n = 0; while (s[n]) n++; sys(1, 1, (L)s, n, 0); }
static void report(const char *name, L v) {
    char b[24]; int i = 23; int neg = v < 0; b[i] = 0;
    if (neg) v = -v;
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    if (neg) b[--i] = '-';
    out(name); out("="); out(b + i); out("\n");
}
static char st[256];
void _start(void) {
    report("keyctl", sys(250, 0, -3, 0, 0));           /* KEYCTL_GET_KEYRING_ID, session */
    report("kexec_load", sys(246, 0, 0, 0, 0));
    report("mount", sys(165, (L)"none", (L)"/tmp", (L)"tmpfs", 0));
    report("unshare", sys(272, 0x00020000, 0, 0, 0));   /* CLONE_NEWNS */
    /* In /dev (a tmpfs the device filter alone guards) and in /tmp (the root filesystem,
       mounted nodev for a non-privileged container). */
    sys(87, (L)"/dev/probe-vda", 0, 0, 0);
    report("mknod", sys(133, (L)"/dev/probe-vda", 0060600, 254 << 8, 0));
    report("open_vda", sys(2, (L)"/dev/probe-vda", 0, 0, 0));
    sys(87, (L)"/tmp/probe-vda", 0, 0, 0);
    report("mknod_root", sys(133, (L)"/tmp/probe-vda", 0060600, 254 << 8, 0));
    report("open_vda_root", sys(2, (L)"/tmp/probe-vda", 0, 0, 0));
    sys(83, (L)"/tmp/probe-jail", 0755, 0, 0);
    report("chroot", sys(161, (L)"/tmp/probe-jail", 0, 0, 0));
    for (int i = 0; i < 64; i++) sys(80, (L)"..", 0, 0, 0);
    report("chroot_dot", sys(161, (L)".", 0, 0, 0));
    report("host_init", sys(4, (L)"/init", (L)st, 0, 0));
    report("host_socket", sys(4, (L)"/run/system-docker.sock", (L)st, 0, 0));
    report("host_store", sys(4, (L)"/var/lib/system-docker", (L)st, 0, 0));
    sys(60, 0, 0, 0, 0);
}
"#;

/// Build the probe with the host's gcc (installed by `harness setup`): a few KB, no libc.
fn probe_binary() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("probe.c");
    let bin = dir.path().join("probe");
    std::fs::write(&src, PROBE_C).unwrap();
    let out = std::process::Command::new("gcc")
        .args([
            "-static",
            "-nostdlib",
            "-Os",
            "-fno-stack-protector",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-tree-loop-distribute-patterns",
            "-fno-pie",
            "-no-pie",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc runs (harness setup installs it)");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::process::Command::new("strip").arg(&bin).status();
    std::fs::read(&bin).unwrap()
}

/// Type `bytes` into the VM as `/tmp/<name>` (base64 in short lines), executable.
fn upload(vm: &mut Vm, name: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new("base64")
        .arg("-w0")
        .arg(&file)
        .output()
        .expect("coreutils base64");
    let b64 = String::from_utf8(out.stdout).unwrap();
    vm.sh_ok(&format!("rm -f /tmp/{name}.b64"), BOOT).unwrap();
    for chunk in b64.as_bytes().chunks(400) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        vm.sh_ok(&format!("printf %s '{chunk}' >> /tmp/{name}.b64"), BOOT)
            .unwrap();
    }
    vm.sh_ok(
        &format!("base64 -d /tmp/{name}.b64 > /tmp/{name} && chmod 755 /tmp/{name}"),
        BOOT,
    )
    .unwrap();
}

/// The probe's `name=value` lines as pairs.
fn results(out: &str) -> std::collections::BTreeMap<String, i64> {
    out.lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

const EPERM: i64 = -1;

#[test]
fn a_root_process_in_a_container_cannot_reach_the_host() {
    let disk = Disk::blank("confinement_probe", 64).unwrap();
    let mut vm = Vm::boot_ready(
        VmOptions::new("confinement_probe")
            .unwrap()
            .drive(disk.drive()),
        BOOT,
    )
    .unwrap();
    // PID 1 left the initramfs: / is a mount with a parent (a bind of the initramfs over
    // it: mount ID and parent ID differ), so pivot_root works.
    let root = vm.sh_ok("grep ' / / ' /proc/1/mountinfo", BOOT).unwrap();
    let ids: Vec<&str> = root.split(' ').take(2).collect();
    assert!(ids.len() == 2 && ids[0] != ids[1], "{root}");
    assert!(
        vm.serial_text().contains("[ros] step switch-root ok"),
        "serial log: {}",
        vm.log_path().display()
    );
    upload(&mut vm, "probe", &probe_binary());
    vm.sh_ok(
        "system-docker exec -i ntp sh -c 'cat > /tmp/probe; chmod 755 /tmp/probe' < /tmp/probe",
        BOOT,
    )
    .unwrap();

    // Non-privileged: the escape lands on the container's own root, seccomp refuses, the
    // block device it made is inert.
    let (out, _) = vm.sh("system-docker exec ntp /tmp/probe", BOOT).unwrap();
    let r = results(&out);
    eprintln!("ntp: {r:?}");
    assert_eq!(
        r.get("keyctl"),
        Some(&EPERM),
        "seccomp refuses keyctl:\n{out}"
    );
    assert_eq!(r.get("kexec_load"), Some(&EPERM), "{out}");
    assert_eq!(r.get("mount"), Some(&EPERM), "{out}");
    assert_eq!(r.get("unshare"), Some(&EPERM), "{out}");
    assert_eq!(r.get("mknod"), Some(&0), "CAP_MKNOD is granted:\n{out}");
    assert_eq!(r.get("open_vda"), Some(&EPERM), "the device filter:\n{out}");
    assert_eq!(r.get("mknod_root"), Some(&0), "{out}");
    assert_eq!(
        r.get("open_vda_root"),
        Some(&-13),
        "nodev root filesystem:\n{out}"
    );
    assert_eq!(r.get("chroot"), Some(&0), "{out}");
    for host_only in ["host_init", "host_socket", "host_store"] {
        assert!(
            r.get(host_only).is_some_and(|v| *v < 0),
            "{host_only} seen after the chroot escape:\n{out}"
        );
    }
    let status = vm
        .sh_ok(
            "system-docker exec ntp grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
            BOOT,
        )
        .unwrap();
    assert!(status.contains("Seccomp:\t2"), "{status}");
    // The service's own main process too.
    let pid = vm
        .sh_ok("head -1 /sys/fs/cgroup/system/ntp/cgroup.procs", BOOT)
        .unwrap();
    let st = vm
        .sh_ok(&format!("grep Seccomp: /proc/{pid}/status"), BOOT)
        .unwrap();
    assert!(st.contains('2'), "ntp's main process ({pid}): {st}");

    // Its mount namespace holds its root and what the spec binds, nothing of the host's.
    let mounts = vm
        .sh_ok("system-docker exec ntp cat /proc/self/mountinfo", BOOT)
        .unwrap();
    let allowed = [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/usr/bin/ros",
        "/run/resolvconf",
        "/proc/cmdline",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/hostname",
    ];
    for line in mounts.lines().filter(|l| !l.trim().is_empty()) {
        let point = line.split(' ').nth(4).unwrap_or("");
        let masked = point.starts_with("/proc/") || point == "/sys/firmware";
        assert!(
            allowed.contains(&point) || masked,
            "the container sees {point:?}:\n{mounts}"
        );
    }
    // No mount of the host's root itself: the one file of it bound in (`/init` as
    // `/usr/bin/ros`) is the only `rootfs` line.
    let host_root = mounts
        .lines()
        .any(|l| l.split(' ').nth(3) == Some("/") && l.contains(" - rootfs "));
    assert!(!mounts.contains("/.ros-root") && !host_root, "{mounts}");

    // Privileged (the console): the same calls go through.
    vm.sh_ok(
        "system-docker exec -i console sh -c 'cat > /tmp/probe; chmod 755 /tmp/probe' < /tmp/probe",
        BOOT,
    )
    .unwrap();
    let (out, _) = vm
        .sh("system-docker exec console /tmp/probe", BOOT)
        .unwrap();
    let r = results(&out);
    eprintln!("console: {r:?}");
    assert_ne!(r.get("keyctl"), Some(&EPERM), "{out}");
    assert!(r.get("open_vda").is_some_and(|fd| *fd >= 0), "{out}");
    assert_eq!(r.get("mount"), Some(&0), "{out}");
}

#[test]
fn the_password_after_dashes_is_nowhere_a_user_can_read() {
    let secret = "s3cret-pw-7f1c";
    let mut vm = Vm::boot_ready(
        VmOptions::new("confinement_secrets")
            .unwrap()
            .init_arg(&format!("rancher.password={secret}")),
        BOOT,
    )
    .unwrap();
    vm.expect_since_boot(harness::vm::CONSOLE_PROMPT, BOOT)
        .unwrap();
    let (who, _) = vm.console_sh("id -un", BOOT).unwrap();
    assert_eq!(who.trim(), "rancher");
    let (out, _) = vm
        .console_sh(
            &format!(
                "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/cmdline; dmesg 2>&1 | head -c 300; \
                 echo; find /var/log /run /etc /var/lib/rancher -type f -exec grep -l {secret} {{}} + \
                 2>/dev/null; echo scanned"
            ),
            BOOT,
        )
        .unwrap();
    let shown = out.replace(&format!("grep -l {secret}"), "");
    assert!(
        !shown.contains(secret),
        "the password is readable by rancher:\n{out}"
    );
    assert!(out.contains("scanned"), "{out}");
    assert!(
        out.to_lowercase().contains("operation not permitted") || !out.contains("Linux version"),
        "dmesg is root's only:\n{out}"
    );
    // root still has it (the console's password came from it), 0600.
    let kept = vm
        .sh_ok("stat -c '%a %U' /run/ros/init-args", BOOT)
        .unwrap();
    assert_eq!(kept, "600 root");
    let argv = vm.sh_ok("tr '\\0' ' ' < /proc/1/cmdline", BOOT).unwrap();
    assert_eq!(argv.trim(), "/init");
    let sysctl = vm
        .sh_ok(
            "cat /proc/sys/kernel/dmesg_restrict /proc/sys/kernel/kptr_restrict",
            BOOT,
        )
        .unwrap();
    assert_eq!(sysctl.split_whitespace().collect::<Vec<_>>(), ["1", "1"]);
}

#[test]
fn hostile_api_values_are_refused_and_stops_do_not_stall_the_loop() {
    let name = "stubborn";
    let opts = [
        ("image", "ros/busybox:latest"),
        // PID 1 of its namespace with no handler: SIGTERM is dropped, only KILL ends it.
        ("command", "\"sleep 100000\""),
        ("restart", "always"),
    ]
    .iter()
    .fold(VmOptions::new("confinement_api").unwrap(), |o, (k, v)| {
        o.cmdline(&format!("rancher.services.{name}.{k}={v}"))
    });
    let mut vm = Vm::boot_ready(opts, BOOT).unwrap();
    // `t` is Docker's: a whole number of seconds (negative: no limit); anything else is a 400.
    for t in ["18446744073709551615", "soon", "1.5"] {
        let (out, rc) = vm
            .sh(&format!("system-docker stop -t {t} syslog 2>&1"), BOOT)
            .unwrap();
        assert_ne!(rc, 0, "t={t}: {out}");
        assert!(out.contains("query string: t:"), "t={t}: {out}");
    }
    // A sparse file: its Content-Length is larger than the room there is (the VM's tmpfs).
    let (out, rc) = vm
        .sh(
            "dd if=/dev/zero of=/tmp/big bs=1M seek=2047 count=1 2>/dev/null; \
             system-docker load -i /tmp/big 2>&1; echo rc=$?; rm -f /tmp/big",
            BOOT,
        )
        .unwrap();
    assert_eq!(rc, 0);
    assert!(out.contains("larger than"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");

    // A stop of the TERM-ignoring service takes its 20 s; meanwhile syslog, killed, is back.
    vm.sh_ok(
        &format!(
            "(system-docker stop -t 20 {name} > /tmp/stop.out 2>&1; echo done >> /tmp/stop.out) &"
        ),
        BOOT,
    )
    .unwrap();
    vm.sh_ok("sleep 1; kill -9 $(pidof syslogd)", BOOT).unwrap();
    let killed = Instant::now();
    let back = vm
        .poll("pidof syslogd", Duration::from_secs(10), |o| {
            !o.trim().is_empty()
        })
        .unwrap();
    let took = killed.elapsed();
    assert!(!back.trim().is_empty(), "syslog did not come back");
    // The stop holds on for 20 s: a restart that waited for it would take that long.
    assert!(
        took < Duration::from_secs(15),
        "syslog came back after {took:?}, behind the stop in progress"
    );
    let pending = vm.sh_ok("cat /tmp/stop.out", BOOT).unwrap();
    assert!(
        !pending.contains("done"),
        "the stop finished early: {pending}"
    );
    let stopped = vm
        .poll("cat /tmp/stop.out", Duration::from_secs(40), |o| {
            o.contains("done")
        })
        .unwrap();
    assert!(stopped.contains("done"), "{stopped}");
    let state = vm
        .sh_ok(&format!("system-docker inspect {name}"), BOOT)
        .unwrap();
    assert!(state.contains("\"Status\": \"exited\""), "{state}");
}
