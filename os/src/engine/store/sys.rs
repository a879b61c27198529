//! The few system calls the store needs that `std` does not offer, as small safe wrappers:
//! ownership and times without following symlinks, device nodes (whiteouts), extended attributes
//! (opaque directories), `syncfs` (one flush for a whole unpacked layer) and `flock` (one writer
//! at a time across processes).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `lchown(2)`: change the owner of `path` itself, not of what a symlink points to.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: `p` is a valid NUL-terminated string for the duration of the call.
    check(unsafe { libc::lchown(p.as_ptr(), uid, gid) })
}

/// `mknod(2)`: a character device, block device or FIFO (`mode` includes the file type).
pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let p = cpath(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: as above.
    check(unsafe { libc::mknod(p.as_ptr(), mode as libc::mode_t, dev) })
}

/// `lsetxattr(2)`.
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: valid strings, and `value` is valid for `value.len()` bytes.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// `lgetxattr(2)`: the value, or `None` if the attribute is not set.
pub fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid strings, and `buf` is valid for `buf.len()` bytes.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(rc as usize);
    Ok(Some(buf))
}

/// Set access and modification times of `path` itself (symlinks included) to `secs`.
pub fn set_mtime_nofollow(path: &Path, secs: i64) -> io::Result<()> {
    let p = cpath(path)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid string, and `times` is an array of two timespecs as utimensat wants.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// `syncfs(2)`: flush the whole file system holding `file`.
pub fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is open for the duration of the call.
    check(unsafe { libc::syncfs(file.as_raw_fd()) })
}

/// `flock(LOCK_EX)`: wait for an exclusive lock, held until `file` is closed.
pub fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: as above.
        match check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether this process is root (ownership from the tar is applied only then).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `dir` is a directory on another filesystem than its parent's (a mount point); a
/// missing path or a non-directory is not.
pub fn is_mount_point(dir: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = dir.parent() else {
        return Ok(false);
    };
    let dev = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => m.dev(),
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(dev != std::fs::symlink_metadata(parent)?.dev())
}

/// Detach whatever is mounted on `dir` if it is a mount point: the system layers are bound
/// onto their `diff` directories from a read-only image (`crate::init::system_layers`), and a
/// removed layer's tree must not be deleted through it.
pub fn unmount_if_mounted(dir: &Path) -> io::Result<()> {
    if !is_mount_point(dir)? {
        return Ok(());
    }
    nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)
}
