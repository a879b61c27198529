//! The initramfs, built from the recipe `initrd/initrd.yml` (data, not code): the os binary as
//! `/init`, files from Debian packages, busybox applet links, the `initrd/rootfs/` tree,
//! directories and device nodes; written as a reproducible newc cpio and compressed.

pub mod compress;
pub mod cpio;
pub mod parsed;

use anyhow::{bail, Context};
use cpio::{Archive, Entry};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use compress::Compression;

/// `initrd/initrd.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub compression: Compression,
    pub os_binary: String,
    #[serde(default)]
    pub os_links: Vec<String>,
    #[serde(default)]
    pub debs: BTreeMap<String, BTreeMap<String, String>>,
    pub busybox: Option<Busybox>,
    pub rootfs: Option<PathBuf>,
    #[serde(default)]
    pub dirs: Vec<String>,
    #[serde(default)]
    pub devices: Vec<Device>,
    /// System images: built from the recipes in `from`, stored at `at` as the system engine's
    /// image store holds them (layers unpacked).
    pub images: Option<Images>,
    /// The system's trust roots: one PEM bundle made from a package's certificates.
    pub ca_bundle: Option<CaBundle>,
    /// YAML files of the initrd that also get a parsed copy, `<path>.json` ([`parsed`]).
    #[serde(default)]
    pub parsed_yaml: Vec<String>,
}

/// `package`'s `*.crt` files under `from`, concatenated in name order into `at` (what Debian's
/// `update-ca-certificates` makes at install time, which unpacking a package does not run).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaBundle {
    pub package: String,
    pub from: String,
    pub at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub from: PathBuf,
    pub at: String,
    /// The layers as one squashfs image in the store (mounted by PID 1) instead of as files
    /// in the initramfs.
    pub squashfs: Option<crate::squashfs::Options>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Busybox {
    pub binary: String,
    #[serde(default)]
    pub skip_applets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub path: String,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Char,
}

impl Recipe {
    pub fn load(path: &Path) -> anyhow::Result<Recipe> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: invalid recipe", path.display()))
    }
}

/// What went into an initrd.
#[derive(Debug, Clone)]
pub struct Built {
    pub cpio_bytes: usize,
    pub entries: usize,
    /// `package=version` of every Debian package used.
    pub packages: Vec<String>,
}

/// Assemble the archive for `recipe`, with `os_bin` as the os binary.
pub fn assemble(recipe: &Recipe, os_bin: &Path) -> anyhow::Result<(Archive, Vec<String>)> {
    let root = crate::paths::repo_root();
    let mut a = Archive::default();
    let mut packages = Vec::new();
    for d in &recipe.dirs {
        a.add(d, Entry::dir_for(d));
    }
    if let Some(rootfs) = &recipe.rootfs {
        add_tree(&mut a, &root.join(rootfs), "/")?;
    }
    add_debs(&mut a, &recipe.debs, &mut packages)?;
    if let Some(ca) = &recipe.ca_bundle {
        add_ca_bundle(&mut a, ca, &mut packages)?;
    }
    if let Some(bb) = &recipe.busybox {
        add_busybox_links(&mut a, bb, &recipe.debs)?;
    }
    if let Some(images) = &recipe.images {
        let recipes = crate::images::load_recipes(&root.join(&images.from))?;
        let (layout, used) = crate::images::build(&recipes)?;
        layout.add_store_to(&mut a, &images.at, images.squashfs.as_ref())?;
        for p in used {
            if !packages.contains(&p) {
                packages.push(p);
            }
        }
    }
    for path in &recipe.parsed_yaml {
        let Some((_, text)) = a.file(path) else {
            bail!("parsed_yaml: {path} is not a file of the initrd");
        };
        let copy = parsed::copy_of(path, text)?;
        a.add(
            &format!("{path}.json"),
            Entry::File {
                mode: 0o644,
                data: copy,
            },
        );
    }
    a.add(&recipe.os_binary, file_entry(os_bin)?);
    for l in &recipe.os_links {
        a.add(
            l,
            Entry::Symlink {
                target: recipe.os_binary.clone(),
            },
        );
    }
    for d in &recipe.devices {
        match d.kind {
            DeviceKind::Char => a.add(
                &d.path,
                Entry::Char {
                    mode: d.mode,
                    major: d.major,
                    minor: d.minor,
                },
            ),
        }
    }
    Ok((a, packages))
}

/// Every Debian package the recipe (and its images) uses, by name.
pub fn package_names(recipe: &Recipe) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = recipe.debs.keys().cloned().collect();
    names.extend(recipe.ca_bundle.iter().map(|c| c.package.clone()));
    if let Some(images) = &recipe.images {
        let dir = crate::paths::repo_root().join(&images.from);
        for r in crate::images::load_recipes(&dir)? {
            for l in &r.layers {
                names.extend(l.debs.keys().cloned());
                names.extend(l.libs.iter().cloned());
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Debian package files: `<package>: { <path in package>: <path in archive> }`.
pub type Debs = BTreeMap<String, BTreeMap<String, String>>;

/// Add files from Debian packages; record `package=version` in `packages`.
pub fn add_debs(a: &mut Archive, debs: &Debs, packages: &mut Vec<String>) -> anyhow::Result<()> {
    for (pkg, files) in debs {
        let unpacked = crate::debs::unpacked(pkg)?;
        let id = format!("{pkg}={}", unpacked.version);
        if !packages.contains(&id) {
            packages.push(id);
        }
        for (from, to) in files {
            let src = unpacked.root.join(from.trim_start_matches('/'));
            a.add(to, file_entry(&src)?);
        }
    }
    Ok(())
}

/// Make the trust-root bundle (see [`CaBundle`]); record `package=version` in `packages`.
pub fn add_ca_bundle(
    a: &mut Archive,
    ca: &CaBundle,
    packages: &mut Vec<String>,
) -> anyhow::Result<()> {
    let unpacked = crate::debs::unpacked(&ca.package)?;
    let id = format!("{}={}", ca.package, unpacked.version);
    if !packages.contains(&id) {
        packages.push(id);
    }
    let dir = unpacked.root.join(ca.from.trim_start_matches('/'));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no .crt files in {}", dir.display());
    let mut data = Vec::new();
    for f in &files {
        let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        anyhow::ensure!(
            pem.starts_with(b"-----BEGIN CERTIFICATE-----"),
            "{} is not a PEM certificate",
            f.display()
        );
        data.extend_from_slice(&pem);
        if !pem.ends_with(b"\n") {
            data.push(b'\n');
        }
    }
    a.add(&ca.at, Entry::File { mode: 0o644, data });
    Ok(())
}

/// Link every applet of the busybox binary (which must come from `debs`) to it.
pub fn add_busybox_links(a: &mut Archive, bb: &Busybox, debs: &Debs) -> anyhow::Result<()> {
    let (pkg, from) = debs
        .iter()
        .find_map(|(pkg, files)| {
            files
                .iter()
                .find(|(_, to)| **to == bb.binary)
                .map(|(from, _)| (pkg, from))
        })
        .with_context(|| {
            format!(
                "busybox binary {} must come from a Debian package (debs:)",
                bb.binary
            )
        })?;
    let bin = crate::debs::unpacked(pkg)?
        .root
        .join(from.trim_start_matches('/'));
    for applet in busybox_applets(&bin)? {
        let name = applet.rsplit('/').next().unwrap_or(&applet);
        if bb.skip_applets.iter().any(|s| s == name) || a.contains(&applet) {
            continue;
        }
        a.add(
            &applet,
            Entry::Symlink {
                target: bb.binary.clone(),
            },
        );
    }
    Ok(())
}

/// Build `out` (compressed) from the recipe.
pub fn build(recipe: &Recipe, os_bin: &Path, out: &Path) -> anyhow::Result<Built> {
    let (archive, packages) = assemble(recipe, os_bin)?;
    let mut raw = Vec::new();
    archive.write_to(&mut raw).context("writing cpio")?;
    // Compressing is most of a build (xz, minutes in a debug harness): every test process
    // builds, so an output made from the same archive the same way is kept.
    let stamp = stamp_path(out);
    let key = stamp_key(recipe.compression, &raw);
    let fresh = std::fs::read_to_string(&stamp).ok() == Some(format!("{key} {}", output_id(out)));
    if !fresh {
        let packed = compress::compress(recipe.compression, &raw)?;
        crate::fsutil::write_atomic(out, &packed)?;
        crate::fsutil::write_atomic(&stamp, format!("{key} {}", output_id(out)).as_bytes())?;
    }
    Ok(Built {
        cpio_bytes: raw.len(),
        entries: archive.len(),
        packages,
    })
}

/// Beside `out`: what it was made from (`.initrd.img.built`).
fn stamp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.built"))
}

/// The archive's digest and the compression: the same key, the same output.
fn stamp_key(c: compress::Compression, raw: &[u8]) -> String {
    use sha2::Digest;
    format!("{} {}", c, hex::encode(sha2::Sha256::digest(raw)))
}

/// The output as it is now (its size and modification time): a file changed by anything else
/// after the stamp was written does not match it.
fn output_id(out: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(out) {
        Ok(m) => format!("{} {}.{}", m.len(), m.mtime(), m.mtime_nsec()),
        Err(_) => "missing".into(),
    }
}

/// `busybox --list-full`: `bin/sh`, `sbin/poweroff`, … as absolute paths.
fn busybox_applets(bin: &Path) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(bin)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", bin.display()))?;
    if !out.status.success() {
        bail!("{} --list-full failed", bin.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| format!("/{}", l.trim()))
        .collect())
}

fn file_entry(src: &Path) -> anyhow::Result<Entry> {
    let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let mode = std::fs::metadata(src)?.permissions().mode() & 0o7777;
    Ok(Entry::File { mode, data })
}

/// Add a host directory tree under `at`.
pub fn add_tree(a: &mut Archive, dir: &Path, at: &str) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = format!(
            "{}/{}",
            at.trim_end_matches('/'),
            e.file_name().to_string_lossy()
        );
        let ft = e.file_type()?;
        if ft.is_dir() {
            a.add(&name, Entry::Dir { mode: 0o755 });
            add_tree(a, &path, &name)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?.to_string_lossy().into_owned();
            a.add(&name, Entry::Symlink { target });
        } else {
            a.add(&name, file_entry(&path)?);
        }
    }
    Ok(())
}
