//! Unpacking one layer tar into its own directory, ready to be an overlayfs lower directory.
//!
//! Each layer gets a directory of its own (never applied on top of the layers below it), so a
//! layer is unpacked once and shared by every image and container that uses it. The tar may be
//! gzip, zstd or uncompressed: the magic bytes decide (a media type that disagrees is logged),
//! and the uncompressed stream is hashed on the way through to check it against the config's
//! `rootfs.diff_ids` entry without a second read.
//!
//! What is kept: file modes (setuid/setgid/sticky included), ownership (uid/gid numbers from
//! the tar, applied when running as root), symlinks, hard links within the layer, character and
//! block devices, FIFOs, mtimes, and extended attributes from PAX `SCHILY.xattr.*` records
//! (except `trusted.overlay.*`, which only the whiteout conversion below may set: an image must
//! not be able to forge overlayfs redirects or metacopy).
//!
//! Whiteouts are converted to the overlayfs on-disk form, since that is what the directory is
//! for: `.wh.<name>` becomes a character device 0/0 named `<name>` (overlayfs hides `<name>` of
//! the lower layers behind it), and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
//! directory (the directory hides everything below it). Other `.wh..wh.*` names are AUFS
//! bookkeeping and are skipped. An entry of the same layer always wins over a whiteout of the
//! same name, as the OCI spec says whiteouts only apply to lower layers.
//!
//! Refused with [`StoreError::PathTraversal`]: a name or hard-link target with a `..`
//! component, a whiteout of `.` or `..`, and any entry whose parent directory is a symlink
//! (created earlier by the same layer): writing through it could land outside the layer, e.g.
//! `etc -> /etc` then `etc/passwd`. Absolute names are taken relative to the layer, as tar does.
//! Symlink *targets* are stored as they are: they are resolved inside the container's root.

use super::digest::{Digest, HashingReader};
use super::error::{IoContext, Result, StoreError};
use super::paths::clean_relative;
use super::sys;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tar::EntryType;

/// The xattr overlayfs reads to make a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// What a layer media type declares, if it says (`…tar`, `…tar+gzip`, `…tar.gzip`, `…+zstd`).
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        if media_type.ends_with("gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with("zstd") {
            Some(Compression::Zstd)
        } else if media_type.ends_with("tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// What the first bytes of a blob say; an error names a known but unsupported format.
    pub fn sniff(magic: &[u8]) -> std::result::Result<Compression, &'static str> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if magic.starts_with(b"BZh") {
            Err("bzip2")
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err("xz")
        } else {
            Ok(Compression::None)
        }
    }
}

/// What one unpack did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (whiteouts included).
    pub entries: u64,
    /// `.wh.<name>` entries turned into 0/0 character devices.
    pub whiteouts: u64,
    /// `.wh..wh..opq` entries turned into the opaque xattr.
    pub opaque_dirs: u64,
    /// Size of the uncompressed tar stream.
    pub tar_bytes: u64,
}

/// A layer being unpacked: `layer` names it in errors, `src` is the blob (for read errors).
pub struct LayerSource<'a> {
    pub layer: &'a str,
    pub src: &'a Path,
    pub media_type: Option<&'a str>,
}

/// Unpack the layer tar read from `blob` into the existing, empty directory `dest`; return the
/// digest of the uncompressed tar (the diff_id) and what was done. On error `dest` is left
/// half-done: the caller removes it.
pub fn unpack_layer(
    blob: impl Read,
    what: &LayerSource<'_>,
    dest: &Path,
) -> Result<(Digest, UnpackStats)> {
    let mut buf = BufReader::with_capacity(128 * 1024, blob);
    let magic = buf.fill_buf().ctx("reading layer", what.src)?;
    let compression = Compression::sniff(magic).map_err(|kind| StoreError::BadLayer {
        layer: what.layer.to_string(),
        entry: String::new(),
        reason: format!("{kind} compression is not supported (gzip, zstd or none)"),
    })?;
    if let Some(declared) = what.media_type.and_then(Compression::from_media_type) {
        if declared != compression {
            tracing::warn!(layer = what.layer, media_type = what.media_type, detected = ?compression,
                "layer media type disagrees with its magic bytes; going by the bytes");
        }
    }
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buf).ctx("starting zstd on", what.src)?,
        ),
    };
    let mut archive = tar::Archive::new(HashingReader::new(decoded));
    let mut ex = Extractor {
        dest,
        what,
        dirs: HashMap::new(),
        as_root: sys::is_root(),
        stats: UnpackStats::default(),
    };
    for entry in archive.entries().ctx("reading layer", what.src)? {
        let mut entry = entry.ctx("reading layer", what.src)?;
        ex.entry(&mut entry)?;
    }
    ex.finish_dirs()?;
    let mut stats = ex.stats;
    let (diff_id, bytes) = archive
        .into_inner()
        .finish()
        .ctx("reading layer", what.src)?;
    stats.tar_bytes = bytes;
    Ok((diff_id, stats))
}

/// Ownership, mode, time and xattrs of one entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Extractor<'a> {
    dest: &'a Path,
    what: &'a LayerSource<'a>,
    /// Directories' mode and mtime, applied at the end (children change a directory's mtime,
    /// and a read-only mode would stop us writing them as non-root).
    dirs: HashMap<PathBuf, (u32, i64)>,
    as_root: bool,
    stats: UnpackStats,
}

impl Extractor<'_> {
    fn traversal(&self, entry: &str, reason: &'static str) -> StoreError {
        StoreError::PathTraversal {
            layer: self.what.layer.to_string(),
            entry: entry.to_string(),
            reason,
        }
    }

    fn bad(&self, entry: &str, reason: impl Into<String>) -> StoreError {
        StoreError::BadLayer {
            layer: self.what.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo => {}
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => return Ok(()),
            other => {
                tracing::warn!(layer = self.what.layer, entry = %name, kind = ?other,
                    "skipping a tar entry of unknown type");
                return Ok(());
            }
        }
        let rel = clean_relative(Path::new(OsStr::from_bytes(&raw)))
            .map_err(|reason| self.traversal(&name, reason))?;
        let Some(file_name) = rel.file_name() else {
            return Ok(()); // the layer root itself ("./")
        };
        let meta = read_meta(entry).ctx("reading layer", self.what.src)?;
        self.stats.entries += 1;
        if let Some(hidden) = file_name.as_bytes().strip_prefix(b".wh.") {
            let hidden = hidden.to_vec();
            return self.whiteout(&rel, &hidden, &name, &meta);
        }
        self.make_parents(&rel, &name)?;
        let path = self.dest.join(&rel);
        // Whatever an earlier entry of this layer left here is replaced (a directory by a
        // directory is kept, with its contents).
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && kind == EntryType::Directory => {}
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path).ctx("removing", &path)?,
            Ok(_) => fs::remove_file(&path).ctx("removing", &path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("inspecting", &path),
        }
        match kind {
            EntryType::Directory => {
                if !path.is_dir() {
                    fs::create_dir(&path).ctx("creating directory", &path)?;
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(&name, "symlink without a target"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .ctx("creating symlink", &path)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(&name, "hard link without a target"))?;
                let target_rel = clean_relative(Path::new(OsStr::from_bytes(&target)))
                    .map_err(|reason| self.traversal(&name, reason))?;
                self.check_parents(&target_rel, &name)?;
                let target_path = self.dest.join(&target_rel);
                match fs::symlink_metadata(&target_path) {
                    Ok(m) if !m.is_dir() => {}
                    _ => {
                        return Err(self.bad(
                            &name,
                            format!(
                                "hard link target {} is not a file of this layer",
                                target_rel.display()
                            ),
                        ))
                    }
                }
                // Ownership, mode and times belong to the inode, already set by its first name.
                return fs::hard_link(&target_path, &path).ctx("creating hard link", &path);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let ty = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                sys::mknod(&path, ty | (meta.mode & 0o7777), major, minor)
                    .ctx("creating device node", &path)?;
            }
            _ => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .ctx("creating", &path)?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = entry.read(&mut buf).ctx("reading layer", self.what.src)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n]).ctx("writing", &path)?;
                }
            }
        }
        self.apply_meta(&path, kind, &meta)
    }

    fn apply_meta(&mut self, path: &Path, kind: EntryType, meta: &Meta) -> Result<()> {
        if self.as_root {
            // Before chmod: chown clears setuid/setgid bits.
            sys::lchown(path, meta.uid, meta.gid).ctx("changing owner of", path)?;
        }
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") {
                tracing::warn!(layer = self.what.layer, path = %path.display(), xattr = %name,
                    "refusing an overlayfs xattr from a layer tar");
                continue;
            }
            if let Err(e) = sys::lsetxattr(path, name, value) {
                tracing::warn!(layer = self.what.layer, path = %path.display(), xattr = %name,
                    error = %e, "could not set an extended attribute");
            }
        }
        match kind {
            EntryType::Symlink => {}
            EntryType::Directory => {
                self.dirs
                    .insert(path.to_path_buf(), (meta.mode, meta.mtime));
                return Ok(());
            }
            _ => fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
                .ctx("changing mode of", path)?,
        }
        sys::set_mtime_nofollow(path, meta.mtime).ctx("setting mtime of", path)
    }

    /// `.wh.<hidden>` in the directory of `rel`.
    fn whiteout(&mut self, rel: &Path, hidden: &[u8], name: &str, meta: &Meta) -> Result<()> {
        self.make_parents(rel, name)?;
        let dir = self.dest.join(rel.parent().unwrap_or(Path::new("")));
        if hidden == b".wh..opq" {
            sys::lsetxattr(&dir, OPAQUE_XATTR, b"y").ctx("marking opaque", &dir)?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        if hidden.starts_with(b".wh.") {
            tracing::debug!(
                layer = self.what.layer,
                entry = name,
                "skipping AUFS metadata"
            );
            return Ok(());
        }
        match hidden {
            b"" => return Err(self.bad(name, "whiteout of an empty name")),
            b"." | b".." => return Err(self.traversal(name, "whiteout of `.` or `..`")),
            _ => {}
        }
        let target = dir.join(OsStr::from_bytes(hidden));
        if fs::symlink_metadata(&target).is_ok() {
            // An entry of this same layer: it wins over the whiteout.
            return Ok(());
        }
        sys::mknod(&target, libc::S_IFCHR, 0, 0).ctx("creating whiteout", &target)?;
        if self.as_root {
            sys::lchown(&target, meta.uid, meta.gid).ctx("changing owner of", &target)?;
        }
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Create the missing parent directories of `rel` (mode 0755, as Docker does); refuse a
    /// parent that is a symlink or not a directory.
    fn make_parents(&self, rel: &Path, name: &str) -> Result<()> {
        self.walk_parents(rel, name, true)
    }

    /// Like [`Self::make_parents`], but a missing parent is an error (hard-link targets).
    fn check_parents(&self, rel: &Path, name: &str) -> Result<()> {
        self.walk_parents(rel, name, false)
    }

    fn walk_parents(&self, rel: &Path, name: &str, create: bool) -> Result<()> {
        let mut cur = self.dest.to_path_buf();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.traversal(
                        name,
                        "a parent directory is a symlink: writing through it could leave the layer",
                    ))
                }
                Ok(_) => {
                    return Err(
                        self.bad(name, format!("parent {} is not a directory", cur.display()))
                    )
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&cur).ctx("creating directory", &cur)?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                        .ctx("changing mode of", &cur)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(self.bad(
                        name,
                        format!("hard link target directory {} is missing", cur.display()),
                    ))
                }
                Err(e) => return Err(e).ctx("inspecting", &cur),
            }
        }
        Ok(())
    }

    /// Directories' modes and mtimes, deepest first.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs: Vec<_> = self.dirs.drain().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (path, (mode, mtime)) in dirs {
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue; // replaced by a later entry
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .ctx("changing mode of", &path)?;
            sys::set_mtime_nofollow(&path, mtime).ctx("setting mtime of", &path)?;
        }
        Ok(())
    }
}

/// The header's metadata, with PAX records (`uid`, `gid`, `mtime`, `SCHILY.xattr.*`) on top.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode()? & 0o7777,
        uid: h.uid()? as u32,
        gid: h.gid()? as u32,
        mtime: h.mtime()? as i64,
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let value = || ext.value().ok().map(str::trim);
            match key {
                "uid" => meta.uid = value().and_then(|v| v.parse().ok()).unwrap_or(meta.uid),
                "gid" => meta.gid = value().and_then(|v| v.parse().ok()).unwrap_or(meta.gid),
                "mtime" => {
                    let secs = value().and_then(|v| v.split('.').next()?.parse().ok());
                    meta.mtime = secs.unwrap_or(meta.mtime);
                }
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}
