//! `archive`: what `docker cp` needs of a container's files, done the way dockerd does it: in a
//! fresh helper process chrooted into the container's root, so that every path and every
//! symlink in the container resolves inside it, whatever the image or the container's own
//! processes put there. The tar code is ours (no `tar` of the image is run).
//!
//! A running container is joined (its mount namespace, then `fchdir` + `chroot` to its
//! `/proc/<pid>/root`), so its volumes and binds are seen as the container sees them; a stopped
//! one is given as a directory (its root filesystem, mounted by the engine).
//!
//! - `stat PATH`: one JSON line, Docker's `PathStat` (`name`, `size`, `mode` as Go's
//!   `os.FileMode` bits, `mtime`, `linkTarget`).
//! - `get PATH`: a tar of PATH on stdout, its top entry named by PATH's last component
//!   (`PATH/.`: the directory's content). Symlinks are archived as links, never followed
//!   (only PATH itself is resolved, as `docker cp` does).
//! - `put PATH [--keep-owner]`: the tar on stdin extracted into the directory PATH; entries
//!   with `..` are skipped and absolute names taken inside PATH (the tar crate's `unpack_in`);
//!   what is written is root's unless `--keep-owner` (`docker cp -a`).
//!
//! Exit codes: 0, 2 no such path, 3 not a directory (put), 1 anything else; the reason on
//! stderr.

use super::error::RuntimeError;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const NOT_FOUND: u8 = 2;
pub const NOT_A_DIR: u8 = 3;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Where {
    Pid(i32),
    Root(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ArchiveArgs {
    pub at: Where,
    pub verb: String,
    pub path: String,
    /// `put`: keep the tar's owners (`docker cp -a`); otherwise what is written is root's,
    /// as Docker does.
    pub keep_owner: bool,
}

/// Why it failed, with the exit code that says so.
pub(super) struct Failure(pub u8, pub String);

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure(1, super::helper::error_chain(&e))
    }
}

/// Into the container's root: from here on `/` is the container's.
fn enter(at: &Where) -> Result<(), Failure> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Failure(1, format!("{what}: {e}"));
    let root = match at {
        Where::Pid(pid) => {
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let ns = File::open(proc_dir.join("ns/mnt"))
                .map_err(|e| bad("the container's mount namespace", &e))?;
            let root =
                File::open(proc_dir.join("root")).map_err(|e| bad("the container's root", &e))?;
            setns(&ns, CloneFlags::CLONE_NEWNS).map_err(|e| bad("setns mnt", &e))?;
            root
        }
        Where::Root(dir) => File::open(dir).map_err(|e| bad(&dir.display().to_string(), &e))?,
    };
    nix::unistd::fchdir(&root).map_err(|e| bad("fchdir", &e))?;
    nix::unistd::chroot(".").map_err(|e| bad("chroot", &e))?;
    std::env::set_current_dir("/").map_err(|e| bad("chdir /", &e))?;
    Ok(())
}

/// Go's `os.FileMode` bits for a file's `st_mode`, as Docker reports them.
pub fn go_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    let kind = mode & libc::S_IFMT;
    m |= match kind {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

fn stat_json(path: &str) -> Result<serde_json::Value, Failure> {
    let p = Path::new(path);
    let meta = std::fs::symlink_metadata(p).map_err(|e| not_found(path, &e))?;
    let link_target = if meta.file_type().is_symlink() {
        // Where it leads, inside the container (we are chrooted): its absolute path.
        std::fs::canonicalize(p)
            .map(|t| t.display().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(meta.mtime().max(0) as u64, meta.mtime_nsec().max(0) as u32);
    Ok(serde_json::json!({
        "name": name,
        "size": meta.size(),
        "mode": go_mode(meta.mode()),
        "mtime": crate::engine::api::time::rfc3339(Some(mtime)),
        "linkTarget": link_target,
    }))
}

fn not_found(path: &str, e: &std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::NotFound {
        Failure(
            NOT_FOUND,
            format!("Could not find the file {path} in container"),
        )
    } else {
        Failure(1, format!("{path}: {e}"))
    }
}

pub(super) fn run(a: &ArchiveArgs) -> Result<(), Failure> {
    if !a.path.starts_with('/') {
        return Err(Failure(1, format!("path {:?} is not absolute", a.path)));
    }
    enter(&a.at)?;
    match a.verb.as_str() {
        "stat" => {
            let j = stat_json(&a.path)?;
            println!("{j}");
            Ok(())
        }
        "get" => get(&a.path),
        "put" => put(&a.path, a.keep_owner),
        other => Err(Failure(1, format!("archive: unknown verb {other:?}"))),
    }
}

fn get(path: &str) -> Result<(), Failure> {
    let contents_only = path.ends_with("/.");
    let p = Path::new(path);
    let meta = std::fs::symlink_metadata(p).map_err(|e| not_found(path, &e))?;
    let stdout = std::io::stdout().lock();
    let mut b = tar::Builder::new(std::io::BufWriter::new(stdout));
    b.follow_symlinks(false);
    let io = |e: std::io::Error| Failure(1, format!("archiving {path}: {e}"));
    if contents_only {
        let dir = p.parent().unwrap_or(Path::new("/"));
        for e in std::fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name();
            append(&mut b, &e.path(), Path::new(&name)).map_err(io)?;
        }
    } else {
        let name = p
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        if meta.is_dir() {
            append(&mut b, p, &name).map_err(io)?;
        } else {
            b.append_path_with_name(p, &name).map_err(io)?;
        }
    }
    let mut w = b.into_inner().map_err(io)?;
    w.flush().map_err(io)?;
    Ok(())
}

/// `path` under `name`: a directory with everything below it, links as links.
fn append<W: Write>(b: &mut tar::Builder<W>, path: &Path, name: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        b.append_dir(name, path)?;
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            append(b, &e.path(), &name.join(e.file_name()))?;
        }
        Ok(())
    } else {
        b.append_path_with_name(path, name)
    }
}

fn put(path: &str, keep_owner: bool) -> Result<(), Failure> {
    let meta = std::fs::metadata(path).map_err(|e| not_found(path, &e))?;
    if !meta.is_dir() {
        return Err(Failure(
            NOT_A_DIR,
            format!("extraction point is not a directory: {path}"),
        ));
    }
    let mut ar = tar::Archive::new(std::io::BufReader::new(std::io::stdin().lock()));
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(keep_owner);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(false);
    let io = |e: std::io::Error| Failure(1, format!("extracting into {path}: {e}"));
    for entry in ar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        // `unpack_in` refuses `..` and keeps absolute names inside `path`.
        entry.unpack_in(path).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_file_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(
            go_mode(libc::S_IFREG | libc::S_ISUID | 0o755),
            (1 << 23) | 0o755
        );
    }
}
