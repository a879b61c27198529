//! The content-addressed OCI image store of the container engine.
//!
//! It exists so that images can be loaded from files (no registry is needed at boot: system
//! images ship as `docker save` archives or OCI layouts), verified, unpacked once, and handed to
//! the runtime as overlayfs lower directories. It is a library with no boot-time assumptions:
//! the same code serves `system-docker` (root `/var/lib/system-docker`) and, later, the user's
//! Docker (its own root).
//!
//! # Layout under the root
//!
//! ```text
//! blobs/sha256/<hex>           manifests, configs, layer blobs, as in an OCI layout
//! repositories.json            the index: images by manifest digest, names → manifest digest
//! layers/<diff_id hex>/diff/   one unpacked layer (an overlayfs lowerdir)
//! layers/<diff_id hex>/complete  written last: a layer without it is redone, never used
//! tmp/                         scratch (decompressed input archives)
//! lock                         flock'd by every writer (load, tag, remove, gc)
//! ```
//!
//! An image's ID is its config digest (as in Docker); its names are normalized `repo:tag`
//! ([`reference`]). Every blob is checked against its digest and size as it comes in, and every
//! layer against its config `diff_id` as it is unpacked; the index is written last and
//! atomically, so nothing unverified or half-unpacked is ever reachable from a name.
//!
//! # Whiteouts
//!
//! Layers are unpacked one directory each and stacked by overlayfs, so whiteouts are stored the
//! way overlayfs reads them in a lower directory: `.wh.<name>` becomes a 0/0 character device
//! `<name>`, `.wh..wh..opq` becomes the `trusted.overlay.opaque=y` xattr on its directory. That is
//! what Docker's and containerd's overlay drivers do, and it lets one unpacked layer serve every
//! image and container that shares it; the alternatives (keeping `.wh.` files, or flattening
//! each image into one tree) would need overlayfs to not see them, or a copy per image.
//! `trusted.*` xattrs need CAP_SYS_ADMIN, and mounting requires a file system with xattrs
//! (ext4, xfs, btrfs, tmpfs): fine for a root-run engine. Details in [`unpack`].
//!
//! # Space
//!
//! [`Store::remove`] edits the index only; [`Store::gc`] is a mark-and-sweep that deletes the
//! blobs and layers no image references (the engine must not remove images its containers use).
//! Layer blobs are kept beside the unpacked layers (for export and re-unpacking), except for the
//! images the build writes into the initrd already unpacked: their layers are plain tars in a
//! canonical form, written back from the tree when saved ([`retar`]).
//!
//! Modules: [`load`] (the load pipeline), [`load_oci`], [`load_docker`] (the two input formats),
//! [`source`] (directory or tar input), [`fetch`] (a registry pull's side), [`blobs`], [`layers`], [`unpack`], [`retar`], [`index`],
//! [`digest`], [`reference`], [`image_config`], [`remove`] (tag, remove, gc), [`save`] (export),
//! [`error`],
//! [`paths`], [`sys`].

pub mod blobs;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod image_config;
pub mod index;
pub mod layers;
pub mod load;
mod load_docker;
mod load_oci;
pub mod paths;
pub mod reference;
pub mod remove;
mod retar;
pub mod save;
mod source;
pub mod sys;
pub mod unpack;

#[cfg(test)]
pub(crate) mod tests;

pub use blobs::BlobWriter;
pub use digest::Digest;
pub use error::{Result, StoreError};
pub use image_config::ImageConfig;
pub use index::{Image, Layer};
pub use load::{LoadOptions, Loaded};
pub use remove::{GcReport, Removed};
pub use unpack::{Compression, UnpackStats};

use blobs::Blobs;
use error::IoContext;
use index::{Index, INDEX_FILE};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The image store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: Blobs,
}

impl Store {
    /// The system engine's store.
    pub const SYSTEM_ROOT: &'static str = "/var/lib/system-docker";

    /// Open (creating it if needed) the store at `root`. The root is made mode 0700: unpacked
    /// layers hold setuid files that other users must not reach through it.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let store = Store {
            blobs: Blobs::new(root.join("blobs").join("sha256")),
            root,
        };
        for dir in [
            store.root.clone(),
            store.blobs.dir().to_path_buf(),
            store.layers_root(),
            store.tmp_dir(),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .ctx("creating", &dir)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest is (or would be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.path(digest)
    }

    /// The directory of the layer with this diff_id (`layers/<hex>`).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_root().join(diff_id.hex())
    }

    /// The unpacked tree of the layer with this diff_id: what overlayfs takes as a lowerdir.
    pub fn layer_diff_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join(layers::DIFF)
    }

    /// Whether the layer with this diff_id is unpacked and complete.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join(layers::COMPLETE).is_file()
    }

    /// Every image, in manifest-digest order.
    pub fn list(&self) -> Result<Vec<Image>> {
        Ok(self.read_index()?.images())
    }

    /// The image a name (`busybox`, `busybox:1.36`, `docker.io/library/busybox:latest`), a
    /// digest (`sha256:…` of the config, i.e. the ID, or of the manifest), a `name@sha256:…`
    /// reference or a unique ID prefix (`0123abcd`) refers to.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image> {
        self.resolve_in(&self.read_index()?, name_or_id)
    }

    fn resolve_in(&self, index: &Index, query: &str) -> Result<Image> {
        let q = query.trim();
        let not_found = || StoreError::NotFound(query.to_string());
        let digest_part = q.strip_prefix("sha256:").map(|_| q).or_else(|| {
            q.split_once('@')
                .map(|(_, d)| d)
                .filter(|d| d.starts_with("sha256:"))
        });
        if let Some(d) = digest_part {
            let d = Digest::parse(d, "image reference")?;
            if let Some(image) = index.image(&d) {
                return Ok(image);
            }
            let by_config = index.images.iter().find(|(_, r)| r.config == d);
            return by_config
                .and_then(|(m, _)| index.image(m))
                .ok_or_else(not_found);
        }
        if let Ok(name) = reference::normalize(q) {
            if let Some(image) = index.names.get(&name).and_then(|m| index.image(m)) {
                return Ok(image);
            }
        }
        let is_hex = !q.is_empty()
            && q.len() <= 64
            && q.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_hex {
            return Err(not_found());
        }
        let matches: Vec<Image> = index
            .images()
            .into_iter()
            .filter(|i| i.id.hex().starts_with(q) || i.manifest.hex().starts_with(q))
            .collect();
        let ids: HashSet<&Digest> = matches.iter().map(|i| &i.id).collect();
        match ids.len() {
            0 => Err(not_found()),
            // Several manifests of one config (e.g. gzip and zstd) are one image to a user.
            1 => Ok(matches.into_iter().next().expect("one match")),
            _ => Err(StoreError::Ambiguous {
                query: query.to_string(),
                matches: matches.iter().map(|i| i.id.short().to_string()).collect(),
            }),
        }
    }

    /// The image's unpacked layers, top-most first, as overlayfs `lowerdir=` wants them. A
    /// layer repeated in the image is listed once (at its top-most place: the same result, and
    /// overlayfs refuses a directory twice).
    pub fn lower_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let mut seen = HashSet::new();
        let mut dirs = Vec::new();
        for layer in image.layers.iter().rev() {
            if !seen.insert(&layer.diff_id) {
                continue;
            }
            if !self.has_layer(&layer.diff_id) {
                return Err(StoreError::LayerMissing {
                    image: image.display_name(),
                    diff_id: layer.diff_id.clone(),
                });
            }
            dirs.push(self.layer_diff_dir(&layer.diff_id));
        }
        Ok(dirs)
    }

    /// What the image's config says about running it.
    pub fn image_config(&self, image: &Image) -> Result<ImageConfig> {
        Ok(ImageConfig::from(&self.read_config(&image.id)?))
    }

    fn read_index(&self) -> Result<Index> {
        Index::read(&self.index_path())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    fn layers_root(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The store-wide writer lock, held until the returned file is dropped.
    fn lock(&self) -> Result<File> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .ctx("opening", &path)?;
        sys::flock_exclusive(&file).ctx("locking", &path)?;
        Ok(file)
    }
}
