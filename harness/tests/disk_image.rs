//! The disk image (`dist/rancheros.img`, `harness::diskimage`) boots by itself, with no
//! `-kernel`: SeaBIOS runs GRUB's `boot.img` from the MBR, which loads `core.img` from the BIOS
//! boot partition; OVMF runs `EFI/BOOT/BOOTX64.EFI` from the ESP; either reads `grub.cfg` and
//! the boot state from the ESP and boots slot A's kernel and initrd from ext4; the system then
//! finds its state partition by its label, and what it keeps there outlives a reboot.

use harness::diskimage;
use harness::vm::{Drive, Vm, VmOptions, READY};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(240);

#[test]
fn the_disk_image_boots_by_itself_from_slot_a_and_keeps_its_state() {
    let path = disk("disk_image", "9.9.9-test");
    let mut vm = boot_disk("disk_image", &path, false);
    vm.expect("booting SLOT_A", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let sh = |vm: &mut Vm, cmd: &str| vm.sh_ok(cmd, BOOT).unwrap();

    // GRUB's kernel line, with the slot it chose.
    let cmdline = sh(&mut vm, "cat /proc/cmdline");
    assert!(cmdline.contains("rancher.boot.slot=SLOT_A"), "{cmdline}");
    assert!(cmdline.contains("console=ttyS0"), "{cmdline}");
    // The state partition, by its label, is the disk's fifth partition.
    let state = sh(&mut vm, "rancherctl state");
    assert!(
        state.starts_with("state: /dev/vda5 mounted on /mnt/state"),
        "{state}"
    );
    assert!(
        !vm.serial_text().contains("not formatting /dev/vda"),
        "an installed disk is not a disk to complain about"
    );
    // Slot A holds the kernel, the initrd and the version; the ESP the boot state.
    let slot = sh(
        &mut vm,
        "mkdir -p /tmp/a && mount -o ro /dev/vda3 /tmp/a && cat /tmp/a/manifest.json && ls /tmp/a",
    );
    assert!(slot.contains("\"version\": \"9.9.9-test\""), "{slot}");
    assert!(
        slot.contains("vmlinuz") && slot.contains("initrd.img"),
        "{slot}"
    );
    let env = sh(
        &mut vm,
        "mkdir -p /tmp/esp && mount -o ro /dev/vda2 /tmp/esp && head -c 60 /tmp/esp/grub/grubenv",
    );
    assert!(env.contains("ORDER=A B"), "{env}");

    // What the state partition keeps outlives a reboot.
    sh(&mut vm, "echo kept > /home/rancher/kept && sync");
    vm.send("rancherctl reboot\n").unwrap();
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.shell_ended();
    vm.expect("booting SLOT_A", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    assert_eq!(sh(&mut vm, "cat /home/rancher/kept"), "kept");
}

#[test]
#[ignore = "nightly: install.rs boots an installed disk under OVMF on every push"]
fn the_disk_image_boots_under_uefi_too() {
    let path = disk("disk_image_uefi", "9.9.9-uefi");
    let mut vm = boot_disk("disk_image_uefi", &path, true);
    vm.expect(r"BdsDxe: starting Boot\d+ .UEFI", BOOT).unwrap();
    vm.expect("booting SLOT_A", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let cmdline = vm.sh_ok("cat /proc/cmdline", BOOT).unwrap();
    assert!(cmdline.contains("rancher.boot.slot=SLOT_A"), "{cmdline}");
    let state = vm.sh_ok("rancherctl state", BOOT).unwrap();
    assert!(
        state.starts_with("state: /dev/vda5 mounted on /mnt/state"),
        "{state}"
    );
}

/// A disk image of the built kernel and initrd named `version`, under `target/disks/`.
fn disk(name: &str, version: &str) -> std::path::PathBuf {
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.img"));
    let built = diskimage::build(&img.kernel, &img.initrd, version, &path).unwrap();
    assert_eq!(built.version, version);
    path
}

#[test]
fn a_bad_slot_on_trial_is_left_for_the_good_one_with_no_hand_on_it() {
    use harness::diskimage::{build_spec, Slot, Spec};
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    // An initrd with nothing in it: the kernel finds no init, panics, and panic=10 reboots.
    let empty = dir.join("empty-initrd.img");
    let mut cpio = Vec::new();
    harness::initrd::cpio::Archive::default()
        .write_to(&mut cpio)
        .unwrap();
    std::fs::write(&empty, cpio).unwrap();
    // A kernel GRUB cannot load at all.
    let garbage = dir.join("garbage-vmlinuz");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let state = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // B was just written and is on trial, once; A is the known-good slot.
    let b_on_trial = || {
        state(&[
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "0"),
            ("B_TRY", "1"),
        ])
    };
    let good = Slot {
        kernel: img.kernel.clone(),
        initrd: img.initrd.clone(),
        version: "1.0.0-good".into(),
    };
    for (name, bad) in [
        (
            "disk_image_panics",
            Slot {
                kernel: img.kernel.clone(),
                initrd: empty.clone(),
                version: "2.0.0-panics".into(),
            },
        ),
        (
            "disk_image_no_kernel",
            Slot {
                kernel: garbage.clone(),
                initrd: img.initrd.clone(),
                version: "2.0.0-garbage".into(),
            },
        ),
    ] {
        let path = dir.join(format!("{name}.img"));
        let spec = Spec {
            a: good.clone(),
            b: Some(bad),
            boot_state: b_on_trial(),
        };
        build_spec(&spec, &path).unwrap();
        let mut vm = boot_disk(name, &path, false);
        vm.expect(r"booting SLOT_B \(trial 1\)", BOOT).unwrap();
        if name == "disk_image_panics" {
            vm.expect("Kernel panic", BOOT).unwrap();
            // The next boot: B's one try is spent; A, by itself.
            vm.expect(r"booting SLOT_A \(trial 0\)", BOOT).unwrap();
        } else {
            // The same boot: B does not load, A does.
            vm.expect(r"SLOT_B did not load", BOOT).unwrap();
            vm.expect(r"booting SLOT_A \(fallback\)", BOOT).unwrap();
        }
        vm.expect(READY, BOOT).unwrap();
        let cmdline = vm.sh_ok("cat /proc/cmdline", BOOT).unwrap();
        assert!(
            cmdline.contains("rancher.boot.slot=SLOT_A"),
            "{name}: {cmdline}"
        );
        // GRUB saved the spent try in place; B is still not good.
        let env = vm
            .sh_ok(
                "mkdir -p /tmp/esp && mount -o ro /dev/vda2 /tmp/esp && head -c 100 /tmp/esp/grub/grubenv && stat -c %s /tmp/esp/grub/grubenv",
                BOOT,
            )
            .unwrap();
        assert!(
            env.contains("B_TRY=0") && env.contains("B_OK=0"),
            "{name}: {env}"
        );
        assert!(env.trim_end().ends_with("512"), "{name}: {env}");
    }

    // A boot state GRUB cannot save (the disk read-only to the firmware): B's trial is not
    // taken, since a trial whose spent try is not on the disk could come back for ever; the
    // known-good A boots instead, in the same boot.
    let path = dir.join("disk_image_no_save.img");
    let spec = Spec {
        a: good.clone(),
        b: Some(Slot {
            kernel: img.kernel.clone(),
            initrd: img.initrd.clone(),
            version: "2.0.0-unsaved".into(),
        }),
        boot_state: b_on_trial(),
    };
    build_spec(&spec, &path).unwrap();
    let opts = VmOptions::new("disk_image_no_save")
        .unwrap()
        .firmware_boot()
        .drive(Drive {
            path: path.clone(),
            format: "raw".into(),
            read_only: true,
        });
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect("boot state not saved: no trial of slot B", BOOT)
        .unwrap();
    vm.expect(r"booting SLOT_A \(trial 0\)", BOOT).unwrap();
    // Linux and our init start from it (what they do with a read-only disk is not this
    // test's matter).
    vm.expect(r"\[ros\] init", BOOT).unwrap();
}

#[test]
#[ignore = "nightly: the upgrade test's trial is marked good and boots on every push"]
fn a_slot_on_trial_that_marks_itself_good_stays_the_one_booted() {
    use harness::diskimage::{build_spec, Slot, Spec};
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let slot = |version: &str| Slot {
        kernel: img.kernel.clone(),
        initrd: img.initrd.clone(),
        version: version.into(),
    };
    let path = dir.join("disk_image_mark_good.img");
    let spec = Spec {
        a: slot("1.0.0-a"),
        b: Some(slot("2.0.0-b")),
        boot_state: [
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "0"),
            ("B_TRY", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    build_spec(&spec, &path).unwrap();
    let mut vm = boot_disk("disk_image_mark_good", &path, false);
    vm.expect(r"booting SLOT_B \(trial 1\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    // The health gate: the services and the user engine stay up 10 s in a row → good.
    vm.expect(r"boot health: SLOT_B is on trial", BOOT).unwrap();
    vm.expect(r"boot health: SLOT_B healthy for 10s: marked good", BOOT)
        .unwrap();
    let version = vm.sh_ok("rancherctl os version", BOOT).unwrap();
    assert!(version.contains("version: 2.0.0-b"), "{version}");
    assert!(version.contains("slot: SLOT_B"), "{version}");
    assert!(
        version.contains("boot state: ORDER=B A A_OK=1 A_TRY=0 B_OK=1 B_TRY=0"),
        "{version}"
    );
    // By hand too (it changes nothing more).
    let marked = vm.sh_ok("rancherctl os mark-good", BOOT).unwrap();
    assert!(
        marked.contains("SLOT_B marked good") && marked.contains("B_OK=1"),
        "{marked}"
    );
    // The next boot is slot B again, as a good slot, not a trial (its tries are spent).
    vm.send("rancherctl reboot\n").unwrap();
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.shell_ended();
    vm.expect(r"booting SLOT_B \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let version = vm.sh_ok("rancherctl os version", BOOT).unwrap();
    assert!(
        version.contains("slot: SLOT_B") && version.contains("B_OK=1"),
        "{version}"
    );
}

/// `rancherctl os upgrade -i` of the OS image (`harness::osimage`, as `harness build` writes
/// `dist/rancheros-os.tar`, given to the VM as a disk of its own): v1 in slot A; v2 from a file, with kernel arguments of its own → healthy, marked good, the data kept
/// → `rollback` to v1 (its own arguments) → v3, whose init exits (the kernel panics), is left
/// for v1 by itself, and says why; a rollback to it is refused.
#[test]
fn an_os_image_upgrade_is_kept_when_healthy_and_left_when_not() {
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = disk("disk_image_upgrade", "1.0.0-v1");
    let v2 = harness::osimage::build(&img.kernel, &img.initrd, "2.0.0-v2", &dir.join("os-v2.tar"))
        .unwrap();
    // v3: the built initrd with a second archive whose /init exits at once.
    let panics = dir.join("init-exits-initrd.img");
    let mut initrd = std::fs::read(&img.initrd).unwrap();
    initrd.resize(initrd.len().div_ceil(512) * 512, 0);
    let mut extra = harness::initrd::cpio::Archive::default();
    extra.add(
        "/init",
        harness::initrd::cpio::Entry::File {
            mode: 0o755,
            data: b"#!/bin/busybox sh\necho 'init: exiting on purpose (test)'\nexit 1\n".to_vec(),
        },
    );
    extra.write_to(&mut initrd).unwrap();
    std::fs::write(&panics, initrd).unwrap();
    let v3 =
        harness::osimage::build(&img.kernel, &panics, "3.0.0-bad", &dir.join("os-v3.tar")).unwrap();
    let image_drive = |p: &std::path::Path| Drive {
        path: p.to_path_buf(),
        format: "raw".into(),
        read_only: true,
    };
    let opts = VmOptions::new("disk_image_upgrade")
        .unwrap()
        .firmware_boot()
        .allow_reboot()
        .drive(Drive {
            path: path.clone(),
            format: "raw".into(),
            read_only: false,
        })
        .drive(image_drive(&v2))
        .drive(image_drive(&v3));
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"booting SLOT_A \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.sh_ok(
        "echo kept > /home/rancher/kept && echo opt > /opt/kept && sync",
        BOOT,
    )
    .unwrap();
    let kept = |vm: &mut Vm| {
        assert_eq!(
            vm.sh_ok("cat /home/rancher/kept /opt/kept", BOOT).unwrap(),
            "kept\nopt"
        );
    };
    let reboot_from_shell = |vm: &mut Vm, cmd: &str| {
        vm.send(&format!("{cmd}\n")).unwrap();
        vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
        vm.shell_ended();
    };

    // What is not an OS image is refused before anything is written.
    let bad = vm
        .sh_ok(
            "rancherctl os upgrade -i /dev/vda1 --no-reboot 2>&1; true",
            BOOT,
        )
        .unwrap();
    assert!(bad.contains("/dev/vda1") && !bad.contains("holds"), "{bad}");
    // v2 from a file (the image's tar on a disk of its own), with arguments of its own.
    let out = vm
        .sh_ok(
            "rancherctl os upgrade -i /dev/vdb --append ros.test.upgraded=v2 --no-reboot",
            BOOT,
        )
        .unwrap();
    assert!(
        out.contains("SLOT_B holds 2.0.0-v2 and boots next, on trial")
            && out.contains("ORDER=B A A_OK=1 A_TRY=0 B_OK=0 B_TRY=1"),
        "{out}"
    );
    reboot_from_shell(&mut vm, "rancherctl reboot");
    vm.expect(r"booting SLOT_B \(trial 1\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    // The trial's watchdog: armed from boot by GRUB's kernel line, taken over by the gate,
    // stopped once the slot is good (else the machine would reset 30 s later, mid-test).
    vm.expect(r"boot health: watchdog armed", BOOT).unwrap();
    vm.expect(r"boot health: SLOT_B healthy for 10s: marked good", BOOT)
        .unwrap();
    vm.expect(r"boot health: watchdog stopped", BOOT).unwrap();
    let wd = vm
        .sh_ok(
            "cat /sys/class/watchdog/watchdog0/state; cat /proc/cmdline",
            BOOT,
        )
        .unwrap();
    assert!(
        wd.starts_with("inactive")
            && wd.contains("softdog.soft_active_on_boot=1")
            && wd.contains("ros.test.upgraded=v2"),
        "{wd}"
    );
    let version = vm.sh_ok("rancherctl os version", BOOT).unwrap();
    assert!(
        version.contains("version: 2.0.0-v2")
            && version.contains("B_OK=1")
            && version.contains("last trial: SLOT_B (2.0.0-v2) passed its trial"),
        "{version}"
    );
    kept(&mut vm);

    // Rollback: v1 again, with the arguments it had (none of v2's), and it is now the slot
    // GRUB falls back on.
    reboot_from_shell(&mut vm, "rancherctl os rollback");
    vm.expect(r"booting SLOT_A \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let out = vm
        .sh_ok(
            "rancherctl os version; cat /proc/cmdline; mkdir -p /tmp/esp && mount -o ro /dev/vda2 /tmp/esp && head -c 40 /tmp/esp/grub/goodenv; echo; umount /tmp/esp",
            BOOT,
        )
        .unwrap();
    let cmdline = out
        .lines()
        .find(|l| l.contains("rancher.boot.slot="))
        .unwrap_or_default();
    assert!(
        out.contains("version: 1.0.0-v1")
            && out.contains("ORDER=A B A_OK=1")
            && out.contains("B_APPEND=ros.test.upgraded=v2")
            && cmdline.contains("rancher.boot.slot=SLOT_A")
            && !cmdline.contains("ros.test.upgraded")
            && out.contains("GOOD=A"),
        "{out}"
    );
    assert!(vm.serial_text().contains("rolling back to SLOT_A"));
    kept(&mut vm);

    // v3 into slot B, from v1: its init exits, the kernel panics; the boot after is v1 again,
    // by itself, and says why.
    vm.send("rancherctl os upgrade -i /dev/vdc\n").unwrap();
    vm.expect(r"SLOT_B holds 3.0.0-bad and boots next, on trial", BOOT)
        .unwrap();
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.shell_ended();
    vm.expect(r"booting SLOT_B \(trial 1\)", BOOT).unwrap();
    vm.expect("init: exiting on purpose", BOOT).unwrap();
    vm.expect("Attempted to kill init", BOOT).unwrap();
    vm.expect(r"booting SLOT_A \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let version = vm.sh_ok("rancherctl os version", BOOT).unwrap();
    assert!(
        version.contains("version: 1.0.0-v1")
            && version.contains("B_OK=0 B_TRY=0")
            && version
                .contains("last trial: SLOT_B (3.0.0-bad) failed its trial: it never became ready"),
        "{version}"
    );
    kept(&mut vm);
    let refused = vm.sh_ok("rancherctl os rollback 2>&1; true", BOOT).unwrap();
    assert!(
        refused.contains("SLOT_B was never marked good"),
        "{refused}"
    );
}

/// Boot `path` by the firmware alone (SeaBIOS, or OVMF when `uefi`), reboots allowed.
fn boot_disk(name: &str, path: &std::path::Path, uefi: bool) -> Vm {
    let mut opts = VmOptions::new(name)
        .unwrap()
        .firmware_boot()
        .allow_reboot()
        .drive(Drive {
            path: path.to_path_buf(),
            format: "raw".into(),
            read_only: false,
        });
    if uefi {
        opts = opts.uefi();
    }
    Vm::boot(opts).unwrap()
}

/// A boot state that will not load — zeroed in place, then truncated — gives way to the slot
/// `goodenv` names (B here, though A is GRUB's default), and the health gate rebuilds the boot
/// state around it.
#[test]
fn a_zeroed_or_truncated_boot_state_boots_the_known_good_slot() {
    use harness::diskimage::{build_spec, Slot, Spec};
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let slot = |version: &str| Slot {
        kernel: img.kernel.clone(),
        initrd: img.initrd.clone(),
        version: version.into(),
    };
    let spec = Spec {
        a: slot("1.0.0-a"),
        b: Some(slot("2.0.0-b")),
        boot_state: [
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "1"),
            ("B_TRY", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    assert_eq!(spec.good(), "B");
    let path = dir.join("disk_image_zeroed.img");
    build_spec(&spec, &path).unwrap();
    // The block's sector zeroed, its size kept.
    let zeros = dir.join("zeros-512");
    std::fs::write(&zeros, [0u8; 512]).unwrap();
    let at = format!("{}@@{}", path.display(), diskimage::esp_offset());
    let st = std::process::Command::new("mcopy")
        .args(["-o", "-i", &at])
        .arg(&zeros)
        .arg("::/grub/grubenv")
        .status()
        .unwrap();
    assert!(st.success());

    let mut vm = boot_disk("disk_image_zeroed", &path, false);
    vm.expect("boot state unreadable: booting the known-good slot B", BOOT)
        .unwrap();
    vm.expect(r"booting SLOT_B \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.expect("boot state rebuilt around SLOT_B", BOOT).unwrap();
    let version = vm.sh_ok("rancherctl os version", BOOT).unwrap();
    assert!(
        version.contains("version: 2.0.0-b") && version.contains("ORDER=B A B_OK=1 B_TRY=0 A_OK=0"),
        "{version}"
    );

    // Truncated: within its header (a torn write of its start: GRUB cannot load it), then
    // after a few variables (GRUB loads what is left; this side rebuilds it all the same).
    for size in [20, 100] {
        vm.sh_ok(
            &format!("mkdir -p /tmp/esp && mount /dev/vda2 /tmp/esp && truncate -s {size} /tmp/esp/grub/grubenv && umount /tmp/esp && sync"),
            BOOT,
        )
        .unwrap();
        vm.send("rancherctl reboot\n").unwrap();
        vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
        vm.shell_ended();
        if size == 20 {
            vm.expect("boot state unreadable: booting the known-good slot B", BOOT)
                .unwrap();
        }
        vm.expect(r"booting SLOT_B \(trial 0\)", BOOT).unwrap();
        vm.expect(READY, BOOT).unwrap();
        vm.expect("boot state rebuilt around SLOT_B", BOOT).unwrap();
        let version = vm.sh_ok("rancherctl os version", BOOT).unwrap();
        assert!(
            version.contains("version: 2.0.0-b") && version.contains("ORDER=B A B_OK=1"),
            "{size}: {version}"
        );
    }
}
