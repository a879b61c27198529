//! Cloud-init, proven in VMs: every datasource the harness can stand up on this machine (a
//! NoCloud vfat seed, a ConfigDrive iso9660, a URL on the kernel command line and an EC2-style
//! metadata service, both served through QEMU `guestfwd` by the harness itself) gives the
//! machine its hostname, keys, files and commands; malformed user-data leaves a booting
//! machine with its defaults and a `rancherctl config validate` that names the error.

use harness::seed::{self, Files, SeedFs};
use harness::vm::{Vm, VmOptions};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);

fn boot(opts: VmOptions) -> Vm {
    Vm::boot_ready(opts, BOOT).unwrap()
}

fn sh(vm: &mut Vm, cmd: &str) -> String {
    vm.sh_ok(cmd, BOOT).unwrap()
}

fn poll(vm: &mut Vm, cmd: &str, within: Duration, done: impl Fn(&str) -> bool) -> String {
    vm.poll(cmd, within, done).unwrap()
}

fn files(list: &[(&str, &str)]) -> Files {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// The harness binary answering one HTTP request from `dir` per guest connection.
fn http_cmd(dir: &std::path::Path) -> String {
    format!(
        "{} serve-http {}",
        env!("CARGO_BIN_EXE_harness"),
        dir.display()
    )
}

const KEY_META: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7meta meta@seed";

#[test]
fn nocloud_seed_gives_hostname_keys_files_and_commands() {
    // A key of the test's own, given by the seed alone: SSH with it proves it reached the console.
    let key = harness::ssh::Key::generate("cloud_init_nocloud").unwrap();
    let key_user = &key.public;
    let user_data = format!(
        r#"#cloud-config
hostname: from-nocloud
ssh_authorized_keys:
  - {key_user}
write_files:
  - path: /etc/seeded
    permissions: "0640"
    content: |
      hello from nocloud
  - path: /etc/in-syslog
    container: syslog
    content: inside syslog
rancher:
  sysctl:
    kernel.domainname: seeded.example
  network:
    interfaces:
      eth1:
        dhcp: false
        address: 192.168.8.5/24
  services:
    acpid:
      labels:
        seeded-by: nocloud
runcmd:
  - echo ran > /home/runcmd-mark
  - [sh, -c, "echo argv >> /home/runcmd-mark"]
"#
    );
    let meta =
        format!("instance-id: i-1\nlocal-hostname: meta-host\npublic-keys:\n  - {KEY_META}\n");
    let seed = seed::disk(
        "nocloud",
        SeedFs::Vfat,
        "cidata",
        &files(&[("user-data", &user_data), ("meta-data", &meta)]),
    )
    .unwrap();
    let mut vm = boot(
        VmOptions::new("cloud_init_nocloud")
            .unwrap()
            .extra_nic()
            .drive(seed)
            .ssh_identity(&key),
    );
    // user-data's hostname beats the metadata's, and is set before the ready line.
    assert_eq!(sh(&mut vm, "hostname"), "from-nocloud");
    // The datasource's layer, saved while the services started, is read again by PID 1 too.
    let re = regex::Regex::new(
        r"\[ros\] configuration: /var/lib/rancher/conf/\S+ changed while the services started; read again",
    )
    .unwrap();
    assert!(
        re.is_match(&vm.serial_text()),
        "serial log: {}",
        vm.log_path().display()
    );
    let keys = sh(&mut vm, "rancherctl config get ssh_authorized_keys");
    assert!(
        keys.contains(KEY_META) && keys.contains(key_user.as_str()),
        "both keys: {keys}"
    );
    vm.wait_ssh(BOOT).unwrap();
    let out = vm
        .ssh("hostname; cat /home/rancher/.ssh/authorized_keys")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("from-nocloud"), "{text}");
    assert!(
        text.contains(KEY_META),
        "the metadata's key is installed too: {text}"
    );
    assert_eq!(sh(&mut vm, "cat /etc/seeded"), "hello from nocloud");
    assert_eq!(
        sh(&mut vm, "cat /proc/sys/kernel/domainname"),
        "seeded.example",
        "rancher.sysctl applied"
    );
    assert_eq!(sh(&mut vm, "stat -c %a /etc/seeded"), "640");
    assert_eq!(
        sh(&mut vm, "system-docker exec syslog cat /etc/in-syslog"),
        "inside syslog",
        "written into the syslog container"
    );
    assert!(
        sh(&mut vm, "ls /etc/in-syslog 2>&1 || true").contains("No such file"),
        "and not on the host"
    );
    // A service the datasource changed runs as changed (a container prepared from the
    // configuration before the datasource's was read is not the one started), and runs.
    let acpid = sh(&mut vm, "system-docker inspect acpid");
    assert!(
        acpid.contains(r#""seeded-by": "nocloud""#) && acpid.contains(r#""Status": "running""#),
        "{acpid}"
    );
    let mark = poll(
        &mut vm,
        "cat /home/runcmd-mark",
        Duration::from_secs(60),
        |o| o.contains("argv"),
    );
    assert_eq!(mark, "ran\nargv", "runcmd ran both forms in order");
    let log = sh(&mut vm, "cat /var/log/cloud-init-save.log");
    assert!(
        log.contains("cloud-init: nocloud: hostname meta-host, 1 SSH key(s)"),
        "{log}"
    );
    // The seed's rancher.network is the network service's from its first start: a disk
    // datasource is read before the network comes up, and the service is not restarted.
    let eth1 = sh(&mut vm, "ip -4 addr show eth1");
    assert!(eth1.contains("inet 192.168.8.5/24"), "{eth1}");
    let engine = sh(&mut vm, "cat /var/log/system-docker.log");
    let at = |what: &str| {
        engine
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} in the engine's log:\n{engine}"))
    };
    assert!(
        at("datasources are disks: not waiting on network service=cloud-init-save")
            < at("run-to-completion service finished service=cloud-init-save")
            && at("run-to-completion service finished service=cloud-init-save")
                < engine
                    .find("started (prepared) service=network")
                    .or(engine.find("service started service=network"))
                    .expect("network started"),
        "cloud-init-save before network:\n{engine}"
    );
    assert!(!engine.contains("changed rancher.network"), "{engine}");
}

#[test]
fn configdrive_iso_gives_keys_hostname_and_runs_a_user_data_script() {
    let meta = format!(
        r#"{{"uuid": "u-1", "hostname": "from-configdrive", "public_keys": {{"k": "{KEY_META}"}}}}"#
    );
    let seed = seed::disk(
        "configdrive",
        SeedFs::Iso9660,
        "config-2",
        &files(&[
            ("openstack/latest/meta_data.json", &meta),
            (
                "openstack/latest/user_data",
                "#!/bin/sh\necho script ran > /home/script-mark\n",
            ),
        ]),
    )
    .unwrap();
    let mut vm = boot(
        VmOptions::new("cloud_init_configdrive")
            .unwrap()
            .drive(seed),
    );
    assert_eq!(sh(&mut vm, "hostname"), "from-configdrive");
    assert!(sh(&mut vm, "rancherctl config get ssh_authorized_keys").contains(KEY_META));
    let mark = poll(
        &mut vm,
        "cat /home/script-mark",
        Duration::from_secs(60),
        |o| !o.is_empty(),
    );
    assert_eq!(mark, "script ran");
}

#[test]
fn cloud_config_url_on_the_kernel_command_line() {
    let dir = seed::fixture_dir("url");
    seed::write_tree(
        &dir,
        &files(&[(
            "user-data",
            "#cloud-config\nhostname: from-url\nrancher:\n  network:\n    dns:\n      nameservers: [10.0.2.3]\n      search: [from-url.lan]\n",
        )]),
    )
    .unwrap();
    let opts = VmOptions::new("cloud_init_url")
        .unwrap()
        .guestfwd("10.0.2.100:80", &http_cmd(&dir))
        .cmdline("cloud-config-url=http://10.0.2.100/user-data");
    let mut vm = boot(opts);
    assert_eq!(sh(&mut vm, "hostname"), "from-url");
    let served = std::fs::read_to_string(dir.join("requests.log")).unwrap_or_default();
    assert!(served.contains("/user-data"), "{served}");
    // A datasource reached over the network is read after the network service started; the
    // rancher.network it gives applies all the same: the service is restarted with it.
    let engine = sh(&mut vm, "cat /var/log/system-docker.log");
    assert!(
        engine.contains("the datasource changed rancher.network: restarted service=network")
            && !engine.contains("datasources are disks"),
        "{engine}"
    );
    let resolv = poll(
        &mut vm,
        "grep -v '^#' /etc/resolv.conf",
        Duration::from_secs(30),
        |o| o.contains("from-url.lan"),
    );
    assert_eq!(resolv, "search from-url.lan\nnameserver 10.0.2.3");
}

#[test]
fn ec2_metadata_service() {
    let dir = seed::fixture_dir("ec2");
    seed::write_tree(
        &dir,
        &files(&[
            ("latest/meta-data/index", "local-hostname\npublic-keys/\n"),
            ("latest/meta-data/local-hostname", "from-ec2\n"),
            ("latest/meta-data/public-keys/index", "0=test-key\n"),
            ("latest/meta-data/public-keys/0/openssh-key", &format!("{KEY_META}\n")),
            (
                "latest/user-data",
                "#cloud-config\nwrite_files:\n  - path: /opt/from-ec2\n    content: ec2 user-data\n",
            ),
        ]),
    )
    .unwrap();
    // EC2's link-local address, inside QEMU's user network moved to 169.254.0.0/16.
    let opts = VmOptions::new("cloud_init_ec2")
        .unwrap()
        .net("169.254.0.0/16")
        .guestfwd("169.254.169.254:80", &http_cmd(&dir))
        // After `--`: hidden from /proc/cmdline, still seen by cloud-init-save.
        .init_arg("rancher.cloud_init.datasources=[ec2]");
    let mut vm = boot(opts);
    assert_eq!(sh(&mut vm, "hostname"), "from-ec2");
    assert!(sh(&mut vm, "rancherctl config get ssh_authorized_keys").contains(KEY_META));
    assert_eq!(sh(&mut vm, "cat /opt/from-ec2"), "ec2 user-data");
}

#[test]
fn malformed_user_data_boots_with_defaults_and_validate_names_the_error() {
    let seed = seed::disk(
        "malformed",
        SeedFs::Vfat,
        "cidata",
        &files(&[
            (
                "user-data",
                "#cloud-config\nhostname: ok\nrancher:\n  debug: [unclosed\n",
            ),
            ("meta-data", "instance-id: i-2\n"),
        ]),
    )
    .unwrap();
    let mut vm = boot(VmOptions::new("cloud_init_malformed").unwrap().drive(seed));
    assert_eq!(sh(&mut vm, "hostname"), "rancher", "defaults");
    assert!(
        vm.serial_text().contains("ds-20-user-data.yml"),
        "the loader names the file on the console"
    );
    let (out, rc) = vm
        .sh(
            "rancherctl config validate -i /var/lib/rancher/conf/cloud-config.d/ds-20-user-data.yml",
            BOOT,
        )
        .unwrap();
    assert_ne!(rc, 0, "{out}");
    assert!(out.contains("line 4"), "validate names the line: {out}");
}

#[test]
fn an_https_datasource_is_refused_until_its_ca_is_trusted_then_fetched() {
    use base64::Engine;
    use harness::disk::Disk;
    let dir = seed::fixture_dir("https");
    seed::write_tree(
        &dir,
        &files(&[("user-data", "#cloud-config\nhostname: from-https\n")]),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("requests.log"));
    let ca = harness::registry::TestCa::new(&["10.0.2.100"]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &ca.cert_pem).unwrap();
    std::fs::write(&key, &ca.key_pem).unwrap();
    let https = format!(
        "{} serve-https {} {} {}",
        env!("CARGO_BIN_EXE_harness"),
        dir.display(),
        cert.display(),
        key.display()
    );
    let disk = Disk::blank("cloud_init_https", 128).unwrap();
    let opts = VmOptions::new("cloud_init_https")
        .unwrap()
        .drive(disk.drive())
        .allow_reboot()
        .guestfwd("10.0.2.100:443", &https)
        .cmdline("cloud-config-url=https://10.0.2.100/user-data");
    let mut vm = boot(opts);
    // Nothing vouches for the server's certificate yet: refused, and the log says why.
    let log = poll(
        &mut vm,
        "cat /var/log/cloud-init-save.log",
        Duration::from_secs(90),
        |o| o.contains("https://10.0.2.100/user-data"),
    );
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    assert_ne!(sh(&mut vm, "hostname"), "from-https");
    let served = std::fs::read_to_string(dir.join("requests.log")).unwrap_or_default();
    assert!(served.contains("TLS:"), "{served}");
    assert!(!served.contains("/user-data"), "{served}");

    // The user trusts the CA (rancher.docker.ca, on the state partition) and reboots.
    let pem: String = ca.ca_pem.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = format!("rancher:\n  docker:\n    ca: |\n{pem}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(yaml);
    sh(
        &mut vm,
        &format!("echo {b64} | base64 -d | rancherctl config merge && sync"),
    );
    vm.send("rancherctl reboot\n").unwrap();
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    // The next boot's console session (its prompt comes before `[ros] ready`).
    vm.shell_ended();
    let host = poll(&mut vm, "hostname", Duration::from_secs(90), |o| {
        o == "from-https"
    });
    assert_eq!(host, "from-https");
    let served = std::fs::read_to_string(dir.join("requests.log")).unwrap_or_default();
    assert!(served.contains("/user-data"), "{served}");
}
