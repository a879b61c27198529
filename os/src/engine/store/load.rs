//! `Store::load`: bring the images of an OCI layout or a `docker save` archive into the store.
//!
//! Three stages, so that a bad input changes nothing a reader can see:
//! 1. *stage* ([`super::load_oci`], [`super::load_docker`]): copy manifest, config and layer
//!    blobs into `blobs/`, each checked against its digest and size on the way in;
//! 2. *prepare*: parse each config, check it lists one diff_id per layer, and unpack every layer
//!    not unpacked yet, checking its diff_id;
//! 3. *commit*: write `repositories.json` once, with every image of the input (all or nothing).
//!
//! A failure in stage 1 or 2 leaves only verified blobs and complete layers behind (reclaimed by
//! [`Store::gc`](super::Store::gc) if nothing comes to use them); the index is untouched.

use super::digest::Digest;
use super::error::{Result, StoreError};
use super::index::{Image, ImageRecord, Index, Layer};
use super::layers::{self, Ensured};
use super::source::Source;
use super::{load_docker, load_oci, Store};
use std::path::Path;
use std::time::Instant;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A name (`repo[:tag]`) for images the input does not name in full: an OCI layout whose
    /// `org.opencontainers.image.ref.name` is only a tag takes this repository with that tag;
    /// an image with no name at all takes this name.
    pub name: Option<String>,
}

/// One image loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: Image,
    /// Layers unpacked by this load.
    pub layers_unpacked: usize,
    /// Layers found already unpacked (shared with an image loaded before, or repeated).
    pub layers_reused: usize,
}

/// An image whose manifest, config and layer blobs are in `blobs/`, not yet in the index.
#[derive(Debug, Clone)]
pub(super) struct Staged {
    pub manifest: Digest,
    pub names: Vec<String>,
    /// `repository@digest` where a registry served it (a pull).
    pub repo_digests: Vec<String>,
}

/// The input's format, decided by the files it has.
enum Format {
    Oci,
    Docker,
}

impl Store {
    /// Load every image of `path`: an OCI image layout (`oci-layout`, `index.json`, `blobs/`) or
    /// a `docker save` archive (`manifest.json`), as a directory or a tar file (plain, gzip or
    /// zstd). Returns the images loaded; their names now point at them.
    pub fn load(&self, path: &Path, opts: &LoadOptions) -> Result<Vec<Loaded>> {
        let start = Instant::now();
        let _lock = self.lock()?;
        let src = Source::open(path, &self.tmp_dir())?;
        let format = if src.exists("oci-layout") && src.exists("index.json") {
            Format::Oci
        } else if src.exists("manifest.json") {
            Format::Docker
        } else {
            return Err(StoreError::BadArchive {
                source_path: path.display().to_string(),
                reason: "neither an OCI image layout (oci-layout, index.json) nor a docker save \
                         archive (manifest.json)"
                    .into(),
            });
        };
        tracing::info!(input = %path.display(), format = match format { Format::Oci => "oci", Format::Docker => "docker-save" },
            "loading images");
        let staged = match format {
            Format::Oci => load_oci::stage(self, &src, opts)?,
            Format::Docker => load_docker::stage(self, &src, opts)?,
        };
        drop(src);
        let loaded = self.prepare_and_commit(merge_duplicates(staged))?;
        tracing::info!(input = %path.display(), images = loaded.len(),
            ms = start.elapsed().as_millis() as u64, "images loaded");
        Ok(loaded)
    }

    pub(super) fn prepare_and_commit(&self, staged: Vec<Staged>) -> Result<Vec<Loaded>> {
        let mut prepared = Vec::new();
        for s in staged {
            let (record, unpacked, reused) = self.prepare(&s)?;
            prepared.push((s, record, unpacked, reused));
        }
        self.blobs.sync_dir()?;
        let index_path = self.index_path();
        let mut index = Index::read(&index_path)?;
        for (s, record, ..) in &prepared {
            let mut record = record.clone();
            if let Some(old) = index.images.get(&s.manifest) {
                record.repo_digests = old.repo_digests.clone();
            }
            for d in &s.repo_digests {
                if !record.repo_digests.contains(d) {
                    record.repo_digests.push(d.clone());
                }
            }
            index.images.insert(s.manifest.clone(), record);
            for name in &s.names {
                if let Some(old) = index.names.insert(name.clone(), s.manifest.clone()) {
                    if old != s.manifest {
                        tracing::info!(name = %name, from = %old, to = %s.manifest, "name moved to the loaded image");
                    }
                }
            }
        }
        index.write(&index_path)?;
        let mut out = Vec::new();
        for (s, _, layers_unpacked, layers_reused) in prepared {
            let image = index
                .image(&s.manifest)
                .expect("the image was just inserted");
            tracing::info!(image = %image.display_name(), id = %image.id, manifest = %image.manifest,
                layers = image.layers.len(), layers_unpacked, layers_reused, "image loaded");
            out.push(Loaded {
                image,
                layers_unpacked,
                layers_reused,
            });
        }
        Ok(out)
    }

    /// Check the config against the manifest and unpack the layers: the index record.
    fn prepare(&self, s: &Staged) -> Result<(ImageRecord, usize, usize)> {
        let label = s
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| s.manifest.to_string());
        let manifest = self.read_manifest(&s.manifest)?;
        let config_digest = Digest::parse(
            manifest.config().digest().as_ref(),
            &format!("config of {label}"),
        )?;
        let config = self.read_config(&config_digest)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(StoreError::BadArchive {
                source_path: format!("image {label}"),
                reason: format!(
                    "the manifest has {} layers but the config lists {} diff_ids",
                    manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
            layers.push(Layer {
                blob: Digest::parse(desc.digest().as_ref(), &format!("layer of {label}"))?,
                diff_id: Digest::parse(diff_id, &format!("diff_id of {label}"))?,
                media_type: desc.media_type().to_string(),
                size: desc.size(),
            });
        }
        let (mut unpacked, mut reused) = (0, 0);
        let n = layers.len();
        for (i, layer) in layers.iter().enumerate() {
            let what = format!("{} ({}/{n} of {label})", layer.blob, i + 1);
            match layers::ensure(self, layer, &what)? {
                Ensured::Unpacked(_) => unpacked += 1,
                Ensured::Reused => reused += 1,
            }
        }
        let record = ImageRecord {
            config: config_digest,
            layers,
            created: config.created().clone(),
            repo_digests: Vec::new(),
        };
        Ok((record, unpacked, reused))
    }

    pub(super) fn read_manifest(&self, digest: &Digest) -> Result<oci_spec::image::ImageManifest> {
        self.read_json_blob(digest)
    }

    pub(super) fn read_config(
        &self,
        digest: &Digest,
    ) -> Result<oci_spec::image::ImageConfiguration> {
        self.read_json_blob(digest)
    }

    fn read_json_blob<T: serde::de::DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let bytes = self.blobs.read_json_bytes(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            source_path: self.blobs.path(digest).display().to_string(),
            source,
        })
    }
}

/// One entry per manifest, names merged (an archive may list an image once per tag).
fn merge_duplicates(staged: Vec<Staged>) -> Vec<Staged> {
    let mut out: Vec<Staged> = Vec::new();
    for s in staged {
        match out.iter_mut().find(|o| o.manifest == s.manifest) {
            Some(o) => {
                for n in s.names {
                    if !o.names.contains(&n) {
                        o.names.push(n);
                    }
                }
            }
            None => out.push(s),
        }
    }
    out
}
