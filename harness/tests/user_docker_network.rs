//! The user engine's default bridge, proven in a VM with the real docker CLI: a container's
//! `eth0` on `docker0` with an address of 172.17.0.0/16 (what `inspect` says), its default
//! route and MAC, its `/etc/hosts` and `/etc/resolv.conf`; containers reach each other, the
//! console reaches them, and they reach a server on this machine (through QEMU's `guestfwd`:
//! the masquerade rule at work); the host's own services are out of their reach on the
//! bridge's address; the address is kept across a restart, and the veth goes with the exit;
//! the engine pulls through `rancher.network`'s proxy.

use harness::docker_cli::{boot_with, http_get, text};

fn http_cmd(dir: &std::path::Path) -> String {
    format!(
        "{} serve-http {}",
        env!("CARGO_BIN_EXE_harness"),
        dir.display()
    )
}

#[test]
fn containers_on_the_bridge_get_an_address_reach_out_and_not_the_host() {
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("hello"), "hello from this machine\n").unwrap();
    // An HTTP proxy on this machine's side (it answers 404 to everything and logs what it
    // was asked), named by rancher.network on the kernel command line.
    let proxy = tempfile::tempdir().unwrap();
    let (vm, d) = boot_with("user_docker_bridge", |o| {
        o.guestfwd("10.0.2.100:80", &http_cmd(served.path()))
            .guestfwd("10.0.2.100:3128", &http_cmd(proxy.path()))
            .cmdline("rancher.network.http_proxy=http://10.0.2.100:3128")
            .cmdline("rancher.network.https_proxy=http://10.0.2.100:3128")
    });

    // The engine's pulls go through rancher.network's proxy (the system services that list
    // the proxy variables get them: the docker service does).
    let out = d.run(&["pull", "10.9.9.9:5000/through/proxy"]);
    assert!(!out.status.success(), "pulled from nowhere?");
    let asked = std::fs::read_to_string(proxy.path().join("requests.log")).unwrap_or_default();
    assert!(
        asked.contains("10.9.9.9:5000"),
        "the proxy was not asked: {asked:?}; docker said {}",
        text(&out.stderr)
    );

    // Inside: the address, route, MAC; its own hosts line; no loopback resolver.
    let inside = d.ok(
        &[
            "run",
            "--rm",
            "--hostname",
            "probe",
            "ros/busybox",
            "sh",
            "-c",
            "ip -4 -o addr show eth0; ip route; cat /sys/class/net/eth0/address; cat /etc/hosts; cat /etc/resolv.conf",
        ],
        &vm,
    );
    assert!(inside.contains("inet 172.17.0."), "{inside}");
    assert!(
        inside.contains("default via 172.17.0.1 dev eth0"),
        "{inside}"
    );
    assert!(inside.contains("02:42:ac:11:00:"), "{inside}");
    assert!(
        inside
            .lines()
            .any(|l| l.starts_with("172.17.0.") && l.ends_with("probe")),
        "{inside}"
    );
    assert!(!inside.contains("nameserver 127."), "{inside}");

    // A server on the bridge; inspect says where it is.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--hostname",
            "web-host",
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
    let ip = d.inspect("{{.NetworkSettings.IPAddress}}", "web", &vm);
    assert!(ip.starts_with("172.17.0."), "{ip}");
    assert_eq!(
        d.inspect(
            "{{.NetworkSettings.Networks.bridge.IPAddress}} {{.NetworkSettings.Networks.bridge.Gateway}} {{.NetworkSettings.IPPrefixLen}}",
            "web",
            &vm
        ),
        format!("{ip} 172.17.0.1 16")
    );
    let mac = d.inspect("{{.NetworkSettings.MacAddress}}", "web", &vm);
    assert!(mac.starts_with("02:42:ac:11:00:"), "{mac}");
    // docker network ls / inspect agree with the container's view.
    assert_eq!(
        d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"], &vm),
        "bridge bridge\nhost host\nnone null"
    );
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.Id}}", "bridge"], &vm),
        d.inspect("{{.NetworkSettings.Networks.bridge.NetworkID}}", "web", &vm)
    );
    assert_eq!(
        d.ok(
            &[
                "network",
                "inspect",
                "-f",
                "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
                "bridge"
            ],
            &vm
        ),
        format!("web {ip}/16 172.17.0.0/16")
    );

    // Container to container, and the console (the host's network) to the container.
    let url = format!("http://{ip}/hostname");
    assert_eq!(
        d.ok(&["run", "--rm", "ros/busybox", "wget", "-qO-", &url], &vm),
        "web-host"
    );
    assert_eq!(vm.ssh_ok(&format!("wget -qO- {url}")).unwrap(), "web-host");
    // The default bridge has no names, but --link writes one into /etc/hosts.
    assert_eq!(
        d.ok(
            &[
                "run",
                "--rm",
                "--link",
                "web:site",
                "ros/busybox",
                "wget",
                "-qO-",
                "http://site/hostname"
            ],
            &vm
        ),
        "web-host"
    );
    let out = d.run(&["run", "--rm", "--link", "nosuch:x", "ros/busybox", "true"]);
    assert!(
        text(&out.stderr).contains("could not get container for nosuch"),
        "{}",
        text(&out.stderr)
    );

    // Out to a server on this machine (masqueraded behind the VM's address).
    assert_eq!(
        d.ok(
            &[
                "run",
                "--rm",
                "ros/busybox",
                "wget",
                "-qO-",
                "http://10.0.2.100/hello"
            ],
            &vm
        ),
        "hello from this machine"
    );

    // The host's SSH answers on the bridge's address from the host, not from a container.
    let banner = vm
        .ssh_ok("nc -w 5 172.17.0.1 22 </dev/null | head -c 7")
        .unwrap();
    assert_eq!(
        banner, "SSH-2.0",
        "the control: SSH listens on the bridge address"
    );
    let out = d.run(&[
        "run",
        "--rm",
        "ros/busybox",
        "sh",
        "-c",
        "nc -w 3 172.17.0.1 22 </dev/null; echo done",
    ]);
    let t = text(&out.stdout);
    assert!(
        t.contains("done") && !t.contains("SSH-"),
        "{t}{}",
        text(&out.stderr)
    );

    // A restart keeps the address; a stop takes the veth away.
    let id = d.inspect("{{.Id}}", "web", &vm);
    let veth = format!("veth{}", &id[..7]);
    assert!(vm.ssh_ok("ls /sys/class/net").unwrap().contains(&veth));
    d.ok(&["restart", "-t", "1", "web"], &vm);
    assert_eq!(d.inspect("{{.NetworkSettings.IPAddress}}", "web", &vm), ip);
    d.ok(&["stop", "-t", "1", "web"], &vm);
    assert_eq!(d.inspect("{{.NetworkSettings.IPAddress}}", "web", &vm), "");
    let links = vm.ssh_ok("ls /sys/class/net").unwrap();
    assert!(!links.contains(&veth), "{links}");
    d.ok(&["rm", "web"], &vm);
}

#[test]
fn published_ports_answer_from_this_machine_and_a_taken_port_is_refused() {
    let (vm, d) = boot_with("user_docker_ports", |o| o.forward(8080));
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--hostname",
            "web-host",
            "-p",
            "8080:80",
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
    // From this machine: QEMU's hostfwd to the VM's port 8080, DNAT to the container.
    let port = vm.port(8080).unwrap();
    harness::docker_cli::until(
        "the published port answers",
        std::time::Duration::from_secs(30),
        || http_get(port, "/hostname").is_ok_and(|b| b == "web-host"),
    );
    assert_eq!(d.ok(&["port", "web"], &vm), "80/tcp -> 0.0.0.0:8080");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"], &vm);
    assert!(ps.contains("web 0.0.0.0:8080->80/tcp"), "{ps}");

    // -P: a port of the host's choosing, served on the VM's own loopback by the proxy.
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "any",
            "--hostname",
            "any-host",
            "-P",
            "--expose",
            "80",
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
    let any = d.ok(&["port", "any", "80/tcp"], &vm);
    let chosen = any.rsplit(':').next().unwrap().to_string();
    assert!(
        any.starts_with("0.0.0.0:") && chosen.parse::<u16>().unwrap() > 1024,
        "{any}"
    );
    assert_eq!(
        vm.ssh_ok(&format!("wget -qO- http://127.0.0.1:{chosen}/hostname"))
            .unwrap(),
        "any-host"
    );

    // UDP, through the VM's own address (DNAT on the output path): a datagram to the
    // published port arrives at the container's port 53, where nothing listens (its UDP
    // `NoPorts` counter says so: busybox has no UDP server to answer it).
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "udp",
            "-p",
            "5353:53/udp",
            "ros/busybox",
            "sleep",
            "1000",
        ],
        &vm,
    );
    let guest = vm
        .ssh_ok("ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")
        .unwrap();
    let no_ports = || -> u64 {
        d.ok(
            &[
                "exec",
                "udp",
                "awk",
                "/^Udp: [0-9]/ {print $3}",
                "/proc/net/snmp",
            ],
            &vm,
        )
        .parse()
        .unwrap()
    };
    assert_eq!(no_ports(), 0);
    let _ = vm.ssh(&format!("timeout 3 tftp -g -r x {guest} 5353"));
    assert!(no_ports() > 0, "no datagram reached the container");

    // The same host port again: refused with dockerd's words, the container left created.
    let out = d.run(&[
        "run",
        "-d",
        "--name",
        "web2",
        "-p",
        "8080:80",
        "ros/busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Bind for 0.0.0.0:8080 failed: port is already allocated"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.inspect("{{.State.Status}}", "web2", &vm), "created");
    // Once the first is gone the port is free again, and the answer comes from the new one.
    d.ok(&["rm", "-f", "web", "web2"], &vm);
    d.ok(
        &[
            "run",
            "-d",
            "--name",
            "web3",
            "--hostname",
            "web3-host",
            "-p",
            "8080:80",
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
    harness::docker_cli::until(
        "the new container answers",
        std::time::Duration::from_secs(30),
        || http_get(port, "/hostname").is_ok_and(|b| b == "web3-host"),
    );
}
