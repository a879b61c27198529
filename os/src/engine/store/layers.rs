//! Unpacked layers, `layers/<diff_id hex>/`, shared by every image and container that has them.
//!
//! Each holds `diff/` (the layer's files: what overlayfs gets as a `lowerdir`) and `complete`,
//! written only after the whole tree is unpacked, its diff_id checked and the file system
//! synced. A directory without `complete` is a crash's leftover: it is removed and unpacked
//! again, never used. A layer with `complete` is never unpacked again, whichever image asks.

use super::error::{IoContext, Result, StoreError};
use super::index::Layer;
use super::sys;
use super::unpack::{unpack_layer, LayerSource, UnpackStats};
use super::Store;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::time::Instant;

/// The completion marker's name inside a layer directory.
pub const COMPLETE: &str = "complete";
/// The unpacked tree's name inside a layer directory.
pub const DIFF: &str = "diff";

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Unpacked(UnpackStats),
    /// Already unpacked and complete: nothing was read.
    Reused,
}

/// Make sure `layer` is unpacked and complete; `what` names it in messages. Call with the
/// store lock held.
pub fn ensure(store: &Store, layer: &Layer, what: &str) -> Result<Ensured> {
    let dir = store.layer_dir(&layer.diff_id);
    if dir.join(COMPLETE).is_file() {
        tracing::debug!(diff_id = %layer.diff_id, "layer already unpacked");
        return Ok(Ensured::Reused);
    }
    if fs::symlink_metadata(&dir).is_ok() {
        tracing::warn!(diff_id = %layer.diff_id, dir = %dir.display(),
            "removing an incomplete layer left by an interrupted unpack");
        fs::remove_dir_all(&dir).ctx("removing", &dir)?;
    }
    let start = Instant::now();
    let result = unpack_into(store, layer, what);
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    tracing::info!(
        diff_id = %layer.diff_id,
        blob = %layer.blob,
        entries = stats.entries,
        whiteouts = stats.whiteouts,
        opaque_dirs = stats.opaque_dirs,
        tar_bytes = stats.tar_bytes,
        ms = start.elapsed().as_millis() as u64,
        "layer unpacked"
    );
    Ok(Ensured::Unpacked(stats))
}

fn unpack_into(store: &Store, layer: &Layer, what: &str) -> Result<UnpackStats> {
    let dir = store.layer_dir(&layer.diff_id);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .ctx("creating", &dir)?;
    let diff = dir.join(DIFF);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&diff)
        .ctx("creating", &diff)?;
    // Whatever the umask: the layer root is what the container sees as `/` where no upper
    // layer says otherwise.
    fs::set_permissions(&diff, fs::Permissions::from_mode(0o755)).ctx("changing mode of", &diff)?;
    let blob_path = store.blobs.path(&layer.blob);
    let blob = File::open(&blob_path).ctx("opening blob", &blob_path)?;
    let source = LayerSource {
        layer: what,
        src: &blob_path,
        media_type: Some(&layer.media_type),
    };
    let (actual, stats) = unpack_layer(blob, &source, &diff)?;
    if actual != layer.diff_id {
        return Err(StoreError::DiffIdMismatch {
            layer: what.to_string(),
            expected: layer.diff_id.clone(),
            actual,
        });
    }
    // Everything unpacked reaches the disk before the marker says it did.
    let dir_file = File::open(&dir).ctx("opening", &dir)?;
    sys::syncfs(&dir_file).ctx("syncing", &dir)?;
    let marker = dir.join(COMPLETE);
    let mut m = File::create(&marker).ctx("creating", &marker)?;
    writeln!(m, "{}", layer.diff_id).ctx("writing", &marker)?;
    m.sync_all().ctx("syncing", &marker)?;
    dir_file.sync_all().ctx("syncing", &dir)?;
    let parent = store.layers_root();
    File::open(&parent)
        .and_then(|d| d.sync_all())
        .ctx("syncing", &parent)?;
    Ok(stats)
}
