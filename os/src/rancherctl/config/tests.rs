//! `rancherctl config` on a temporary root: what it prints, what it writes, what it refuses.

use super::*;
use std::fs;

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../../../../snapshots/config",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

struct Root {
    dir: tempfile::TempDir,
    paths: ConfigPaths,
    cmdline: Cmdline,
}

/// What one run printed and returned.
struct Run {
    result: Result<(), CtlError>,
    stdout: String,
    stderr: String,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(dir.path());
        let root = Root {
            dir,
            paths,
            cmdline: Cmdline::default(),
        };
        root.write(
            "usr/share/ros/os-config.yml",
            "hostname: rancher\nrancher:\n  debug: false\n  shutdown_timeout: 10\n  autologin: ttyS0\n  services:\n    console: {image: ros/console:v1}\n    ntp: {image: ros/ntp:v1}\n",
        );
        root
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn user_file(&self) -> Option<String> {
        fs::read_to_string(&self.paths.cloud_config).ok()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut input = stdin.as_bytes();
        let result = run(
            &args,
            &self.paths,
            &self.cmdline,
            &mut Io {
                stdin: &mut input,
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
        );
        let prefix = self.dir.path().display().to_string();
        Run {
            result,
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr)
                .unwrap()
                .replace(&prefix, "<root>"),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        if let Err(e) = &r.result {
            panic!("{args:?}: {e}\n{}", r.stderr);
        }
        r.stdout
    }

    fn err(&self, args: &[&str]) -> String {
        let r = self.run(args);
        let e = r.result.expect_err("should fail");
        let prefix = self.dir.path().display().to_string();
        e.to_string().replace(&prefix, "<root>")
    }
}

#[test]
fn set_then_get_is_typed() {
    let root = Root::new();
    root.ok(&["set", "rancher.debug", "true"]);
    root.ok(&["set", "hostname", "5"]);
    root.ok(&[
        "set",
        "rancher.network.dns.nameservers",
        "[8.8.8.8,1.1.1.1]",
    ]);
    root.ok(&[
        "set",
        "--",
        "rancher.ssh.keys.rsa",
        "-----BEGIN KEY-----\nabc\n",
    ]);
    root.ok(&["set", "rancher.docker.extra_args", "[]"]);
    assert_eq!(root.ok(&["get", "rancher.debug"]), "true\n");
    assert_eq!(root.ok(&["get", "hostname"]), "5\n");
    assert_eq!(root.ok(&["get", "rancher.shutdown_timeout"]), "10\n");
    assert_eq!(
        root.ok(&["get", "rancher.network.dns.nameservers"]),
        "- 8.8.8.8\n- 1.1.1.1\n"
    );
    assert_eq!(
        root.ok(&["get", "rancher.ssh.keys.rsa"]),
        "-----BEGIN KEY-----\nabc\n"
    );
    assert_eq!(
        root.ok(&["get", "rancher.network.dns"]),
        "nameservers:\n- 8.8.8.8\n- 1.1.1.1\n"
    );
    assert_eq!(
        root.ok(&["get", "rancher.services.ntp.image"]),
        "ros/ntp:v1\n"
    );
    assert_eq!(root.ok(&["get", "rancher.nothing.here"]), "");
    snapshot!("ctl_user_file_after_set", root.user_file().unwrap());
}

#[test]
fn an_invalid_set_writes_nothing() {
    let root = Root::new();
    assert_eq!(
        root.err(&["set", "rancher.debug", "maybe"]),
        "cannot set rancher.debug to \"maybe\": rancher.debug: invalid type: string \"maybe\", expected a boolean"
    );
    assert_eq!(root.user_file(), None, "no file was created");
    root.ok(&["set", "rancher.debug", "true"]);
    let before = root.user_file().unwrap();
    assert_eq!(
        root.err(&["set", "rancher.network.interfaces.eth0.mtu", "big"]),
        "cannot set rancher.network.interfaces.eth0.mtu to \"big\": rancher.network.interfaces.eth0.mtu: invalid type: string \"big\", expected u32"
    );
    assert_eq!(
        root.err(&["set", "rancher.debug.x", "1"]),
        "cannot set rancher.debug.x to \"1\": rancher.debug is not a map"
    );
    assert_eq!(root.user_file().unwrap(), before);
    let usage = root.run(&["set", "rancher.debug"]);
    assert!(matches!(usage.result, Err(CtlError::Usage(_))));
}

#[test]
fn set_keeps_the_rest_of_the_file_even_its_bad_keys() {
    let root = Root::new();
    root.write(
        "var/lib/rancher/conf/cloud-config.yml",
        "#cloud-config\nvendor: {x: [1, 2]}\nrancher:\n  shutdown_timeout: soon\n",
    );
    root.ok(&["set", "rancher.debug", "true"]);
    assert_eq!(
        root.user_file().unwrap(),
        "#cloud-config\nvendor:\n  x:\n  - 1\n  - 2\nrancher:\n  shutdown_timeout: soon\n  debug: true\n"
    );
    // The bad key is still reported when the configuration is read.
    let r = root.run(&["get", "rancher.shutdown_timeout"]);
    assert_eq!(r.stdout, "10\n");
    assert_eq!(
        r.stderr,
        "rancherctl config: <root>/var/lib/rancher/conf/cloud-config.yml: line 7 column 21: rancher.shutdown_timeout: invalid type: string \"soon\", expected u64\n"
    );
}

#[test]
fn an_unparsable_user_file_is_never_overwritten() {
    let root = Root::new();
    root.write("var/lib/rancher/conf/cloud-config.yml", "rancher: [\n");
    assert_eq!(
        root.err(&["set", "rancher.debug", "true"]),
        "<root>/var/lib/rancher/conf/cloud-config.yml does not parse, so it cannot be updated without losing its contents; fix or remove it: line 2 column 1: did not find expected node content, while parsing a flow node"
    );
    assert_eq!(root.user_file().unwrap(), "rancher: [\n");
}

#[test]
fn export_hides_private_keys_unless_asked() {
    let mut root = Root::new();
    root.write(
        "var/lib/rancher/conf/cloud-config.yml",
        "#cloud-config\nhostname: node1\nssh_authorized_keys: [ssh-ed25519 AAAA me@host]\nvendor_key: {kept: true}\nrancher:\n  password: hunter2\n  docker:\n    tls: true\n    ca_key: CAKEY\n    ca_cert: CACERT\n    server_key: SKEY\n    server_cert: SCERT\n  ssh: {keys: {rsa: RSAKEY}}\n  network: {dns: {nameservers: [9.9.9.9]}}\n",
    );
    root.cmdline = Cmdline::parse("quiet rancher.log=true");
    let plain = root.ok(&["export"]);
    for secret in [
        "AAAA", "hunter2", "CAKEY", "CACERT", "SKEY", "SCERT", "RSAKEY",
    ] {
        assert!(!plain.contains(secret), "{secret} leaked:\n{plain}");
    }
    snapshot!("ctl_export", plain);
    snapshot!("ctl_export_private", root.ok(&["export", "--private"]));
    snapshot!("ctl_export_full", root.ok(&["export", "--full"]));
    let full_private = root.ok(&["export", "--full", "--private"]);
    assert!(full_private.contains("hunter2") && full_private.contains("ros/ntp:v1"));
    // -o writes the same text, atomically.
    let out = root.dir.path().join("out.yml");
    root.ok(&["export", "-o", out.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(out).unwrap(), plain);
    assert!(matches!(
        root.run(&["export", "--bogus"]).result,
        Err(CtlError::Usage(_))
    ));
}

#[test]
fn unknown_keys_round_trip_through_set_merge_and_export() {
    let root = Root::new();
    root.ok(&["set", "rancher.vendor.setting", "[a, b]"]);
    let r = root.run_with_stdin(
        &["merge"],
        "#cloud-config\nmystery: {deep: {value: 1}}\nrancher:\n  network:\n    interfaces:\n      eth0: {dhcp: true, wol: g}\n",
    );
    r.result.unwrap();
    assert_eq!(
        r.stderr,
        "warning: stdin: unknown key mystery (kept, not acted on)\nwarning: stdin: unknown key rancher.network.interfaces.eth0.wol (kept, not acted on)\n"
    );
    let exported = root.ok(&["export"]);
    let v: Value = serde_yaml_ng::from_str(&exported).unwrap();
    assert_eq!(
        keypath::get(&v, "mystery.deep.value"),
        Some(&Value::from(1))
    );
    assert_eq!(
        keypath::get(&v, "rancher.network.interfaces.eth0.wol"),
        Some(&Value::from("g"))
    );
    assert_eq!(root.ok(&["get", "rancher.vendor.setting"]), "- a\n- b\n");
}

#[test]
fn merge_from_a_file_and_refusal_of_a_bad_one() {
    let root = Root::new();
    root.ok(&["set", "rancher.debug", "true"]);
    root.write(
        "good.yml",
        "#cloud-config\nhostname: merged\nrancher:\n  network: {dns: {search: [lan]}}\n",
    );
    let good = root.dir.path().join("good.yml");
    root.ok(&["merge", "-i", good.to_str().unwrap()]);
    assert_eq!(
        root.ok(&["get", "rancher.debug"]),
        "true\n",
        "merged, not replaced"
    );
    assert_eq!(root.ok(&["get", "hostname"]), "merged\n");
    let before = root.user_file().unwrap();

    root.write(
        "bad.yml",
        "hostname: other\nrancher:\n  debug: maybe\n  state: {wait: soon}\n",
    );
    let bad = root.dir.path().join("bad.yml");
    let r = root.run(&["merge", "-i", bad.to_str().unwrap()]);
    assert!(matches!(r.result, Err(CtlError::Invalid { count: 2, .. })));
    assert_eq!(
        r.stderr,
        "<root>/bad.yml: line 3 column 10: rancher.debug: invalid type: string \"maybe\", expected a boolean\n<root>/bad.yml: line 4 column 17: rancher.state.wait: invalid type: string \"soon\", expected a number of seconds or a boolean\n"
    );
    assert_eq!(root.user_file().unwrap(), before, "nothing written");
}

#[test]
fn validate_reports_line_column_and_key() {
    let root = Root::new();
    root.write(
        "user-data",
        "#cloud-config\nrancher:\n  network:\n    interfaces:\n      eth0:\n        mtu: big\n  resize_device: /dev/sda\n",
    );
    let r = root.run(&[
        "validate",
        "-i",
        root.dir.path().join("user-data").to_str().unwrap(),
    ]);
    assert!(matches!(r.result, Err(CtlError::Invalid { count: 1, .. })));
    assert_eq!(
        r.stderr,
        "warning: <root>/user-data: unknown key rancher.resize_device (kept, not acted on)\n<root>/user-data: line 6 column 14: rancher.network.interfaces.eth0.mtu: invalid type: string \"big\", expected u32\n"
    );
    let ok = root.run_with_stdin(&["validate"], "hostname: fine\n");
    assert!(ok.result.is_ok() && ok.stdout.is_empty() && ok.stderr.is_empty());
    assert_eq!(root.user_file(), None, "validate writes nothing");
}

#[test]
fn images_lists_every_service_image_once() {
    let mut root = Root::new();
    root.write(
        "var/lib/rancher/conf/cloud-config.d/ds.yml",
        "rancher:\n  services:\n    web: {image: nginx:1.25}\n    noimage: {command: sleep 1}\n    console2: {image: ros/console:v1}\n",
    );
    root.cmdline = Cmdline::parse("rancher.services.ntp.image=ros/ntp:v2");
    assert_eq!(
        root.ok(&["images"]),
        "ros/console:v1\nros/ntp:v2\nnginx:1.25\n"
    );
}

#[test]
fn usage_errors() {
    let root = Root::new();
    for args in [
        &[][..],
        &["nope"],
        &["get"],
        &["get", "a", "b"],
        &["merge", "-x"],
    ] {
        assert!(
            matches!(root.run(args).result, Err(CtlError::Usage(_))),
            "{args:?}"
        );
    }
    assert!(root.ok(&["help"]).starts_with("usage: rancherctl config"));
}
