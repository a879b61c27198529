//! Debian packages as a source of userland for the images: `apt-get download` the version locked
//! in `initrd/packages.lock` into the cache and unpack it with `dpkg-deb -x`. Each unpacked
//! package is kept under `cache/debs/<package>_<version>/`, so a rebuild neither downloads nor
//! unpacks again. The lock makes a build reproducible; when Debian's candidate moves on, the
//! build says so (drift) and `cargo harness lock` moves the lock.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// An unpacked package.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub package: String,
    pub version: String,
    pub root: PathBuf,
}

/// The version `apt-get download` would fetch.
pub fn candidate_version(package: &str) -> anyhow::Result<String> {
    let out = Command::new("apt-cache")
        .args(["policy", package])
        .output()
        .context("running apt-cache (is this a Debian host?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cand = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| *v != "(none)");
    match cand {
        Some(v) => Ok(v.to_string()),
        None => bail!(
            "Debian package {package} has no candidate version: run `apt-get update` (as root) first"
        ),
    }
}

/// The installed version of `package` on this host, or None when it is not installed.
/// Err only when `dpkg-query` itself cannot run.
pub fn installed_version(package: &str) -> std::io::Result<Option<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status} ${Version}", package])
        .stderr(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .strip_prefix("installed ")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from))
}

/// Where the lock lives.
pub fn lock_path() -> PathBuf {
    crate::paths::repo_root().join("initrd/packages.lock")
}

/// `initrd/packages.lock`: `package=version` lines (`#` comments).
pub fn read_lock() -> anyhow::Result<BTreeMap<String, String>> {
    let path = lock_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut lock = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (p, v) = line
            .split_once('=')
            .with_context(|| format!("{}:{}: expected package=version", path.display(), i + 1))?;
        lock.insert(p.trim().to_string(), v.trim().to_string());
    }
    Ok(lock)
}

/// Write the lock for `packages` at their current candidate versions.
pub fn write_lock(packages: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut lock = BTreeMap::new();
    for p in packages {
        lock.insert(p.clone(), candidate_version(p)?);
    }
    let mut text = String::from(
        "# Debian package versions the images are built from (`cargo harness lock` refreshes).\n",
    );
    for (p, v) in &lock {
        text.push_str(&format!("{p}={v}\n"));
    }
    crate::fsutil::write_atomic(&lock_path(), text.as_bytes())?;
    Ok(lock)
}

/// The version to build `package` from: the locked one, else the candidate (with a note).
fn locked_version(package: &str) -> anyhow::Result<String> {
    let lock = read_lock()?;
    let candidate = candidate_version(package).ok();
    match (lock.get(package), candidate) {
        (Some(locked), Some(c)) if *locked != c => {
            eprintln!(
                "[debs] drift: {package} is locked at {locked}, Debian now has {c} (`cargo harness lock` moves the lock)"
            );
            Ok(locked.clone())
        }
        (Some(locked), _) => Ok(locked.clone()),
        (None, Some(c)) => {
            eprintln!(
                "[debs] {package} is not in {}: using {c} (`cargo harness lock` records it)",
                lock_path().display()
            );
            Ok(c)
        }
        (None, None) => candidate_version(package),
    }
}

/// Fetch and unpack `package` at its locked version (cached).
pub fn unpacked(package: &str) -> anyhow::Result<Unpacked> {
    let version = locked_version(package)?;
    let dir = crate::paths::cache_dir().join("debs");
    let safe_version = version.replace(':', "%3a");
    let root = dir.join(format!("{package}_{safe_version}"));
    if root.join(".unpacked").exists() {
        return Ok(Unpacked {
            package: package.into(),
            version,
            root,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    eprintln!("[debs] apt-get download {package}={version}");
    let dl = tempfile::tempdir_in(&dir).context("temp dir for apt-get download")?;
    let status = Command::new("apt-get")
        .args([
            "download",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            &format!("{package}={version}"),
        ])
        .current_dir(dl.path())
        .status()
        .context("running apt-get download")?;
    if !status.success() {
        bail!(
            "apt-get download {package}={version} failed ({status}); if Debian no longer has that \
             version, run `cargo harness lock` to move {}",
            lock_path().display()
        );
    }
    let deb = std::fs::read_dir(dl.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let tmp_root = dl.path().join("root");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tmp_root)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    std::fs::write(tmp_root.join(".unpacked"), format!("{package} {version}\n"))?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&tmp_root, &root).with_context(|| format!("rename into {}", root.display()))?;
    Ok(Unpacked {
        package: package.into(),
        version,
        root,
    })
}
