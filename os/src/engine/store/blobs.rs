//! The content-addressed blob directory, `blobs/sha256/<hex>`, as in an OCI image layout.
//!
//! A blob is written to a temporary file in the same directory while its digest and size are
//! computed, checked, fsynced, then renamed into place: a blob under its name is always whole
//! and verified. A blob that is already there is not read or written again.

use super::digest::{Digest, HashingReader};
use super::error::{IoContext, Result, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// JSON blobs (manifests, configs, indexes) larger than this are refused rather than read.
pub const MAX_JSON: u64 = 16 * 1024 * 1024;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// `blobs/sha256` under the store root.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn new(dir: PathBuf) -> Blobs {
        Blobs { dir }
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
        let (tmp, actual, n) = self.write_tmp(limited, what)?;
        let check = if let Some(expected_size) = size.filter(|s| *s != n) {
            Err(StoreError::SizeMismatch {
                blob: what.to_string(),
                expected: expected_size,
                actual: n,
            })
        } else if &actual != expected {
            Err(StoreError::DigestMismatch {
                blob: what.to_string(),
                expected: expected.clone(),
                actual,
            })
        } else {
            Ok(())
        };
        if let Err(e) = check {
            tracing::warn!(blob = what, error = %e, "blob rejected");
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.commit(&tmp, expected)?;
        tracing::debug!(blob = %expected, bytes = n, "blob stored");
        Ok(())
    }

    /// Store what `reader` yields under whatever digest it has; return digest and size.
    pub fn put_computed(&self, reader: impl Read, what: &str) -> Result<(Digest, u64)> {
        let (tmp, digest, n) = self.write_tmp(reader, what)?;
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

    fn write_tmp(&self, reader: impl Read, what: &str) -> Result<(PathBuf, Digest, u64)> {
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)
                .ctx("creating", &tmp)?;
            let mut hashing = HashingReader::new(reader);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match hashing.read(&mut buf) {
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
                    break;
                }
                file.write_all(&buf[..n]).ctx("writing", &tmp)?;
            }
            file.sync_all().ctx("syncing", &tmp)?;
            let (digest, n) = hashing.finish().ctx("reading", Path::new(what))?;
            Ok((digest, n))
        })();
        match result {
            Ok((digest, n)) => Ok((tmp, digest, n)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn commit(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        let dst = self.path(digest);
        fs::rename(tmp, &dst).ctx("renaming blob to", &dst)
    }
}
