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
//!
//! That refusal is not a check done before a write by path (which a later entry could make
//! stale): nothing here opens a joined string path. The layer directory is opened once, and
//! every create, mkdir, symlink, hard link, mknod, chown, chmod, utimes, xattr and whiteout is
//! done relative to the descriptor of its parent, reached from that root with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`, see
//! [`crate::dirfd`]), on a final component that is never followed. Directories' modes and times,
//! applied after all entries, are reopened the same way: a directory that a later entry swapped
//! for a symlink (it, or a parent of it) is skipped, never followed out of the layer.

use super::digest::{Digest, HashingReader};
use super::error::{IoContext, Result, StoreError};
use super::paths::clean_relative;
use super::sys;
use crate::dirfd::{self, Dir, Kind};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
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
        root: Dir::open(dest).ctx("opening", dest)?,
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
    /// The layer directory: every entry is written relative to it, never by a joined path.
    root: Dir,
    /// Its path, for messages only.
    dest: &'a Path,
    what: &'a LayerSource<'a>,
    /// Directories' mode and mtime by their name in the layer, applied at the end (children
    /// change a directory's mtime, and a read-only mode would stop us writing them as non-root).
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

    /// Attach the action and the entry's would-be path (for messages) to an I/O error.
    fn io<T>(&self, r: io::Result<T>, action: &'static str, rel: &Path) -> Result<T> {
        r.ctx(action, &self.dest.join(rel))
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
        let Some(file_name) = rel.file_name().map(OsStr::to_os_string) else {
            return Ok(()); // the layer root itself ("./")
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let meta = read_meta(entry).ctx("reading layer", self.what.src)?;
        self.stats.entries += 1;
        if let Some(hidden) = file_name.as_bytes().strip_prefix(b".wh.") {
            let hidden = OsStr::from_bytes(hidden).to_os_string();
            return self.whiteout(&parent_rel, &hidden, &name, &meta);
        }
        let dir = self.parent_dir(&parent_rel, &name, true)?;
        let fname = file_name.as_os_str();
        // Whatever an earlier entry of this layer left here is replaced (a directory by a
        // directory is kept, with its contents).
        match self.io(dir.lstat(fname), "inspecting", &rel)? {
            Some(Kind::Dir) if kind == EntryType::Directory => {}
            Some(_) => self.io(dir.remove_all(fname), "removing", &rel)?,
            None => {}
        }
        match kind {
            EntryType::Directory => {
                if self.io(dir.lstat(fname), "inspecting", &rel)?.is_none() {
                    self.io(dir.mkdir(fname, 0o700), "creating directory", &rel)?;
                }
                let d = self.io(dir.child_dir(fname), "opening directory", &rel)?;
                if self.as_root {
                    self.io(
                        d.set_own_owner(meta.uid, meta.gid),
                        "changing owner of",
                        &rel,
                    )?;
                }
                for (key, value) in self.xattrs(&rel, &meta) {
                    self.xattr_result(&rel, key, d.set_own_xattr(key, value));
                }
                // Mode and mtime at the end, reopened by name (see finish_dirs).
                self.dirs.insert(rel, (meta.mode, meta.mtime));
                Ok(())
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(&name, "symlink without a target"))?;
                self.io(
                    dir.symlink(OsStr::from_bytes(&target), fname),
                    "creating symlink",
                    &rel,
                )?;
                self.node_meta(&dir, fname, &rel, &meta, false)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(&name, "hard link without a target"))?;
                let target_rel = clean_relative(Path::new(OsStr::from_bytes(&target)))
                    .map_err(|reason| self.traversal(&name, reason))?;
                let Some(target_name) = target_rel.file_name() else {
                    return Err(self.bad(&name, "hard link to the layer root"));
                };
                let target_dir =
                    self.parent_dir(target_rel.parent().unwrap_or(Path::new("")), &name, false)?;
                match self.io(target_dir.lstat(target_name), "inspecting", &target_rel)? {
                    Some(Kind::Symlink | Kind::Other) => {}
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
                self.io(
                    dir.hard_link(&target_dir, target_name, fname),
                    "creating hard link",
                    &rel,
                )
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
                self.io(
                    dir.mknod(fname, ty | (meta.mode & 0o7777), major, minor),
                    "creating device node",
                    &rel,
                )?;
                self.node_meta(&dir, fname, &rel, &meta, true)
            }
            _ => {
                let mut file = self.io(dir.create_new(fname, 0o600), "creating", &rel)?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = entry.read(&mut buf).ctx("reading layer", self.what.src)?;
                    if n == 0 {
                        break;
                    }
                    self.io(file.write_all(&buf[..n]), "writing", &rel)?;
                }
                if self.as_root {
                    // Before chmod: chown clears setuid/setgid bits.
                    self.io(
                        dirfd::set_file_owner(&file, meta.uid, Some(meta.gid)),
                        "changing owner of",
                        &rel,
                    )?;
                }
                for (key, value) in self.xattrs(&rel, &meta) {
                    self.xattr_result(&rel, key, dirfd::set_file_xattr(&file, key, value));
                }
                self.io(
                    file.set_permissions(fs::Permissions::from_mode(meta.mode)),
                    "changing mode of",
                    &rel,
                )?;
                self.io(
                    dirfd::set_file_times(&file, meta.mtime),
                    "setting mtime of",
                    &rel,
                )
            }
        }
    }

    /// Owner, xattrs, mode (`chmod`: device nodes and FIFOs, never symlinks) and mtime of a
    /// node that cannot be opened for writing, by its name in `dir`, never following it.
    fn node_meta(
        &self,
        dir: &Dir,
        fname: &OsStr,
        rel: &Path,
        meta: &Meta,
        chmod: bool,
    ) -> Result<()> {
        if self.as_root {
            // Before chmod: chown clears setuid/setgid bits.
            self.io(
                dir.chown_nofollow(fname, meta.uid, meta.gid),
                "changing owner of",
                rel,
            )?;
        }
        for (key, value) in self.xattrs(rel, meta) {
            self.xattr_result(rel, key, dir.set_xattr_nofollow(fname, key, value));
        }
        if chmod {
            self.io(
                dir.chmod_not_symlink(fname, meta.mode),
                "changing mode of",
                rel,
            )?;
        }
        self.io(
            dir.set_times_nofollow(fname, meta.mtime),
            "setting mtime of",
            rel,
        )
    }

    /// The entry's xattrs that a layer may set: `trusted.overlay.*` only the whiteout
    /// conversion may (an image must not forge overlayfs redirects or metacopy).
    fn xattrs<'m>(&self, rel: &Path, meta: &'m Meta) -> Vec<(&'m str, &'m [u8])> {
        let mut out = Vec::new();
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") {
                tracing::warn!(layer = self.what.layer, path = %self.dest.join(rel).display(),
                    xattr = %name, "refusing an overlayfs xattr from a layer tar");
                continue;
            }
            out.push((name.as_str(), value.as_slice()));
        }
        out
    }

    fn xattr_result(&self, rel: &Path, key: &str, r: io::Result<()>) {
        if let Err(e) = r {
            tracing::warn!(layer = self.what.layer, path = %self.dest.join(rel).display(),
                xattr = %key, error = %e, "could not set an extended attribute");
        }
    }

    /// `.wh.<hidden>` in the directory `parent_rel`.
    fn whiteout(
        &mut self,
        parent_rel: &Path,
        hidden: &OsStr,
        name: &str,
        meta: &Meta,
    ) -> Result<()> {
        let hidden_b = hidden.as_bytes();
        // Refused before anything is created for it.
        match hidden_b {
            b"" => return Err(self.bad(name, "whiteout of an empty name")),
            b"." | b".." => return Err(self.traversal(name, "whiteout of `.` or `..`")),
            _ => {}
        }
        let dir = self.parent_dir(parent_rel, name, true)?;
        if hidden_b == b".wh..opq" {
            self.io(
                dir.set_own_xattr(OPAQUE_XATTR, b"y"),
                "marking opaque",
                parent_rel,
            )?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        if hidden_b.starts_with(b".wh.") {
            tracing::debug!(
                layer = self.what.layer,
                entry = name,
                "skipping AUFS metadata"
            );
            return Ok(());
        }
        let rel = parent_rel.join(hidden);
        if self.io(dir.lstat(hidden), "inspecting", &rel)?.is_some() {
            // An entry of this same layer: it wins over the whiteout.
            return Ok(());
        }
        self.io(
            dir.mknod(hidden, libc::S_IFCHR, 0, 0),
            "creating whiteout",
            &rel,
        )?;
        if self.as_root {
            self.io(
                dir.chown_nofollow(hidden, meta.uid, meta.gid),
                "changing owner of",
                &rel,
            )?;
        }
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// The directory `rel` of the layer, opened through the layer root's descriptor without
    /// crossing a symlink. With `create`, missing directories are made (mode 0755, as Docker
    /// does); without, a missing one is an error (hard-link targets). A symlink on the way is a
    /// [`StoreError::PathTraversal`]: writing through it could leave the layer (`etc -> /etc`
    /// then `etc/passwd`).
    fn parent_dir(&self, rel: &Path, name: &str, create: bool) -> Result<Dir> {
        match self.root.open_beneath(rel) {
            Ok(d) => return Ok(d),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {}
            Err(e) => return Err(self.resolve_error(e, rel, name, create)),
        }
        // Some directory is missing: walk and make them, one component at a time.
        let mut cur = self.io(self.root.reopen(), "opening", Path::new(""))?;
        let mut sofar = PathBuf::new();
        for c in rel.components() {
            let Component::Normal(c) = c else {
                return Err(self.traversal(name, "the path contains `..`"));
            };
            sofar.push(c);
            cur = match cur.child_dir(c) {
                Ok(d) => d,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.io(cur.mkdir(c, 0o755), "creating directory", &sofar)?;
                    let d = self.io(cur.child_dir(c), "opening directory", &sofar)?;
                    // The umask may have taken bits off.
                    self.io(d.set_own_mode(0o755), "changing mode of", &sofar)?;
                    d
                }
                Err(e) => return Err(self.resolve_error(e, &sofar, name, create)),
            };
        }
        Ok(cur)
    }

    /// Why `rel` could not be opened as a directory of the layer. The kernel says ELOOP or
    /// ENOTDIR for a symlink on the way (which depends on where it is): look at each component
    /// to name the one in the way.
    fn resolve_error(&self, e: io::Error, rel: &Path, name: &str, create: bool) -> StoreError {
        if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
            let mut cur = self.root.reopen().ok();
            let mut sofar = PathBuf::new();
            for c in rel.components() {
                let Some(dir) = cur.take() else { break };
                sofar.push(c);
                match dir.lstat(c.as_os_str()) {
                    Ok(Some(Kind::Dir)) => cur = dir.child_dir(c.as_os_str()).ok(),
                    Ok(Some(Kind::Symlink)) => return self.traversal(
                        name,
                        "a parent directory is a symlink: writing through it could leave the layer",
                    ),
                    Ok(Some(Kind::Other)) => {
                        return self.bad(
                            name,
                            format!("parent {} is not a directory", sofar.display()),
                        )
                    }
                    _ => break,
                }
            }
        }
        match e.raw_os_error() {
            Some(libc::ELOOP) => self.traversal(
                name,
                "a parent directory is a symlink: writing through it could leave the layer",
            ),
            Some(libc::EXDEV) => self.traversal(name, "the path leaves the layer"),
            Some(libc::ENOENT) if !create => self.bad(
                name,
                format!("hard link target directory {} is missing", rel.display()),
            ),
            _ => StoreError::Io {
                action: "opening directory",
                path: self.dest.join(rel),
                source: e,
            },
        }
    }

    /// Directories' modes and mtimes, deepest first. Each is reopened from the layer root
    /// without crossing a symlink, so a directory that a later entry replaced (by a symlink
    /// to somewhere outside, say), or whose parent it replaced, is skipped, not followed.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs: Vec<_> = self.dirs.drain().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, (mode, mtime)) in dirs {
            let d = match self.root.open_beneath(&rel) {
                Ok(d) => d,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR | libc::EXDEV)
                    ) =>
                {
                    tracing::debug!(layer = self.what.layer, dir = %rel.display(), error = %e,
                        "directory replaced by a later entry: its mode is not applied");
                    continue;
                }
                Err(e) => return Err(e).ctx("opening directory", &self.dest.join(&rel)),
            };
            self.io(d.set_own_mode(mode), "changing mode of", &rel)?;
            self.io(d.set_own_times(mtime), "setting mtime of", &rel)?;
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
