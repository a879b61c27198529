//! An input to load images from, read the same way whether it is a directory or a tar archive.
//!
//! Loading needs random access (`index.json` first, then the blobs it names), so a tar is
//! indexed once (name → offset and size in the file) and its members are then read in place
//! with `pread`, with no copy. A gzip- or zstd-compressed archive (`docker save | gzip`) is first
//! decompressed into a scratch file in the store's `tmp/`, removed when the source is dropped.
//! Member names are cleaned lexically (see [`super::paths`]); symlinks inside the archive
//! (old `docker save` links identical layers as `<id>/layer.tar -> ../<other>/layer.tar`) are
//! followed within the archive only.

use super::blobs::MAX_JSON;
use super::error::{IoContext, Result, StoreError};
use super::paths::clean_name;
use super::unpack::Compression;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A member of an indexed tar archive.
#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink or hard link, to this (cleaned, archive-relative) name.
    Link(String),
}

/// Where images are loaded from.
pub struct Source {
    /// The path as given, for messages.
    path: PathBuf,
    kind: Kind,
}

enum Kind {
    Dir(PathBuf),
    Tar {
        file: File,
        members: HashMap<String, Member>,
        /// A decompressed copy of the input, removed on drop.
        scratch: Option<PathBuf>,
    },
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Kind::Tar {
            scratch: Some(p), ..
        } = &self.kind
        {
            let _ = fs::remove_file(p);
        }
    }
}

impl Source {
    /// Open `path`: a directory, or a tar file (plain, gzip or zstd). `scratch_dir` is where a
    /// compressed archive is decompressed to.
    pub fn open(path: &Path, scratch_dir: &Path) -> Result<Source> {
        let meta = fs::metadata(path).ctx("opening", path)?;
        if meta.is_dir() {
            return Ok(Source {
                path: path.to_path_buf(),
                kind: Kind::Dir(path.to_path_buf()),
            });
        }
        let mut reader = BufReader::new(File::open(path).ctx("opening", path)?);
        let magic = reader.fill_buf().ctx("reading", path)?;
        let compression = Compression::sniff(magic).map_err(|kind| StoreError::BadArchive {
            source_path: path.display().to_string(),
            reason: format!("{kind} compression is not supported (gzip, zstd or none)"),
        })?;
        let (file, scratch) = match compression {
            Compression::None => (reader.into_inner(), None),
            c => {
                let tmp = scratch_dir.join(format!(
                    "load-{}-{}.tar",
                    std::process::id(),
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
                let result = decompress(reader, c, path, &tmp);
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                (result?, Some(tmp))
            }
        };
        // Built before indexing, so that a failure drops it and removes the scratch file.
        let mut source = Source {
            path: path.to_path_buf(),
            kind: Kind::Tar {
                file,
                members: HashMap::new(),
                scratch,
            },
        };
        if let Kind::Tar { file, members, .. } = &mut source.kind {
            *members = index_tar(file, path)?;
        }
        Ok(source)
    }

    /// `name` inside the input, for messages: `/x/image.tar:blobs/sha256/…` or `/x/dir/index.json`.
    pub fn describe(&self, name: &str) -> String {
        match &self.kind {
            Kind::Dir(d) => d.join(name).display().to_string(),
            Kind::Tar { .. } => format!("{}:{name}", self.path.display()),
        }
    }

    fn bad(&self, name: &str, reason: impl Into<String>) -> StoreError {
        StoreError::BadArchive {
            source_path: self.describe(name),
            reason: reason.into(),
        }
    }

    /// Whether the input has a file of this name.
    pub fn exists(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Dir(d) => clean_name(name).is_ok_and(|n| d.join(n).is_file()),
            Kind::Tar { .. } => self.resolve(name).is_ok(),
        }
    }

    fn resolve(&self, name: &str) -> Result<(u64, u64)> {
        let Kind::Tar { members, .. } = &self.kind else {
            unreachable!("resolve is for tar sources")
        };
        let mut cur = clean_name(name).map_err(|r| self.bad(name, r))?;
        for _ in 0..16 {
            match members.get(&cur) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(to)) => cur = to.clone(),
                None => return Err(self.bad(name, "no such file in the archive")),
            }
        }
        Err(self.bad(name, "too many levels of links"))
    }

    /// Open the file `name` of the input; also return its size.
    pub fn open_member(&self, name: &str) -> Result<(Box<dyn Read + '_>, u64)> {
        match &self.kind {
            Kind::Dir(d) => {
                let rel = clean_name(name).map_err(|r| self.bad(name, r))?;
                let p = d.join(rel);
                let f = File::open(&p).ctx("opening", &p)?;
                let size = f.metadata().ctx("inspecting", &p)?.len();
                Ok((Box::new(f), size))
            }
            Kind::Tar { file, .. } => {
                let (offset, size) = self.resolve(name)?;
                Ok((
                    Box::new(RangeReader {
                        file,
                        pos: offset,
                        end: offset + size,
                    }),
                    size,
                ))
            }
        }
    }

    /// Read and parse the JSON file `name` of the input.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let (reader, size) = self.open_member(name)?;
        if size > MAX_JSON {
            return Err(self.bad(name, format!("larger than {MAX_JSON} bytes")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(MAX_JSON)
            .read_to_end(&mut bytes)
            .ctx("reading", Path::new(&self.describe(name)))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            source_path: self.describe(name),
            source,
        })
    }
}

/// Reads `file[pos..end]` with positioned reads (no shared cursor).
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive member is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn decompress(
    reader: BufReader<File>,
    compression: Compression,
    path: &Path,
    tmp: &Path,
) -> Result<File> {
    let mut out = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .ctx("creating", tmp)?;
    let mut decoded: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        _ => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader).ctx("starting zstd on", path)?,
        ),
    };
    tracing::debug!(input = %path.display(), scratch = %tmp.display(), "decompressing archive");
    io::copy(&mut decoded, &mut out).ctx("decompressing", path)?;
    Ok(out)
}

/// Map every member of the tar `file` to its data's offset (or its link target).
fn index_tar(file: &File, path: &Path) -> Result<HashMap<String, Member>> {
    let mut members = HashMap::new();
    let mut archive = tar::Archive::new(RangeReader {
        file,
        pos: 0,
        end: file.metadata().ctx("inspecting", path)?.len(),
    });
    let bad = |name: &str, reason: &str| StoreError::BadArchive {
        source_path: format!("{}:{name}", path.display()),
        reason: reason.to_string(),
    };
    for entry in archive.entries().ctx("reading archive", path)? {
        let entry = entry.ctx("reading archive", path)?;
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let Ok(clean) = clean_name(&name) else {
            tracing::warn!(archive = %path.display(), member = %name, "skipping an archive member with `..`");
            continue;
        };
        let member = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(&name, "link without a target"))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                // A symlink is relative to its directory; a hard link names an archive member.
                let joined = if kind == tar::EntryType::Symlink && !target.starts_with('/') {
                    let dir = Path::new(&clean).parent().unwrap_or(Path::new(""));
                    lexical_join(dir, &target)
                } else {
                    Some(target)
                };
                match joined.as_deref().map(clean_name) {
                    Some(Ok(t)) => Member::Link(t),
                    _ => return Err(bad(&name, "link target leaves the archive")),
                }
            }
            _ => continue,
        };
        members.insert(clean, member);
    }
    Ok(members)
}

/// `dir/target` with `..` resolved lexically; `None` if it climbs above the archive root.
fn lexical_join(dir: &Path, target: &str) -> Option<String> {
    let mut parts: Vec<String> = dir
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p.to_string()),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_join_stays_in_the_archive() {
        assert_eq!(
            lexical_join(Path::new("abc"), "../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(lexical_join(Path::new(""), "../x"), None);
    }
}
