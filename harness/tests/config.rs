//! Configuration in a booted VM: the kernel command line (both sides of `--`) reaches the boot
//! configuration, `rancherctl config` reads and atomically writes the user layer, and the built-in
//! defaults' parsed copy is read only while it matches their text.

use harness::vm::{Vm, VmOptions};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(120);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

#[test]
fn kernel_command_line_sets_hostname_and_rancherctl_config_round_trips() {
    let opts = VmOptions::new("config_cmdline")
        .unwrap()
        .cmdline("rancher.shutdown_timeout=7")
        .init_arg("cc.hostname=node1")
        .init_arg("rancher.password=hunter2");
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let (out, rc) = vm.sh("hostname", BOOT).unwrap();
    assert_eq!(
        (out.trim(), rc),
        ("node1", 0),
        "cc.hostname after -- sets the hostname"
    );

    let (out, rc) = vm
        .sh("rancherctl config get rancher.shutdown_timeout", BOOT)
        .unwrap();
    assert_eq!((out.trim(), rc), ("7", 0));

    // Words after `--` are applied, and hidden from /proc/cmdline: on the host and in every
    // service's container (its own procfs, with the kernel line bound over cmdline). Root's
    // rancherctl still sees them.
    let (host, _) = vm.sh("cat /proc/cmdline", BOOT).unwrap();
    let (syslog, _) = vm
        .sh("cat /proc/$(pidof syslogd)/root/proc/cmdline", BOOT)
        .unwrap();
    for seen in [&host, &syslog] {
        assert!(seen.contains("rancher.shutdown_timeout=7"), "{seen}");
        assert!(
            !seen.contains("hunter2") && !seen.contains("cc.hostname"),
            "{seen}"
        );
    }
    let (out, _) = vm
        .sh(
            "rancherctl config get hostname; rancherctl config export --full --private | grep password",
            BOOT,
        )
        .unwrap();
    assert!(out.contains("node1") && out.contains("hunter2"), "{out}");

    // A typed set is written to the user layer; a bad value is refused and writes nothing.
    let (_, rc) = vm
        .sh("rancherctl config set rancher.autologin ttyS1", BOOT)
        .unwrap();
    assert_eq!(rc, 0);
    let (before, _) = vm
        .sh("cat /var/lib/rancher/conf/cloud-config.yml", BOOT)
        .unwrap();
    assert!(before.contains("autologin: ttyS1"), "{before}");
    let (out, rc) = vm
        .sh("rancherctl config set rancher.debug maybe 2>&1", BOOT)
        .unwrap();
    assert_ne!(rc, 0, "a bad value must be refused: {out}");
    assert!(
        out.contains("rancher.debug"),
        "the error names the key: {out}"
    );
    let (after, _) = vm
        .sh("cat /var/lib/rancher/conf/cloud-config.yml", BOOT)
        .unwrap();
    assert_eq!(before, after, "a refused set leaves the file as it was");

    // The command line still beats the user layer.
    let (_, rc) = vm
        .sh("rancherctl config set rancher.shutdown_timeout 30", BOOT)
        .unwrap();
    assert_eq!(rc, 0);
    let (out, _) = vm
        .sh("rancherctl config get rancher.shutdown_timeout", BOOT)
        .unwrap();
    assert_eq!(
        out.trim(),
        "7",
        "kernel command line wins over cloud-config.yml"
    );

    // The built-in defaults have a parsed copy beside them (`os-config.yml.json`, made by the
    // build from their text): what a load reads while it was made from that very text. Shown by
    // changing a value in the copy alone (its recorded hash still the YAML's)...
    let key = "rancherctl config get rancher.console_index.debian";
    let (out, _) = vm.sh(key, BOOT).unwrap();
    assert_eq!(out.trim(), "ros/debian-console:latest");
    // Both files are PID 1's (the console has them read-only): edited in its mount namespace.
    let mut edit = |to: &str, file: &str| {
        let sed = format!(
            "nsenter -t 1 -m -- sed -i 's|debian-console:latest|debian-console:{to}|' /usr/share/ros/{file} 2>&1"
        );
        let (out, rc) = vm.sh(&sed, BOOT).unwrap();
        assert_eq!(rc, 0, "{sed}: {out}");
        vm.sh(key, BOOT).unwrap().0
    };
    assert_eq!(
        edit("copy", "os-config.yml.json").trim(),
        "ros/debian-console:copy",
        "the copy is what is read"
    );
    // ...and once the YAML is edited the copy no longer matches it: the YAML is read as it is.
    assert_eq!(
        edit("edited", "os-config.yml").trim(),
        "ros/debian-console:edited",
        "an edited os-config.yml wins over a copy made from its old text"
    );
}
