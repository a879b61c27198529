//! `repositories.json`: which images the store holds and the names that point at them.
//!
//! Images are keyed by manifest digest; names (`repo:tag`, normalized) map to a manifest digest.
//! The file is small and rewritten whole, atomically (temporary file, fsync, rename, fsync of the
//! directory, see [`crate::config::atomic`]), and only after every blob and layer it refers to is
//! durably in the store: a crash at any moment leaves the old index or the new one, and never an
//! index entry whose layers are missing. Readers need no lock.

use super::digest::Digest;
use super::error::{IoContext, Result, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// The index file's name under the store root.
pub const INDEX_FILE: &str = "repositories.json";

/// The format version this code writes and reads.
pub const INDEX_VERSION: u32 = 1;

/// One layer of an image, bottom-most first in [`Image::layers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The (possibly compressed) blob in `blobs/sha256/`.
    pub blob: Digest,
    /// The digest of the uncompressed tar: names the unpacked directory `layers/<hex>/`.
    pub diff_id: Digest,
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// What the index keeps per image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config blob's digest: the image ID, as Docker shows it.
    pub config: Digest,
    pub layers: Vec<Layer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `repository@sha256:…` for each registry repository it was pulled from or pushed to
    /// (Docker's RepoDigests): only what a registry really holds under that digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image ID: the digest of its config (what `docker images` shows).
    pub id: Digest,
    /// The digest of its manifest (what a registry calls the image's digest).
    pub manifest: Digest,
    /// Its names (`repo:tag`), sorted; empty for a dangling image.
    pub names: Vec<String>,
    /// Bottom-most first, as in the manifest.
    pub layers: Vec<Layer>,
    pub created: Option<String>,
    /// `repository@sha256:…`, see [`ImageRecord::repo_digests`].
    pub repo_digests: Vec<String>,
}

impl Image {
    /// The first name, or the short ID for a dangling image: for log lines and errors.
    pub fn display_name(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.id.short().to_string())
    }
}

/// The whole index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    /// Images by manifest digest.
    pub images: BTreeMap<Digest, ImageRecord>,
    /// `repo:tag` → manifest digest.
    pub names: BTreeMap<String, Digest>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            version: INDEX_VERSION,
            images: BTreeMap::new(),
            names: BTreeMap::new(),
        }
    }
}

impl Index {
    /// Read the index; a missing file is an empty store.
    pub fn read(path: &Path) -> Result<Index> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(e).ctx("reading", path),
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            source_path: path.display().to_string(),
            source,
        })?;
        if index.version != INDEX_VERSION {
            return Err(StoreError::BadArchive {
                source_path: path.display().to_string(),
                reason: format!(
                    "index format version {} (this build reads {INDEX_VERSION})",
                    index.version
                ),
            });
        }
        Ok(index)
    }

    /// Replace the index file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|source| StoreError::Json {
            source_path: path.display().to_string(),
            source,
        })?;
        bytes.push(b'\n');
        crate::config::atomic::write_atomic(path, &bytes, 0o600).ctx("writing", path)
    }

    /// The names pointing at `manifest`, sorted.
    pub fn names_of(&self, manifest: &Digest) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, m)| *m == manifest)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The image with this manifest digest.
    pub fn image(&self, manifest: &Digest) -> Option<Image> {
        let rec = self.images.get(manifest)?;
        Some(Image {
            id: rec.config.clone(),
            manifest: manifest.clone(),
            names: self.names_of(manifest),
            layers: rec.layers.clone(),
            created: rec.created.clone(),
            repo_digests: rec.repo_digests.clone(),
        })
    }

    /// Every image, in manifest-digest order.
    pub fn images(&self) -> Vec<Image> {
        self.images.keys().filter_map(|m| self.image(m)).collect()
    }
}
