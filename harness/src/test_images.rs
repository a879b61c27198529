//! Images for tests only: tools a VM test runs to look at the system from outside our own code
//! (`ros-test/nft` lists the kernel's nftables rules; `ros-test/dnsmasq` is a DNS server that
//! answers files.test). They must not grow the boot image, so they are not in the initrd: their
//! recipes live in `harness/test-images/<name>.yml`, in the format of `initrd/images/*.yml` (see
//! [`crate::images`], whose `file:` layers they may share), built from the same locked Debian
//! packages (`initrd/packages.lock`; `cargo harness lock` covers them too), and written as one
//! tar for `docker load -i`.
//!
//! The tar is the layout the initrd holds: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) with `docker save`'s `manifest.json` beside it, as Docker 25+ writes it.
//! Docker 20.10 loads it by `manifest.json`, our engine by `index.json`, so both engines take
//! the same file. It is cached under `cache_dir()/test-images/`, keyed by the recipe (with its
//! `file:` layers and `rootfs:` trees), the package lock and [`FORMAT`].

use crate::images::{self, ImageRecipe};
use crate::initrd::cpio::Archive;
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Part of the cache key: bump when the way images are built or written changes (the harness
/// code is not hashed), so old tars are not reused.
pub const FORMAT: &str = "oci-layout+manifest.json/v1";

/// `harness/test-images/`.
pub fn recipe_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-images")
}

/// `cache_dir()/test-images/`.
pub fn cache_dir() -> PathBuf {
    crate::paths::cache_dir().join("test-images")
}

/// Build (or take from the cache) the test image `name` (`harness/test-images/<name>.yml`) and
/// return the path of its tar, ready for `docker load -i`. The image's name is the recipe's
/// `name:` (`nft` → `ros-test/nft:latest`).
pub fn build(name: &str) -> anyhow::Result<PathBuf> {
    let path = recipe_dir().join(format!("{name}.yml"));
    let recipe = images::load_recipe(&path)
        .with_context(|| format!("test image {name}: loading its recipe"))?;
    let key = cache_key(&recipe).with_context(|| format!("test image {name}: cache key"))?;
    let out = cache_dir().join(format!("{name}-{key}.tar"));
    if out.exists() {
        return Ok(out);
    }
    // Tests build in parallel: one builds, the others wait and take its tar.
    let _lock = lock(&cache_dir().join(format!("{name}.lock")))?;
    if out.exists() {
        return Ok(out);
    }
    let tar = image_tar(&recipe).with_context(|| format!("building test image {name}"))?;
    crate::fsutil::write_atomic(&out, &tar)?;
    eprintln!(
        "[test-images] {} → {} ({} bytes)",
        recipe.name,
        out.display(),
        tar.len()
    );
    Ok(out)
}

/// Hold an exclusive lock on `path` (created if missing) until the file is dropped.
fn lock(path: &Path) -> anyhow::Result<std::fs::File> {
    let dir = path.parent().expect("a lock file has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    fs2::FileExt::lock_exclusive(&f).with_context(|| format!("locking {}", path.display()))?;
    Ok(f)
}

/// The tar of `recipe`'s image (see the module docs for its format).
pub fn image_tar(recipe: &ImageRecipe) -> anyhow::Result<Vec<u8>> {
    let (layout, _packages) = images::build(std::slice::from_ref(recipe))?;
    let mut a = Archive::default();
    layout.add_to(&mut a, "/");
    images::to_tar(&a).context("writing the layout tar")
}

/// Every Debian package the test images use, by name (for `cargo harness lock`).
pub fn package_names() -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for r in images::load_recipes(&recipe_dir())? {
        for l in &r.layers {
            names.extend(l.debs.keys().cloned());
            names.extend(l.libs.iter().cloned());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// First 16 hex digits of sha256(FORMAT, resolved recipe, its rootfs trees, package lock).
fn cache_key(recipe: &ImageRecipe) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        // Length-prefixed, so moving bytes between parts changes the hash.
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(FORMAT.as_bytes());
    // The `file:` layers are resolved already: their contents are in the recipe's Debug text.
    part(format!("{recipe:?}").as_bytes());
    for tree in recipe.layers.iter().filter_map(|l| l.rootfs.as_ref()) {
        part(&tree_digest(&crate::paths::repo_root().join(tree))?);
    }
    let lock = crate::debs::lock_path();
    part(&std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?);
    Ok(hex::encode(h.finalize())[..16].to_string())
}

/// sha256 over the relative paths, link targets and contents of the files under `dir`.
fn tree_digest(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut h = Sha256::new();
    for path in images::walkdir(dir)? {
        let rel = path.strip_prefix(dir).expect("under dir");
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        let data = match std::fs::read_link(&path) {
            Ok(target) => target.as_os_str().as_encoded_bytes().to_vec(),
            Err(_) => {
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
            }
        };
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    Ok(h.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_test_image_recipe_parses_and_names_its_packages() {
        let names = super::package_names().unwrap();
        for must in ["nftables", "dnsmasq-base"] {
            assert!(names.iter().any(|n| n == must), "{must}: {names:?}");
        }
    }

    #[test]
    fn the_cache_key_follows_the_recipe() {
        let path = super::recipe_dir().join("nft.yml");
        let r = crate::images::load_recipe(&path).unwrap();
        let mut changed = crate::images::load_recipe(&path).unwrap();
        changed.config.cmd.push("-j".into());
        let key = super::cache_key(&r).unwrap();
        assert_eq!(key, super::cache_key(&r).unwrap());
        assert_ne!(key, super::cache_key(&changed).unwrap());
    }

    #[test]
    fn the_tree_digest_sees_names_and_contents() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "1").unwrap();
        let one = super::tree_digest(d.path()).unwrap();
        std::fs::write(d.path().join("a"), "2").unwrap();
        let two = super::tree_digest(d.path()).unwrap();
        std::fs::rename(d.path().join("a"), d.path().join("b")).unwrap();
        let three = super::tree_digest(d.path()).unwrap();
        assert_ne!(one, two);
        assert_ne!(two, three);
    }
}
