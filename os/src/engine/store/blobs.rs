//! The content-addressed blob directory, `blobs/sha256/<hex>`, as in an OCI image layout.
//!
//! A blob is written to a temporary file in the same directory while its digest and size are
//! computed, checked, fsynced, then renamed into place: a blob under its name is always whole
//! and verified. A blob that is already there is not read or written again.

use super::digest::Digest;
use super::error::{IoContext, Result, StoreError};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// JSON blobs (manifests, configs, indexes) larger than this are refused rather than read.
pub const MAX_JSON: u64 = 16 * 1024 * 1024;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// `blobs/sha256` under the store root.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    /// File names under `dir` that [`super::Store::gc`] must leave alone: blobs a pull has
    /// fetched but not committed yet, and writers' temporary files. Shared by every clone of
    /// the store in this process (the only one that pulls into it).
    pins: Arc<Mutex<BTreeMap<String, usize>>>,
}

/// Names kept from the garbage collector while it lives; see [`Blobs::pin`].
pub struct Pin {
    pins: Arc<Mutex<BTreeMap<String, usize>>>,
    names: Vec<String>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for n in &self.names {
            if let Some(c) = pins.get_mut(n) {
                *c -= 1;
                if *c == 0 {
                    pins.remove(n);
                }
            }
        }
    }
}

impl Blobs {
    pub fn new(dir: PathBuf) -> Blobs {
        Blobs {
            dir,
            pins: Arc::default(),
        }
    }

    /// Keep these blobs (by digest) from the garbage collector until the pin is dropped.
    pub fn pin<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> Pin {
        self.pin_names(digests.into_iter().map(|d| d.hex().to_string()).collect())
    }

    fn pin_names(&self, names: Vec<String>) -> Pin {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for n in &names {
            *pins.entry(n.clone()).or_default() += 1;
        }
        Pin {
            pins: self.pins.clone(),
            names,
        }
    }

    /// Whether the file `name` under the blob directory is pinned.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob with this digest lives.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Store what `reader` yields as the blob `expected`, checking digest (and size, if given).
    /// `what` names the source in errors. Nothing is read if the blob is already stored.
    pub fn put_verified(
        &self,
        reader: impl Read,
        expected: &Digest,
        size: Option<u64>,
        what: &str,
    ) -> Result<()> {
        if self.has(expected) {
            tracing::debug!(blob = %expected, "blob already stored");
            return Ok(());
        }
        // Read at most one byte more than promised: enough to tell it is too long.
        let limited = reader.take(size.map_or(u64::MAX, |s| s.saturating_add(1)));
        let mut w = self.writer(what)?;
        copy_into(&mut w, limited, what)?;
        let n = w.written();
        w.commit(expected, size)?;
        tracing::debug!(blob = %expected, bytes = n, "blob stored");
        Ok(())
    }

    /// Store what `reader` yields under whatever digest it has; return digest and size.
    pub fn put_computed(&self, reader: impl Read, what: &str) -> Result<(Digest, u64)> {
        let mut w = self.writer(what)?;
        copy_into(&mut w, reader, what)?;
        let (tmp, digest, n) = w.finish_tmp()?;
        if self.has(&digest) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.commit(&tmp, &digest)?;
        }
        Ok((digest, n))
    }

    /// Store `bytes`; return their digest.
    pub fn put_bytes(&self, bytes: &[u8], what: &str) -> Result<Digest> {
        let digest = Digest::of(bytes);
        self.put_verified(bytes, &digest, Some(bytes.len() as u64), what)?;
        Ok(digest)
    }

    pub fn open(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).ctx("opening blob", &p)
    }

    /// A stored JSON blob's bytes (refused above [`MAX_JSON`]).
    pub fn read_json_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.path(digest);
        let mut out = Vec::new();
        self.open(digest)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut out)
            .ctx("reading blob", &p)?;
        if out.len() as u64 > MAX_JSON {
            return Err(StoreError::BadArchive {
                source_path: p.display().to_string(),
                reason: format!("JSON blob larger than {MAX_JSON} bytes"),
            });
        }
        Ok(out)
    }

    /// Make the renames of committed blobs durable.
    pub fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .ctx("syncing", &self.dir)
    }

    /// A blob written piece by piece (a download), hashed as it goes; nothing is under a
    /// blob name until [`BlobWriter::commit`] has checked digest and size.
    pub fn writer(&self, what: &str) -> Result<BlobWriter> {
        let name = format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let pin = self.pin_names(vec![name.clone()]);
        let tmp = self.dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .ctx("creating", &tmp)?;
        Ok(BlobWriter {
            blobs: self.clone(),
            _pin: pin,
            tmp: Some(tmp),
            file,
            hasher: Sha256::new(),
            bytes: 0,
            what: what.to_string(),
        })
    }

    fn commit(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        let dst = self.path(digest);
        fs::rename(tmp, &dst).ctx("renaming blob to", &dst)
    }
}

/// Everything `reader` yields into `w`.
fn copy_into(w: &mut BlobWriter, mut reader: impl Read, what: &str) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(StoreError::Io {
                    action: "reading",
                    path: PathBuf::from(what),
                    source: e,
                })
            }
        };
        if n == 0 {
            return Ok(());
        }
        w.write(&buf[..n])?;
    }
}

/// A blob being written: see [`Blobs::writer`]. Dropped without a commit, its temporary file
/// is removed.
pub struct BlobWriter {
    blobs: Blobs,
    /// Its temporary file is not a garbage collector's leftover.
    _pin: Pin,
    tmp: Option<PathBuf>,
    file: File,
    hasher: Sha256,
    bytes: u64,
    what: String,
}

impl BlobWriter {
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let tmp = self.tmp.as_deref().unwrap_or(Path::new(""));
        self.file.write_all(data).ctx("writing", tmp)?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.bytes
    }

    /// Sync, and keep the temporary file: its path, digest and size.
    fn finish_tmp(mut self) -> Result<(PathBuf, Digest, u64)> {
        let tmp = self
            .tmp
            .take()
            .expect("a writer has its file until it is finished");
        if let Err(e) = self.file.sync_all() {
            let _ = fs::remove_file(&tmp);
            return Err(e).ctx("syncing", &tmp);
        }
        let hasher = std::mem::take(&mut self.hasher);
        Ok((tmp, Digest::from_hasher(hasher), self.bytes))
    }

    /// Check what was written against `expected` (and `size`, if given) and put it under its
    /// name; on a mismatch nothing is stored.
    pub fn commit(self, expected: &Digest, size: Option<u64>) -> Result<()> {
        let blobs = self.blobs.clone();
        let what = self.what.clone();
        let (tmp, actual, n) = self.finish_tmp()?;
        let check = if let Some(expected_size) = size.filter(|s| *s != n) {
            Err(StoreError::SizeMismatch {
                blob: what.clone(),
                expected: expected_size,
                actual: n,
            })
        } else if &actual != expected {
            Err(StoreError::DigestMismatch {
                blob: what.clone(),
                expected: expected.clone(),
                actual,
            })
        } else {
            Ok(())
        };
        if let Err(e) = check {
            tracing::warn!(blob = %what, error = %e, "blob rejected");
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if blobs.has(expected) {
            let _ = fs::remove_file(&tmp);
            return Ok(());
        }
        blobs.commit(&tmp, expected)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}
