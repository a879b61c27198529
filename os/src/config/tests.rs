//! Tests of the configuration as a whole: layers and precedence on a temporary root, validation
//! messages, typing of `set`, unknown keys, and real RancherOS cloud-configs.

use super::*;
use crate::cmdline::Cmdline;
use std::fs;

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap()
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../../../snapshots/config",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_yaml_snapshot!($name, $value);
        })
    };
}

/// A root with every layer file in place.
struct Root {
    dir: tempfile::TempDir,
    paths: ConfigPaths,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(dir.path());
        Root { dir, paths }
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

#[test]
fn cmdline_overrides_and_bad_values_are_named() {
    let mut base = yaml("hostname: rancher\nrancher:\n  debug: false\n  keep: 1\n");
    let errs = apply_cmdline(
        &mut base,
        [
            ("rancher.debug", "true"),
            ("rancher.shutdown_timeout", "soon"),
            ("rancher.x.y", "[a,b]"),
            ("cc.hostname", "node1"),
        ],
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "kernel command line rancher.shutdown_timeout=soon: rancher.shutdown_timeout: invalid type: string \"soon\", expected u64"
    );
    let c = typed(&base).unwrap();
    assert!(c.rancher.debug);
    assert_eq!(c.hostname, "node1");
    assert_eq!(c.rancher.shutdown_timeout, 10);
    assert_eq!(c.rancher.extra["keep"], yaml("1"));
    assert_eq!(c.rancher.extra["x"], yaml("y: [a, b]"));
}

#[test]
fn precedence_across_all_layers() {
    let root = Root::new();
    // Each layer sets the keys named after it and every layer below it; the key named after a
    // layer must end up with that layer's value.
    root.write(
        "usr/share/ros/os-config.yml",
        "hostname: defaults\nrancher:\n  environment: {defaults: defaults, oem: defaults, ds: defaults, user: defaults, cmdline: defaults}\n  network: {dns: {nameservers: [1.1.1.1]}}\n",
    );
    root.write(
        "usr/share/ros/oem/oem-config.yml",
        "#cloud-config\nrancher:\n  environment: {oem: oem, ds: oem, user: oem, cmdline: oem}\n",
    );
    root.write(
        "var/lib/rancher/conf/cloud-config.d/20-second.yml",
        "rancher:\n  environment: {ds: second, user: second, cmdline: second}\n",
    );
    root.write(
        "var/lib/rancher/conf/cloud-config.d/10-first.yml",
        "rancher:\n  environment: {ds: first, first_only: first, user: first, cmdline: first}\n  network: {dns: {search: [lan]}}\n",
    );
    // Not layers: wrong extension, hidden (a temp file of an interrupted write).
    root.write(
        "var/lib/rancher/conf/cloud-config.d/30-x.yml.bak",
        "hostname: bak\n",
    );
    root.write(
        "var/lib/rancher/conf/cloud-config.d/.40-y.yml",
        "hostname: hidden\n",
    );
    root.write(
        "var/lib/rancher/conf/cloud-config.yml",
        "hostname: user\nrancher:\n  environment: {user: user, cmdline: user}\n",
    );
    let cmdline = Cmdline::parse(
        "console=ttyS0 rancher.environment.cmdline=cmdline rancher.debug quiet -- cc.hostname=from-cc rancher.password=secret",
    );
    let loaded = load_layers(&root.paths, &cmdline);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let c = &loaded.config;
    let env = |k: &str| c.rancher.environment.get(k).map(String::as_str);
    assert_eq!(env("defaults"), Some("defaults"));
    assert_eq!(env("oem"), Some("oem"));
    assert_eq!(env("ds"), Some("second"), "later datasource files win");
    assert_eq!(env("first_only"), Some("first"));
    assert_eq!(env("user"), Some("user"));
    assert_eq!(env("cmdline"), Some("cmdline"));
    assert_eq!(c.hostname, "from-cc");
    assert!(c.rancher.debug, "a bare rancher.debug means true");
    assert_eq!(c.rancher.password.as_deref(), Some("secret"));
    // Maps merged deeply across layers.
    assert_eq!(c.rancher.network.dns.nameservers, ["1.1.1.1"]);
    assert_eq!(c.rancher.network.dns.search, ["lan"]);
    let kinds: Vec<(LayerKind, String)> = loaded
        .layers
        .iter()
        .map(|l| {
            let name = l
                .source
                .strip_prefix(&root.dir.path().display().to_string());
            (l.kind, name.unwrap_or(&l.source).to_string())
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (LayerKind::Defaults, "/usr/share/ros/os-config.yml".into()),
            (LayerKind::Oem, "/usr/share/ros/oem/oem-config.yml".into()),
            (
                LayerKind::Datasource,
                "/var/lib/rancher/conf/cloud-config.d/10-first.yml".into()
            ),
            (
                LayerKind::Datasource,
                "/var/lib/rancher/conf/cloud-config.d/20-second.yml".into()
            ),
            (
                LayerKind::User,
                "/var/lib/rancher/conf/cloud-config.yml".into()
            ),
            (LayerKind::Cmdline, "kernel command line".into()),
        ]
    );
    // Without the defaults layer.
    let user = loaded.merged_from(LayerKind::Oem);
    assert_eq!(keypath::get(&user, "rancher.environment.defaults"), None);
    assert_eq!(
        keypath::get(&user, "rancher.environment.oem"),
        Some(&yaml("oem"))
    );
}

#[test]
fn only_the_defaults_file_is_required() {
    let root = Root::new();
    let loaded = load_layers(&root.paths, &Cmdline::default());
    assert_eq!(loaded.errors.len(), 1);
    assert!(
        loaded.errors[0]
            .to_string()
            .ends_with("usr/share/ros/os-config.yml: No such file or directory (os error 2)"),
        "{}",
        loaded.errors[0]
    );
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn a_broken_layer_is_reported_and_the_others_apply() {
    let root = Root::new();
    root.write("usr/share/ros/os-config.yml", "hostname: d\n");
    root.write(
        "var/lib/rancher/conf/cloud-config.d/ec2.yml",
        "hostname: ec2\nrancher:\n  debug: [\n",
    );
    root.write(
        "var/lib/rancher/conf/cloud-config.yml",
        "rancher:\n  debug: true\n  shutdown_timeout: later\n  autologin: tty1\n",
    );
    let cmdline = Cmdline::parse("rancher.state.wait=perhaps rancher.state.dev=LABEL=X");
    let loaded = load_layers(&root.paths, &cmdline);
    let prefix = root.dir.path().display().to_string();
    let errors: Vec<String> = loaded
        .errors
        .iter()
        .map(|e| e.to_string().replace(&prefix, "<root>"))
        .collect();
    snapshot!("broken_layers", errors);
    let c = &loaded.config;
    assert_eq!(
        c.hostname, "d",
        "the unparsable datasource is left out whole"
    );
    assert!(c.rancher.debug);
    assert_eq!(
        c.rancher.shutdown_timeout, 10,
        "the bad key alone is left out"
    );
    assert_eq!(c.rancher.autologin, "tty1");
    assert_eq!(c.rancher.state.wait, crate::config::Wait::default());
    assert_eq!(c.rancher.state.dev.as_deref(), Some("LABEL=X"));
}

/// Found by the `cloud_config` fuzz target: a layer that reads from its text but whose tree,
/// written out again, does not read (an odd tag on its first key: serde_yaml_ng writes a line
/// that reads as a tagged document) passed its check, so `rancherctl config` could save a file
/// that the next boot would leave out whole. Now it is left out at once, naming the file.
#[test]
fn a_layer_that_does_not_read_back_is_left_out() {
    let odd = "!c.o;;;;;;: ncmd:;;;;;;timeout: -5\n  ne;;;\n";
    let checked = check_text("user-data", odd);
    assert_eq!(checked.errors.len(), 1, "{:?}", checked.errors);
    assert!(checked.errors[0].to_string().contains("user-data"));
    assert_eq!(checked.value, yaml("{}"));
    assert!(check_value("again", checked.value).errors.is_empty());
    let root = Root::new();
    root.write("usr/share/ros/os-config.yml", "hostname: d\n");
    root.write("var/lib/rancher/conf/cloud-config.yml", odd);
    let loaded = load_layers(&root.paths, &Cmdline::default());
    assert_eq!(loaded.config.hostname, "d");
    assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
}

/// Validation messages, with line, column and key path, for a table of bad inputs.
#[test]
fn validation_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "mtu not a number",
            "#cloud-config\nrancher:\n  network:\n    interfaces:\n      eth0: {dhcp: true, mtu: big}\n",
        ),
        (
            "bool given a word",
            "rancher:\n  debug: maybe\n  log: true\n",
        ),
        (
            "several problems in one file",
            "hostname: ok\nrancher:\n  shutdown_timeout: -1\n  state:\n    wait: soon\n  network:\n    dns:\n      nameservers: 8.8.8.8\n",
        ),
        (
            "write_files entry without a path, bad mode, bad encoding",
            "write_files:\n  - content: hi\n  - path: /etc/a\n    permissions: rw-r--r--\n  - path: /etc/b\n    encoding: zip\n",
        ),
        ("runcmd of the wrong type", "runcmd: {a: 1}\n"),
        ("not YAML", "hostname: a\n  rancher: [\n"),
        ("not a map", "- just\n- a list\n"),
        ("a shell script is not a cloud-config", "#!/bin/sh\necho hi\n"),
        ("two documents", "a: 1\n---\nb: 2\n"),
        ("duplicate key", "hostname: a\nhostname: b\n"),
        (
            "a service that is not a map",
            "rancher:\n  services:\n    web: nginx\n    ok: {image: nginx}\n",
        ),
    ];
    let table: Vec<Value> = cases
        .iter()
        .map(|(case, text)| {
            let checked = check_text("user-data", text);
            let errors: Vec<Value> = checked
                .errors
                .iter()
                .map(|e| Value::String(e.to_string()))
                .collect();
            let mut row = Mapping::new();
            row.insert("case".into(), Value::String(case.to_string()));
            row.insert("input".into(), Value::String(text.to_string()));
            row.insert("errors".into(), Value::Sequence(errors));
            row.insert("kept".into(), checked.value);
            Value::Mapping(row)
        })
        .collect();
    snapshot!("validation_messages", table);
}

#[test]
fn the_documented_mtu_message() {
    let text = "rancher:\n  network:\n    interfaces:\n      eth0:\n        mtu: big\n";
    let checked = check_text("user-data", text);
    assert_eq!(
        checked.errors[0].to_string(),
        "user-data: line 5 column 14: rancher.network.interfaces.eth0.mtu: invalid type: string \"big\", expected u32"
    );
    let p = checked.errors[0].problem().unwrap();
    assert_eq!(
        p.location,
        Some(Location {
            line: 5,
            column: 14
        })
    );
    assert_eq!(p.path, "rancher.network.interfaces.eth0.mtu");
    // The interface itself is kept, without the bad key.
    assert_eq!(
        checked.value,
        yaml("rancher: {network: {interfaces: {eth0: {}}}}")
    );
}

/// How `set KEY VALUE` types its value, for a table of keys and values.
#[test]
fn set_typing() {
    let cases: &[(&str, &str)] = &[
        ("rancher.debug", "true"),
        ("rancher.debug", "maybe"),
        ("rancher.debug", "null"),
        ("rancher.shutdown_timeout", "30"),
        ("rancher.shutdown_timeout", "30s"),
        ("hostname", "5"),
        ("hostname", "node-1"),
        ("rancher.password", "12345"),
        (
            "ssh_authorized_keys",
            "[ssh-ed25519 AAAA a@b, ssh-rsa BBBB c@d]",
        ),
        ("ssh_authorized_keys", "[]"),
        ("ssh_authorized_keys", "ssh-rsa BBBB"),
        ("rancher.network.dns.nameservers", "[8.8.8.8,1.1.1.1]"),
        ("rancher.network.interfaces.eth0.mtu", "9000"),
        ("rancher.network.interfaces.eth0.mtu", "big"),
        ("rancher.network.interfaces.eth*.dhcp", "true"),
        ("rancher.sysctl.vm", "1"),
        ("rancher.environment.HTTP_PROXY", "http://proxy:3128"),
        ("rancher.state.autoformat", "[/dev/sda,/dev/vda]"),
        ("rancher.upgrade.url", "https://example.com/releases.yml"),
        ("rancher.vendor_key", "5"),
        ("rancher.vendor_key.deeper", "x"),
        ("rancher.debug.deeper", "x"),
        ("rancher.password", "a: b"),
        ("write_files[0].path", "/etc/x"),
        ("", "x"),
    ];
    let mut layer = Value::Mapping(Mapping::new());
    let table: Vec<Value> = cases
        .iter()
        .map(|(key, raw)| {
            let outcome = match set_key(&mut layer, key, raw) {
                Ok(()) => keypath::get(&layer, key).cloned().unwrap_or(Value::Null),
                Err(reason) => Value::String(format!("refused: {reason}")),
            };
            let mut row = Mapping::new();
            row.insert("set".into(), Value::String(format!("{key} {raw}")));
            row.insert("stored".into(), outcome);
            Value::Mapping(row)
        })
        .collect();
    snapshot!("set_typing", table);
    assert!(typed(&layer).is_ok());
}

#[test]
fn unknown_keys_are_kept_and_warned() {
    let text = "hostname: h\nvendor: {a: 1}\nrancher:\n  debug: true\n  custom: [1]\n  network:\n    wifi: true\n    interfaces:\n      eth0: {dhcp: true, speed: fast}\n  services:\n    web: {image: nginx, ports: ['80:80']}\nwrite_files:\n  - {path: /a, x-note: y}\n";
    let checked = check_text("user-data", text);
    assert!(checked.errors.is_empty());
    let warnings: Vec<String> = checked.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "user-data: unknown key vendor (kept, not acted on)",
            "user-data: unknown key write_files[0].x-note (kept, not acted on)",
            "user-data: unknown key rancher.custom (kept, not acted on)",
            "user-data: unknown key rancher.network.wifi (kept, not acted on)",
            "user-data: unknown key rancher.network.interfaces.eth0.speed (kept, not acted on)",
        ],
        "compose keys of services (ports) are not warned about"
    );
    // The tree is kept whole: nothing is dropped.
    assert_eq!(checked.value, yaml(text));
    assert_eq!(checked.config.rancher.extra["custom"], yaml("[1]"));
}

/// The built-in defaults of the initrd read cleanly.
#[test]
fn builtin_defaults_are_valid() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../initrd/rootfs/usr/share/ros/os-config.yml");
    let text = fs::read_to_string(&path).unwrap();
    let checked = check_text(&path.display().to_string(), &text);
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    assert_eq!(checked.config.hostname, "rancher");
    assert_eq!(checked.config.rancher.shutdown_timeout, 10);
    assert_eq!(checked.config.rancher.autologin, "ttyS0");
}

/// A RancherOS cloud-config in the style of its documentation, with every key family this OS
/// types. It must read without a single error.
const RANCHEROS_SAMPLE: &str = r#"#cloud-config
hostname: myhost
ssh_authorized_keys:
  - ssh-rsa AAA...ZZZ example1@rancher
write_files:
  - path: /etc/rc.local
    permissions: "0755"
    owner: root
    content: |
      #!/bin/bash
      wait-for-docker
  - path: /opt/b64
    permissions: 0644
    encoding: b64
    content: aGVsbG8gd29ybGQK
  - container: ntp
    path: /etc/ntp.conf
    permissions: 644
    content: "server 0.pool.ntp.org iburst\n"
runcmd:
  - [touch, /home/rancher/test1]
  - echo "test" > /home/rancher/test2
  -
bootcmd: echo booting
mounts:
  - ["/dev/vdb", "/mnt/s", "ext4", ""]
rancher:
  console: ubuntu
  debug: false
  log: true
  password: rancher
  environment:
    ETCD_DISCOVERY: https://discovery.etcd.io/abc
    RETRIES: 3
  sysctl:
    vm.max_map_count: 262144
    net.ipv4.conf.default.rp_filter: 1
  modules: [nbd]
  network:
    dns:
      nameservers: [8.8.8.8, 8.8.4.4]
      search: [mydomain.com, example.com]
    http_proxy: http://proxy:3128
    interfaces:
      eth*:
        dhcp: true
      eth1:
        address: 172.68.1.100/24
        gateway: 172.68.1.1
        mtu: 1460
        dhcp: false
      "mac=ea:34:71:66:90:12:01":
        address: 10.0.0.5/24
      lo:
  services:
    nginx:
      image: nginx
      restart: always
      ports: ["80:80"]
      labels:
        io.rancher.os.scope: system
    empty:
  docker:
    engine: docker-17.03.2-ce
    tls: true
    tls_args: [--tlsverify, --tlscacert=ca.pem]
    server_key: "-----BEGIN RSA PRIVATE KEY-----"
    extra_args: [--insecure-registry, 10.0.0.1:5000]
    storage_driver: overlay2
    log_opts: {max-size: 25m, max-file: 2}
  state:
    dev: LABEL=RANCHER_STATE
    wait: true
    autoformat: [/dev/sda, /dev/vda]
    directory: rancheros
  upgrade:
    url: https://releases.rancher.com/os/releases.yml
  ssh:
    keys:
      rsa: "-----BEGIN RSA PRIVATE KEY-----"
  cloud_init:
    datasources: [configdrive:/media/config-2]
  resize_device: /dev/sda
"#;

#[test]
fn rancheros_cloud_config_is_accepted_as_is() {
    let checked = check_text("user-data", RANCHEROS_SAMPLE);
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    let warnings: Vec<String> = checked.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["user-data: unknown key rancher.resize_device (kept, not acted on)"]
    );
    let c = checked.config;
    assert_eq!(c.hostname, "myhost");
    assert_eq!(c.write_files.len(), 3);
    assert_eq!(c.write_files[0].mode(), 0o755);
    assert_eq!(c.write_files[1].mode(), 0o644);
    assert_eq!(c.write_files[2].mode(), 0o644);
    assert_eq!(
        c.write_files[1].decoded_content().unwrap(),
        b"hello world\n"
    );
    assert_eq!(c.write_files[2].container.as_deref(), Some("ntp"));
    assert_eq!(
        c.runcmd,
        [
            Command::Argv(vec!["touch".into(), "/home/rancher/test1".into()]),
            Command::Shell("echo \"test\" > /home/rancher/test2".into()),
            Command::Argv(vec![]),
        ]
    );
    assert_eq!(c.bootcmd, [Command::Shell("echo booting".into())]);
    assert_eq!(c.mounts, [vec!["/dev/vdb", "/mnt/s", "ext4", ""]]);
    let r = &c.rancher;
    assert_eq!(r.console.as_deref(), Some("ubuntu"));
    assert!(r.log);
    assert_eq!(r.environment["RETRIES"], "3");
    assert_eq!(r.sysctl["vm.max_map_count"], "262144");
    let ifs = &r.network.interfaces;
    assert!(ifs["eth*"].dhcp);
    assert_eq!(ifs["eth1"].mtu, Some(1460));
    assert_eq!(ifs["lo"], Interface::default());
    assert_eq!(
        ifs["mac=ea:34:71:66:90:12:01"].selector("mac=ea:34:71:66:90:12:01"),
        Selector::Mac("ea:34:71:66:90:12:01".into())
    );
    assert_eq!(r.services["nginx"].image.as_deref(), Some("nginx"));
    assert_eq!(r.services["empty"], Service::default());
    assert!(r.docker.tls);
    assert_eq!(r.docker.log_opts["max-file"], "2");
    assert_eq!(r.state.dev.as_deref(), Some("LABEL=RANCHER_STATE"));
    assert_eq!(r.state.wait.seconds(), crate::config::Wait::LONG);
    assert_eq!(r.state.directory.as_deref(), Some("rancheros"));
    assert_eq!(
        r.upgrade.url.as_deref(),
        Some("https://releases.rancher.com/os/releases.yml")
    );
    assert_eq!(r.cloud_init.datasources, ["configdrive:/media/config-2"]);
    assert_eq!(c.images(), ["nginx"]);
}

#[test]
fn empty_sections_read_as_defaults() {
    for text in [
        "",
        "#cloud-config\n",
        "rancher:\n",
        "rancher: ~\nruncmd:\nwrite_files:\nssh_authorized_keys:\n",
        "rancher:\n  network:\n  docker:\n  state:\n  debug:\n",
        "hostname:\n",
    ] {
        let checked = check_text("user-data", text);
        assert!(checked.errors.is_empty(), "{text:?}: {:?}", checked.errors);
        assert_eq!(checked.config, Config::default(), "{text:?}");
    }
}

#[test]
fn runcmd_forms() {
    let runcmd = |text: &str| check_text("u", text).config.runcmd;
    assert_eq!(
        runcmd("runcmd: echo hi"),
        [Command::Shell("echo hi".into())]
    );
    assert_eq!(runcmd("runcmd:"), []);
    assert_eq!(runcmd("runcmd: []"), []);
    assert_eq!(
        runcmd("runcmd:\n  - [ls, -l, 5]\n  - 'true'\n"),
        [
            Command::Argv(vec!["ls".into(), "-l".into(), "5".into()]),
            Command::Shell("true".into())
        ]
    );
}

#[test]
fn read_layer_names_the_file_and_line() {
    let root = Root::new();
    root.write("a.yml", "a: 1\nb: [\n");
    let err = read_layer(&root.dir.path().join("a.yml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("a.yml: line 3 column 1: "), "{err}");
    root.write("b.yml", "");
    assert_eq!(
        read_layer(&root.dir.path().join("b.yml")).unwrap(),
        yaml("{}")
    );
}

/// The built-in defaults and the merge are typed from their trees (`check_builtin`,
/// `check_merged`): the same configuration as the text round trip gives, for the shipped
/// defaults and for them merged with a RancherOS user-data; a tree that reads only as text
/// (a number where a string is typed) still reads, as its text, and a bad key is still named.
#[test]
fn trees_typed_directly_read_as_their_text_does() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../initrd/rootfs/usr/share/ros/os-config.yml");
    let text = fs::read_to_string(&path).unwrap();
    let fast = validate::check_builtin("defaults", &text);
    let slow = check_text("defaults", &text);
    assert!(fast.errors.is_empty() && slow.errors.is_empty());
    assert_eq!(fast.value, slow.value);
    assert_eq!(fast.config, slow.config);
    assert_eq!(fast.warnings.len(), slow.warnings.len());

    let mut merged = fast.value.clone();
    merge(&mut merged, check_text("user-data", RANCHEROS_SAMPLE).value);
    let fast = validate::check_merged("merged", merged.clone());
    let slow = check_value("merged", merged);
    assert!(fast.errors.is_empty(), "{:?}", fast.errors);
    assert_eq!(fast.config, slow.config);
    assert_eq!(fast.value, slow.value);

    // A number for a string-typed key: the tree does not read, its text does.
    let checked = validate::check_merged("merged", yaml("hostname: 5\nrancher: {debug: true}"));
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    assert_eq!(checked.config.hostname, "5");
    assert!(checked.config.rancher.debug);
    // A bad value: named, and that key alone left out, as before.
    let checked = validate::check_merged(
        "merged",
        yaml("hostname: h\nrancher: {shutdown_timeout: soon}"),
    );
    assert_eq!(checked.errors.len(), 1, "{:?}", checked.errors);
    assert!(checked.errors[0].to_string().contains("shutdown_timeout"));
    assert_eq!(checked.config.hostname, "h");
    let checked = validate::check_builtin("defaults", "hostname: [oops]\n");
    assert_eq!(checked.errors.len(), 1, "{:?}", checked.errors);
    assert!(checked.errors[0].to_string().contains("defaults"));
}
