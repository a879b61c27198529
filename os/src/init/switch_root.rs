//! Leaving the initramfs before anything runs: PID 1 copies the initramfs into a tmpfs, empties
//! the old root, moves the tmpfs over `/`, chroots into it and executes `/init` again.
//!
//! Why: the initramfs (`rootfs`) is the absolute root of the mount tree and `pivot_root(2)`
//! refuses to move it. Containers on it must use `MS_MOVE` + `chroot` (runc's `DOCKER_RAMDISK`),
//! which leaves every host mount reachable beneath the container's moved root, and a root process
//! escapes a chroot. On a tmpfs mounted over `/`, the root has a parent mount, so libcontainer
//! uses a real `pivot_root` and detaches the old root: a container's mount namespace then holds
//! only its own root and what its spec binds. This is what LinuxKit's init and Debian's
//! initramfs (`switch_root`) do.
//!
//! The re-exec also drops PID 1's argv to `/init` alone: the kernel passes the words after `--`
//! (`rancher.password=…`) as init's arguments, and `/proc/1/cmdline` is readable by every user.
//! PID 1 reads those words from `/proc/cmdline` (which it then hides), never from its argv.
//!
//! Failure is never fatal: if the copy fails, the tmpfs is unmounted and boot goes on from the
//! initramfs as before (containers then fall back to `no_pivot`); the console says why.

use crate::console::{say, step_line, StepOutcome};
use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{lchown, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

/// Where the new root is built, inside the initramfs (removed with it).
const NEW_ROOT: &str = "/.ros-root";
/// Set for the `/init` that runs in the new root, so it knows the switch is done (and prints no
/// second `[ros] init` line). Its value is the first `/init`'s start (seconds since boot).
pub const SWITCHED_ENV: &str = "ROS_SWITCHED_ROOT";

/// Switch out of the initramfs if `/` is still it, or re-exec with a bare argv if PID 1 was given
/// arguments. Returns only when no exec happened (or it failed): boot then goes on here.
pub fn leave_initramfs(started: f64) {
    let on_rootfs = match root_is_rootfs() {
        Ok(v) => v,
        Err(e) => {
            say(step_line(
                "switch-root",
                &StepOutcome::Failed(format!("{e:#}")),
                Default::default(),
            ));
            false
        }
    };
    let argv_has_words = std::env::args_os().len() > 1;
    if !on_rootfs && !argv_has_words {
        return;
    }
    // Our own path (`/init`, or what `rdinit=` named), read while /proc is there; the copy
    // keeps it.
    let exe = fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| CString::new(p.into_os_string().into_encoded_bytes()).ok())
        .unwrap_or_else(|| CString::from(c"/init"));
    let t = Instant::now();
    if on_rootfs {
        match switch() {
            Ok(()) => say(step_line("switch-root", &StepOutcome::Ok, t.elapsed())),
            Err(e) => {
                say(step_line(
                    "switch-root",
                    &StepOutcome::Failed(format!("{e:#}; staying on the initramfs")),
                    t.elapsed(),
                ));
                // Without the switch, hiding PID 1's argv is still worth the exec.
            }
        }
    }
    let err = reexec(&exe, started);
    say(format!(
        "re-exec of /init failed: {err}; going on without it"
    ));
}

/// Whether `/` is the kernel's `rootfs`. `/proc` is mounted for the look (the `mount-proc`
/// step finds it mounted and takes it as done).
fn root_is_rootfs() -> anyhow::Result<bool> {
    fs::create_dir_all("/proc").context("mkdir /proc")?;
    match mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
        Err(e) => anyhow::bail!("mount proc on /proc: {e}"),
    }
    let info = fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    Ok(crate::engine::runtime::root_fstype(&info) == Some("rootfs"))
}

/// Copy `/` into a tmpfs, empty the old root, and make the tmpfs `/` (cwd and root included).
fn switch() -> anyhow::Result<()> {
    let root_dev = fs::metadata("/").context("stat /")?.dev();
    fs::create_dir_all(NEW_ROOT).with_context(|| format!("mkdir {NEW_ROOT}"))?;
    mount(
        Some("tmpfs"),
        NEW_ROOT,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .with_context(|| format!("mount tmpfs on {NEW_ROOT}"))?;
    // Moved, not copied: each file leaves the initramfs once its copy is made, so the system
    // is in RAM once, not twice, while this runs (what lets it boot in 64 MB).
    let mut links = HashMap::new();
    let moving = Transfer::Move;
    if let Err(e) = copy_tree(
        Path::new("/"),
        Path::new(NEW_ROOT),
        root_dev,
        &mut links,
        moving,
    ) {
        // Back where they were: the files moved so far (the tmpfs is the only other device).
        let new_dev = fs::metadata(NEW_ROOT).map(|m| m.dev()).unwrap_or(0);
        let back = copy_tree(
            Path::new(NEW_ROOT),
            Path::new("/"),
            new_dev,
            &mut HashMap::new(),
            Transfer::MoveBack,
        );
        if let Err(b) = back {
            say(format!("switch-root: moving the files back: {b:#}"));
        }
        let _ = umount2(NEW_ROOT, MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(NEW_ROOT);
        return Err(e);
    }
    let _ = umount2("/proc", MntFlags::MNT_DETACH);
    // What could not be removed on the way (it is unreachable after the move).
    empty_dir(Path::new("/"), root_dev);
    std::env::set_current_dir(NEW_ROOT).with_context(|| format!("chdir {NEW_ROOT}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .context("move the new root over /")?;
    nix::unistd::chroot(".").context("chroot into the new root")?;
    std::env::set_current_dir("/").context("chdir /")?;
    Ok(())
}

/// What [`copy_tree`] does with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// Leave it.
    Copy,
    /// Remove each file (and emptied directory) once copied.
    Move,
    /// [`Transfer::Move`] into a tree that may hold the same directories already (undoing a
    /// move that failed half way).
    MoveBack,
}

/// Copy the directory `from` into `to` (an existing directory), entries of other filesystems
/// (mount points) and `to` itself left out. Symlinks are copied as links, never followed; hard
/// links stay hard links (`links`: (dev, ino) of the source → its copy). `how`: see
/// [`Transfer`].
pub(crate) fn copy_tree(
    from: &Path,
    to: &Path,
    dev: u64,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
    how: Transfer,
) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("stat {}", from.display()))?;
    copy_owner_mode(to, &meta)?;
    let done = |src: &Path| {
        if how != Transfer::Copy {
            let _ = fs::remove_file(src);
        }
    };
    for entry in fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry.with_context(|| format!("read {}", from.display()))?;
        let src = entry.path();
        if src == Path::new(NEW_ROOT) {
            continue;
        }
        let dst = to.join(entry.file_name());
        let m = fs::symlink_metadata(&src).with_context(|| format!("stat {}", src.display()))?;
        if m.dev() != dev {
            continue;
        }
        let ft = m.file_type();
        if ft.is_dir() {
            match fs::DirBuilder::new().mode(0o700).create(&dst) {
                Err(e)
                    if how == Transfer::MoveBack
                        && e.kind() == std::io::ErrorKind::AlreadyExists => {}
                r => r.with_context(|| format!("mkdir {}", dst.display()))?,
            }
            copy_tree(&src, &dst, dev, links, how)?;
            if how != Transfer::Copy {
                let _ = fs::remove_dir(&src);
            }
            continue;
        }
        // (Looked up whatever the link count: a move has removed the names copied before.)
        if !ft.is_symlink() {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                fs::hard_link(first, &dst)
                    .with_context(|| format!("link {} to {}", dst.display(), first.display()))?;
                done(&src);
                continue;
            }
            if m.nlink() > 1 {
                links.insert((m.dev(), m.ino()), dst.clone());
            }
        }
        if ft.is_symlink() {
            let target =
                fs::read_link(&src).with_context(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst)
                .with_context(|| format!("symlink {}", dst.display()))?;
            lchown(&dst, Some(m.uid()), Some(m.gid()))
                .with_context(|| format!("chown {}", dst.display()))?;
            done(&src);
            continue;
        }
        if ft.is_file() {
            fs::copy(&src, &dst)
                .with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
        } else {
            // Device nodes, FIFOs and sockets of the initramfs (e.g. /dev/console).
            let kind = SFlag::from_bits_truncate(m.mode() & libc::S_IFMT);
            mknod(
                &dst,
                kind,
                Mode::from_bits_truncate(m.mode() & 0o7777),
                m.rdev(),
            )
            .with_context(|| format!("mknod {}", dst.display()))?;
        }
        copy_owner_mode(&dst, &m)?;
        done(&src);
    }
    Ok(())
}

fn copy_owner_mode(path: &Path, m: &fs::Metadata) -> anyhow::Result<()> {
    lchown(path, Some(m.uid()), Some(m.gid()))
        .with_context(|| format!("chown {}", path.display()))?;
    // After the chown, which clears setuid/setgid.
    fs::set_permissions(path, fs::Permissions::from_mode(m.mode() & 0o7777))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Remove everything in `dir` on filesystem `dev` (mount points and the new root stay).
fn empty_dir(dir: &Path, dev: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.dev() != dev || p == Path::new(NEW_ROOT) {
            continue;
        }
        if m.is_dir() {
            empty_dir(&p, dev);
            let _ = fs::remove_dir(&p);
        } else {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Execute `path` (ourselves) as `/init` with no arguments (the name picks PID 1's entry point
/// in the multi-call binary), marking the switch in the environment.
fn reexec(path: &CString, started: f64) -> nix::errno::Errno {
    let argv0 = CString::from(c"/init");
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != SWITCHED_ENV)
        .filter_map(|(k, v)| {
            use std::os::unix::ffi::OsStrExt;
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    if let Ok(mark) = CString::new(format!("{SWITCHED_ENV}={started:.3}")) {
        env.push(mark);
    }
    match nix::unistd::execve(path, &[&argv0], &env) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_and_modes_and_leaves_other_mounts_and_itself_out() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("usr/bin")).unwrap();
        fs::write(s.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(s.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(s.join("usr/bin/tool"), s.join("usr/bin/alias")).unwrap();
        std::os::unix::fs::symlink("usr/bin", s.join("bin")).unwrap();
        fs::create_dir(s.join("secret")).unwrap();
        fs::set_permissions(s.join("secret"), fs::Permissions::from_mode(0o700)).unwrap();
        let dev = fs::metadata(s).unwrap().dev();
        let mut links = HashMap::new();
        copy_tree(s, dst.path(), dev, &mut links, Transfer::Copy).unwrap();
        let d = dst.path();
        assert_eq!(fs::read(d.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\n");
        let tool = fs::metadata(d.join("usr/bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(
            tool.ino(),
            fs::metadata(d.join("usr/bin/alias")).unwrap().ino()
        );
        assert_eq!(fs::read_link(d.join("bin")).unwrap(), Path::new("usr/bin"));
        assert_eq!(
            fs::metadata(d.join("secret")).unwrap().mode() & 0o7777,
            0o700
        );
        empty_dir(s, dev);
        assert_eq!(fs::read_dir(s).unwrap().count(), 0);
    }

    #[test]
    fn a_move_empties_the_source_and_a_move_back_merges() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("a/b")).unwrap();
        fs::write(s.join("a/b/f"), b"x").unwrap();
        fs::hard_link(s.join("a/b/f"), s.join("a/g")).unwrap();
        std::os::unix::fs::symlink("b/f", s.join("a/l")).unwrap();
        let dev = fs::metadata(s).unwrap().dev();
        copy_tree(s, dst.path(), dev, &mut HashMap::new(), Transfer::Move).unwrap();
        assert_eq!(fs::read_dir(s).unwrap().count(), 0, "the source is empty");
        let d = dst.path();
        assert_eq!(fs::read(d.join("a/g")).unwrap(), b"x");
        assert_eq!(
            fs::metadata(d.join("a/g")).unwrap().ino(),
            fs::metadata(d.join("a/b/f")).unwrap().ino()
        );
        // Half of it back, into a tree that still has its directory.
        fs::create_dir(s.join("a")).unwrap();
        copy_tree(d, s, dev, &mut HashMap::new(), Transfer::MoveBack).unwrap();
        assert_eq!(fs::read(s.join("a/b/f")).unwrap(), b"x");
        assert_eq!(fs::read_link(s.join("a/l")).unwrap(), Path::new("b/f"));
        assert_eq!(fs::read_dir(d).unwrap().count(), 0);
    }
}
