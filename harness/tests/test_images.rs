//! The test-only images (harness/test-images/) are valid images without a VM: the tar
//! `harness::test_images::build` writes is both a `docker save` archive and an OCI layout, every
//! library its programs need is in it, its packages are locked, and this machine's Docker
//! Engine loads it and runs `nft`, and `dnsmasq` as the DNS server the VM tests use, asked from
//! here with DNS messages of our own. Where no Docker Engine answers, the Docker part is skipped
//! with a note, and fails under `CI=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const NFT: &str = "ros-test/nft:latest";
const DNSMASQ: &str = "ros-test/dnsmasq:latest";

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// Removes the image when the test ends, passed or not.
struct Rmi(&'static str);

impl Drop for Rmi {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", self.0]).output();
    }
}

/// Removes the container (running or not) when the test ends, passed or not. Made before the
/// container, and dropped before the image's [`Rmi`].
struct Rm(String);

impl Drop for Rm {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn stdout_of(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docker_loads_the_nft_test_image_and_runs_nft() {
    if !docker_answers() {
        harness::setup::tool_missing("a Docker Engine answering `docker version`");
        return;
    }
    let tar = harness::test_images::build("nft").unwrap();
    let _rmi = Rmi(NFT);
    let loaded = stdout_of(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains(NFT), "{loaded}");

    let version = stdout_of(&["run", "--rm", "--network", "none", NFT, "nft", "--version"]);
    assert!(version.starts_with("nftables v"), "{version}");
    // The image's own cmd is the same.
    assert_eq!(
        stdout_of(&["run", "--rm", "--network", "none", NFT]),
        version
    );

    // nft talks to the kernel through its libraries: a table made in the container's own
    // network namespace (CAP_NET_ADMIN there only) is listed back.
    let listed = stdout_of(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-add",
        "NET_ADMIN",
        NFT,
        "nft",
        "add table ip ros-docker; list table ip ros-docker",
    ]);
    assert!(listed.contains("table ip ros-docker"), "{listed}");
}

/// How the VM test runs dnsmasq as a DNS server (with `--net host`, these flags then
/// [`DNSMASQ_VM_LISTEN`]): files.test is 10.0.2.100, every other name is refused (no upstream
/// servers), each query is logged on stderr.
const DNSMASQ_SERVE: &[&str] = &[
    "dnsmasq",
    "--keep-in-foreground",
    "--no-resolv",
    "--no-hosts",
    "--user=root",
    "--port=53",
    "--address=/files.test/10.0.2.100",
    "--log-queries",
    "--log-facility=-",
];

/// Where the VM test's dnsmasq listens: the VM's loopback only.
const DNSMASQ_VM_LISTEN: &[&str] = &["--listen-address=127.0.0.1", "--bind-interfaces"];

/// A DNS query message (RFC 1035 §4.1) for the A record of `name`, class IN, recursion desired.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(id.to_be_bytes());
    m.extend(0x0100u16.to_be_bytes()); // QR=0 (query), OPCODE=0, RD=1
    m.extend(1u16.to_be_bytes()); // QDCOUNT
    m.extend([0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).expect("a label is at most 63 bytes"));
        m.extend(label.as_bytes());
    }
    m.push(0);
    m.extend(1u16.to_be_bytes()); // QTYPE A
    m.extend(1u16.to_be_bytes()); // QCLASS IN
    m
}

/// Send `query` to `server`:53 over UDP until a reply with its id comes (dnsmasq may not be
/// listening yet right after `docker run -d`); panics after 20 s with `why_not()` in the message.
fn dns_ask(server: Ipv4Addr, query: &[u8], why_not: impl Fn() -> String) -> Vec<u8> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Err(e) = sock.send_to(query, (server, 53)) {
            eprintln!("send to {server}:53: {e}; retrying");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == (server, 53).into() && n >= 12 && buf[..2] == query[..2] {
                return buf[..n].to_vec();
            }
        }
    }
    panic!("no DNS reply from {server}:53 in 20 s\n{}", why_not());
}

/// Header fields of a DNS reply to `query`: (RCODE, ANCOUNT). Checks it is a reply (QR=1) that
/// echoes the question.
fn dns_header(query: &[u8], reply: &[u8]) -> (u8, u16) {
    assert!(reply.len() >= query.len(), "short reply {reply:02x?}");
    assert_ne!(reply[2] & 0x80, 0, "QR=0 in {reply:02x?}");
    assert_eq!(&reply[4..6], &[0, 1], "QDCOUNT in {reply:02x?}");
    assert_eq!(
        reply[12..query.len()],
        query[12..],
        "question in {reply:02x?}"
    );
    (reply[3] & 0x0f, u16::from_be_bytes([reply[6], reply[7]]))
}

/// The address of the reply's only answer, an A record of class IN, the last record of the
/// message.
fn dns_a_answer(query: &[u8], reply: &[u8]) -> Ipv4Addr {
    let mut at = query.len();
    // The owner name: a compression pointer (to the question's name) or labels.
    if reply[at] & 0xc0 == 0xc0 {
        at += 2;
    } else {
        while reply[at] != 0 {
            at += 1 + usize::from(reply[at]);
        }
        at += 1;
    }
    let rr = &reply[at..];
    assert_eq!(&rr[..4], &[0, 1, 0, 1], "TYPE A, CLASS IN in {reply:02x?}");
    assert_eq!(&rr[8..10], &[0, 4], "RDLENGTH in {reply:02x?}");
    assert_eq!(rr.len(), 14, "one answer, nothing after it: {reply:02x?}");
    Ipv4Addr::new(rr[10], rr[11], rr[12], rr[13])
}

#[test]
fn dns_messages_are_built_and_read_as_rfc_1035_says() {
    let q = dns_query(0x1234, "files.test");
    assert_eq!(
        q,
        b"\x12\x34\x01\x00\0\x01\0\0\0\0\0\0\x05files\x04test\0\0\x01\0\x01"
    );
    // dnsmasq's reply to it, as captured.
    let mut r = q.clone();
    r[2..4].copy_from_slice(&[0x85, 0x80]);
    r[6..8].copy_from_slice(&[0, 1]);
    r.extend(b"\xc0\x0c\0\x01\0\x01\0\0\0\0\0\x04\x0a\x00\x02\x64");
    assert_eq!(dns_header(&q, &r), (0, 1));
    assert_eq!(dns_a_answer(&q, &r), Ipv4Addr::new(10, 0, 2, 100));
}

#[test]
fn docker_loads_the_dnsmasq_test_image_and_it_answers_files_test() {
    if !docker_answers() {
        harness::setup::tool_missing("a Docker Engine answering `docker version`");
        return;
    }
    let tar = harness::test_images::build("dnsmasq").unwrap();
    let _rmi = Rmi(DNSMASQ);
    let loaded = stdout_of(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains(DNSMASQ), "{loaded}");

    let version = stdout_of(&[
        "run",
        "--rm",
        "--network",
        "none",
        DNSMASQ,
        "dnsmasq",
        "--version",
    ]);
    assert!(version.starts_with("Dnsmasq version "), "{version}");
    // The image's own cmd is the same.
    assert_eq!(
        stdout_of(&["run", "--rm", "--network", "none", DNSMASQ]),
        version
    );

    // The VM test's very command line starts: it binds 127.0.0.1:53 as root, and stays up.
    let vm = format!("ros-test-dnsmasq-vm-{}", std::process::id());
    let _rm_vm = Rm(vm.clone());
    let mut run = vec!["run", "-d", "--name", &vm, "--network", "none", DNSMASQ];
    run.extend(DNSMASQ_SERVE);
    run.extend(DNSMASQ_VM_LISTEN);
    stdout_of(&run);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = docker(&["logs", &vm]);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if log.contains("dnsmasq[1]: started, version") {
            break;
        }
        assert!(Instant::now() < deadline, "dnsmasq did not start: {log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let running = stdout_of(&["inspect", "-f", "{{.State.Running}}", &vm]);
    assert_eq!(running.trim(), "true", "{:?}", docker(&["logs", &vm]));

    // The same server on the default bridge, so this machine can ask it: listening on the
    // container's eth0 (and lo) instead of 127.0.0.1 only.
    let name = format!("ros-test-dnsmasq-{}", std::process::id());
    let _rm = Rm(name.clone());
    let mut run = vec!["run", "-d", "--name", &name, DNSMASQ];
    run.extend(DNSMASQ_SERVE);
    run.extend(["--interface=eth0", "--bind-interfaces"]);
    stdout_of(&run);
    let ip = stdout_of(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &name,
    ]);
    let ip: Ipv4Addr = ip
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("container address {ip:?}: {e}"));
    let logs = || {
        let out = docker(&["logs", &name]);
        format!(
            "docker logs {name}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let query = dns_query(0x5253, "files.test");
    let reply = dns_ask(ip, &query, logs);
    assert_eq!(dns_header(&query, &reply), (0, 1), "{reply:02x?}");
    assert_eq!(dns_a_answer(&query, &reply), Ipv4Addr::new(10, 0, 2, 100));

    // No upstream servers: any other name gets no address (dnsmasq 2.90 says REFUSED).
    let query = dns_query(0x5254, "other.test");
    let reply = dns_ask(ip, &query, logs);
    let (rcode, answers) = dns_header(&query, &reply);
    assert!(
        rcode == 5 || rcode == 3,
        "RCODE {rcode}, expected REFUSED or NXDOMAIN"
    );
    assert_eq!(answers, 0, "{reply:02x?}");

    // --log-queries --log-facility=-: the queries are in the container's log.
    let log = logs();
    assert!(log.contains("query[A] files.test"), "{log}");
    assert!(log.contains("config files.test is 10.0.2.100"), "{log}");
}

/// The files of the tar, by path.
fn files_of(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(tar);
    let mut files = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

/// The tar of test image `name` is both formats, cached, named `image`, runs `cmd` by default,
/// holds `program`, and every DT_NEEDED of every ELF file in it is a file of one of its layers.
/// Returns the files of its layers, by path.
fn check_tar(name: &str, image: &str, cmd: &[&str], program: &str) -> BTreeMap<String, Vec<u8>> {
    let path = harness::test_images::build(name).unwrap();
    assert_eq!(harness::test_images::build(name).unwrap(), path, "cached");
    assert!(path.starts_with(harness::test_images::cache_dir()));
    let top = files_of(&std::fs::read(&path).unwrap());
    for must in ["oci-layout", "index.json", "manifest.json"] {
        assert!(top.contains_key(must), "{must}: {:?}", top.keys());
    }
    let manifest: serde_json::Value = serde_json::from_slice(&top["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], image);
    let index: serde_json::Value = serde_json::from_slice(&top["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        image
    );
    let config: serde_json::Value =
        serde_json::from_slice(&top[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    assert!(config["config"].get("Entrypoint").is_none(), "{config}");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(cmd));

    let mut files = BTreeMap::new();
    for l in manifest[0]["Layers"].as_array().unwrap() {
        files.extend(files_of(&top[l.as_str().unwrap()]));
    }
    assert!(files.contains_key(program), "{:?}", files.keys());
    let names: BTreeSet<&str> = files
        .keys()
        .map(|p| p.trim_end_matches('/').rsplit('/').next().unwrap())
        .collect();
    for (path, data) in files
        .iter()
        .filter(|(_, d)| harness::images::elf::is_elf(d))
    {
        for lib in harness::images::elf::needed(data).unwrap() {
            assert!(names.contains(lib.as_str()), "{path} needs {lib}");
        }
    }
    files
}

#[test]
fn the_nft_tar_is_both_formats_cached_and_complete() {
    check_tar("nft", NFT, &["nft", "--version"], "usr/sbin/nft");
}

#[test]
fn the_dnsmasq_tar_is_both_formats_cached_and_complete() {
    let files = check_tar(
        "dnsmasq",
        DNSMASQ,
        &["dnsmasq", "--version"],
        "usr/sbin/dnsmasq",
    );
    // dnsmasq looks up its user (nobody, or root with --user=root) and writes its pid file.
    let passwd = String::from_utf8_lossy(&files["etc/passwd"]);
    assert!(passwd.contains("\nnobody:x:65534:65534:"), "{passwd}");
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    let group = String::from_utf8_lossy(&files["etc/group"]);
    assert!(group.starts_with("root:x:0:"), "{group}");
    for dir in ["etc/", "tmp/", "run/", "var/run/"] {
        assert!(files.contains_key(dir), "{dir}: {:?}", files.keys());
    }
}

/// Every package a test image uses is pinned in the lock, so its build is reproducible.
#[test]
fn every_test_image_package_is_locked() {
    let lock = harness::debs::read_lock().unwrap();
    for p in harness::test_images::package_names().unwrap() {
        assert!(
            lock.contains_key(&p),
            "{p} is not in {} (`cargo harness lock`)",
            harness::debs::lock_path().display()
        );
    }
}
