//! The user engine's remote API over mutual TLS (`rancher.docker.tls=true`, as RancherOS had
//! it): this machine's docker CLI talks to the VM's engine on TCP 2376 (forwarded, so the VM is
//! 127.0.0.1: the server certificate names it) with the client bundle the engine made at its
//! first start; a client without a certificate is refused; `rancherctl tls gen` makes a new
//! set, in force once the engine restarts, and the old bundle is then refused.

use harness::docker_cli::{boot_with, text, until};
use harness::vm::Vm;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BUNDLE: &str = "/var/lib/docker/tls/client";

/// The client bundle, copied out of the VM (the key is root's: sudo) into `dir`.
fn fetch_bundle(vm: &Vm, dir: &Path) {
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        let pem = vm.ssh_ok(&format!("sudo cat {BUNDLE}/{f}")).unwrap();
        assert!(pem.starts_with("-----BEGIN "), "{f}: {pem}");
        std::fs::write(dir.join(f), format!("{pem}\n")).unwrap();
    }
}

/// This machine's docker CLI on tcp://127.0.0.1:PORT with `tls` (its TLS flags), never this
/// machine's own engine or context.
fn docker(port: u16, config: &Path, tls: &[String], args: &[&str]) -> Output {
    Command::new("docker")
        .args(tls)
        .args(["-H", &format!("tcp://127.0.0.1:{port}")])
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("docker runs")
}

/// `--tlsverify` with the whole bundle in `dir`.
fn verified(dir: &Path) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    vec![
        "--tlsverify".into(),
        "--tlscacert".into(),
        p("ca.pem"),
        "--tlscert".into(),
        p("cert.pem"),
        "--tlskey".into(),
        p("key.pem"),
    ]
}

fn ok(out: &Output, what: &str, vm: &Vm) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}\nserial log: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        vm.log_path().display()
    );
    text(&out.stdout).trim().to_string()
}

#[test]
fn the_docker_cli_drives_the_user_engine_over_mutual_tls() {
    let (vm, d) = boot_with("user_docker_tls", |o| {
        o.forward(2376).cmdline("rancher.docker.tls=true")
    });
    let port = vm.port(2376).expect("2376 forwarded");
    let config = d.config.path();
    let bundle = tempfile::tempdir().unwrap();
    fetch_bundle(&vm, bundle.path());
    let tls = verified(bundle.path());

    let version = docker(
        port,
        config,
        &tls,
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    let api = ok(&version, "docker version over TLS", &vm);
    assert!(api.starts_with("1."), "{api}");

    // Attach (an upgraded connection) over TLS too.
    let run = docker(
        port,
        config,
        &tls,
        &["run", "--rm", "ros/busybox", "echo", "over-tls"],
    );
    assert_eq!(ok(&run, "docker run over TLS", &vm), "over-tls");

    // Only the CA: the server is verified, but the client has nothing to show.
    let ca_only = vec![
        "--tls".to_string(),
        "--tlscacert".into(),
        bundle.path().join("ca.pem").display().to_string(),
    ];
    let refused = docker(port, config, &ca_only, &["version"]);
    assert!(
        !refused.status.success(),
        "a client without a certificate was served:\n{}",
        text(&refused.stdout)
    );
    let why = text(&refused.stderr).to_lowercase();
    assert!(why.contains("tls") || why.contains("certificate"), "{why}");

    // A new set: in force after the engine restarts; the old bundle is then refused.
    let gen = vm
        .ssh_ok("sudo rancherctl tls gen --server-name ros-tls.example")
        .unwrap();
    assert!(gen.contains(BUNDLE), "{gen}");
    assert!(gen.contains("ros-tls.example"), "{gen}");
    vm.ssh_ok("sudo system-docker restart docker").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    fetch_bundle(&vm, fresh.path());
    let new_tls = verified(fresh.path());
    until(
        "the engine answers with the new set",
        Duration::from_secs(90),
        || {
            docker(port, config, &new_tls, &["version"])
                .status
                .success()
        },
    );
    let old = docker(port, config, &tls, &["version"]);
    assert!(
        !old.status.success(),
        "the old bundle is still served:\n{}",
        text(&old.stdout)
    );
}
