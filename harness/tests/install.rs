//! The ISO (`dist/rancheros.iso`, `harness::iso`) boots from a CD-ROM into RAM and formats
//! nothing by itself; `rancherctl install -d DEV` from there makes a blank disk an installed
//! system (refusing a bad cloud-config and a disk holding data first), which then boots by
//! itself under SeaBIOS and under OVMF with the cloud-config applied and the `--append` kernel
//! arguments, which an upgrade (to the release index's current image, pulled from a registry
//! on this machine's loopback) keeps; the user's files and a `--restart always` container of
//! the user engine are there on the new version. Without the index, `rancherctl os list` reads
//! the versions among that registry's tags (`rancher.upgrade.image`).

use harness::vm::{Drive, Vm, VmOptions, READY};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(300);

#[test]
fn the_iso_installs_a_disk_that_boots_by_itself_and_keeps_its_arguments_across_an_upgrade() {
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let v4 = harness::osimage::build(
        &img.kernel,
        &img.initrd,
        "4.0.0-iso",
        &dir.join("os-v4.tar"),
    )
    .unwrap();
    let v5 = harness::osimage::build(&img.kernel, &img.initrd, "5.0.0-up", &dir.join("os-v5.tar"))
        .unwrap();
    let iso = dir.join("install.iso");
    harness::iso::build(&img.kernel, &img.initrd, &v4, "4.0.0-iso", &iso).unwrap();
    let target = dir.join("install-target.img");
    let _ = std::fs::remove_file(&target);
    std::fs::File::create(&target)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let disk = |p: &std::path::Path, read_only: bool| Drive {
        path: p.to_path_buf(),
        format: "raw".into(),
        read_only,
    };

    // From the ISO: the blank disk is left alone until the install.
    let opts = VmOptions::new("install_iso")
        .unwrap()
        .firmware_boot()
        .cdrom(&iso)
        .drive(disk(&target, false));
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect("booting from the ISO", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let sh = |vm: &mut Vm, cmd: &str| vm.sh_ok(cmd, BOOT).unwrap();
    let state = sh(&mut vm, "rancherctl state");
    assert!(
        !state.contains("/dev/vda"),
        "the ISO formats no disk: {state}"
    );

    // A cloud-config with a bad value is refused, naming it, before the disk is touched.
    sh(
        &mut vm,
        "printf 'hostname: installed\\nrancher:\\n  state:\\n    wait: many\\n' > /tmp/bad.yml",
    );
    let refused = sh(
        &mut vm,
        "rancherctl install -d /dev/vda -c /tmp/bad.yml --no-reboot 2>&1; echo rc=$?",
    );
    assert!(
        refused.contains("rancher.state.wait")
            && refused.contains("nothing written")
            && refused.ends_with("rc=1"),
        "{refused}"
    );
    assert_eq!(
        sh(&mut vm, "head -c 1048576 /dev/vda | tr -d '\\0' | wc -c"),
        "0"
    );
    // Kernel arguments GRUB could not carry as given are refused too.
    let refused = sh(
        &mut vm,
        "rancherctl install -d /dev/vda --append 'a=$x' --no-reboot 2>&1; echo rc=$?",
    );
    assert!(
        refused.contains("'$' is not allowed") && refused.ends_with("rc=1"),
        "{refused}"
    );

    sh(
        &mut vm,
        "printf '#cloud-config\\nhostname: installed-host\\nrancher:\\n  upgrade:\\n    url: http://10.0.2.100/releases.yml\\n  docker:\\n    insecure_registry: [\"10.0.2.100:5000\"]\\n' > /tmp/cc.yml",
    );
    let out = sh(
        &mut vm,
        "rancherctl install -d /dev/vda -c /tmp/cc.yml --append 'install.test=42 rancher.debug' --no-reboot 2>&1",
    );
    assert!(
        out.contains(
            "installing 4.0.0-iso from /usr/share/ros/install/rancheros-os.tar on /dev/vda"
        ) && out.contains("SLOT_A holds 4.0.0-iso (written, read back)")
            && out.contains("installed 4.0.0-iso on /dev/vda"),
        "{out}"
    );
    // Now the disk holds a system: a second install says what it would erase and stops.
    let again = sh(
        &mut vm,
        "rancherctl install -d /dev/vda --no-reboot 2>&1; echo rc=$?",
    );
    assert!(
        again.contains("holds /dev/vda1")
            && again.contains("ext4 \"RANCHER_STATE\"")
            && again.contains("give -f")
            && again.ends_with("rc=1"),
        "{again}"
    );
    // With -f it is given up: the same install again, over it (the disk booted below is this one).
    let forced = sh(
        &mut vm,
        "rancherctl install -d /dev/vda -f -c /tmp/cc.yml --append 'install.test=42 rancher.debug' --no-reboot 2>&1",
    );
    assert!(
        forced.contains("installed 4.0.0-iso on /dev/vda"),
        "{forced}"
    );
    drop(vm);

    // The disk alone, under SeaBIOS, with the release index the cloud-config names
    // (rancher.upgrade.url) served on 10.0.2.100, and the OS image v5 in a registry there
    // (Debian's docker-registry on this machine's loopback; this machine's dockerd pushes it).
    let registry = harness::registry::Registry::start(None, None).unwrap();
    let pushed = format!("127.0.0.1:{}/rancheros/os:5.0.0-up", registry.port);
    let host = harness::docker_cli::host_docker;
    host(&["load", "-i", &v5.display().to_string()]);
    host(&["tag", "rancheros/os:5.0.0-up", &pushed]);
    host(&["push", &pushed]);
    // A tag that is not a version, which a list of the repository's tags skips.
    let latest = format!("127.0.0.1:{}/rancheros/os:latest", registry.port);
    host(&["tag", "rancheros/os:5.0.0-up", &latest]);
    host(&["push", &latest]);
    host(&["rmi", "rancheros/os:5.0.0-up", &pushed, &latest]);
    let web = dir.join("install-releases");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(
        web.join("releases.yml"),
        "current: 10.0.2.100:5000/rancheros/os:5.0.0-up\navailable:\n  - rancheros/os:4.0.0-iso\n  - 10.0.2.100:5000/rancheros/os:5.0.0-up\n",
    )
    .unwrap();
    let http = format!(
        "{} serve-http {}",
        env!("CARGO_BIN_EXE_harness"),
        web.display()
    );
    let opts = VmOptions::new("install_disk_bios")
        .unwrap()
        .firmware_boot()
        .allow_reboot()
        .guestfwd("10.0.2.100:80", &http)
        .guestfwd(
            "10.0.2.100:5000",
            &registry.relay_cmd(env!("CARGO_BIN_EXE_harness")),
        )
        .drive(disk(&target, false));
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"booting SLOT_A \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    assert_eq!(sh(&mut vm, "hostname"), "installed-host");
    let cmdline = sh(&mut vm, "cat /proc/cmdline");
    assert!(
        cmdline.contains("rancher.boot.slot=SLOT_A install.test=42 rancher.debug"),
        "{cmdline}"
    );
    let state = sh(&mut vm, "rancherctl state");
    assert!(
        state.starts_with("state: /dev/vda5 mounted on /mnt/state"),
        "{state}"
    );
    let version = sh(&mut vm, "rancherctl os version");
    assert!(
        version.contains("version: 4.0.0-iso")
            && version.contains("A_APPEND=install.test=42 rancher.debug"),
        "{version}"
    );
    sh(&mut vm, "echo kept > /home/rancher/kept && sync");
    // The index lists what there is; an upgrade without -i takes its current image (pulled
    // through the user engine from the registry, every digest checked), and without --append
    // gives the new slot the same arguments.
    sh(
        &mut vm,
        "until docker version >/dev/null 2>&1; do sleep 1; done",
    );
    // A user's container with `--restart always`: it runs again on the new version.
    sh(
        &mut vm,
        "system-docker save ros/busybox | docker load >/dev/null && \
         docker run -d --restart always --name keeper ros/busybox \
           sh -c 'trap \"exit 0\" TERM; echo kept-running; while :; do sleep 1; done'",
    );
    // (The kernel's messages share the serial line: only the list's lines.)
    let list = sh(&mut vm, "rancherctl os list");
    let lines: Vec<&str> = list
        .lines()
        .filter(|l| l.contains("rancheros/os:"))
        .collect();
    assert_eq!(
        lines,
        [
            "rancheros/os:4.0.0-iso running",
            "10.0.2.100:5000/rancheros/os:5.0.0-up latest"
        ],
        "{list}"
    );
    // Without an index (the URL emptied: a lower layer's key cannot be removed), the
    // repository rancher.upgrade.image names: its tags that are versions, from its registry
    // (`latest` skipped), the highest the current one. The URL is then put back, and wins.
    sh(
        &mut vm,
        "rancherctl config set rancher.upgrade.image 10.0.2.100:5000/rancheros/os && \
         rancherctl config set rancher.upgrade.url ''",
    );
    let tagged = sh(&mut vm, "rancherctl os list");
    let lines: Vec<&str> = tagged
        .lines()
        .filter(|l| l.contains("rancheros/os:"))
        .collect();
    assert_eq!(
        lines,
        ["10.0.2.100:5000/rancheros/os:5.0.0-up latest"],
        "{tagged}"
    );
    sh(
        &mut vm,
        "rancherctl config set rancher.upgrade.url http://10.0.2.100/releases.yml",
    );
    let out = sh(&mut vm, "rancherctl os upgrade --no-reboot");
    assert!(
        out.contains("http://10.0.2.100/releases.yml: current"),
        "the index again: {out}"
    );
    assert!(
        out.contains("pulling 10.0.2.100:5000/rancheros/os:5.0.0-up")
            && out.contains("SLOT_B holds 5.0.0-up")
            && out.contains("B_APPEND=install.test=42 rancher.debug"),
        "{out}"
    );
    vm.send("rancherctl reboot\n").unwrap();
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.shell_ended();
    vm.expect(r"booting SLOT_B \(trial 1\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.expect(r"boot health: SLOT_B healthy for 10s: marked good", BOOT)
        .unwrap();
    let cmdline = sh(&mut vm, "cat /proc/cmdline");
    assert!(
        cmdline.contains("rancher.boot.slot=SLOT_B install.test=42 rancher.debug"),
        "{cmdline}"
    );
    assert_eq!(sh(&mut vm, "cat /home/rancher/kept"), "kept");
    assert_eq!(sh(&mut vm, "hostname"), "installed-host");
    let ps = vm
        .poll("docker ps | grep keeper", Duration::from_secs(60), |out| {
            out.contains("Up ")
        })
        .unwrap();
    assert!(
        ps.contains("Up "),
        "the always container after the upgrade: {ps}"
    );
    assert!(sh(&mut vm, "docker logs keeper").contains("kept-running"));
    // Gone before the next boot: a container's start puts the kernel's bridge messages on the
    // serial line, between the answers read there.
    sh(&mut vm, "docker rm -f keeper >/dev/null; sync");
    drop(vm);

    // The same disk under OVMF: GRUB for UEFI from the ESP the install wrote. A blank disk
    // comes first (the firmware's hd0): GRUB reads its files and the slots from the disk it
    // was loaded from, not from hd0 nor the first disk with a slot's label.
    let blank = dir.join("install-blank-first.img");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let opts = VmOptions::new("install_disk_uefi")
        .unwrap()
        .firmware_boot()
        .uefi()
        .drive(disk(&blank, true))
        .drive(disk(&target, false));
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"BdsDxe: starting Boot\d+ .UEFI", BOOT).unwrap();
    vm.expect(r"booting SLOT_B \(trial 0\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    assert_eq!(sh(&mut vm, "hostname"), "installed-host");
    let version = sh(&mut vm, "rancherctl os version");
    assert!(version.contains("version: 5.0.0-up"), "{version}");
}

/// The hybrid ISO also boots under UEFI (OVMF, from the CD's EFI image).
#[test]
fn the_iso_boots_under_uefi() {
    let iso = iso_of("4.0.0-iso", "uefi");
    let opts = VmOptions::new("install_iso_uefi")
        .unwrap()
        .firmware_boot()
        .uefi()
        .cdrom(&iso);
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"BdsDxe: starting Boot\d+ .UEFI", BOOT).unwrap();
    vm.expect("booting from the ISO", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let carried = vm
        .sh_ok("ls -l /usr/share/ros/install/rancheros-os.tar", BOOT)
        .unwrap();
    assert!(carried.contains("rancheros-os.tar"), "{carried}");
}

/// The ISO is hybrid: written as it is to a disk (a USB stick, `dd`), it boots from that disk
/// by the firmware, under SeaBIOS (its MBR) and under OVMF (its EFI partition).
#[test]
fn the_iso_written_to_a_disk_boots_under_bios_and_uefi() {
    let iso = iso_of("4.0.0-usb", "usb");
    for uefi in [false, true] {
        let name = if uefi {
            "install_iso_as_disk_uefi"
        } else {
            "install_iso_as_disk_bios"
        };
        let mut opts = VmOptions::new(name).unwrap().firmware_boot().drive(Drive {
            path: iso.clone(),
            format: "raw".into(),
            read_only: true,
        });
        if uefi {
            opts = opts.uefi();
        }
        let mut vm = Vm::boot(opts).unwrap();
        vm.expect("booting from the ISO", BOOT).unwrap();
        vm.expect(READY, BOOT).unwrap();
        let carried = vm
            .sh_ok("ls /usr/share/ros/install/rancheros-os.tar", BOOT)
            .unwrap();
        assert!(carried.contains("rancheros-os.tar"), "{name}: {carried}");
    }
}

/// The built image's ISO (`target/disks/install-NAME.iso`), carrying its OS image as `version`.
fn iso_of(version: &str, name: &str) -> std::path::PathBuf {
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let os = harness::osimage::build(
        &img.kernel,
        &img.initrd,
        version,
        &dir.join(format!("os-{name}.tar")),
    )
    .unwrap();
    let iso = dir.join(format!("install-{name}.iso"));
    harness::iso::build(&img.kernel, &img.initrd, &os, version, &iso).unwrap();
    iso
}
