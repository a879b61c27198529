//! Host set-up: the Debian packages the harness needs to build and boot the OS. Run as root it
//! installs what is missing (`apt-get install`); otherwise it prints the exact command.
//!
//! QEMU needs care: `qemu-system-x86` and `qemu-utils` must come at the same version, or apt
//! removes a newer `qemu-img` that the machine may carry; both are installed together, pinned to
//! `qemu-system-x86`'s candidate version.

use anyhow::{bail, Context};
use std::process::Command;

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Packages needed to build the kernel and the initrd.
const BUILD_PACKAGES: &[&str] = &[
    "make",
    "gcc",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    "xz-utils",
    "cpio",
    "dpkg-dev",
    // The Debian console image (src/consoles.rs): a minbase Debian from Debian's packages.
    "mmdebstrap",
    // mksquashfs: the system layers' read-only image in the initrd (src/squashfs.rs).
    "squashfs-tools",
    // libcontainer's seccomp links libseccomp.a into the static `ros` (.cargo/config.toml).
    "libseccomp-dev",
    // Datasource seed disks for the cloud-init tests (harness/src/seed.rs).
    "genisoimage",
    "dosfstools",
    "mtools",
    // grub-mkrescue's ISO writer (dist/rancheros.iso).
    "xorriso",
    // The disk image (src/diskimage.rs): the GPT, GRUB's BIOS stages and grub-mkimage.
    "gdisk",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    // Tests: UEFI firmware for QEMU (the disk image under OVMF).
    "ovmf",
    // Tests: ssh/ssh-keygen/ssh-keyscan into VMs, e2fsck on their state disks.
    "openssh-client",
    "e2fsprogs",
    // Tests: the reference Docker Engine and a docker CLI (tests/images.rs, the API's CLI test).
    "docker.io",
    // Tests: `docker-compose up` against the user engine (tests/user_docker_clients.rs).
    "docker-compose",
    // Tests: the registry the user engine pulls from and pushes to (src/registry.rs).
    "docker-registry",
    // Debian's python3-docker imports paramiko for ssh:// even when it shells out to ssh.
    "python3-paramiko",
    // Tests: the web UI (`ros ui`) driven in a real browser, headless, over WebDriver
    // (tests/ui.rs).
    "chromium",
    "chromium-driver",
];

/// The Python `docker` library the client test drives the user engine with (the issue's
/// target: 7.x from PyPI), installed into the cache, not into the machine's Python. `[ssh]`:
/// its ssh:// adapter imports paramiko even when it shells out to `ssh`.
pub const PYTHON_DOCKER: &str = "docker[ssh]==7.1.0";

/// Where [`PYTHON_DOCKER`] is installed (a `PYTHONPATH` entry).
pub fn python_docker_dir() -> std::path::PathBuf {
    crate::paths::cache_dir()
        .join("python")
        .join(PYTHON_DOCKER.replace("[ssh]==", "-ssh-"))
}

/// Install [`PYTHON_DOCKER`] (and what it needs) with pip into [`python_docker_dir`] unless
/// it is there. Written to a temporary directory and renamed, so a broken install is never
/// taken for a finished one.
pub fn ensure_python_docker() -> anyhow::Result<()> {
    let dir = python_docker_dir();
    if dir.join("docker").join("__init__.py").exists() {
        return Ok(());
    }
    let parent = dir.parent().context("python dir has a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("[setup] pip install {PYTHON_DOCKER}");
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&tmp)
        .arg(PYTHON_DOCKER))?;
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    Ok(())
}

/// For a test that needs a tool `harness setup` installs: outside CI a missing tool skips the
/// test with a note (a developer's machine may lack it); under `CI=true` it is a failure, so a
/// test that cannot run never passes.
pub fn tool_missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing under CI=true: `cargo harness setup` installs it");
    }
    eprintln!("note: {what} is missing here; skipped (CI fails instead)");
}

/// Installed version of each package (None when not installed).
fn installed(pkgs: &[String]) -> Vec<(String, Option<String>)> {
    pkgs.iter()
        .map(|p| {
            let name = p.split('=').next().unwrap_or(p);
            let v = crate::debs::installed_version(name).ok().flatten();
            (p.clone(), v)
        })
        .collect()
}

fn candidate(pkg: &str) -> Option<String> {
    crate::debs::candidate_version(pkg).ok()
}

/// What is missing, as `apt-get install` arguments (`name` or `name=version`).
fn missing() -> anyhow::Result<Vec<String>> {
    let mut want: Vec<String> = BUILD_PACKAGES.iter().map(|s| s.to_string()).collect();
    let pin = crate::kernel::read_pin()?;
    want.push(format!("{}={}", pin.package, pin.version));
    let mut miss = Vec::new();
    for (p, v) in installed(&want) {
        match (p.split_once('='), v) {
            (_, None) => miss.push(p),
            (Some((_, pinned)), Some(v)) if v != pinned => miss.push(p),
            _ => {}
        }
    }
    if installed(&["qemu-system-x86".into()])[0].1.is_none() {
        match candidate("qemu-system-x86") {
            Some(v) => {
                miss.push(format!("qemu-system-x86={v}"));
                miss.push(format!("qemu-utils={v}"));
            }
            None => miss.push("qemu-system-x86".into()),
        }
    }
    Ok(miss)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Make sure the host can build and boot the OS.
pub fn ensure_host() -> anyhow::Result<()> {
    let mut miss = missing()?;
    let needs_lists = candidate("busybox-static").is_none();
    if miss.is_empty() && !needs_lists {
        return ensure_python_docker();
    }
    if !is_root() {
        let mut msg = String::from("missing host packages; run as root:\n");
        if needs_lists || !miss.is_empty() {
            msg.push_str("  apt-get update\n");
        }
        if !miss.is_empty() {
            msg.push_str(&format!(
                "  apt-get install -y --allow-downgrades --no-install-recommends {}\n",
                miss.join(" ")
            ));
        }
        bail!(msg);
    }
    eprintln!("[setup] apt-get update");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    miss = missing()?;
    if !miss.is_empty() {
        eprintln!("[setup] apt-get install {}", miss.join(" "));
        run(Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--allow-downgrades",
                "--no-install-recommends",
            ])
            .args(&miss)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let still = missing()?;
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    ensure_python_docker()
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}
