//! Console images that are not in the boot image: `debian` (`ros/debian-console:latest`), a
//! Debian 12 built from Debian's packages by `mmdebstrap --variant=minbase` with the packages
//! of [`DEBIAN_PACKAGES`] (the SSH server is the image's own OpenSSH), documentation and
//! translations left out. What makes it a console is not in the image: the OS binds its `ros`
//! in and runs `ros console-start` (os/src/consoled), which adds the `rancher` user, sudo, the
//! keys and the links to our commands at each start.
//!
//! Written as one tar for `system-docker load -i` (and this machine's `docker load`, to push it
//! to a test registry): an OCI layout with Docker's `manifest.json` beside it, one gzip layer.
//! `revision` > 1 adds a small layer (`/etc/ros-console-image` holding the revision) on the
//! same Debian layer: a new image of the same console, as a console image upgrade brings.
//!
//! Cached under `cache_dir()/consoles/`, keyed by [`FORMAT`], the suite, the package list and
//! the revision (the mirror's contents move: delete the cache to take newer packages).

use anyhow::{bail, Context};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Part of the cache key: bump when the way the image is built changes.
pub const FORMAT: &str = "debian-console/v1";
/// The image's name.
pub const DEBIAN_IMAGE: &str = "ros/debian-console:latest";
/// Debian's suite (this machine's).
pub const SUITE: &str = "bookworm";
/// Beyond minbase: the issue's list (the SSH server, sudo, apt, iproute2).
pub const DEBIAN_PACKAGES: &[&str] = &["openssh-server", "sudo", "apt", "iproute2"];

/// `cache_dir()/consoles/`.
pub fn cache_dir() -> PathBuf {
    crate::paths::cache_dir().join("consoles")
}

/// Build (or take from the cache) the Debian console's tar, at `revision` (1: Debian alone).
pub fn debian(revision: u32) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(revision >= 1, "revision {revision}: from 1");
    let key = {
        let mut h = Sha256::new();
        for part in [
            FORMAT,
            SUITE,
            &DEBIAN_PACKAGES.join(","),
            &revision.to_string(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())[..16].to_string()
    };
    let dir = cache_dir();
    let out = dir.join(format!("debian-r{revision}-{key}.tar"));
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join("debian.lock")).context("the consoles' lock")?;
    fs2::FileExt::lock_exclusive(&lock).context("locking the consoles' cache")?;
    if out.exists() {
        return Ok(out);
    }
    let base = base_layer(&dir)?;
    let mut layers = vec![base];
    if revision > 1 {
        layers.push(revision_layer(revision)?);
    }
    let tar = image_tar(&layers, revision)?;
    crate::fsutil::write_atomic(&out, &tar)?;
    eprintln!(
        "[consoles] {DEBIAN_IMAGE} r{revision} → {} ({} bytes)",
        out.display(),
        tar.len()
    );
    Ok(out)
}

/// Debian's root as a gzip tar (cached beside the images): mmdebstrap's own tar, so owners,
/// modes, set-uid bits and hard links are Debian's.
fn base_layer(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut h = Sha256::new();
    h.update(FORMAT);
    h.update(SUITE);
    h.update(DEBIAN_PACKAGES.join(","));
    let gz = dir.join(format!(
        "debian-rootfs-{}.tar.gz",
        &hex::encode(h.finalize())[..16]
    ));
    if let Ok(b) = std::fs::read(&gz) {
        return Ok(b);
    }
    let work = tempfile::tempdir().context("a work directory")?;
    let tar = work.path().join("rootfs.tar");
    eprintln!(
        "[consoles] mmdebstrap --variant=minbase {SUITE} (+{}): about a minute",
        DEBIAN_PACKAGES.join(",")
    );
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--quiet"])
        .arg(format!("--include={}", DEBIAN_PACKAGES.join(",")));
    for p in [
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/locale/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
    ] {
        cmd.arg(format!("--dpkgopt={p}"));
    }
    cmd.arg(SUITE).arg(&tar);
    // Reproducible timestamps where mmdebstrap honours it.
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    let st = cmd
        .status()
        .context("running mmdebstrap (`cargo harness setup` installs it)")?;
    if !st.success() {
        bail!("mmdebstrap {SUITE}: {st}");
    }
    let out = Command::new("gzip")
        .args(["-n", "-6", "-c"])
        .arg(&tar)
        .output()
        .context("gzip")?;
    if !out.status.success() {
        bail!("gzip of {}: {}", tar.display(), out.status);
    }
    crate::fsutil::write_atomic(&gz, &out.stdout)?;
    Ok(out.stdout)
}

/// A gzip tar of `/etc/ros-console-image` holding `revision`.
fn revision_layer(revision: u32) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let data = format!("{revision}\n");
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "etc/ros-console-image", data.as_bytes())
        .context("the revision layer")?;
    let tar = b.into_inner().context("the revision layer")?;
    gzip(&tar)
}

/// gzip by the `gzip` program (the harness has no deflate crate; the base layer uses it too).
fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-n", "-6", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(data)
        .context("gzip's input")?;
    let out = child.wait_with_output().context("gzip")?;
    anyhow::ensure!(out.status.success(), "gzip: {}", out.status);
    Ok(out.stdout)
}

fn sha256(d: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(d)))
}

/// The gunzipped digest of a gzip layer (its `diff_id`).
fn diff_id(gz: &[u8]) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-d", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip -d")?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = gz.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().expect("piped");
    let mut h = Sha256::new();
    std::io::copy(&mut stdout, &mut HashWriter(&mut h)).context("gzip -d's output")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip -d's writer"))?
        .context("gzip -d's input")?;
    anyhow::ensure!(child.wait()?.success(), "gzip -d failed");
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The image tar: OCI layout (`oci-layout`, `index.json`, `blobs/`) and `manifest.json`.
fn image_tar(layers: &[Vec<u8>], revision: u32) -> anyhow::Result<Vec<u8>> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for l in layers {
        let d = sha256(l);
        diff_ids.push(diff_id(l)?);
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d,
            "size": l.len(),
        }));
        blobs.push((d, l.clone()));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": ["/bin/bash"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": { "io.rancher.os.console": "debian", "io.rancher.os.console.revision": revision.to_string() },
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = serde_json::to_vec(&config)?;
    let cdigest = sha256(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cdigest,
            "size": config.len(),
        },
        "layers": descriptors,
    }))?;
    let mdigest = sha256(&manifest);
    let path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": path(&cdigest),
        "RepoTags": [DEBIAN_IMAGE],
        "Layers": blobs.iter().map(|(d, _)| path(d)).collect::<Vec<_>>(),
    }]))?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": DEBIAN_IMAGE },
        }],
    }))?;
    blobs.push((cdigest, config));
    blobs.push((mdigest, manifest));
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], dir: bool| -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(if dir { 0 } else { data.len() as u64 });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        b.append_data(&mut h, name, if dir { &[][..] } else { data })
            .with_context(|| format!("adding {name}"))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, false)?;
    add("index.json", &index, false)?;
    add("manifest.json", &docker_manifest, false)?;
    add("blobs/", &[], true)?;
    add("blobs/sha256/", &[], true)?;
    for (d, data) in &blobs {
        add(&path(d), data, false)?;
    }
    b.into_inner().context("finishing the image tar")
}
