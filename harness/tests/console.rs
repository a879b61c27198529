//! The console over SSH and on the serial line, proven in VMs: the `rancher` user logs in with
//! the key given in the configuration and becomes root with sudo, acting on the host (PID 1,
//! the system services); a wrong key is refused; password logins are not even offered unless
//! `rancher.password` is set, and then the password works. On the serial console `rancher` is
//! logged in without a prompt (`rancher.autologin`, default ttyS0) in the console container,
//! with Ctrl-C working; with autologin off, getty asks for a login and checks the password.

use harness::ssh::Key;
use harness::vm::{Vm, VmOptions};
use std::process::Command;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

fn ssh(vm: &Vm, cmd: &str) -> String {
    vm.ssh_ok(cmd).unwrap()
}

/// The authentication methods the server offers `rancher`: ssh with method `none` fails and
/// lists them (`Permission denied (publickey,password).`).
fn offered_methods(vm: &Vm, key: &Key) -> String {
    let mut args = vm.ssh_args(&key.private, "rancher").unwrap();
    args.splice(0..0, ["-o".into(), "PreferredAuthentications=none".into()]);
    let out = harness::ssh::run(&args, "true").unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let re = regex::Regex::new(r"Permission denied \(([^)]*)\)").unwrap();
    re.captures(&err)
        .unwrap_or_else(|| panic!("no method list in: {err}"))[1]
        .to_string()
}

#[test]
fn ssh_with_the_configured_key_and_sudo_to_the_host() {
    let key = Key::generate("console_ssh").unwrap();
    let other = Key::generate("console_ssh_other").unwrap();
    let opts = VmOptions::new("console_ssh").unwrap().ssh_key(&key);
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let took = vm.wait_ssh(BOOT).unwrap();
    eprintln!("SSH login {:.2}s after ready", took.as_secs_f64());

    assert_eq!(ssh(&vm, "id -un; id -u"), "rancher\n1100");
    assert_eq!(ssh(&vm, "echo $HOME; pwd"), "/home/rancher\n/home/rancher");
    // sudo without a password, to the host's root: PID 1 is our init, the services are ours.
    assert_eq!(ssh(&vm, "sudo id -u"), "0");
    assert_eq!(ssh(&vm, "sudo cat /proc/1/comm"), "init");
    let list = ssh(&vm, "sudo rancherctl service list");
    assert!(
        list.lines()
            .any(|l| l.starts_with("console ") && l.contains("running")),
        "{list}"
    );
    assert!(ssh(&vm, "readlink /usr/bin/system-docker").ends_with("ros"));
    // The host's /run (the engine's socket dir, /var/run too) is the console's.
    assert_eq!(
        ssh(&vm, "ls /var/run/ros/state.json"),
        "/var/run/ros/state.json"
    );
    // Not root without sudo.
    let out = vm.ssh("cat /proc/1/environ").unwrap();
    assert!(!out.status.success(), "rancher is not root");

    // A key that is not configured is refused; so is root.
    let args = vm.ssh_args(&other.private, "rancher").unwrap();
    let out = harness::ssh::run(&args, "true").unwrap();
    assert!(!out.status.success(), "a wrong key got in");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = vm.ssh_args(&key.private, "root").unwrap();
    assert!(!harness::ssh::run(&args, "true").unwrap().status.success());

    // No password set: the server offers public keys alone.
    assert_eq!(offered_methods(&vm, &key), "publickey");

    // The serial console: rancher, logged in without a prompt, in the console container (its
    // sudo), on the tty itself; SIGINT not ignored, so Ctrl-C reaches what the user runs.
    vm.expect_since_boot(harness::vm::CONSOLE_PROMPT, BOOT)
        .unwrap();
    let (out, rc) = vm
        .console_sh(
            "id -un; tty; sh -c 'grep SigIgn /proc/self/status'; sudo cat /proc/1/comm",
            BOOT,
        )
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.len(), 5, "{out}");
    assert_eq!(
        [words[0], words[1], words[2], words[4]],
        ["rancher", "/dev/ttyS0", "SigIgn:", "init"],
        "{out}"
    );
    let ignored = u64::from_str_radix(words[3], 16).unwrap();
    assert_eq!(ignored & (1 << (2 - 1)), 0, "SIGINT is ignored: {out}");
    vm.send("sleep 1000\n").unwrap();
    let mut running = false;
    for _ in 0..60 {
        running = vm.ssh("pidof sleep").unwrap().status.success();
        if running {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(running, "sleep did not start on the serial console");
    vm.send("\x03").unwrap();
    let (_, rc) = vm.console_sh("true", BOOT).unwrap();
    assert_eq!(rc, 0);
    assert!(
        !vm.ssh("pidof sleep").unwrap().status.success(),
        "Ctrl-C did not stop sleep"
    );
}

#[test]
fn a_password_turns_password_logins_on() {
    let key = Key::generate("console_password").unwrap();
    let opts = VmOptions::new("console_password")
        .unwrap()
        .ssh_key(&key)
        .init_arg("rancher.password=s3cret-pw")
        .init_arg("rancher.autologin=");
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    assert_eq!(offered_methods(&vm, &key), "publickey,password");

    // Log in with the password alone (OpenSSH asks SSH_ASKPASS, forced, for it).
    let dir = tempfile::tempdir().unwrap();
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\necho s3cret-pw\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    let login = |pw_file: &std::path::Path| {
        let mut args = vm.ssh_args(&key.private, "rancher").unwrap();
        // Not BatchMode: it would forbid asking for the password at all.
        let at = args.iter().position(|a| a == "BatchMode=yes").unwrap();
        args.drain(at - 1..=at);
        let mut cleaned: Vec<String> = [
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cleaned.append(&mut args);
        Command::new("ssh")
            .args(&cleaned)
            .arg("--")
            .arg("id -un")
            .env("SSH_ASKPASS", pw_file)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = login(&askpass);
    assert!(
        out.status.success(),
        "password login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rancher");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "#!/bin/sh\necho not-it\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!login(&wrong).status.success(), "a wrong password got in");

    // No autologin: the serial console asks for a login; a wrong password and root (no
    // password at all) are refused, and the prompt comes back; rancher's password gets in.
    vm.expect_since_boot(r"rancher login: ", BOOT).unwrap();
    for (user, pw) in [("rancher", "not-it"), ("root", "s3cret-pw")] {
        vm.send(&format!("{user}\n")).unwrap();
        vm.expect("Password: ", BOOT).unwrap();
        vm.send(&format!("{pw}\n")).unwrap();
        let between = vm.expect(r"rancher login: ", BOOT).unwrap();
        assert!(
            !between.contains("]$ ") && !between.contains("]# "),
            "{user} got a shell: {between}"
        );
    }
    vm.send("rancher\n").unwrap();
    vm.expect("Password: ", BOOT).unwrap();
    vm.send("s3cret-pw\n").unwrap();
    vm.expect(harness::vm::CONSOLE_PROMPT, BOOT).unwrap();
    let (out, rc) = vm.console_sh("id -un; tty", BOOT).unwrap();
    assert_eq!(rc, 0, "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["rancher", "/dev/ttyS0"]
    );
}
