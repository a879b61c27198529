//! Debian packages as a source of userland for the images: `apt-get download` the candidate
//! version into the cache and unpack it with `dpkg-deb -x`. Each unpacked package is kept under
//! `cache/debs/<package>_<version>/`, so a rebuild neither downloads nor unpacks again.

use anyhow::{bail, Context};
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

/// Fetch and unpack `package` (cached).
pub fn unpacked(package: &str) -> anyhow::Result<Unpacked> {
    let version = candidate_version(package)?;
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
        bail!("apt-get download {package}={version} failed ({status})");
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
