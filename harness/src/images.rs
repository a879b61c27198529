//! System images built from Debian packages at image-build time, as data: each
//! `initrd/images/<name>.yml` lists its layers (files from Debian packages, busybox links,
//! directories, links) and its config (entrypoint, cmd, env). They are written into the initrd
//! as the system engine's store holds them once loaded ([`Layout::add_store_to`], the layers'
//! trees in one squashfs image: [`crate::squashfs`]; as an OCI image layout for test images),
//! so a layer shared by several images is stored once: a layer kept in its own file
//! (`initrd/images/layers/<name>.yml`, named with
//! `file:`) is byte-identical in every image that uses it (the glibc base layer, the busybox
//! layer).
//!
//! Dynamically linked Debian programs bring their libraries with `libs: [packages]`: the layer
//! gets every shared library its ELF files need (`DT_NEEDED`, read by [`elf::needed`]),
//! transitively, found by file name in those packages, less what the image's lower layers hold. Layers are plain tar: the initrd as a whole is compressed already. Tars are written with
//! sorted entries, owner root and mtime 0, so the same inputs give the same digests.

use crate::initrd::cpio::{Archive, Entry};
use crate::initrd::{add_busybox_links, add_debs, Busybox, Debs};
use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `initrd/images/<name>.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecipe {
    /// `repository:tag`.
    pub name: String,
    pub layers: Vec<LayerRecipe>,
    #[serde(default)]
    pub config: ImageConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRecipe {
    #[serde(default)]
    pub debs: Debs,
    pub busybox: Option<Busybox>,
    #[serde(default)]
    pub dirs: Vec<String>,
    /// A tree in the checkout copied into the layer as it is (scripts, config files).
    pub rootfs: Option<std::path::PathBuf>,
    /// Symbolic links: path → target.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// Packages to take the shared libraries of this layer's programs from (see the module docs).
    #[serde(default)]
    pub libs: Vec<String>,
    /// The layer is the one in this file (a shared layer); no other key may be set with it.
    pub file: Option<std::path::PathBuf>,
}

impl LayerRecipe {
    fn is_bare_reference(&self) -> bool {
        self.debs.is_empty()
            && self.busybox.is_none()
            && self.dirs.is_empty()
            && self.rootfs.is_none()
            && self.links.is_empty()
            && self.libs.is_empty()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub working_dir: Option<String>,
}

/// An image of a [`Layout`]: its name, manifest and config digests, and its layers'
/// (digest, size), bottom-most first.
#[derive(Debug)]
pub struct BuiltImage {
    pub name: String,
    pub manifest: String,
    pub config: String,
    pub layers: Vec<(String, usize)>,
}

/// An OCI image layout held in memory: blobs by digest, plus the index.
#[derive(Debug, Default)]
pub struct Layout {
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub manifests: Vec<serde_json::Value>,
    /// `manifest.json` entries, as `docker save` writes beside the OCI index, so `docker load`
    /// (our reference engine) takes the same layout.
    pub docker_manifest: Vec<serde_json::Value>,
    /// Each layer's files, by diff_id (= its blob's digest: layers are plain tar).
    pub layer_files: BTreeMap<String, Archive>,
    /// Each image, as the store's index keeps it.
    pub images: Vec<BuiltImage>,
}

impl Layout {
    fn add_blob(&mut self, data: Vec<u8>) -> (String, usize) {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        let size = data.len();
        self.blobs.entry(digest.clone()).or_insert(data);
        (digest, size)
    }

    /// Add every file of the layout under `at` in `a`.
    pub fn add_to(&self, a: &mut Archive, at: &str) {
        let file = |data: &[u8]| Entry::File {
            mode: 0o644,
            data: data.to_vec(),
        };
        a.add(
            &format!("{at}/oci-layout"),
            file(br#"{"imageLayoutVersion":"1.0.0"}"#),
        );
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.manifests,
        });
        a.add(
            &format!("{at}/index.json"),
            file(&serde_json::to_vec_pretty(&index).expect("json")),
        );
        let docker = serde_json::to_vec_pretty(&self.docker_manifest).expect("json");
        a.add(&format!("{at}/manifest.json"), file(&docker));
        for (digest, data) in &self.blobs {
            let hex = digest.trim_start_matches("sha256:");
            a.add(&format!("{at}/blobs/sha256/{hex}"), file(data));
        }
    }
}

impl Layout {
    /// Add the images under `at` as the system engine's image store has them once loaded
    /// (`os/src/engine/store`): the index (`repositories.json`), the manifest and config blobs,
    /// and each layer unpacked (`layers/<hex>/diff`, `complete`), so PID 1 opens the store as it
    /// is instead of hashing and unpacking the images at every boot. The layer blobs are left
    /// out (the trees are the same bytes): the store writes a layer back as this tar when an
    /// image is saved, checked against its digest.
    ///
    /// With `squashfs`, the layers' trees go into one squashfs image, `layers.squashfs` in the
    /// store (one directory per layer, by diff_id hex), and each `diff/` is left empty: PID 1
    /// mounts the image and binds each tree there (`os/src/init/system_layers.rs`). A layer whose
    /// files the initramfs holds already, but for a few bytes ([`Layout::inline_layers`]: the
    /// busybox layer), stays a tree in `diff/`, those files hard links.
    pub fn add_store_to(
        &self,
        a: &mut Archive,
        at: &str,
        squashfs: Option<&crate::squashfs::Options>,
    ) -> anyhow::Result<()> {
        let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
        let file = |mode: u32, data: Vec<u8>| Entry::File { mode, data };
        let mut images = serde_json::Map::new();
        let mut names = serde_json::Map::new();
        for BuiltImage {
            name,
            manifest,
            config,
            layers,
        } in &self.images
        {
            for d in [manifest, config] {
                let data = self.blobs.get(d).context("a blob of the layout")?;
                a.add(
                    &format!("{at}/blobs/sha256/{}", hex(d)),
                    file(0o644, data.clone()),
                );
            }
            let layers: Vec<serde_json::Value> = layers
                .iter()
                .map(|(d, size)| {
                    json!({
                        "blob": d,
                        "diff_id": d,
                        "media_type": "application/vnd.oci.image.layer.v1.tar",
                        "size": size,
                    })
                })
                .collect();
            images.insert(
                manifest.clone(),
                json!({ "config": config, "layers": layers }),
            );
            names.insert(name.clone(), json!(manifest));
        }
        // With a squashfs image, the layers whose files the initramfs holds already (but for a
        // few bytes) stay out of it, as trees whose files are hard links to those.
        let inline = match squashfs {
            Some(_) => self.inline_layers(a),
            None => BTreeMap::new(),
        };
        if let Some(opts) = squashfs {
            let trees = self
                .layer_files
                .iter()
                .filter(|(d, _)| !inline.contains_key(*d))
                .map(|(d, files)| (hex(d), files))
                .collect();
            let image = crate::squashfs::build(&trees, opts).context("the layers' squashfs")?;
            a.add(&format!("{at}/layers.squashfs"), file(0o600, image));
        }
        for (d, files) in &self.layer_files {
            let dir = format!("{at}/layers/{}", hex(d));
            a.add(&format!("{dir}/diff"), Entry::Dir { mode: 0o755 });
            let links = inline.get(d);
            if squashfs.is_none() || links.is_some() {
                for (path, entry) in files.iter() {
                    let entry = match links.and_then(|l| l.get(path)) {
                        Some(target) => Entry::HardLink {
                            target: target.clone(),
                        },
                        None => entry.clone(),
                    };
                    a.add(&format!("{dir}/diff{path}"), entry);
                }
            }
            a.add(
                &format!("{dir}/complete"),
                file(0o644, format!("{d}\n").into_bytes()),
            );
        }
        let index = json!({ "version": 1, "images": images, "names": names });
        let mut bytes = serde_json::to_vec_pretty(&index)?;
        bytes.push(b'\n');
        a.add(&format!("{at}/repositories.json"), file(0o600, bytes));
        // Setuid files are inside: the store's directories are root's only, as the store makes
        // them.
        for d in ["", "/blobs", "/blobs/sha256", "/layers", "/tmp"] {
            a.add(&format!("{at}{d}"), Entry::Dir { mode: 0o700 });
        }
        Ok(())
    }
}

/// The most bytes of files a layer kept in the initramfs may add to it (files not there already):
/// they are held in RAM, uncompressed, for as long as the machine runs.
const INLINE_MAX_NEW_BYTES: usize = 16 * 1024;

impl Layout {
    /// The layers to keep in the initramfs instead of the squashfs image, each with its files
    /// that `a` holds already (same bytes, same mode) and the path there: a layer qualifies when
    /// such files are most of it, the rest at most [`INLINE_MAX_NEW_BYTES`]. Why: the busybox
    /// layer's one big file is the initramfs's own `/bin/busybox`; in the image it was stored
    /// twice and decompressed again at each boot (xz, slow under TCG), while a hard link costs
    /// neither bytes nor RAM.
    fn inline_layers(&self, a: &Archive) -> BTreeMap<String, BTreeMap<String, String>> {
        let key = |mode: u32, data: &[u8]| (mode, data.len(), Sha256::digest(data).to_vec());
        let mut held = BTreeMap::new();
        for (path, entry) in a.iter() {
            if let Entry::File { mode, data } = entry {
                held.entry(key(*mode, data)).or_insert_with(|| path.clone());
            }
        }
        let mut inline = BTreeMap::new();
        for (d, files) in &self.layer_files {
            let (mut links, mut new_bytes, mut linked_bytes) = (BTreeMap::new(), 0, 0);
            for (path, entry) in files.iter() {
                match entry {
                    Entry::File { mode, data } => match held.get(&key(*mode, data)) {
                        Some(target) => {
                            links.insert(path.clone(), target.clone());
                            linked_bytes += data.len();
                        }
                        None => new_bytes += data.len(),
                    },
                    Entry::Symlink { target } => new_bytes += target.len(),
                    _ => {}
                }
            }
            if new_bytes <= INLINE_MAX_NEW_BYTES && linked_bytes > new_bytes {
                inline.insert(d.clone(), links);
            }
        }
        inline
    }
}

/// Read every `*.yml` under `dir`, sorted by file name.
pub fn load_recipes(dir: &Path) -> anyhow::Result<Vec<ImageRecipe>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_recipe(p)).collect()
}

/// Read one recipe, its `file:` layers replaced by the layers in those files.
pub fn load_recipe(p: &Path) -> anyhow::Result<ImageRecipe> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let mut r: ImageRecipe = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{}: invalid image recipe", p.display()))?;
    for l in &mut r.layers {
        resolve_file(l).with_context(|| format!("{}", p.display()))?;
    }
    Ok(r)
}

/// Replace a `file:` layer by the layer in that file.
fn resolve_file(l: &mut LayerRecipe) -> anyhow::Result<()> {
    let Some(file) = l.file.clone() else {
        return Ok(());
    };
    if !l.is_bare_reference() {
        bail!("a layer with file: {} has other keys too", file.display());
    }
    let path = crate::paths::repo_root().join(&file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let inner: LayerRecipe = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{}: invalid layer recipe", path.display()))?;
    if inner.file.is_some() {
        bail!("{}: a layer file cannot name another", path.display());
    }
    *l = inner;
    Ok(())
}

/// Build every recipe into one layout; returns it and the Debian packages used.
pub fn build(recipes: &[ImageRecipe]) -> anyhow::Result<(Layout, Vec<String>)> {
    let mut layout = Layout::default();
    let mut packages = Vec::new();
    for r in recipes {
        let mut diff_ids = Vec::new();
        let mut sizes = Vec::new();
        let mut layers = Vec::new();
        // File names of the libraries the image's lower layers hold.
        let mut below: BTreeSet<String> = BTreeSet::new();
        for (i, l) in r.layers.iter().enumerate() {
            let mut a = Archive::default();
            for d in &l.dirs {
                a.add(d, Entry::dir_for(d));
            }
            add_debs(&mut a, &l.debs, &mut packages)
                .with_context(|| format!("image {} layer {i}", r.name))?;
            if let Some(bb) = &l.busybox {
                add_busybox_links(&mut a, bb, &l.debs)
                    .with_context(|| format!("image {} layer {i}", r.name))?;
            }
            if let Some(tree) = &l.rootfs {
                crate::initrd::add_tree(&mut a, &crate::paths::repo_root().join(tree), "/")
                    .with_context(|| format!("image {} layer {i}", r.name))?;
            }
            for (path, target) in &l.links {
                a.add(
                    path,
                    Entry::Symlink {
                        target: target.clone(),
                    },
                );
            }
            if !l.libs.is_empty() {
                add_libs(&mut a, &l.libs, &below, &mut packages)
                    .with_context(|| format!("image {} layer {i}", r.name))?;
            }
            below.extend(
                a.iter()
                    .filter_map(|(p, _)| p.rsplit('/').next().map(String::from)),
            );
            let tar = to_tar(&a).with_context(|| format!("image {} layer {i}", r.name))?;
            let (digest, size) = layout.add_blob(tar);
            diff_ids.push(digest.clone());
            sizes.push((digest.clone(), size));
            layout.layer_files.entry(digest.clone()).or_insert(a);
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": size,
            }));
        }
        let mut cfg = serde_json::Map::new();
        if !r.config.entrypoint.is_empty() {
            cfg.insert("Entrypoint".into(), json!(r.config.entrypoint));
        }
        if !r.config.cmd.is_empty() {
            cfg.insert("Cmd".into(), json!(r.config.cmd));
        }
        if !r.config.env.is_empty() {
            cfg.insert("Env".into(), json!(r.config.env));
        }
        if let Some(w) = &r.config.working_dir {
            cfg.insert("WorkingDir".into(), json!(w));
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": cfg,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let (cdigest, csize) = layout.add_blob(serde_json::to_vec(&config)?);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cdigest,
                "size": csize,
            },
            "layers": layers,
        });
        let blob_path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        layout.docker_manifest.push(json!({
            "Config": blob_path(&cdigest),
            "RepoTags": [r.name],
            "Layers": diff_ids.iter().map(|d| blob_path(d)).collect::<Vec<_>>(),
        }));
        let (mdigest, msize) = layout.add_blob(serde_json::to_vec(&manifest)?);
        layout.images.push(BuiltImage {
            name: r.name.clone(),
            manifest: mdigest.clone(),
            config: cdigest.clone(),
            layers: sizes,
        });
        layout.manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest,
            "size": msize,
            "annotations": { "org.opencontainers.image.ref.name": r.name },
        }));
    }
    Ok((layout, packages))
}

/// Add the shared libraries the ELF files of `a` need, transitively, from `from` (packages),
/// skipping those named in `below`. A library that is a link (`libpam.so.0 -> libpam.so.0.85.1`)
/// comes as the link and its file.
fn add_libs(
    a: &mut Archive,
    from: &[String],
    below: &BTreeSet<String>,
    packages: &mut Vec<String>,
) -> anyhow::Result<()> {
    // File name → (package id, root of the unpacked package, path inside it).
    let mut index: BTreeMap<String, (String, PathBuf, String)> = BTreeMap::new();
    for pkg in from {
        let u = crate::debs::unpacked(pkg)?;
        let id = format!("{pkg}={}", u.version);
        for e in walkdir(&u.root)? {
            let rel = e
                .strip_prefix(&u.root)
                .expect("under root")
                .display()
                .to_string();
            let name = e.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(name) = name.filter(|n| n.contains(".so")) {
                index
                    .entry(name)
                    .or_insert((id.clone(), u.root.clone(), format!("/{rel}")));
            }
        }
    }
    let mut have: BTreeSet<String> = below.clone();
    have.extend(
        a.iter()
            .filter_map(|(p, _)| p.rsplit('/').next().map(String::from)),
    );
    let mut queue: Vec<(String, Vec<u8>)> = a
        .iter()
        .filter_map(|(p, e)| match e {
            Entry::File { data, .. } if elf::is_elf(data) => Some((p.clone(), data.clone())),
            _ => None,
        })
        .collect();
    while let Some((path, data)) = queue.pop() {
        for lib in elf::needed(&data).with_context(|| format!("reading ELF {path}"))? {
            if have.contains(&lib) {
                continue;
            }
            let (id, root, rel) = index.get(&lib).with_context(|| {
                format!("{lib} (needed by {path}) is in none of the libs packages {from:?}")
            })?;
            if !packages.contains(id) {
                packages.push(id.clone());
            }
            have.insert(lib.clone());
            let src = root.join(rel.trim_start_matches('/'));
            let (file_rel, file_src) = match std::fs::read_link(&src) {
                Ok(target) => {
                    a.add(
                        rel,
                        Entry::Symlink {
                            target: target.display().to_string(),
                        },
                    );
                    if target.is_absolute() {
                        bail!("{rel}: absolute link {} is not followed", target.display());
                    }
                    let parent = Path::new(rel).parent().unwrap_or(Path::new("/"));
                    let file_rel = parent.join(&target).display().to_string();
                    let file_src = root.join(file_rel.trim_start_matches('/'));
                    (file_rel, file_src)
                }
                Err(_) => (rel.clone(), src.clone()),
            };
            let data = std::fs::read(&file_src)
                .with_context(|| format!("reading {}", file_src.display()))?;
            let mode = std::fs::metadata(&file_src)?.permissions().mode() & 0o7777;
            if let Some(name) = Path::new(&file_rel).file_name() {
                have.insert(name.to_string_lossy().into_owned());
            }
            a.add(
                &file_rel,
                Entry::File {
                    mode,
                    data: data.clone(),
                },
            );
            queue.push((file_rel, data));
        }
    }
    Ok(())
}

/// Every file and link under `dir` (not directories), sorted.
pub(crate) fn walkdir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Just enough of ELF64 (little endian) to list a program's `DT_NEEDED` libraries.
pub mod elf {
    use anyhow::{bail, Context};

    pub fn is_elf(data: &[u8]) -> bool {
        data.starts_with(b"\x7fELF")
    }

    fn u16_at(d: &[u8], at: usize) -> anyhow::Result<u16> {
        Ok(u16::from_le_bytes(
            d.get(at..at + 2).context("truncated")?.try_into()?,
        ))
    }
    fn u64_at(d: &[u8], at: usize) -> anyhow::Result<u64> {
        Ok(u64::from_le_bytes(
            d.get(at..at + 8).context("truncated")?.try_into()?,
        ))
    }

    /// The `DT_NEEDED` names of an ELF64 little-endian file, in order.
    pub fn needed(d: &[u8]) -> anyhow::Result<Vec<String>> {
        if !is_elf(d) || d.get(4) != Some(&2) || d.get(5) != Some(&1) {
            bail!("not a 64-bit little-endian ELF file");
        }
        let phoff = u64_at(d, 0x20)? as usize;
        let phentsize = u16_at(d, 0x36)? as usize;
        let phnum = u16_at(d, 0x38)? as usize;
        // (p_type, p_offset, p_vaddr, p_filesz)
        let mut loads = Vec::new();
        let mut dynamic = None;
        for i in 0..phnum {
            let h = phoff + i * phentsize;
            let typ = u32::from_le_bytes(d.get(h..h + 4).context("truncated")?.try_into()?);
            let (off, vaddr, filesz) = (u64_at(d, h + 8)?, u64_at(d, h + 16)?, u64_at(d, h + 32)?);
            match typ {
                1 => loads.push((off, vaddr, filesz)),
                2 => dynamic = Some((off, filesz)),
                _ => {}
            }
        }
        let Some((doff, dsize)) = dynamic else {
            return Ok(Vec::new()); // static
        };
        let (mut strtab, mut names) = (None, Vec::new());
        for i in 0..(dsize / 16) as usize {
            let at = doff as usize + i * 16;
            let (tag, val) = (u64_at(d, at)?, u64_at(d, at + 8)?);
            match tag {
                0 => break,
                1 => names.push(val),
                5 => strtab = Some(val),
                _ => {}
            }
        }
        let strtab = strtab.context("no DT_STRTAB")?;
        let str_off = loads
            .iter()
            .find(|(_, v, sz)| strtab >= *v && strtab < v + sz)
            .map(|(o, v, _)| strtab - v + o)
            .context("DT_STRTAB outside every PT_LOAD")? as usize;
        names
            .iter()
            .map(|n| {
                let start = str_off + *n as usize;
                let rest = d.get(start..).context("name outside the file")?;
                let end = rest
                    .iter()
                    .position(|&b| b == 0)
                    .context("unterminated name")?;
                Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_hosts_own_programs_need_libc() {
            let exe = std::fs::read("/bin/ls").unwrap();
            let needed = super::needed(&exe).unwrap();
            assert!(needed.iter().any(|n| n == "libc.so.6"), "{needed:?}");
            let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
            assert!(super::needed(&me).unwrap().iter().any(|n| n == "libc.so.6"));
            assert!(super::needed(b"#!/bin/sh").is_err());
        }
    }
}

/// A deterministic tar of `a`.
pub fn to_tar(a: &Archive) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, entry) in a.iter() {
        let name = path.trim_start_matches('/');
        if name.is_empty() {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match entry {
            Entry::Dir { mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{name}/"), std::io::empty())?;
            }
            Entry::File { mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_slice())?;
            }
            Entry::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, name, target)?;
            }
            Entry::Char { .. } => bail!("{path}: device nodes do not belong in image layers"),
            Entry::HardLink { .. } => bail!("{path}: hard links do not belong in image layers"),
        }
    }
    Ok(b.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tars_are_deterministic_and_readable() {
        let mut a = Archive::default();
        a.add(
            "/bin/x",
            Entry::File {
                mode: 0o755,
                data: b"x".to_vec(),
            },
        );
        a.add("/bin/y", Entry::Symlink { target: "x".into() });
        let t1 = to_tar(&a).unwrap();
        assert_eq!(t1, to_tar(&a).unwrap());
        let mut ar = tar::Archive::new(t1.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["bin/", "bin/x", "bin/y"]);
    }

    #[test]
    fn shared_layers_are_stored_once() {
        let recipe = |name: &str, cmd: &str| ImageRecipe {
            name: name.into(),
            layers: vec![LayerRecipe {
                debs: Debs::new(),
                busybox: None,
                dirs: vec!["/etc".into()],
                rootfs: None,
                links: BTreeMap::new(),
                libs: Vec::new(),
                file: None,
            }],
            config: ImageConfig {
                cmd: vec![cmd.into()],
                ..Default::default()
            },
        };
        let (layout, _) = build(&[recipe("a:1", "/a"), recipe("b:1", "/b")]).unwrap();
        // one shared layer + two configs + two manifests
        assert_eq!(layout.blobs.len(), 5);
        assert_eq!(layout.manifests.len(), 2);
    }

    #[test]
    fn a_layer_the_initramfs_holds_but_for_a_few_bytes_is_kept_there_as_hard_links() {
        let file = |mode: u32, data: &[u8]| Entry::File {
            mode,
            data: data.to_vec(),
        };
        let big = vec![7u8; 100_000];
        let mut initramfs = Archive::default();
        initramfs.add("/bin/busybox", file(0o755, &big));
        let mut busybox = Archive::default();
        busybox.add("/bin/busybox", file(0o755, &big));
        busybox.add(
            "/bin/sh",
            Entry::Symlink {
                target: "/bin/busybox".into(),
            },
        );
        busybox.add("/etc/script", file(0o755, b"#!/bin/sh\n"));
        // The same bytes under another mode are another file.
        let mut other_mode = Archive::default();
        other_mode.add("/bin/busybox", file(0o4755, &big));
        // Most of it new: stays in the image.
        let mut mostly_new = Archive::default();
        mostly_new.add("/bin/busybox", file(0o755, &big));
        mostly_new.add(
            "/lib/libc.so.6",
            file(0o644, &[1u8; 2 * INLINE_MAX_NEW_BYTES]),
        );
        let layout = Layout {
            layer_files: [
                ("sha256:a".to_string(), busybox),
                ("sha256:b".to_string(), other_mode),
                ("sha256:c".to_string(), mostly_new),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let inline = layout.inline_layers(&initramfs);
        assert_eq!(inline.keys().collect::<Vec<_>>(), ["sha256:a"]);
        let links = &inline["sha256:a"];
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links["/bin/busybox"], "/bin/busybox");
    }
}
