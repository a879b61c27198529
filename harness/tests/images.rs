//! The system images the harness builds from Debian packages are valid images: the reference
//! engine (the host's Docker Engine) loads the very layout that goes into the initrd and runs it.
//! Skipped, with a note, where no Docker Engine answers.

use std::process::Command;

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn docker_loads_and_runs_the_initrd_image_layout() {
    if !docker_answers() {
        eprintln!("note: no Docker Engine answers here; skipping the reference-engine check");
        return;
    }
    let root = harness::paths::repo_root();
    let recipes = harness::images::load_recipes(&root.join("initrd/images")).unwrap();
    let (layout, packages) = harness::images::build(&recipes).unwrap();
    assert!(
        packages.iter().any(|p| p.starts_with("busybox-static=")),
        "{packages:?}"
    );
    let mut a = harness::initrd::cpio::Archive::default();
    layout.add_to(&mut a, "/layout");
    // The layout as a tar, with its files at the top (as `docker save` writes it).
    let mut top = harness::initrd::cpio::Archive::default();
    for (path, entry) in a.iter() {
        if let Some(rest) = path.strip_prefix("/layout/") {
            top.add(rest, entry.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("layout.tar");
    std::fs::write(&tar, harness::images::to_tar(&top).unwrap()).unwrap();

    let out = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&tar)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "ros/busybox:latest"])
        .args(["sh", "-c", "echo ok $(id -u) $(ls /bin | wc -l)"])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["rmi", "ros/busybox:latest"])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words[..2], ["ok", "0"], "{stdout}");
    let applets: usize = words[2].parse().unwrap();
    assert!(applets > 50, "busybox applets linked in /bin: {applets}");
}
