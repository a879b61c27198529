//! Signal dispositions handed to other programs. A disposition of SIG_IGN survives `exec`, so
//! whatever starts a service or a login session must put every signal back to its default, or
//! the program inherits ignores it never asked for. Two sources of them here: a Rust program
//! ignores SIGPIPE, and glibc's `posix_spawn` (which Rust's `Command` uses) leaves glibc's own
//! signals 32 and 33 ignored in the child of a threaded parent such as PID 1, where glibc's
//! `sigaction` refuses to touch them again. So this goes to the kernel directly.

/// The kernel's `struct sigaction` on x86_64, for `rt_sigaction`.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Every signal (1–64 but KILL and STOP) to SIG_DFL. Async-signal-safe: raw system calls
/// only, so it may run between fork and exec.
pub fn reset_all() {
    let default = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads `default` (a valid kernel sigaction) and writes nothing
        // (null old action); the size is that of the kernel's 64-bit signal set.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
}

/// `cmd` set to start with every signal at its default ([`reset_all`]) and an empty signal mask:
/// a parent that blocks signals to take them with `sigwait` (consoled, ros-init, netconf) would
/// otherwise hand the block down, and the child would never see SIGTERM.
pub fn clean_child(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (raw rt_sigaction, sigemptyset, sigprocmask); it touches no
    // shared state.
    unsafe {
        cmd.pre_exec(|| {
            reset_all();
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// For the command-line tools: a closed pipe ends the process quietly, as it does any Unix
/// tool (`system-docker inspect ntp | head`), instead of a panic in `println!` (Rust ignores
/// SIGPIPE, so a write to a closed pipe is an error, and `println!` panics on errors).
pub fn quiet_on_closed_pipe() {
    // SAFETY: setting SIGPIPE's disposition to the default has no memory-safety preconditions;
    // it is called at the start of a single-purpose command, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clean_child_starts_with_nothing_ignored_or_blocked() {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"]);
        // SAFETY: signal and sigprocmask are async-signal-safe. These run before clean_child's
        // closure (pre_exec closures run in order) and leave what it must undo.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                let mut set = std::mem::zeroed::<libc::sigset_t>();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let out = super::clean_child(&mut cmd).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000"
        );
    }
}
