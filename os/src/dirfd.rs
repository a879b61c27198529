//! File operations relative to an open directory, for trees whose contents we do not trust:
//! a layer being unpacked, a container's root that `write_files` (and later `docker cp`) writes
//! into.
//!
//! A string path into such a tree is resolved by the kernel at every call, through whatever
//! symlinks the tree holds at that moment: `root.join("etc/passwd")` is `/etc/passwd` of the
//! host once `etc` is a symlink to `/etc`. Here every operation names one component relative to
//! a [`Dir`] (a file descriptor of its parent directory) and never follows a symlink in that
//! last component; a [`Dir`] itself is reached either one component at a time with
//! `O_NOFOLLOW` or in one `openat2` call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV` ([`Dir::open_beneath`]): no symlink, no `..`, no
//! `/proc` magic link and no mount point is crossed, so what is reached is inside the tree.
//! (Resolution *with* the tree's symlinks, kept inside it, is `pathrs`'s `RESOLVE_IN_ROOT`: see
//! `cloudinit::write_files`.)

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Flags of every directory we open: readable (for `fsetxattr`, `fchmod`, `fsync`, reading
/// entries), never through a final symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What [`Dir::lstat`] says is at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    Other,
}

/// An open directory; every operation is relative to it and about one name in it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One path component as a name, or an error for `.`, `..`, `/` and names with a `/`.
fn one_name(name: &OsStr) -> io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} is not a single file name", name),
        ));
    }
    Ok(name)
}

fn times(secs: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Dir {
    /// Open a directory by a path we trust (the layer directory the store made, a container
    /// root the engine made), following symlinks as the host does.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir { fd })
    }

    /// Adopt a directory descriptor (one `pathrs` resolved, say). An `O_PATH` descriptor works
    /// for every `*at` operation but not for those on the directory itself.
    pub fn from_fd(fd: OwnedFd) -> Dir {
        Dir { fd }
    }

    /// A readable descriptor of this same directory (from an `O_PATH` one, for `fsync`).
    pub fn reopen(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: rfs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?,
        })
    }

    /// The directory `name` in this one, not through a symlink (`ELOOP` if it is one).
    pub fn child_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = rfs::openat(&self.fd, one_name(name)?, DIR_FLAGS, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// The directory `rel` below this one, crossing no symlink (`ELOOP`), no `..`, no mount
    /// (`EXDEV`); `rel` empty is this directory again. One `openat2` call; where the kernel has
    /// none (before 5.6) the same walk one `O_NOFOLLOW` component at a time.
    pub fn open_beneath(&self, rel: &Path) -> io::Result<Dir> {
        if rel.as_os_str().is_empty() {
            return self.reopen();
        }
        let resolve = ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV;
        match rfs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), resolve) {
            Ok(fd) => Ok(Dir { fd }),
            Err(Errno::NOSYS) => {
                let mut cur = self.reopen()?;
                for c in rel.components() {
                    match c {
                        Component::Normal(name) => cur = cur.child_dir(name)?,
                        Component::CurDir => {}
                        _ => return Err(Errno::XDEV.into()),
                    }
                }
                Ok(cur)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What `name` is, without following it; `None` if nothing is there.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<Kind>> {
        match rfs::statat(&self.fd, one_name(name)?, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                _ => Kind::Other,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        Ok(rfs::mkdirat(
            &self.fd,
            one_name(name)?,
            Mode::from_raw_mode(mode),
        )?)
    }

    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        Ok(rfs::symlinkat(target, &self.fd, one_name(name)?)?)
    }

    /// A hard link `name` here to `from_name` in `from` (a symlink is linked, not followed).
    pub fn hard_link(&self, from: &Dir, from_name: &OsStr, name: &OsStr) -> io::Result<()> {
        Ok(rfs::linkat(
            &from.fd,
            one_name(from_name)?,
            &self.fd,
            one_name(name)?,
            AtFlags::empty(),
        )?)
    }

    /// A device node or FIFO; `mode` includes the file type (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`).
    pub fn mknod(&self, name: &OsStr, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        Ok(rfs::mknodat(
            &self.fd,
            one_name(name)?,
            FileType::from_raw_mode(mode),
            Mode::from_raw_mode(mode & 0o7777),
            rfs::makedev(major, minor),
        )?)
    }

    /// A new regular file, opened for writing; fails if anything (a symlink too) is there.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let fd = rfs::openat(
            &self.fd,
            one_name(name)?,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    /// An existing regular file for reading, not through a final symlink.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let fd = rfs::openat(
            &self.fd,
            one_name(name)?,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Owner of `name` itself (a symlink's own owner, not its target's).
    pub fn chown_nofollow(&self, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        Ok(rfs::chownat(
            &self.fd,
            one_name(name)?,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Mode of a device node or FIFO that is known not to be a symlink (Linux has no
    /// `fchmodat(AT_SYMLINK_NOFOLLOW)` before 6.6, and opening a device to `fchmod` it would
    /// open the device). Checked here: a symlink is refused with `ELOOP`.
    pub fn chmod_not_symlink(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        if self.lstat(name)? == Some(Kind::Symlink) {
            return Err(Errno::LOOP.into());
        }
        Ok(rfs::chmodat(
            &self.fd,
            one_name(name)?,
            Mode::from_raw_mode(mode),
            AtFlags::empty(),
        )?)
    }

    /// Access and modification times of `name` itself.
    pub fn set_times_nofollow(&self, name: &OsStr, secs: i64) -> io::Result<()> {
        Ok(rfs::utimensat(
            &self.fd,
            one_name(name)?,
            &times(secs),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// An extended attribute of `name` itself (symlinks and device nodes included: they cannot
    /// be opened for `fsetxattr`). Through `/proc/self/fd/<this directory>/<name>`: the magic
    /// link is our own descriptor, so the walk lands exactly on this directory, and `lsetxattr`
    /// does not follow `name`.
    pub fn set_xattr_nofollow(&self, name: &OsStr, key: &str, value: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let path = Path::new("/proc/self/fd")
            .join(self.fd.as_raw_fd().to_string())
            .join(one_name(name)?);
        Ok(rfs::lsetxattr(&path, key, value, XattrFlags::empty())?)
    }

    /// Remove `name`: a file, symlink or device at once, a directory with everything in it
    /// (never following a symlink found inside).
    pub fn remove_all(&self, name: &OsStr) -> io::Result<()> {
        let name = one_name(name)?;
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            // unlink(2) of a directory: EISDIR on Linux, EPERM by POSIX.
            Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
        let child = self.child_dir(name)?;
        for n in child.names()? {
            child.remove_all(&n)?;
        }
        Ok(rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// The names in this directory, without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        Ok(out)
    }

    /// Unlink a file or symlink (not a directory).
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        Ok(rfs::unlinkat(&self.fd, one_name(name)?, AtFlags::empty())?)
    }

    /// `renameat` within this directory: atomically replaces `to` (a symlink there is replaced,
    /// not followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rfs::renameat(
            &self.fd,
            one_name(from)?,
            &self.fd,
            one_name(to)?,
        )?)
    }

    /// Mode of this directory itself.
    pub fn set_own_mode(&self, mode: u32) -> io::Result<()> {
        Ok(rfs::fchmod(&self.fd, Mode::from_raw_mode(mode))?)
    }

    /// Owner of this directory itself.
    pub fn set_own_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        Ok(rfs::fchown(
            &self.fd,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
        )?)
    }

    /// Access and modification times of this directory itself.
    pub fn set_own_times(&self, secs: i64) -> io::Result<()> {
        Ok(rfs::futimens(&self.fd, &times(secs))?)
    }

    /// An extended attribute of this directory itself.
    pub fn set_own_xattr(&self, key: &str, value: &[u8]) -> io::Result<()> {
        Ok(rfs::fsetxattr(&self.fd, key, value, XattrFlags::empty())?)
    }

    /// Flush this directory's entries (after a rename into it).
    pub fn sync(&self) -> io::Result<()> {
        Ok(rfs::fsync(&self.fd)?)
    }
}

/// Times of an open file (`futimens`).
pub fn set_file_times(file: &File, secs: i64) -> io::Result<()> {
    Ok(rfs::futimens(file, &times(secs))?)
}

/// Owner of an open file (`fchown`).
pub fn set_file_owner(file: &File, uid: u32, gid: Option<u32>) -> io::Result<()> {
    Ok(rfs::fchown(
        file,
        Some(rfs::Uid::from_raw(uid)),
        gid.map(rfs::Gid::from_raw),
    )?)
}

/// An extended attribute of an open file (`fsetxattr`).
pub fn set_file_xattr(file: &File, key: &str, value: &[u8]) -> io::Result<()> {
    Ok(rfs::fsetxattr(file, key, value, XattrFlags::empty())?)
}
