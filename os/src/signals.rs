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

#[cfg(test)]
mod tests {
    #[test]
    fn a_child_starts_with_nothing_ignored() {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "grep SigIgn /proc/self/status"]);
        // SAFETY: reset_all only makes raw system calls.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                super::reset_all();
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), "SigIgn:\t0000000000000000");
    }
}
