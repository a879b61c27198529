//! User Docker with the other real clients, from this machine over SSH: the Python
//! `docker` library 7.x (`tests/clients/docker_py.py`, installed into the cache by `harness
//! setup`) and Debian's `docker-compose` (1.29) bringing a one-service project up and down
//! (`tests/clients/compose/`). Both shell out to `ssh` as the docker CLI does, through the
//! same wrapper (`harness::docker_cli`).

use harness::docker_cli::{boot, text, until};
use harness::paths::repo_root;
use harness::setup::{python_docker_dir, tool_missing};
use std::time::Duration;

#[test]
fn the_python_docker_library_and_docker_compose_drive_the_user_engine() {
    if !python_docker_dir().join("docker").exists() {
        tool_missing(&format!(
            "the Python docker library ({})",
            python_docker_dir().display()
        ));
        return;
    }
    if std::process::Command::new("docker-compose")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        tool_missing("docker-compose");
        return;
    }
    let (vm, d) = boot("user_docker_clients");

    // The Python library: its own checks, printed one a line.
    let script = repo_root().join("harness/tests/clients/docker_py.py");
    let out = d
        .client("python3")
        .arg(&script)
        .env("PYTHONPATH", python_docker_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).trim_end().ends_with("ok"),
        "docker_py.py failed ({}):\n{}{}\nserial log: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        vm.log_path().display()
    );

    // docker-compose: up, ps, logs, exec, down.
    let project = repo_root().join("harness/tests/clients/compose");
    let compose = |args: &[&str]| {
        let out = d
            .client("docker-compose")
            .args(["--ansi", "never", "-p", "rosproj"])
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
    let ps = d.ok(
        &[
            "ps",
            "--filter",
            "label=com.docker.compose.project=rosproj",
            "--format",
            "{{.Names}} {{.Label \"com.docker.compose.service\"}} {{.Label \"suite\"}}",
        ],
        &vm,
    );
    assert_eq!(ps, "rosproj_web_1 web compose", "{ps}");
    assert_eq!(
        d.inspect("{{.HostConfig.RestartPolicy.Name}}", "rosproj_web_1", &vm),
        "unless-stopped"
    );
    let listed = compose(&["ps"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("rosproj_web_1") && l.contains("Up")),
        "{listed}"
    );
    until(
        "compose logs show the greeting",
        Duration::from_secs(30),
        || compose(&["logs", "web"]).contains("compose-up hello"),
    );
    let said = compose(&["exec", "-T", "web", "sh", "-c", "echo in-$GREETING"]);
    assert!(said.contains("in-hello"), "{said}");
    // A second `up` finds the project running and leaves it be.
    let again = compose(&["up", "-d"]);
    assert!(again.contains("is up-to-date"), "{again}");
    compose(&["down"]);
    assert_eq!(d.ok(&["ps", "-aq"], &vm), "");
}
