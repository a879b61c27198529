//! Accepted means applied: the compose keys a system service may carry do what compose does
//! with them, in a VM. `user:` runs the command as that user with no capability held;
//! `stop_signal` is what a stop sends first; an anonymous volume is the service's own and
//! `volumes_from` shares it; a key the engine does not act on is warned about by its key path.

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
    let opts = VmOptions::new("compose_keys").unwrap();
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
            (
                "command",
                "\"sh -c 'trap \\\"exit 42\\\" USR1; while :; do sleep 1; done'\"",
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
        .sh_ok("cat /run/system-docker/volumes/vol/*/x", BOOT)
        .unwrap();
    assert_eq!(host, "shared");
}
