//! System images built from Debian packages at image-build time, as data: each
//! `initrd/images/<name>.yml` lists its layers (files from Debian packages, busybox links,
//! directories) and its config (entrypoint, cmd, env). They are written into the initrd as one
//! OCI image layout (`/usr/share/ros/images`), so a layer shared by several images is stored
//! once. Layers are plain tar: the initrd as a whole is compressed already. Tars are written with
//! sorted entries, owner root and mtime 0, so the same inputs give the same digests.

use crate::initrd::cpio::{Archive, Entry};
use crate::initrd::{add_busybox_links, add_debs, Busybox, Debs};
use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

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

/// An OCI image layout held in memory: blobs by digest, plus the index.
#[derive(Debug, Default)]
pub struct Layout {
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub manifests: Vec<serde_json::Value>,
    /// `manifest.json` entries, as `docker save` writes beside the OCI index, so `docker load`
    /// (our reference engine) takes the same layout.
    pub docker_manifest: Vec<serde_json::Value>,
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

/// Read every `*.yml` under `dir`, sorted by file name.
pub fn load_recipes(dir: &Path) -> anyhow::Result<Vec<ImageRecipe>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_yaml_ng::from_str(&text)
                .with_context(|| format!("{}: invalid image recipe", p.display()))
        })
        .collect()
}

/// Build every recipe into one layout; returns it and the Debian packages used.
pub fn build(recipes: &[ImageRecipe]) -> anyhow::Result<(Layout, Vec<String>)> {
    let mut layout = Layout::default();
    let mut packages = Vec::new();
    for r in recipes {
        let mut diff_ids = Vec::new();
        let mut layers = Vec::new();
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
            let tar = to_tar(&a).with_context(|| format!("image {} layer {i}", r.name))?;
            let (digest, size) = layout.add_blob(tar);
            diff_ids.push(digest.clone());
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
        layout.manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest,
            "size": msize,
            "annotations": { "org.opencontainers.image.ref.name": r.name },
        }));
    }
    Ok((layout, packages))
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
}
