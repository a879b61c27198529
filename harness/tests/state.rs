//! The state partition, proven in VMs: a blank disk becomes `RANCHER_STATE` at first boot and a
//! disk with data is never touched; `/home` and `/opt` survive a reboot from inside and a hard
//! reset while `/etc` and `/usr/local` are rebuilt; the SSH host key is made once (the
//! fingerprint the console's log gives is the served key's) and stays the same; a power cut
//! right after a synced write loses nothing and leaves a clean filesystem; with no disk the
//! system runs from RAM and says so.

use harness::disk::Disk;
use harness::ssh::Key;
use harness::vm::{Vm, VmOptions};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

/// Run `cmd` over SSH; it must succeed; its stdout, trimmed.
fn ssh(vm: &Vm, cmd: &str) -> String {
    vm.ssh_ok(cmd).unwrap()
}

fn host_key(vm: &Vm) -> String {
    harness::ssh::host_key(vm.port(22).unwrap()).unwrap()
}

/// The SHA256 fingerprint `ssh-keygen -l` gives for a `type base64` public key line.
fn fingerprint(key_line: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key.pub");
    std::fs::write(&f, format!("{key_line}\n")).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&f)
        .output()
        .expect("ssh-keygen (openssh-client, from `cargo harness setup`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

/// The console's log lines that say it made a host key, and with which fingerprint.
const MADE: &str = "sudo grep -o 'made the SSH host key .*' /var/log/console.log || true";

const WRITE: &str = "echo home > /home/rancher/kept && sudo sh -c 'echo opt > /opt/kept; echo etc > /etc/gone; mkdir -p /usr/local/bin; echo usr > /usr/local/gone' && sync";
const CHECK: &str =
    "cat /home/rancher/kept /opt/kept; ls /etc/gone /usr/local/gone 2>&1 | grep -c 'No such file'";
/// The same on the host itself (PID 1's root shell on the serial console).
const HOST_WRITE: &str = "echo host > /etc/host-gone && echo host > /usr/local/host-gone && sync";
const HOST_CHECK: &str =
    "cat /home/rancher/kept; ls /etc/host-gone /usr/local/host-gone 2>&1 | grep -c 'No such file'";

fn host_sh(vm: &mut Vm, cmd: &str) -> String {
    let (out, rc) = vm.sh(cmd, BOOT).unwrap();
    assert_eq!(rc, 0, "`{cmd}` on the serial console: {out}");
    out.trim().to_string()
}

#[test]
fn a_blank_disk_becomes_the_state_and_only_home_and_opt_survive_reboot_and_reset() {
    let disk = Disk::blank("state_blank", 256).unwrap();
    let key = Key::generate("state_blank").unwrap();
    let opts = VmOptions::new("state_blank")
        .unwrap()
        .drive(disk.drive())
        .ssh_key(&key)
        .allow_reboot();
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"state: formatting blank disk /dev/vda", BOOT)
        .unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    let state = ssh(&vm, "rancherctl state");
    assert!(
        state.starts_with("state: /dev/vda mounted on /mnt/state"),
        "{state}"
    );
    assert!(state.contains("formatted at this boot: true"), "{state}");
    let key1 = host_key(&vm);
    // Made at this first boot, and the fingerprint the console says is the key's it serves.
    let made = ssh(&vm, MADE);
    assert_eq!(
        made,
        format!(
            "made the SSH host key /var/lib/rancher/ssh/dropbear_ed25519_host_key ({})",
            fingerprint(&key1)
        )
    );
    ssh(&vm, WRITE);
    host_sh(&mut vm, HOST_WRITE);
    // A key added by hand stays; the configured one is appended once, not again at each boot.
    ssh(
        &vm,
        "echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHand hand@added' >> .ssh/authorized_keys",
    );
    // `rancherctl config set` survives the reboot (the OS config is on the state partition).
    ssh(&vm, "sudo rancherctl config set hostname persisted-host");
    // So does `rancher.debug`: the system engine, started before the state partition is
    // mounted, takes the layer on it when PID 1 tells it to go on (its log has the makings).
    const MADE_LINES: &str = "grep -c 'DEBUG os::engine::manager::start: container made' /var/log/system-docker.log || true";
    assert_eq!(ssh(&vm, &format!("sudo sh -c \"{MADE_LINES}\"")), "0");
    ssh(&vm, "sudo rancherctl config set rancher.debug true");

    // Reboot from inside, through sudo and PID 1.
    let _ = vm.ssh("sudo reboot");
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    assert_eq!(ssh(&vm, CHECK), "home\nopt\n2", "after reboot");
    assert_eq!(host_sh(&mut vm, HOST_CHECK), "home\n2", "host after reboot");
    assert_eq!(host_key(&vm), key1, "same SSH host key after reboot");
    assert_eq!(ssh(&vm, MADE), "", "the kept key is not made again");
    assert_eq!(
        ssh(&vm, "hostname"),
        "persisted-host",
        "config set survived"
    );
    let made: u32 = ssh(&vm, &format!("sudo sh -c \"{MADE_LINES}\""))
        .parse()
        .unwrap();
    assert!(
        made >= 6,
        "the engine's debug lines after the reboot: {made}"
    );
    let keys = ssh(&vm, "cat .ssh/authorized_keys");
    assert_eq!(keys.matches("hand@added").count(), 1, "{keys}");
    assert_eq!(keys.matches(key.public.as_str()).count(), 1, "{keys}");
    let state = ssh(&vm, "rancherctl state");
    assert!(state.contains("formatted at this boot: false"), "{state}");
    assert!(state.contains("fsck: clean"), "{state}");

    // Hard reset: no shutdown at all.
    ssh(&vm, WRITE);
    host_sh(&mut vm, HOST_WRITE);
    vm.reset().unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    assert_eq!(ssh(&vm, CHECK), "home\nopt\n2", "after reset");
    assert_eq!(host_sh(&mut vm, HOST_CHECK), "home\n2", "host after reset");
    assert_eq!(host_key(&vm), key1, "same SSH host key after reset");
    let serial = vm.serial_text();
    assert_eq!(
        serial.matches("formatting blank disk").count(),
        1,
        "formatted once, at the first boot"
    );
    drop(vm);
    assert_eq!(disk.ext_label().unwrap().as_deref(), Some("RANCHER_STATE"));
}

#[test]
fn a_disk_with_data_is_never_formatted() {
    let mut data = b"not yours: a user's data at the start of the disk".to_vec();
    data.resize(4096, 0x5a);
    let disk =
        Disk::with_bytes("state_data", 64, &[(0, &data), (600 << 10, b"more data")]).unwrap();
    let before = disk.read(0, 2 << 20).unwrap();
    let mut vm = Vm::boot(VmOptions::new("state_data").unwrap().drive(disk.drive())).unwrap();
    vm.expect(
        r"state: not formatting /dev/vda: it holds data \(its first MiB is not all zeros\)",
        BOOT,
    )
    .unwrap();
    vm.expect(r"running from RAM", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let (out, rc) = vm.sh("rancherctl state", BOOT).unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("state: RAM"), "{out}");
    vm.powerdown().unwrap();
    vm.wait_exit(BOOT).unwrap();
    assert!(
        before == disk.read(0, 2 << 20).unwrap(),
        "the disk's bytes changed"
    );
}

#[test]
fn a_power_cut_after_a_synced_write_loses_nothing() {
    let disk = Disk::blank("state_power_cut", 256).unwrap();
    let key = Key::generate("state_power_cut").unwrap();
    let opts = || {
        VmOptions::new("state_power_cut")
            .unwrap()
            .drive(disk.drive())
            .ssh_key(&key)
    };
    let mut vm = Vm::boot(opts()).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    ssh(&vm, "echo survived > /home/rancher/cut && sync");
    vm.quit().unwrap();
    drop(vm);

    let mut vm = Vm::boot(opts()).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    assert_eq!(ssh(&vm, "cat /home/rancher/cut"), "survived");
    let serial = vm.serial_text();
    assert!(
        !serial.contains("repaired by e2fsck") && !serial.contains("e2fsck left errors"),
        "the journal alone brings it back: {serial}"
    );
    let _ = vm.ssh("sudo poweroff");
    vm.wait_exit(BOOT).unwrap();
    let (code, out) = disk.fsck().unwrap();
    assert_eq!(code, 0, "e2fsck -fn after a clean poweroff: {out}");
}

/// `rancherctl config set` in a loop, and the power cut in the middle of it: the file is then
/// the old or the new one, never torn (temp file, fsync, rename, fsync of the directory).
#[test]
fn a_power_cut_during_config_set_leaves_the_old_or_the_new_file() {
    let disk = Disk::blank("state_config_cut", 256).unwrap();
    let opts = || {
        VmOptions::new("state_config_cut")
            .unwrap()
            .drive(disk.drive())
    };
    let mut vm = Vm::boot(opts()).unwrap();
    vm.expect(READY, BOOT).unwrap();
    host_sh(&mut vm, "rancherctl config set rancher.environment.ROUND 0");
    host_sh(
        &mut vm,
        "(i=1; while rancherctl config set rancher.environment.ROUND $i; do echo $i > /run/last-set; i=$((i+1)); done) >/dev/null 2>&1 &",
    );
    // Let some sets land, then cut the power while the loop runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = host_sh(&mut vm, "cat /run/last-set 2>/dev/null || echo 0");
        if n.lines()
            .last()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .unwrap_or(0)
            >= 5
            || std::time::Instant::now() > deadline
        {
            break;
        }
        host_sh(&mut vm, "sleep 1");
    }
    vm.quit().unwrap();
    drop(vm);

    let mut vm = Vm::boot(opts()).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let file = "/var/lib/rancher/conf/cloud-config.yml";
    let (out, rc) = vm
        .sh(&format!("rancherctl config validate -i {file}"), BOOT)
        .unwrap();
    assert_eq!(rc, 0, "the file is whole: {out}");
    let round = host_sh(&mut vm, "rancherctl config get rancher.environment.ROUND");
    let n: u32 = round
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("ROUND is a number: {round}"));
    assert!(n >= 5, "at least the sets seen before the cut: {n}");
    let leftovers = host_sh(&mut vm, "ls -a /var/lib/rancher/conf");
    eprintln!("after the cut: ROUND={n}; conf dir: {leftovers}");
}

#[test]
fn no_state_disk_runs_from_ram_and_says_so() {
    let mut vm = Vm::boot(VmOptions::new("state_none").unwrap()).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let serial = vm.serial_text();
    assert_eq!(
        serial
            .matches("state: no state partition (LABEL=RANCHER_STATE): running from RAM")
            .count(),
        1,
        "said once"
    );
    let (out, rc) = vm
        .sh("rancherctl state; cat /run/ros/state.json", BOOT)
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("state: RAM"), "{out}");
    assert!(out.contains("\"ram\": true"), "{out}");
    assert!(out.contains("\"mounted\": false"), "{out}");
}

/// A filesystem made on the host (label DATA, a known UUID), holding `ros/home/keep`, and marked
/// as having errors: it is found by `UUID=`, checked and repaired by e2fsck (not reformatted),
/// and `rancher.state.directory=ros` makes `ros/` the state root.
#[test]
fn a_dirty_filesystem_named_by_uuid_is_repaired_and_its_directory_used() {
    use std::process::Command;
    const UUID: &str = "0b4e28ba-2fa1-11d2-883f-0016d3cca427";
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("fs.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let keep = dir.path().join("keep");
    std::fs::write(&keep, "made on the host\n").unwrap();
    let run = |prog: &str, args: &[&str]| {
        let out = Command::new(prog).args(args).arg(&raw).output().unwrap();
        assert!(out.status.success(), "{prog} {args:?}: {out:?}");
    };
    run(
        "/usr/sbin/mkfs.ext4",
        &["-q", "-F", "-L", "DATA", "-U", UUID],
    );
    for req in [
        "mkdir ros".to_string(),
        "mkdir ros/home".to_string(),
        format!("write {} ros/home/keep", keep.display()),
        "ssv state 2".to_string(), // EXT2_ERROR_FS: "contains a file system with errors"
    ] {
        run("/usr/sbin/debugfs", &["-w", "-R", &req]);
    }
    let disk = Disk::from_raw("state_uuid_dirty", &raw).unwrap();
    let opts = VmOptions::new("state_uuid_dirty")
        .unwrap()
        .drive(disk.drive())
        .cmdline(&format!("rancher.state.dev=UUID={UUID}"))
        .cmdline("rancher.state.directory=ros");
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(r"state: /dev/vda had errors, repaired by e2fsck", BOOT)
        .unwrap();
    vm.expect(READY, BOOT).unwrap();
    let (out, rc) = vm.sh("rancherctl state; cat /home/keep", BOOT).unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("state: /dev/vda mounted on /mnt/state/ros"),
        "{out}"
    );
    assert!(out.contains("fsck: repaired"), "{out}");
    assert!(out.contains("made on the host"), "not reformatted: {out}");
    vm.powerdown().unwrap();
    vm.wait_exit(BOOT).unwrap();
    assert_eq!(disk.ext_label().unwrap().as_deref(), Some("DATA"));
    let (code, fsck) = disk.fsck().unwrap();
    assert_eq!(code, 0, "{fsck}");
}
