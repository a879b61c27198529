//! Boot and shutdown, proven in VMs: the OS reaches `[ros] ready`, its milestones are the
//! expected named steps in order, a failing step is reported without stopping the boot, and
//! every way of stopping the machine (power button, Ctrl-Alt-Del, `rancherctl`) ends in PID 1's
//! clean shutdown.

use harness::vm::{Vm, VmOptions};
use std::time::Duration;

/// Generous: TCG on a loaded 2-core machine.
const BOOT: Duration = Duration::from_secs(120);
const SHUTDOWN: Duration = Duration::from_secs(60);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";
/// The recovery console's root prompt (PS1 in initrd/rootfs/etc/profile).
const ROOT_PROMPT: &str = r"\[root@rancher [^\]]*\]# ";

fn boot(opts: VmOptions) -> Vm {
    let mut vm = Vm::boot(opts).expect("QEMU starts");
    vm.expect(READY, BOOT).unwrap();
    vm
}

/// The milestone lines of a boot, timings redacted: `step <name> <ok|failed>[: error]`.
fn milestones(serial: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\[ros\] step (\S+) (ok|failed) [0-9.]+ms(: .*)?").unwrap();
    serial
        .lines()
        .filter_map(|l| re.captures(l.trim_end_matches('\r')))
        .map(|c| format!("{} {}{}", &c[1], &c[2], c.get(3).map_or("", |m| m.as_str())))
        .collect()
}

#[test]
fn boot_reaches_ready_with_the_expected_milestones() {
    let mut vm = boot(VmOptions::new("boot_reaches_ready").unwrap());
    let serial = vm.serial_text();
    assert_eq!(
        serial.matches("[ros] ready").count(),
        1,
        "exactly one ready line"
    );
    insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_yaml_snapshot!("boot_milestones", milestones(&serial));
    });
    // PID 1 answers on the console shell, and is our init.
    let (out, rc) = vm.sh("cat /proc/1/comm; hostname", BOOT).unwrap();
    assert_eq!(rc, 0);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["init", "rancher"],
        "{out}"
    );
    // Nothing changed the configuration's files while the services started: PID 1 keeps the
    // configuration it read, without parsing it again before ready.
    assert!(
        !serial.contains("changed while the services started"),
        "serial log: {}",
        vm.log_path().display()
    );
    // No datasource is attached: `cloud-init-save` (io.rancher.os.condition: datasource) is
    // skipped, says why, and counts as done (the line above was `ready`, not `degraded`).
    assert!(
        serial.contains("[ros] service cloud-init-save skipped: no datasource (cmdline: no cloud-config-url=; nocloud: no disk labelled cidata; configdrive: no disk labelled config-2)"),
        "serial log: {}",
        vm.log_path().display()
    );
    let status = vm
        .sh_ok(
            "grep -A2 '\"name\": \"cloud-init-save\"' /run/system-docker/services.json",
            BOOT,
        )
        .unwrap();
    assert!(status.contains("\"state\": \"skipped\""), "{status}");
    let all = vm.sh_ok("system-docker ps -a", BOOT).unwrap();
    assert!(
        !all.contains("cloud-init-save") && all.contains("network"),
        "no container for a skipped service: {all}"
    );
}

#[test]
fn power_button_shuts_down_cleanly_and_qemu_exits() {
    let mut vm = boot(VmOptions::new("power_button").unwrap());
    // Pressed at once after ready: the acpid system service turns the press into busybox
    // `poweroff` (SIGUSR2 to PID 1) if it held the button open when it came; if it was still
    // starting, PID 1 acts on the press itself, at once when acpid has not opened the button
    // yet, after a grace when acpid is new enough to have opened it just after the press.
    // Either way the press is not lost.
    vm.powerdown().unwrap();
    vm.expect(
        r"\[ros\] shutdown poweroff \((SIGUSR2|power button|power button, acpid silent)\)",
        SHUTDOWN,
    )
    .unwrap();
    vm.expect(r"\[ros\] shutdown complete", SHUTDOWN).unwrap();
    let st = vm.wait_exit(SHUTDOWN).unwrap();
    assert!(st.success(), "QEMU exit status {st}");
    // Everything (every service, the console shell) stopped on TERM/hangup; nothing had to
    // be killed.
    let serial = vm.serial_text();
    assert!(
        !serial.contains("killing them") && !serial.contains("killing it"),
        "a process ignored the clean shutdown: {serial}"
    );
}

#[test]
fn a_bad_kernel_argument_is_reported_and_boot_completes() {
    let opts = VmOptions::new("bad_kernel_argument")
        .unwrap()
        .cmdline("rancher.shutdown_timeout=soon")
        .cmdline("rancher.debug=true");
    let mut vm = Vm::boot(opts).unwrap();
    let failed = vm
        .expect(
            r"\[ros\] step load-config failed [0-9.]+ms: ([^\r\n]*)",
            BOOT,
        )
        .unwrap();
    assert!(failed.contains("rancher.shutdown_timeout=soon"), "{failed}");
    vm.expect(READY, BOOT).unwrap();
    // The good argument beside the bad one still applied: debug logging is on.
    assert!(
        vm.serial_text().contains("DEBUG"),
        "rancher.debug=true was not applied"
    );
}

#[test]
fn ctrl_alt_del_reboots_cleanly() {
    let mut vm = boot(VmOptions::new("ctrl_alt_del").unwrap().allow_reboot());
    vm.send_keys(&["ctrl", "alt", "delete"]).unwrap();
    vm.expect(r"\[ros\] shutdown reboot \(ctrl-alt-del\)", SHUTDOWN)
        .unwrap();
    vm.expect(r"\[ros\] shutdown complete", SHUTDOWN).unwrap();
    vm.expect(READY, BOOT).unwrap();
}

#[test]
fn rancherctl_reboot_then_poweroff() {
    let opts = VmOptions::new("rancherctl_power").unwrap().allow_reboot();
    let mut vm = boot(opts.cmdline("rancher.shutdown_timeout=3"));
    // A process outside every service (in the root cgroup) that ignores SIGTERM is killed
    // after the timeout, not waited on forever.
    vm.sh(
        "sh -c 'echo $$ > /sys/fs/cgroup/cgroup.procs; trap \"\" TERM; exec sleep 1000' &",
        BOOT,
    )
    .unwrap();
    vm.send("rancherctl reboot\n").unwrap();
    vm.expect(r"\[ros\] shutdown reboot \(SIGTERM\)", SHUTDOWN)
        .unwrap();
    vm.expect(r"still running after 3s; killing them", SHUTDOWN)
        .unwrap();
    vm.expect(r"\[ros\] shutdown complete", SHUTDOWN).unwrap();
    vm.expect(READY, BOOT).unwrap();
    // From the console's autologin session, as a user would.
    vm.root_shell(BOOT).unwrap();
    vm.send("exit\n").unwrap();
    vm.shell_ended();
    // The prompt of the session the console starts next, not the one before `exit` (input
    // typed while the old session ends is lost with it).
    vm.expect(r"# exit\r?\n", BOOT).unwrap();
    vm.expect(harness::vm::CONSOLE_PROMPT, BOOT).unwrap();
    vm.send("sudo rancherctl poweroff\n").unwrap();
    vm.expect(r"\[ros\] shutdown poweroff \(SIGUSR2\)", SHUTDOWN)
        .unwrap();
    vm.expect(r"\[ros\] shutdown complete", SHUTDOWN).unwrap();
    assert!(vm.wait_exit(SHUTDOWN).unwrap().success());
}

#[test]
fn pid1_reaps_orphans_and_respawns_the_recovery_console() {
    // rancher.recovery: PID 1's own root shell on the console tty, the console container
    // running no terminal session.
    let opts = VmOptions::new("reaping").unwrap();
    let mut vm = Vm::boot(opts.cmdline("rancher.recovery=true")).unwrap();
    vm.expect(r"\[ros\] recovery console: a root shell on ttyS0", BOOT)
        .unwrap();
    vm.expect(READY, BOOT).unwrap();
    let (out, rc) = vm
        .console_sh("cat /proc/$PPID/comm; wc -c < /run/ros/console/ttys", BOOT)
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["init", "0"],
        "the shell is PID 1's and the console has no session: {out}"
    );
    // Nothing of PID 1's blocked signals (its signalfd's) reaches the shell's commands.
    let (out, rc) = vm
        .console_sh("sh -c 'grep SigBlk /proc/self/status'", BOOT)
        .unwrap();
    assert_eq!(
        (out.split_whitespace().collect::<Vec<_>>(), rc),
        (vec!["SigBlk:", "0000000000000000"], 0),
        "{out}"
    );
    // Orphans: their parent exits at once, so they are re-parented to PID 1 and must be reaped.
    let (_, rc) = vm
        .console_sh(
            "for i in 1 2 3 4 5; do sh -c 'sleep 0.2 &'; done; sleep 2",
            BOOT,
        )
        .unwrap();
    assert_eq!(rc, 0);
    let (out, _) = vm
        .console_sh("grep -l '^State:.Z' /proc/[0-9]*/status | wc -l", BOOT)
        .unwrap();
    assert_eq!(out.trim(), "0", "zombies left: {out}");
    // The recovery shell comes back after it exits.
    vm.expect(ROOT_PROMPT, BOOT).unwrap();
    vm.send("exit\n").unwrap();
    vm.expect(ROOT_PROMPT, BOOT).unwrap();
    let (out, rc) = vm.console_sh("echo back", BOOT).unwrap();
    assert_eq!((out.trim(), rc), ("back", 0));
}

#[test]
fn image_is_within_the_size_budget() {
    let img = harness::image::ensure_built().unwrap();
    eprintln!("{}", img.sizes);
    img.sizes.check().unwrap();
}
