//! Registries, proven in a VM with the real docker CLI over `ssh://`: `docker push` and
//! `docker pull` against Debian's `docker-registry` on this machine's loopback (reached from the
//! guest through `guestfwd`), plain HTTP for a registry in `rancher.docker.insecure_registry`,
//! TLS with a CA given as `rancher.docker.ca` and basic auth (`docker login`) for another.
//!
//! This machine's dockerd is the reference on the other side: it pulls and runs what our
//! engine pushed, and pushes what our engine pulls (a commit of its own, gzip Docker v2
//! layers, and a manifest list whose linux/amd64 entry must be the one chosen).

use harness::docker_cli::{connect, text};
use harness::paths::repo_root;
use harness::registry::{Registry, TestCa};
use harness::seed::{self, Files, SeedFs};
use harness::setup::{python_docker_dir, tool_missing};
use harness::ssh::Key;
use harness::vm::{Vm, VmOptions};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PLAIN: &str = "10.0.2.100:5000";
const SECURE: &str = "10.0.2.101:5443";
/// The secure registry again, at an address its certificate does not name.
const MISNAMED: &str = "10.0.2.102:5443";

/// This machine's dockerd, addressed explicitly, with a config directory of its own.
struct HostDocker {
    config: tempfile::TempDir,
}

impl HostDocker {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(["-H", "unix:///var/run/docker.sock"])
            .args(args)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("docker runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dockerd: docker {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_string()
    }
}

fn fails(out: &Output, what: &str, words: &[&str]) {
    let err = text(&out.stderr).to_lowercase() + &text(&out.stdout).to_lowercase();
    assert!(!out.status.success(), "{what} succeeded: {err}");
    assert!(
        words.iter().any(|w| err.contains(w)),
        "{what}: none of {words:?} in: {err}"
    );
}

#[test]
fn push_pull_login_and_run_of_a_missing_image_against_registries_on_this_machine() {
    let plain = Registry::start(None, None).unwrap();
    let ca = TestCa::new(&["10.0.2.101"]).unwrap();
    let secure = Registry::start(Some(&ca), Some(("tester", "s3cret-pw"))).unwrap();
    let relay = env!("CARGO_BIN_EXE_harness");

    // rancher.docker from a NoCloud seed: the insecure registry and the test CA.
    let pem: String = ca.ca_pem.lines().map(|l| format!("      {l}\n")).collect();
    let user_data = format!(
        "#cloud-config\nrancher:\n  docker:\n    insecure_registry: [\"{PLAIN}\"]\n    ca: |\n{pem}"
    );
    let files: Files = [
        ("user-data".to_string(), user_data.into_bytes()),
        ("meta-data".to_string(), b"{}".to_vec()),
    ]
    .into_iter()
    .collect();
    let seed = seed::disk("registry", SeedFs::Vfat, "cidata", &files).unwrap();
    let key = Key::generate("registry").unwrap();
    let opts = VmOptions::new("registry")
        .unwrap()
        .ssh_key(&key)
        .drive(seed)
        .guestfwd(PLAIN, &plain.relay_cmd(relay))
        .guestfwd(SECURE, &secure.relay_cmd(relay))
        .guestfwd(MISNAMED, &secure.relay_cmd(relay));
    let vm = Vm::boot_ready(opts, Duration::from_secs(180)).unwrap();
    let d = connect(&vm, &key);
    d.load_initrd_images(&vm);
    let host = HostDocker {
        config: tempfile::tempdir().unwrap(),
    };
    let hp = plain.port;

    // Push to the plain registry; a second push finds every layer there.
    let mine = format!("{PLAIN}/test/busybox:1");
    d.ok(&["tag", "ros/busybox", &mine], &vm);
    let out = d.ok(&["push", &mine], &vm);
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line in: {out}\nregistry: {}", plain.log()))
        .to_string();
    assert!(digest.starts_with("sha256:"), "{out}");
    assert!(d.ok(&["push", &mine], &vm).contains("Layer already exists"));
    let repo_digests = d.inspect("{{json .RepoDigests}}", &mine, &vm);
    assert!(
        repo_digests.contains(&format!("{PLAIN}/test/busybox@{digest}")),
        "{repo_digests}"
    );

    // The reference engine pulls what we pushed, and runs it.
    let theirs = format!("127.0.0.1:{hp}/test/busybox:1");
    host.ok(&["pull", &theirs]);
    assert_eq!(
        host.ok(&["inspect", "-f", "{{index .RepoDigests 0}}", &theirs]),
        format!("127.0.0.1:{hp}/test/busybox@{digest}")
    );
    assert_eq!(
        host.ok(&["run", "--rm", &theirs, "sh", "-c", "echo ran-on-dockerd"]),
        "ran-on-dockerd"
    );
    // It commits and pushes an image of its own, and a manifest list whose arm64 entry is our
    // busybox and whose amd64 entry is its commit.
    let cname = format!("registry-test-{}", std::process::id());
    host.ok(&[
        "run",
        "--name",
        &cname,
        &theirs,
        "sh",
        "-c",
        "echo from-dockerd > /marker",
    ]);
    let committed = format!("127.0.0.1:{hp}/test/fromdockerd:2");
    host.ok(&["commit", &cname, &committed]);
    host.ok(&["push", &committed]);
    let list = format!("127.0.0.1:{hp}/test/multi:1");
    host.ok(&[
        "manifest",
        "create",
        "--insecure",
        &list,
        &theirs,
        &committed,
    ]);
    host.ok(&["manifest", "annotate", "--arch", "arm64", &list, &theirs]);
    host.ok(&["manifest", "push", "--insecure", &list]);
    let _ = host.run(&["rm", "-f", &cname]);
    let _ = host.run(&["rmi", "-f", &theirs, &committed]);

    // `docker run` of an image the engine does not have pulls it (gzip Docker v2 layers).
    let out = d.run(&[
        "run",
        "--rm",
        &format!("{PLAIN}/test/fromdockerd:2"),
        "cat",
        "/marker",
    ]);
    assert!(
        out.status.success(),
        "{}\nengine log:\n{}\nregistry log:\n{}",
        text(&out.stderr),
        engine_log(&vm),
        plain.log()
    );
    assert_eq!(text(&out.stdout).trim(), "from-dockerd");
    let progress = text(&out.stderr);
    assert!(progress.contains("Unable to find image"), "{progress}");
    assert!(progress.contains("Downloaded newer image"), "{progress}");
    let again = d.ok(&["pull", &format!("{PLAIN}/test/fromdockerd:2")], &vm);
    assert!(again.contains("Image is up to date"), "{again}");

    // Docker's image events for all of it.
    let now: u64 = vm.ssh_ok("date +%s").unwrap().trim().parse().unwrap();
    let until = (now + 1).to_string();
    let events = d.ok(
        &[
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
        ],
        &vm,
    );
    for want in [
        format!("push {mine} {PLAIN}/test/busybox"),
        format!("pull {PLAIN}/test/fromdockerd:2 {PLAIN}/test/fromdockerd"),
        "load ros/busybox:latest".to_string(),
    ] {
        assert!(events.contains(&want), "{want:?} not in:\n{events}");
    }
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("tag sha256:") && l.ends_with(&mine)),
        "{events}"
    );

    // The manifest list: linux/amd64 is dockerd's commit, not the arm64-annotated busybox.
    let multi = format!("{PLAIN}/test/multi:1");
    d.ok(&["pull", &multi], &vm);
    assert_eq!(
        d.ok(&["run", "--rm", &multi, "cat", "/marker"], &vm),
        "from-dockerd"
    );

    // By digest: the image we pushed, under repository@digest.
    d.ok(&["rmi", &mine], &vm);
    let by_digest = format!("{PLAIN}/test/busybox@{digest}");
    d.ok(&["pull", &by_digest], &vm);
    assert_eq!(
        d.ok(&["run", "--rm", &by_digest, "echo", "by-digest"], &vm),
        "by-digest"
    );
    let listed = d.ok(
        &[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Digest}}",
        ],
        &vm,
    );
    assert!(
        listed.contains(&format!("{PLAIN}/test/busybox {digest}")),
        "{listed}"
    );

    // What is not there: Docker's words, and no container.
    fails(
        &d.run(&["pull", &format!("{PLAIN}/test/nope:1")]),
        "pull of a missing tag",
        &["manifest unknown", "not found"],
    );
    let out = d.run(&["run", "--rm", &format!("{PLAIN}/nope/nothing:1"), "true"]);
    fails(
        &out,
        "run of an image that exists nowhere",
        &["unknown", "not found"],
    );
    assert!(
        text(&out.stderr).contains("Unable to find image"),
        "{}",
        text(&out.stderr)
    );
    fails(
        &d.run(&["pull", "--all-tags", &format!("{PLAIN}/test/busybox")]),
        "pull --all-tags",
        &["every tag"],
    );

    // TLS with the CA from rancher.docker.ca, and basic auth.
    let private = format!("{SECURE}/private/busybox:1");
    d.ok(&["tag", "ros/busybox", &private], &vm);
    fails(
        &d.run(&["push", &private]),
        "push without credentials",
        &["unauthorized", "authentication required", "no basic auth"],
    );
    let out = d.run_with(
        &["login", SECURE, "-u", "tester", "--password-stdin"],
        b"wrong-pw\n",
    );
    fails(
        &out,
        "login with a wrong password",
        &["401", "unauthorized"],
    );
    let out = d.run_with(
        &["login", SECURE, "-u", "tester", "--password-stdin"],
        b"s3cret-pw\n",
    );
    assert!(
        out.status.success() && text(&out.stdout).contains("Login Succeeded"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = d.ok(&["push", &private], &vm);
    assert!(out.contains("1: digest: sha256:"), "{out}");
    d.ok(&["rmi", &private], &vm);
    d.ok(&["pull", &private], &vm);
    assert_eq!(
        d.ok(&["run", "--rm", &private, "echo", "private-ok"], &vm),
        "private-ok"
    );
    // The same server at an address its certificate does not name: refused.
    let out = d.run(&["pull", &format!("{MISNAMED}/private/busybox:1")]);
    fails(
        &out,
        "pull from a misnamed certificate",
        &["certificate", "tls", "invalid peer"],
    );
    // The pushes and pulls went to the secure registry, as the relay says.
    assert!(secure.log().contains("private/busybox"), "{}", secure.log());

    // The Python docker library: pull, push (its decoded stream), NotFound, login, a pull
    // with the credentials of its login.
    if !python_docker_dir().join("docker").exists() {
        tool_missing(&format!(
            "the Python docker library ({})",
            python_docker_dir().display()
        ));
        return;
    }
    d.ok(
        &["rmi", &format!("{PLAIN}/test/fromdockerd:2"), &private],
        &vm,
    );
    let script = repo_root().join("harness/tests/clients/registry_py.py");
    let out = d
        .client("python3")
        .arg(&script)
        .args([PLAIN, SECURE])
        .env("PYTHONPATH", python_docker_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).trim_end().ends_with("ok"),
        "registry_py.py failed ({}):\n{}{}\nengine log:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        engine_log(&vm)
    );
    eprint!("{}", text(&out.stdout));
}

/// The user engine's log (`/var/log/docker.log`), for failure messages.
fn engine_log(vm: &Vm) -> String {
    vm.ssh("sudo tail -n 60 /var/log/docker.log")
        .map(|o| text(&o.stdout))
        .unwrap_or_default()
}
