//! The store's side of a registry pull or push (`engine::registry`): the registry code fetches
//! blobs over the network and the store keeps its promises about them.
//!
//! A pull pins its blobs ([`Store::pin_blobs`]) from before its first download to its commit,
//! so that a [`Store::gc`] meanwhile (an `rmi`, a prune) does not sweep blobs that nothing
//! references yet, without holding the writer lock through a slow download (which would stall
//! every load, tag and remove); each blob is written through a [`BlobWriter`] (its temporary
//! file pinned too) and only named once its digest and size match the manifest's descriptor;
//! [`Store::commit_fetched`], under the writer lock, then runs the same prepare-and-commit as
//! a load (config checked against the manifest, layers unpacked and checked against their
//! diff_ids, index written last), so a pulled image is exactly as trustworthy as a loaded one.
//! Pins live in this process: the engine that pulls is the one that collects.

use super::blobs::{BlobWriter, Pin};
use super::digest::Digest;
use super::error::{Result, StoreError};
use super::index::Index;
use super::load::{Loaded, Staged};
use super::Store;
use std::fs::File;

/// The writer lock, held while the file lives.
pub struct WriterLock(#[allow(dead_code)] File);

impl Store {
    /// Take the store's writer lock (blocks while a load, tag, remove or gc runs).
    pub fn writer_lock(&self) -> Result<WriterLock> {
        self.lock().map(WriterLock)
    }

    /// Keep these blobs from [`Store::gc`] while the pin lives.
    pub fn pin_blobs<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> Pin {
        self.blobs.pin(digests)
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.has(digest)
    }

    /// A writer for one blob; `what` names it in errors.
    pub fn blob_writer(&self, what: &str) -> Result<BlobWriter> {
        self.blobs.writer(what)
    }

    /// A stored JSON blob (manifest, config) as bytes, at most [`super::blobs::MAX_JSON`].
    pub fn json_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.blobs.read_json_bytes(digest)
    }

    /// A stored blob, for reading (a push).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        self.blobs.open(digest)
    }

    /// Put the image whose manifest (and its config and layer blobs) a pull stored into the
    /// index, under `name` if it has one, with `repo_digest` (`repository@sha256:…`).
    pub fn commit_fetched(
        &self,
        _lock: &WriterLock,
        manifest: &Digest,
        name: Option<String>,
        repo_digest: String,
    ) -> Result<Loaded> {
        let manifest_json = self.read_manifest(manifest)?;
        for d in std::iter::once(manifest_json.config()).chain(manifest_json.layers()) {
            let digest = Digest::parse(d.digest().as_ref(), &format!("manifest {manifest}"))?;
            if !self.blobs.has(&digest) {
                return Err(StoreError::BadArchive {
                    source_path: format!("manifest {manifest}"),
                    reason: format!("blob {digest} was not fetched"),
                });
            }
        }
        let staged = Staged {
            manifest: manifest.clone(),
            names: name.into_iter().collect(),
            repo_digests: vec![repo_digest],
        };
        let mut loaded = self.prepare_and_commit(vec![staged])?;
        Ok(loaded.remove(0))
    }

    /// Record that a registry holds the image with this manifest as `repo_digest` (a push).
    pub fn add_repo_digest(&self, manifest: &Digest, repo_digest: &str) -> Result<()> {
        let _lock = self.lock()?;
        let path = self.index_path();
        let mut index = Index::read(&path)?;
        let Some(record) = index.images.get_mut(manifest) else {
            return Err(StoreError::NotFound(manifest.to_string()));
        };
        if record.repo_digests.iter().any(|d| d == repo_digest) {
            return Ok(());
        }
        record.repo_digests.push(repo_digest.to_string());
        index.write(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_leaves_pinned_blobs_and_open_writers_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bytes = b"a blob a pull has fetched and not committed yet";
        let d = Digest::of(bytes);
        let pin = store.pin_blobs([&d]);
        let mut w = store.blob_writer("fetched").unwrap();
        w.write(bytes).unwrap();
        w.commit(&d, Some(bytes.len() as u64)).unwrap();
        let mut open = store.blob_writer("in flight").unwrap();
        open.write(b"half").unwrap();
        let report = store.gc().unwrap();
        assert_eq!((report.blobs_removed, report.leftovers_removed), (0, 0));
        assert!(store.has_blob(&d));
        open.write(b" and the rest").unwrap();
        let rest = Digest::of(b"half and the rest");
        open.commit(&rest, None).unwrap();
        assert!(store.has_blob(&rest));
        // Unpinned and referenced by no image: garbage now.
        drop(pin);
        let report = store.gc().unwrap();
        assert_eq!(report.blobs_removed, 2);
        assert!(!store.has_blob(&d));
    }
}
