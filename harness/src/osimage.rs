//! `dist/rancheros-os.tar`: the OS itself as an OCI image (`rancheros/os:VERSION`), what
//! `rancherctl os upgrade -i` and `rancherctl install -i` take: one layer holding `vmlinuz`,
//! `initrd.img` and `manifest.json` (`{"version": …}`), exactly what a boot slot holds, and
//! `boot/` with the bootloader pieces an install places (`boot.img`, `core.img`,
//! `bootx64.efi` from `grub-mkimage`, and `grub.cfg`; see `diskimage`). Written with the same
//! machinery as the initrd's images and the test images (an OCI layout with Docker's
//! `manifest.json` beside it), so our engine, this machine's dockerd and a registry push all
//! take it, and every byte of it is named by a digest the upgrade checks (the layer is a plain
//! tar, so its config's `rootfs.diff_ids` is its blob's digest).
//!
//! `harness build --version V` (repeatable) names the versions one build makes, so one run
//! gives an upgrade's v1, v2 and v3: the same kernel and initrd, each tar with its own
//! `manifest.json` ([`planned`]).

use crate::images;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The image's repository; the tag is the version.
pub const REPOSITORY: &str = "rancheros/os";

/// The longest version: `bootstate::osimage` in the os crate reads no longer one.
const MAX_VERSION: usize = 64;

/// A `--version` of `harness build`: what an image tag takes (`[A-Za-z0-9_][A-Za-z0-9_.-]*`,
/// here at most 64), so it names the image as it is and a file in `dist/`.
pub fn parse_version(v: &str) -> anyhow::Result<String> {
    let ok = (1..=MAX_VERSION).contains(&v.len())
        && v.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    anyhow::ensure!(
        ok,
        "version {v:?}: an image tag wanted (1 to {MAX_VERSION} of [A-Za-z0-9_.-], not \
         starting with . or -)"
    );
    Ok(v.to_string())
}

/// What one `harness build` makes of its `--version`s: each version and the name of its OS
/// image tar in `dist/`, the one the disk image and the ISO carry first. None: the version
/// [`crate::diskimage::version`] names (`RANCHEROS_VERSION`, else the workspace's) as
/// `rancheros-os.tar`; one: it, as `rancheros-os.tar`; several: each as `rancheros-os-V.tar`.
pub fn planned(versions: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    if versions.is_empty() {
        return Ok(vec![(
            crate::diskimage::version(),
            "rancheros-os.tar".into(),
        )]);
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for v in versions {
        let v = parse_version(v)?;
        anyhow::ensure!(
            out.iter().all(|(seen, _)| *seen != v),
            "version {v:?} is given twice"
        );
        let name = if versions.len() == 1 {
            "rancheros-os.tar".to_string()
        } else {
            format!("rancheros-os-{v}.tar")
        };
        out.push((v, name));
    }
    Ok(out)
}

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
    let tar = image_tar(&tree, version, work.path())?;
    crate::fsutil::write_atomic(out, &tar)?;
    Ok(out.to_path_buf())
}

/// The image tar of the slot's `tree`, tagged `version`, its recipe written in `work`.
fn image_tar(tree: &Path, version: &str, work: &Path) -> anyhow::Result<Vec<u8>> {
    // A recipe of one layer: the slot's tree (`+` is not a tag character: `_` instead).
    let tag = version.replace('+', "_");
    let recipe_path = work.join("os.yml");
    std::fs::write(
        &recipe_path,
        format!(
            "name: {REPOSITORY}:{tag}\nlayers:\n  - rootfs: {}\nconfig:\n  env: [RANCHEROS_VERSION={version}]\n",
            tree.display()
        ),
    )
    .context("writing the OS image's recipe")?;
    let recipe = images::load_recipe(&recipe_path)?;
    crate::test_images::image_tar(&recipe).context("building the OS image")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::io::Read;

    fn sha(d: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(d)))
    }

    /// Every descriptor's blob is there, hashes to its digest and is its size; the config's
    /// one diff_id is the plain layer's digest; the media types are OCI's.
    #[test]
    fn the_config_names_the_layer_by_its_diff_id_and_every_digest_holds() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("slot");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("vmlinuz"), b"kernel").unwrap();
        std::fs::write(tree.join("manifest.json"), br#"{"version":"1.0.0+x"}"#).unwrap();
        let tar = super::image_tar(&tree, "1.0.0+x", d.path()).unwrap();
        let mut files = HashMap::new();
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files.insert(name, data);
        }
        let blob = |desc: &Value, media: &str| -> Vec<u8> {
            let digest = desc["digest"].as_str().unwrap();
            let data = files[&format!("blobs/sha256/{}", &digest[7..])].clone();
            assert_eq!(sha(&data), digest);
            assert_eq!(desc["size"], json!(data.len()), "{digest}");
            assert_eq!(desc["mediaType"], media, "{digest}");
            data
        };
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index["manifests"][0];
        let manifest: Value =
            serde_json::from_slice(&blob(m, "application/vnd.oci.image.manifest.v1+json")).unwrap();
        let config: Value = serde_json::from_slice(&blob(
            &manifest["config"],
            "application/vnd.oci.image.config.v1+json",
        ))
        .unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let layer = blob(&layers[0], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(
            config["rootfs"],
            json!({ "type": "layers", "diff_ids": [sha(&layer)] })
        );
        let docker: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(docker[0]["RepoTags"], json!(["rancheros/os:1.0.0_x"]));
    }

    #[test]
    fn versions_are_image_tags_and_several_make_one_tar_each() {
        for good in ["v1", "1.0.0-rc1", "_x", "a".repeat(64).as_str()] {
            assert_eq!(super::parse_version(good).unwrap(), good);
        }
        for bad in [
            "",
            ".v1",
            "-v1",
            "1.0.0+x",
            "v/1",
            "../x",
            "v 1",
            "a".repeat(65).as_str(),
        ] {
            let e = super::parse_version(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plan = super::planned(&v(&["v2"])).unwrap();
        assert_eq!(plan, [("v2".into(), "rancheros-os.tar".into())]);
        let plan = super::planned(&v(&["v1", "v2", "v3"])).unwrap();
        let names: Vec<&str> = plan.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "rancheros-os-v1.tar",
                "rancheros-os-v2.tar",
                "rancheros-os-v3.tar"
            ]
        );
        assert_eq!(plan[0].0, "v1");
        let none = super::planned(&[]).unwrap();
        assert_eq!(
            none,
            [(crate::diskimage::version(), "rancheros-os.tar".into())]
        );
        let e = super::planned(&v(&["v1", "v1"])).unwrap_err().to_string();
        assert!(e.contains("\"v1\" is given twice"), "{e}");
        let e = super::planned(&v(&["v1", "v/2"])).unwrap_err().to_string();
        assert!(e.contains("\"v/2\""), "{e}");
    }
}
