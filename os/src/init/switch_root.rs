//! Leaving the initramfs before anything runs: PID 1 bind-mounts the initramfs `/` on a
//! directory of itself, moves that bind over `/`, chroots into it and executes `/init` again.
//!
//! Why: the initramfs (`rootfs`) is the absolute root of the mount tree and `pivot_root(2)`
//! refuses to move a root that has no parent mount. Containers on it must use `MS_MOVE` +
//! `chroot` (runc's `DOCKER_RAMDISK`), which leaves every host mount reachable beneath the
//! container's moved root, and a root process escapes a chroot. With a mount over `/` whose
//! parent is `rootfs`, libcontainer uses a real `pivot_root` and detaches the old root: a
//! container's mount namespace then holds only its own root and what its spec binds.
//! LinuxKit's init and Debian's initramfs (`switch_root`) copy the files into a tmpfs for the
//! same end; a bind of the same files gives it without the copy (it was 0.1-0.2 s of every
//! boot under TCG, for 13 MB of files).
//!
//! The re-exec also drops PID 1's argv to `/init` alone: the kernel passes the words after `--`
//! (`rancher.password=…`) as init's arguments, and `/proc/1/cmdline` is readable by every user.
//! PID 1 reads those words from `/proc/cmdline` (which it then hides), never from its argv.
//!
//! Failure is never fatal: boot goes on from the initramfs as before (containers then fall
//! back to `no_pivot`); the console says why.

use crate::console::{say, step_line, StepOutcome};
use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::fs;
use std::time::Instant;

/// Where the bind is made, inside the initramfs (removed once moved).
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
    // Our own path (`/init`, or what `rdinit=` named), read while /proc is there; the bind
    // shows the same file there.
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

/// Whether `/` is the kernel's `rootfs` itself (a mount without a parent). `/proc` is mounted
/// for the look (the `mount-proc` step finds it mounted and takes it as done).
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
    Ok(!crate::engine::runtime::root_has_parent(&info))
}

/// Make a bind mount of the initramfs `/` (cwd and root included): the same files, now on
/// a mount that has a parent. On failure nothing is left mounted and the cwd is `/`.
fn switch() -> anyhow::Result<()> {
    fs::create_dir_all(NEW_ROOT).with_context(|| format!("mkdir {NEW_ROOT}"))?;
    // Not recursive: /proc (mounted for the look) stays behind, and goes.
    mount(
        Some("/"),
        NEW_ROOT,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind / on {NEW_ROOT}"))?;
    // (The `mount-proc` step mounts it again if the switch fails from here.)
    let _ = umount2("/proc", MntFlags::MNT_DETACH);
    let moved = std::env::set_current_dir(NEW_ROOT)
        .with_context(|| format!("chdir {NEW_ROOT}"))
        .and_then(|()| {
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .context("move the bind over /")
        });
    if let Err(e) = moved {
        let _ = std::env::set_current_dir("/");
        let _ = umount2(NEW_ROOT, MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(NEW_ROOT);
        return Err(e);
    }
    nix::unistd::chroot(".").context("chroot into the new root")?;
    std::env::set_current_dir("/").context("chdir /")?;
    // The directory the bind was made on, seen through it: empty, no mount on it any more.
    let _ = fs::remove_dir(NEW_ROOT);
    Ok(())
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
