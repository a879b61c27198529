//! Accepted means applied: the compose keys a system service may carry do what compose does
//! with them, in a VM. `user:` runs the command as that user with no capability held;
//! `stop_signal` is what a stop sends first; an anonymous volume is the service's own and
//! `volumes_from` shares it; `devices:` passes a host disk in (readable there, while the device
//! filter keeps it from every other container); `security_opt: [seccomp=unconfined]` runs
//! without the seccomp filter; a key the engine does not act on is warned about by its key path.

use harness::disk::Disk;
use harness::vm::{Vm, VmOptions};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);

/// A service defined on the kernel command line (one `rancher.services.<name>.<key>=` a key).
fn service(opts: VmOptions, name: &str, keys: &[(&str, &str)]) -> VmOptions {
    keys.iter().fold(opts, |o, (k, v)| {
        o.cmdline(&format!("rancher.services.{name}.{k}={v}"))
    })
}

fn main_pid(vm: &mut Vm, name: &str) -> String {
    vm.sh_ok(
        &format!("head -1 /sys/fs/cgroup/system/{name}/cgroup.procs"),
        BOOT,
    )
    .unwrap()
}

#[test]
fn user_stop_signal_volumes_and_ignored_keys_do_what_compose_does() {
    let disk = Disk::blank("compose_keys", 32).unwrap();
    let opts = VmOptions::new("compose_keys").unwrap().drive(disk.drive());
    let opts = service(
        opts,
        "disk",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sleep 100000\""),
            ("devices", "[/dev/vda:/dev/xvda:r]"),
            ("security_opt", "[seccomp=unconfined]"),
        ],
    );
    let opts = service(
        opts,
        "nobody",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sleep 100000\""),
            ("user", "65534"),
            ("ports", "[8080:80]"),
        ],
    );
    // PID 1 of its namespace: only a signal it has a handler for ends it.
    let opts = service(
        opts,
        "usr1",
        &[
            ("image", "ros/busybox:latest"),
            // `exit\ 42` is one word for sh: no quote inside the kernel's double quotes.
            (
                "command",
                "\"sh -c 'trap exit\\ 42 USR1; while :; do sleep 1; done'\"",
            ),
            ("stop_signal", "SIGUSR1"),
        ],
    );
    let opts = service(
        opts,
        "vol",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sleep 100000\""),
            ("volumes", "[/data]"),
        ],
    );
    let opts = service(
        opts,
        "share",
        &[
            ("image", "ros/busybox:latest"),
            ("command", "\"sleep 100000\""),
            ("volumes_from", "[vol]"),
        ],
    );
    let mut vm = Vm::boot_ready(opts, BOOT).unwrap();
    let serial = vm.serial_text();
    assert!(
        serial.contains("service warning: services.nobody.ports"),
        "no warning for the ignored key; serial log: {}",
        vm.log_path().display()
    );

    // user: 65534, no capability held, the bounding set kept.
    let pid = main_pid(&mut vm, "nobody");
    let status = vm
        .sh_ok(
            &format!("grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd):' /proc/{pid}/status"),
            BOOT,
        )
        .unwrap();
    assert!(status.contains("Uid:\t65534"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert!(status.contains("CapPrm:\t0000000000000000"), "{status}");
    assert!(!status.contains("CapBnd:\t0000000000000000"), "{status}");

    // stop_signal: USR1 ends it at once with its own exit code (TERM would wait out the
    // timeout and be killed: 137).
    let out = vm.sh_ok("system-docker stop -t 30 usr1", BOOT).unwrap();
    assert!(out.contains("usr1"), "{out}");
    let inspect = vm.sh_ok("system-docker inspect usr1", BOOT).unwrap();
    assert!(inspect.contains("\"ExitCode\": 42"), "{inspect}");

    // An anonymous volume, shared through volumes_from.
    vm.sh_ok("system-docker exec vol sh -c 'echo shared > /data/x'", BOOT)
        .unwrap();
    let seen = vm
        .sh_ok("system-docker exec share cat /data/x", BOOT)
        .unwrap();
    assert_eq!(seen, "shared");
    let host = vm
        .sh_ok("cat /run/system-docker/volumes/*/_data/x", BOOT)
        .unwrap();
    assert_eq!(host, "shared");

    // devices: the disk is readable as /dev/xvda in that service only.
    let read = vm
        .sh_ok(
            "system-docker exec disk sh -c 'dd if=/dev/xvda bs=512 count=1 | wc -c'",
            BOOT,
        )
        .unwrap();
    assert!(read.lines().any(|l| l.trim() == "512"), "{read}");
    let (other, _) = vm
        .sh(
            "system-docker exec vol sh -c 'mknod /dev/v b 254 0; dd if=/dev/v bs=512 count=1' 2>&1",
            BOOT,
        )
        .unwrap();
    assert!(other.contains("Operation not permitted"), "{other}");
    // security_opt: seccomp=unconfined, while the others have the filter.
    let pid = main_pid(&mut vm, "disk");
    let seccomp = vm
        .sh_ok(&format!("grep Seccomp: /proc/{pid}/status"), BOOT)
        .unwrap();
    assert!(seccomp.ends_with('0'), "{seccomp}");
    let pid = main_pid(&mut vm, "vol");
    let seccomp = vm
        .sh_ok(&format!("grep Seccomp: /proc/{pid}/status"), BOOT)
        .unwrap();
    assert!(seccomp.ends_with('2'), "{seccomp}");
}

/// `rancherctl service up` after the service's image changed: the container is made anew on
/// the new image's layers, with a fresh root filesystem (nothing of the old one stays).
#[test]
fn up_with_a_changed_image_recreates_the_container_on_its_layers() {
    let mut vm = Vm::boot_ready(VmOptions::new("compose_keys_up").unwrap(), BOOT).unwrap();
    for cmd in [
        "rancherctl config set rancher.services.upme.image ros/busybox:latest",
        "rancherctl config set rancher.services.upme.command 'sleep 100000'",
        "rancherctl service up upme",
    ] {
        vm.sh_ok(cmd, BOOT).unwrap();
    }
    vm.sh_ok("system-docker exec upme sh -c 'echo old > /stale'", BOOT)
        .unwrap();
    let (_, rc) = vm
        .sh("system-docker exec upme test -e /usr/sbin/dropbear", BOOT)
        .unwrap();
    assert_ne!(rc, 0, "busybox has no dropbear");
    vm.sh_ok(
        "rancherctl config set rancher.services.upme.image ros/console:latest && \
         rancherctl service up upme",
        BOOT,
    )
    .unwrap();
    vm.sh_ok("system-docker exec upme test -e /usr/sbin/dropbear", BOOT)
        .unwrap();
    let (out, rc) = vm
        .sh("system-docker exec upme test -e /stale", BOOT)
        .unwrap();
    assert_ne!(rc, 0, "the old container's files are gone: {out}");
    let inspect = vm.sh_ok("system-docker inspect upme", BOOT).unwrap();
    assert!(inspect.contains("ros/console:latest"), "{inspect}");
}
