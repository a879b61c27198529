//! The system images the harness builds from Debian packages are valid images: the reference
//! engine (the host's Docker Engine) loads the very layout that goes into the initrd and runs it.
//! Where no Docker Engine answers it is skipped with a note, and fails under `CI=true`.

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
        harness::setup::tool_missing("a Docker Engine answering `docker version`");
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

    // `ros/busybox:latest` is a name user_docker.rs gives the reference engine too.
    let _reference = harness::reference::lock().unwrap();
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

/// The layers kept in their own files are stored once however many images use them: the glibc
/// layer is the same blob in ros/e2fsprogs and ros/console, the busybox layer the same blob in
/// ros/busybox and ros/console; and every library the console's programs need is in its image.
#[test]
fn shared_layers_are_one_blob_and_dynamic_programs_have_their_libraries() {
    let root = harness::paths::repo_root();
    let recipes = harness::images::load_recipes(&root.join("initrd/images")).unwrap();
    let (layout, _) = harness::images::build(&recipes).unwrap();
    let layers_of = |name: &str| -> Vec<String> {
        let m = layout
            .docker_manifest
            .iter()
            .find(|m| m["RepoTags"][0] == name)
            .unwrap_or_else(|| panic!("no image {name}"));
        m["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let (busybox, e2fs, console) = (
        layers_of("ros/busybox:latest"),
        layers_of("ros/e2fsprogs:latest"),
        layers_of("ros/console:latest"),
    );
    assert_eq!(console[0], busybox[0], "busybox layer shared");
    assert_eq!(console[1], e2fs[0], "glibc layer shared");
    let layer_blobs = layout
        .blobs
        .values()
        .filter(|b| b.len() > 512 && tar_names(b).is_some())
        .count();
    assert_eq!(layer_blobs, 4, "busybox, glibc, e2fsprogs, console layers");

    // Every DT_NEEDED of every ELF file of the console image is a file in one of its layers.
    let mut files = std::collections::BTreeMap::new();
    for l in &console {
        let hex = l.rsplit('/').next().unwrap();
        let blob = &layout.blobs[&format!("sha256:{hex}")];
        let mut ar = tar::Archive::new(blob.as_slice());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.insert(name, data);
        }
    }
    let names: std::collections::BTreeSet<&str> = files
        .keys()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    for (path, data) in &files {
        if !harness::images::elf::is_elf(data) {
            continue;
        }
        for lib in harness::images::elf::needed(data).unwrap() {
            assert!(names.contains(lib.as_str()), "{path} needs {lib}");
        }
    }
    for must in [
        "usr/sbin/dropbear",
        "usr/bin/sudo",
        "lib/x86_64-linux-gnu/security/pam_permit.so",
    ] {
        assert!(files.contains_key(must), "{must}");
    }
}

/// The entry names of a tar, or None when `b` is not one.
fn tar_names(b: &[u8]) -> Option<Vec<String>> {
    let mut ar = tar::Archive::new(b);
    let names: Vec<String> = ar
        .entries()
        .ok()?
        .filter_map(|e| e.ok()?.path().ok().map(|p| p.display().to_string()))
        .collect();
    (!names.is_empty()).then_some(names)
}
