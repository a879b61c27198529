//! A system service moves to another image the way the OS does: whole, watched, and back by
//! itself when the new one does not hold (`rancherctl service upgrade`,
//! `os/src/system_services/upgrade.rs`).
//!
//! The subject is the real `syslog` service (ros/busybox's `syslogd`). Two test images share
//! ros/busybox's layer (`harness/test-images/syslog-{2,3}.yml`): on `ros-test/syslog:2`
//! syslogd runs as before and a file names the image; on `ros-test/syslog:3` a `syslogd`
//! script found first on PATH exits 3. Each is given to the VM as a raw disk and loaded with
//! `system-docker load`. Then: an image the store lacks is refused before anything stops; :3
//! fails and the service is back on ros/busybox with the configuration untouched; :2 holds, is
//! saved on the state partition and written to the configuration; after a reboot syslog runs
//! on :2 again (PID 1 loaded it from the state partition before the services).

use harness::disk::Disk;
use harness::vm::{Drive, Vm, VmOptions, READY};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(240);
/// An upgrade: the stop, the start, 10 s of watching (up to a minute more), a save.
const UPGRADE: Duration = Duration::from_secs(180);

fn image_drive(name: &str) -> Drive {
    Drive {
        path: harness::test_images::build(name).unwrap(),
        format: "raw".into(),
        read_only: true,
    }
}

#[test]
fn a_service_upgrade_is_kept_when_it_holds_and_undone_when_not() {
    let disk = Disk::blank("service_upgrade", 256).unwrap();
    let opts = VmOptions::new("service_upgrade")
        .unwrap()
        .drive(disk.drive())
        .drive(image_drive("syslog-2"))
        .drive(image_drive("syslog-3"))
        .allow_reboot();
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let sh = |vm: &mut Vm, cmd: &str| vm.sh_ok(cmd, UPGRADE).unwrap();
    let image_of_syslog = |vm: &mut Vm| {
        sh(
            vm,
            "rancherctl service list | awk '$1 == \"syslog\" {print $2, $(NF)}'",
        )
    };
    assert_eq!(image_of_syslog(&mut vm), "running ros/busybox:latest");
    for dev in ["/dev/vdb", "/dev/vdc"] {
        let out = sh(&mut vm, &format!("system-docker load -i {dev}"));
        assert!(out.contains("Loaded image: ros-test/syslog:"), "{out}");
    }

    // Not in the store: refused, nothing stopped.
    let pid = "system-docker inspect syslog | grep '\"Pid\"'";
    let pid_before = sh(&mut vm, pid);
    let (out, rc) = vm
        .sh(
            "rancherctl service upgrade syslog ros-test/syslog:9 2>&1",
            UPGRADE,
        )
        .unwrap();
    assert!(rc != 0 && out.contains("no such image"), "{rc}: {out}");
    assert_eq!(sh(&mut vm, pid), pid_before);

    // :3 fails: back on ros/busybox, by itself, and the configuration does not name :3.
    let (out, rc) = vm
        .sh(
            "rancherctl service upgrade syslog ros-test/syslog:3 2>&1",
            UPGRADE,
        )
        .unwrap();
    assert!(rc != 0, "an upgrade to a failing image succeeded: {out}");
    assert!(
        out.contains("ros-test/syslog:3 failed its check")
            && out.contains("back on ros/busybox:latest"),
        "{out}"
    );
    assert!(
        sh(&mut vm, "cat /var/log/syslog.log").contains("broken on purpose"),
        "the failing image's own words are in the service's log"
    );
    assert_eq!(image_of_syslog(&mut vm), "running ros/busybox:latest");
    // Its container runs ros/busybox's files: neither :3's syslogd nor :2's file is there.
    assert_eq!(
        sh(
            &mut vm,
            "system-docker exec syslog sh -c 'cat /usr/sbin/syslogd /etc/ros-test-image 2>/dev/null | grep -c ros-test; true'"
        ),
        "0"
    );
    assert_eq!(
        sh(
            &mut vm,
            "rancherctl config get rancher.services.syslog.image"
        ),
        "ros/busybox:latest"
    );
    // It works: a message reaches /var/log/messages.
    sh(&mut vm, "logger upgrade-test-after-fallback");
    vm.poll("cat /var/log/messages", Duration::from_secs(30), |m| {
        m.contains("upgrade-test-after-fallback")
    })
    .unwrap();

    // :2 holds: kept, saved on the state partition, in the configuration.
    let out = sh(
        &mut vm,
        "rancherctl service upgrade syslog ros-test/syslog:2 --stable 5 2>&1",
    );
    assert!(
        out.contains("syslog: runs on ros-test/syslog:2")
            && out.contains("/var/lib/rancher/preload/system-docker/syslog.tar"),
        "{out}"
    );
    assert_eq!(
        sh(&mut vm, "system-docker exec syslog cat /etc/ros-test-image"),
        "ros-test/syslog:2"
    );
    assert_eq!(image_of_syslog(&mut vm), "running ros-test/syslog:2");
    assert_eq!(
        sh(
            &mut vm,
            "rancherctl config get rancher.services.syslog.image"
        ),
        "ros-test/syslog:2"
    );
    sh(
        &mut vm,
        "ls -l /mnt/state/var/lib/rancher/preload/system-docker/syslog.tar",
    );

    // After a reboot the store (RAM) has it again from the state partition, before syslog starts.
    vm.send("rancherctl reboot\n").unwrap();
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.shell_ended();
    vm.expect(READY, BOOT).unwrap();
    let serial = vm.serial_text();
    let after = serial
        .rsplit("shutdown complete")
        .next()
        .unwrap_or_default();
    assert!(after.contains("step preload-images ok"), "{after}");
    assert_eq!(image_of_syslog(&mut vm), "running ros-test/syslog:2");
    assert_eq!(
        sh(&mut vm, "system-docker exec syslog cat /etc/ros-test-image"),
        "ros-test/syslog:2"
    );
    sh(&mut vm, "logger upgrade-test-after-reboot");
    vm.poll("cat /var/log/messages", Duration::from_secs(30), |m| {
        m.contains("upgrade-test-after-reboot")
    })
    .unwrap();
}
