//! The versions a scenario names, built once per run: the built kernel and initrd (`good`), or
//! a bad variant of them (no init; an init that exits; an init that hangs; a required service
//! that keeps failing),
//! each as a slot for disk images and as an OS image tar for `rancherctl os upgrade -i`.

use super::{Scenario, Variant};
use crate::diskimage::Slot;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The versions' kernels, initrds and OS image tars, built once per run under `dir`.
pub(super) struct Built {
    pub(super) slots: BTreeMap<String, Slot>,
    pub(super) images: BTreeMap<String, PathBuf>,
}

pub(super) fn build_versions(s: &Scenario, dir: &Path) -> anyhow::Result<Built> {
    let img = crate::image::ensure_built()?;
    let mut built = Built {
        slots: BTreeMap::new(),
        images: BTreeMap::new(),
    };
    for (name, variant) in &s.versions {
        // A bad variant's initrd is made only when the scenario names it.
        let bad = |bytes: Vec<u8>| -> anyhow::Result<PathBuf> {
            let path = dir.join(format!("initrd-{name}.img"));
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let initrd = match variant {
            Variant::Good => img.initrd.clone(),
            Variant::NoInit => {
                let mut cpio = Vec::new();
                crate::initrd::cpio::Archive::default().write_to(&mut cpio)?;
                bad(cpio)?
            }
            Variant::InitPanics => bad(init_exits(&img.initrd)?)?,
            Variant::InitHangs => bad(init_hangs(&img.initrd)?)?,
            Variant::ServiceFails => bad(service_fails(&img.initrd)?)?,
        };
        let tar = crate::osimage::build(
            &img.kernel,
            &initrd,
            name,
            &dir.join(format!("os-{name}.tar")),
        )?;
        built.images.insert(name.clone(), tar);
        built.slots.insert(
            name.clone(),
            Slot {
                kernel: img.kernel.clone(),
                initrd,
                version: name.clone(),
            },
        );
    }
    Ok(built)
}

/// `initrd` followed by a second archive holding `files` (path, mode, bytes): the kernel
/// unpacks concatenated archives in order, a later file replacing an earlier one. The first is
/// padded with zeros to a 512-byte boundary, which the kernel skips between archives.
fn overlay(initrd: &Path, files: &[(&str, u32, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut out = std::fs::read(initrd).with_context(|| format!("reading {}", initrd.display()))?;
    out.resize(out.len().div_ceil(512) * 512, 0);
    let mut archive = crate::initrd::cpio::Archive::default();
    for (path, mode, data) in files {
        archive.add(
            path,
            crate::initrd::cpio::Entry::File {
                mode: *mode,
                data: data.clone(),
            },
        );
    }
    archive.write_to(&mut out)?;
    Ok(out)
}

/// [`Variant::InitPanics`]: `/init` a script that exits 1 (the kernel then panics).
fn init_exits(initrd: &Path) -> anyhow::Result<Vec<u8>> {
    let init = "#!/bin/busybox sh\necho 'init: exiting on purpose (scenario)'\nexit 1\n";
    overlay(initrd, &[("/init", 0o755, init.as_bytes().to_vec())])
}

/// [`Variant::InitHangs`]: `/init` a shell loop.
fn init_hangs(initrd: &Path) -> anyhow::Result<Vec<u8>> {
    let init = "#!/bin/busybox sh\necho 'init: hanging on purpose (scenario)'\nwhile :; do /bin/busybox sleep 3600; done\n";
    overlay(initrd, &[("/init", 0o755, init.as_bytes().to_vec())])
}

/// [`Variant::ServiceFails`]: the built-in configuration with acpid's command replaced.
fn service_fails(initrd: &Path) -> anyhow::Result<Vec<u8>> {
    const CONFIG: &str = "usr/share/ros/os-config.yml";
    let path = crate::paths::repo_root().join("initrd/rootfs").join(CONFIG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let good = "command: acpid -d\n";
    if text.matches(good).count() != 1 {
        bail!("{}: expected one {good:?} to break", path.display());
    }
    let bad = text.replace(
        good,
        "command: sh -c 'echo acpid fails on purpose; exit 3'\n",
    );
    overlay(initrd, &[(&format!("/{CONFIG}"), 0o644, bad.into_bytes())])
}
