//! `dist/rancheros-os.tar`: the OS itself as an OCI image (`rancheros/os:VERSION`), what
//! `rancherctl os upgrade -i` and `rancherctl install -i` take: one layer holding `vmlinuz`,
//! `initrd.img` and `manifest.json` (`{"version": …}`), exactly what a boot slot holds, and
//! `boot/` with the bootloader pieces an install places (`boot.img`, `core.img`,
//! `bootx64.efi` from `grub-mkimage`, and `grub.cfg`; see `diskimage`). Written with the same
//! machinery as the initrd's images and the test images (an OCI layout with Docker's
//! `manifest.json` beside it), so our engine, this machine's dockerd and a registry push all
//! take it, and every byte of it is named by a digest the upgrade checks.

use crate::images;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The image's repository; the tag is the version.
pub const REPOSITORY: &str = "rancheros/os";

/// Build the OS image of `kernel` + `initrd` named `version` into `out`.
pub fn build(kernel: &Path, initrd: &Path, version: &str, out: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !version.is_empty()
            && version.len() <= 64
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)),
        "version {version:?}: 1 to 64 of [A-Za-z0-9._-+]"
    );
    let work = tempfile::tempdir().context("a work directory")?;
    let tree = work.path().join("slot");
    std::fs::create_dir(&tree).context("mkdir slot")?;
    std::fs::copy(kernel, tree.join("vmlinuz"))
        .with_context(|| format!("copying {}", kernel.display()))?;
    std::fs::copy(initrd, tree.join("initrd.img"))
        .with_context(|| format!("copying {}", initrd.display()))?;
    std::fs::write(
        tree.join("manifest.json"),
        serde_json::to_vec_pretty(&serde_json::json!({ "version": version }))?,
    )
    .context("writing manifest.json")?;
    let boot = tree.join("boot");
    std::fs::create_dir(&boot).context("mkdir boot")?;
    let grub = crate::diskimage::GrubImages::build(work.path())?;
    for (from, name) in [
        (&grub.boot, "boot.img"),
        (&grub.core, "core.img"),
        (&grub.efi, "bootx64.efi"),
    ] {
        std::fs::copy(from, boot.join(name))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    std::fs::write(boot.join("grub.cfg"), crate::diskimage::grub_cfg())
        .context("writing boot/grub.cfg")?;
    // A recipe of one layer: the slot's tree (`+` is not a tag character: `_` instead).
    let tag = version.replace('+', "_");
    let recipe_path = work.path().join("os.yml");
    std::fs::write(
        &recipe_path,
        format!(
            "name: {REPOSITORY}:{tag}\nlayers:\n  - rootfs: {}\nconfig:\n  env: [RANCHEROS_VERSION={version}]\n",
            tree.display()
        ),
    )
    .context("writing the OS image's recipe")?;
    let recipe = images::load_recipe(&recipe_path)?;
    let tar = crate::test_images::image_tar(&recipe).context("building the OS image")?;
    crate::fsutil::write_atomic(out, &tar)?;
    Ok(out.to_path_buf())
}
