//! What can go wrong in the image store, as one typed error.
//!
//! It exists so that callers (PID 1 loading the system images at boot, the `system-docker` and
//! user Docker front ends later) can tell an untrustworthy image (a digest that does not match,
//! a layer that tries to write outside its directory) from a broken disk or a missing image, and
//! so that every message names what it is about: the path for I/O, the blob and both digests for
//! a verification failure, the layer and tar entry for a bad layer.

use super::digest::Digest;
use std::io;
use std::path::{Path, PathBuf};

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed on `path`.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A blob's content does not hash to the digest its descriptor (or file name) promised.
    #[error("{blob}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        blob: String,
        expected: Digest,
        actual: Digest,
    },
    /// A blob's length differs from its descriptor's `size`.
    #[error("{blob}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        blob: String,
        expected: u64,
        actual: u64,
    },
    /// The uncompressed layer does not hash to the image config's `rootfs.diff_ids` entry.
    #[error("layer {layer}: diff_id mismatch: the image config says {expected}, the uncompressed tar is {actual}")]
    DiffIdMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    /// A digest string that is malformed or not sha256 (the only algorithm the store keeps).
    #[error(
        "{what}: unsupported or malformed digest {digest:?} (expected sha256:<64 lowercase hex>)"
    )]
    BadDigest { what: String, digest: String },
    /// A layer entry would be written (or linked) outside the layer directory.
    #[error("layer {layer}: entry {entry:?}: path traversal refused: {reason}")]
    PathTraversal {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    /// A layer tar that cannot be applied (unsupported compression, a hard link to nothing, …).
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    BadLayer {
        layer: String,
        entry: String,
        reason: String,
    },
    /// An input that is not a usable OCI layout or `docker save` archive.
    #[error("{source_path}: {reason}")]
    BadArchive { source_path: String, reason: String },
    /// A JSON document (index, manifest, config, `repositories.json`) that does not parse.
    #[error("{source_path}: invalid JSON: {source}")]
    Json {
        source_path: String,
        #[source]
        source: serde_json::Error,
    },
    /// No image has this name or ID.
    #[error("no such image: {0}")]
    NotFound(String),
    /// An ID prefix that matches more than one image.
    #[error("{query:?} is ambiguous: it matches {}", matches.join(", "))]
    Ambiguous { query: String, matches: Vec<String> },
    /// A name that is not a valid image reference.
    #[error("invalid image reference {name:?}: {reason}")]
    BadReference { name: String, reason: &'static str },
    /// The index names a layer whose unpacked directory is missing or incomplete.
    #[error("image {image}: layer {diff_id} is not unpacked in the store")]
    LayerMissing { image: String, diff_id: Digest },
}

/// Shorthand for results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attach the action and the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}
