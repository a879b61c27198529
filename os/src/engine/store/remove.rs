//! Naming and forgetting images (`tag`, `remove`) and reclaiming space (`gc`).
//!
//! `remove` only edits the index; the blobs and unpacked layers of a removed image go at the next
//! [`Store::gc`], a mark-and-sweep over the whole store: everything the index references is kept,
//! everything else under `blobs/` and `layers/` is deleted, along with temporary files and
//! incomplete layers of interrupted loads. Containers are not the store's business: the engine
//! must not remove an image a container still uses (as Docker refuses `rmi` of such an image),
//! which keeps that container's layers marked.

use super::digest::Digest;
use super::error::{IoContext, Result};
use super::index::Index;
use super::layers::COMPLETE;
use super::reference::normalize;
use super::Store;
use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Names removed.
    pub untagged: Vec<String>,
    /// The image (manifest digest) removed from the index, once no name was left on it.
    pub deleted: Option<Digest>,
}

/// What [`Store::gc`] reclaimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub layers_removed: usize,
    /// Temporary files and incomplete layers of interrupted loads.
    pub leftovers_removed: usize,
}

impl Store {
    /// Point `name` at the image `name_or_id` resolves to.
    pub fn tag(&self, name_or_id: &str, name: &str) -> Result<()> {
        let name = normalize(name)?;
        let _lock = self.lock()?;
        let image = self.resolve(name_or_id)?;
        let path = self.index_path();
        let mut index = Index::read(&path)?;
        index.names.insert(name.clone(), image.manifest.clone());
        index.write(&path)?;
        tracing::info!(name = %name, id = %image.id, "image tagged");
        Ok(())
    }

    /// Given a name: remove that name, and the image too if no other name is left on it. Given
    /// an ID, a digest or an ID prefix: remove the image and all its names. Space is reclaimed
    /// by [`Store::gc`].
    pub fn remove(&self, name_or_id: &str) -> Result<Removed> {
        let _lock = self.lock()?;
        let path = self.index_path();
        let mut index = Index::read(&path)?;
        let by_name = normalize(name_or_id)
            .ok()
            .filter(|n| index.names.contains_key(n));
        let mut removed = Removed::default();
        let manifest = match by_name {
            Some(name) => {
                let manifest = index.names.remove(&name).expect("checked above");
                removed.untagged.push(name);
                manifest
            }
            None => {
                let image = self.resolve_in(&index, name_or_id)?;
                removed.untagged = image.names.clone();
                for n in &image.names {
                    index.names.remove(n);
                }
                image.manifest
            }
        };
        if index.names_of(&manifest).is_empty() {
            index.images.remove(&manifest);
            removed.deleted = Some(manifest);
        }
        index.write(&path)?;
        tracing::info!(query = name_or_id, untagged = ?removed.untagged, deleted = ?removed.deleted, "image removed");
        Ok(removed)
    }

    /// Delete every blob and layer no image in the index references, and the leftovers of
    /// interrupted loads.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock()?;
        let index = Index::read(&self.index_path())?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for (manifest, rec) in &index.images {
            blobs.insert(manifest.hex().to_string());
            blobs.insert(rec.config.hex().to_string());
            for l in &rec.layers {
                blobs.insert(l.blob.hex().to_string());
                layers.insert(l.diff_id.hex().to_string());
            }
        }
        let mut report = GcReport::default();
        for (name, path) in entries(self.blobs.dir())? {
            if self.blobs.is_pinned(&name) {
                // A pull's blob not committed yet, or a writer's file: not garbage.
                continue;
            }
            if name.starts_with(".tmp-") {
                remove_path(&path)?;
                report.leftovers_removed += 1;
            } else if !blobs.contains(&name) {
                remove_path(&path)?;
                report.blobs_removed += 1;
            }
        }
        for (name, path) in entries(&self.layers_root())? {
            let complete = path.join(COMPLETE).is_file();
            if complete && layers.contains(&name) {
                continue;
            }
            let diff = path.join(super::layers::DIFF);
            super::sys::unmount_if_mounted(&diff).ctx("unmounting", &diff)?;
            remove_path(&path)?;
            if complete {
                report.layers_removed += 1;
            } else {
                report.leftovers_removed += 1;
            }
        }
        for (_, path) in entries(&self.tmp_dir())? {
            remove_path(&path)?;
            report.leftovers_removed += 1;
        }
        tracing::info!(
            blobs_removed = report.blobs_removed,
            layers_removed = report.layers_removed,
            leftovers_removed = report.leftovers_removed,
            "store garbage collected"
        );
        Ok(report)
    }
}

fn entries(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).ctx("listing", dir)? {
        let e = e.ctx("listing", dir)?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    Ok(out)
}

fn remove_path(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).ctx("inspecting", path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path).ctx("removing", path)
    } else {
        fs::remove_file(path).ctx("removing", path)
    }
}
