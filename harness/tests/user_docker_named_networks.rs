//! User-defined networks of the user engine, proven in a VM with this machine's docker CLI and
//! Debian's docker-compose: `docker network create|ls|inspect|connect|disconnect|rm|prune`,
//! names and aliases answered by the embedded DNS server (127.0.0.11), other names forwarded
//! to the resolver a container was given (a dnsmasq of the test's own in the VM, answering
//! for a server on this machine), two networks kept apart, and a compose project whose web
//! service reaches its db by name on the project's network. The engine's nftables table is
//! listed by Debian's `nft` (a test image, not our code) before, during and after: what the
//! networks added is gone once they are.

use harness::docker_cli::{boot_with, text, until, Docker};
use harness::paths::repo_root;
use harness::setup::tool_missing;
use harness::vm::Vm;
use std::time::Duration;

fn http_cmd(dir: &std::path::Path) -> String {
    format!(
        "{} serve-http {}",
        env!("CARGO_BIN_EXE_harness"),
        dir.display()
    )
}

/// Load a test image built from Debian's packages (`harness/test-images/NAME.yml`).
fn load_test_image(d: &Docker, vm: &Vm, name: &str) {
    let tar = harness::test_images::build(name).expect("the test image builds");
    d.ok(&["load", "-i", tar.to_str().unwrap()], vm);
}

/// The engine's table as Debian's `nft` lists it, from the host's network namespace.
fn rules(d: &Docker, vm: &Vm) -> String {
    d.ok(
        &[
            "run",
            "--rm",
            "--net",
            "host",
            "--privileged",
            "ros-test/nft",
            "nft",
            "list",
            "table",
            "ip",
            "ros-docker",
        ],
        vm,
    )
}

/// `wget -qO- URL` from a new container with these options, cut at 10 s (busybox 1.35's own
/// `wget -T` crashes); its output or the error.
fn fetch(d: &Docker, opts: &[&str], url: &str) -> Result<String, String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["ros/busybox", "timeout", "10", "wget", "-qO-", url]);
    let out = d.run(&args);
    if out.status.success() {
        Ok(text(&out.stdout).trim().to_string())
    } else {
        Err(format!("{}{}", text(&out.stdout), text(&out.stderr)))
    }
}

#[test]
fn named_networks_resolve_names_keep_apart_and_leave_no_rule_behind() {
    if std::process::Command::new("docker-compose")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        tool_missing("docker-compose");
        return;
    }
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("hello"), "hello from this machine\n").unwrap();
    let (vm, d) = boot_with("user_docker_named_networks", |o| {
        o.guestfwd("10.0.2.100:80", &http_cmd(served.path()))
    });
    load_test_image(&d, &vm, "nft");
    load_test_image(&d, &vm, "dnsmasq");
    let before = rules(&d, &vm);
    assert!(before.contains("masquerade"), "{before}");

    // create, ls, inspect; a name taken and an overlapping subnet refused.
    let front = d.ok(&["network", "create", "front"], &vm);
    assert_eq!(front.len(), 64, "{front}");
    d.ok(
        &["network", "create", "--subnet", "10.99.0.0/24", "back"],
        &vm,
    );
    assert_eq!(
        d.ok(
            &[
                "network",
                "inspect",
                "-f",
                "{{.Id}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
                "front"
            ],
            &vm
        ),
        format!("{front} bridge 172.18.0.0/16 172.18.0.1")
    );
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"], &vm);
    let mut listed: Vec<&str> = ls.lines().collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "back bridge",
            "bridge bridge",
            "front bridge",
            "host host",
            "none null"
        ],
        "{ls}"
    );
    for (args, says) in [
        (&["network", "create", "front"][..], "already exists"),
        (
            &["network", "create", "--subnet", "10.99.0.0/16", "over"][..],
            "overlaps",
        ),
    ] {
        let out = d.run(args);
        assert!(
            !out.status.success() && text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let br = format!("br-{}", &front[..12]);
    assert!(vm.ssh_ok("ls /sys/class/net").unwrap().contains(&br));

    // A server on `front`, found by name, alias, NAME.NETWORK; resolv.conf names 127.0.0.11.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--hostname",
            "db-host",
            "--network",
            "front",
            "--network-alias",
            "database",
            "ros/busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ],
        &vm,
    );
    let db_ip = d.inspect("{{.NetworkSettings.Networks.front.IPAddress}}", "db", &vm);
    assert!(db_ip.starts_with("172.18.0."), "{db_ip}");
    let aliases = d.inspect("{{.NetworkSettings.Networks.front.Aliases}}", "db", &vm);
    assert!(aliases.contains("database"), "{aliases}");
    for name in ["db", "database", "db.front", "DB"] {
        assert_eq!(
            fetch(
                &d,
                &["--network", "front"],
                &format!("http://{name}/hostname")
            ),
            Ok("db-host".into()),
            "by {name}"
        );
    }
    // `container:NAME`: another container in db's namespace (its address, its server on
    // loopback, its hosts file).
    assert_eq!(
        d.ok(
            &[
                "run",
                "--rm",
                "--network",
                "container:db",
                "ros/busybox",
                "sh",
                "-c",
                "wget -qO- http://127.0.0.1/hostname; ip -4 -o addr show eth0 | awk '{print $4}'"
            ],
            &vm
        ),
        format!("db-host\n{db_ip}/16")
    );
    // The console's own CLI too.
    let listed = vm.ssh_ok("docker network ls").unwrap();
    assert!(
        listed.contains(" front ") && listed.contains(" bridge "),
        "{listed}"
    );
    assert_eq!(
        vm.ssh_ok("docker run --rm --network front ros/busybox wget -qO- http://database/hostname")
            .unwrap(),
        "db-host"
    );
    let conf = d.ok(
        &[
            "run",
            "--rm",
            "--network",
            "front",
            "ros/busybox",
            "cat",
            "/etc/resolv.conf",
        ],
        &vm,
    );
    assert!(conf.starts_with("nameserver 127.0.0.11\n"), "{conf}");
    assert_eq!(
        d.ok(
            &[
                "network",
                "inspect",
                "-f",
                "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
                "front"
            ],
            &vm
        ),
        format!("db {db_ip}/16")
    );

    // Out: by IP, and by a name the embedded server forwards to the container's resolver
    // (`--dns`: a dnsmasq on the VM's loopback, asked from the engine's side).
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "resolver",
            "--net",
            "host",
            "ros-test/dnsmasq",
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--port=53",
            "--address=/files.test/10.0.2.100",
            "--log-queries",
            "--log-facility=-",
        ],
        &vm,
    );
    assert_eq!(
        fetch(&d, &["--network", "front"], "http://10.0.2.100/hello"),
        Ok("hello from this machine".into())
    );
    until("dnsmasq answers", Duration::from_secs(20), || {
        d.run(&["logs", "resolver"]).status.success()
            && fetch(
                &d,
                &["--network", "front", "--dns", "127.0.0.1"],
                "http://files.test/hello",
            ) == Ok("hello from this machine".into())
    });
    let asked = d.run(&["logs", "resolver"]);
    assert!(
        text(&asked.stdout).contains("files.test") || text(&asked.stderr).contains("files.test"),
        "dnsmasq was not asked"
    );

    // Apart: from `back`, neither db's name nor its address.
    assert!(fetch(&d, &["--network", "back"], "http://db/hostname").is_err());
    assert!(fetch(
        &d,
        &["--network", "back"],
        &format!("http://{db_ip}/hostname")
    )
    .is_err());
    // Nor from the default bridge.
    assert!(fetch(&d, &[], &format!("http://{db_ip}/hostname")).is_err());

    // connect (while it runs): db on `back` too, found there by name; then disconnect.
    d.ok(
        &["network", "connect", "--alias", "store", "back", "db"],
        &vm,
    );
    let back_ip = d.inspect("{{.NetworkSettings.Networks.back.IPAddress}}", "db", &vm);
    assert!(back_ip.starts_with("10.99.0."), "{back_ip}");
    assert_eq!(
        fetch(&d, &["--network", "back"], "http://store/hostname"),
        Ok("db-host".into())
    );
    assert_eq!(
        d.ok(
            &["exec", "db", "sh", "-c", "ls /sys/class/net | sort | xargs"],
            &vm
        ),
        "eth0 eth1 lo"
    );
    d.ok(&["network", "disconnect", "back", "db"], &vm);
    assert!(fetch(&d, &["--network", "back"], "http://store/hostname").is_err());
    assert_eq!(
        d.ok(
            &["exec", "db", "sh", "-c", "ls /sys/class/net | sort | xargs"],
            &vm
        ),
        "eth0 lo"
    );

    // rm: not while a container runs on it.
    let out = d.run(&["network", "rm", "front"]);
    assert!(
        text(&out.stderr).contains("has active endpoints"),
        "{}",
        text(&out.stderr)
    );
    let out = d.run(&["network", "rm", "bridge"]);
    assert!(
        text(&out.stderr).contains("pre-defined network"),
        "{}",
        text(&out.stderr)
    );
    let during = rules(&d, &vm);
    assert!(during.contains(&br), "{during}");

    // docker-compose: the project's network, web → db by service name, down removes all.
    let project = repo_root().join("harness/tests/clients/compose-net");
    let compose = |args: &[&str]| {
        let out = d
            .client("docker-compose")
            .args(["--ansi", "never", "-p", "rosnet"])
            .args(args)
            .current_dir(&project)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed ({}):\n{}{}\nserial log: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            vm.log_path().display()
        );
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    compose(&["up", "-d"]);
    assert_eq!(
        d.ok(
            &[
                "network",
                "ls",
                "--filter",
                "name=rosnet",
                "--format",
                "{{.Name}}"
            ],
            &vm
        ),
        "rosnet_default"
    );
    until("web reaches db by name", Duration::from_secs(30), || {
        compose(&[
            "exec",
            "-T",
            "web",
            "timeout",
            "10",
            "wget",
            "-qO-",
            "http://db/",
        ])
        .contains("db-here")
    });
    let project_rules = rules(&d, &vm);
    let proj_id = d.ok(
        &["network", "inspect", "-f", "{{.Id}}", "rosnet_default"],
        &vm,
    );
    assert!(
        project_rules.contains(&format!("br-{}", &proj_id[..12])),
        "{project_rules}"
    );
    compose(&["down"]);
    assert_eq!(
        d.ok(&["network", "ls", "--filter", "name=rosnet", "-q"], &vm),
        ""
    );
    assert!(!rules(&d, &vm).contains(&proj_id[..12]));

    // prune: networks no container is on go (back, and front once db is gone).
    d.ok(&["rm", "-f", "db", "resolver"], &vm);
    let pruned = d.ok(&["network", "prune", "-f"], &vm);
    assert!(
        pruned.contains("front") && pruned.contains("back"),
        "{pruned}"
    );
    let mut left: Vec<String> = d
        .ok(&["network", "ls", "--format", "{{.Name}}"], &vm)
        .lines()
        .map(String::from)
        .collect();
    left.sort();
    assert_eq!(left, ["bridge", "host", "none"]);
    assert!(!vm.ssh_ok("ls /sys/class/net").unwrap().contains("br-"));
    let after = rules(&d, &vm);
    assert_eq!(after, before, "rules left behind");
}
