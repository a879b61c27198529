//! The seccomp filter of every non-privileged container: Docker's default profile, the same
//! allow list and argument filters, for x86-64 alone. Docker adds the 32-bit x86 and x32 ABIs,
//! which a kernel with `IA32_EMULATION` or `X86_X32_ABI` lets a process reach; ours is built
//! with neither (the fragment starts from tinyconfig and enables none), and a filter without
//! them kills any syscall made through them (libseccomp's action for an architecture it was not
//! given). Covering them would triple the filter and its build time at every container start
//! (measured: 394 ms against 241 ms a start under TCG) for nothing.
//!
//! Why Docker's: images are built and tested against it, so a program that runs under Docker
//! runs here, and the syscalls it refuses (`mount`, `keyctl`, `kexec_load`, `bpf`, `ptrace` of
//! other processes, namespace creation, kernel modules, the clock) are the ones that reach the
//! host kernel's least-confined paths. Anything not allowed fails with `EPERM`; `clone3` fails
//! with `ENOSYS` without `CAP_SYS_ADMIN`, so libc falls back to `clone`, whose namespace flags
//! are refused by an argument filter.
//!
//! Like Docker, the profile depends on the container's capabilities: a syscall group gated on
//! a capability (`CAP_SYS_ADMIN`: `mount`, `unshare`, `setns`…; `CAP_SYS_TIME`: the clock…) is
//! allowed only when the container has it, so `cap_add` keeps working. `privileged` and
//! `security_opt: [seccomp=unconfined]` get no filter at all. The filter itself is built by
//! libcontainer through libseccomp (linked statically: see `.cargo/config.toml`).

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};

/// `EPERM`: what a refused syscall returns (Docker's `defaultErrnoRet`).
const EPERM: u32 = 1;
/// `ENOSYS`: what `clone3` returns without `CAP_SYS_ADMIN`, so libc falls back to `clone`.
const ENOSYS: u32 = 38;

/// Allowed for every container.
const ALWAYS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Docker gates these on kernel ≥ 4.8 (where ptrace can no longer bypass seccomp); ours is
    // newer.
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    // x86 only.
    "arch_prctl",
    "modify_ldt",
];

/// Allowed only with the capability named first.
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// `personality(2)` personas allowed: Linux, `UNAME26`, `PER_LINUX32`, both, and the query.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// `AF_VSOCK`: the one socket family refused (the host's vsock services are not the
/// container's).
const AF_VSOCK: u64 = 40;
/// The namespace flags of `clone(2)` (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID,
/// NEWNET): without `CAP_SYS_ADMIN`, a `clone` with any of them is refused.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

fn rule(names: &[&str], action: LinuxSeccompAction, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    if !args.is_empty() {
        s.set_args(Some(args));
    }
    s
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64) -> LinuxSeccompArg {
    masked_arg(index, op, value, None)
}

fn masked_arg(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(v) = value_two {
        b = b.value_two(v);
    }
    // Every field is set: the builder cannot fail.
    b.build().unwrap_or_default()
}

/// Docker's default profile for a container with capabilities `caps` (its bounding set).
pub fn default_profile(caps: &Capabilities) -> LinuxSeccomp {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::{ScmpCmpEq, ScmpCmpMaskedEq, ScmpCmpNe};
    let mut syscalls = vec![
        rule(ALWAYS, Allow, vec![]),
        rule(&["socket"], Allow, vec![arg(0, ScmpCmpNe, AF_VSOCK)]),
    ];
    for p in PERSONALITIES {
        syscalls.push(rule(&["personality"], Allow, vec![arg(0, ScmpCmpEq, *p)]));
    }
    for (cap, names) in BY_CAPABILITY {
        if caps.contains(cap) {
            syscalls.push(rule(names, Allow, vec![]));
        }
    }
    if !caps.contains(&Capability::SysAdmin) {
        // Masked equal: (flags & mask) == 0, i.e. none of the namespace flags. libcontainer
        // reads `valueTwo` as the mask and `value` as what the masked argument must equal
        // (runc and Docker's JSON have them the other way round).
        let masked = masked_arg(0, ScmpCmpMaskedEq, 0, Some(CLONE_NAMESPACE_FLAGS));
        syscalls.push(rule(&["clone"], Allow, vec![masked]));
        let mut clone3 = rule(&["clone3"], Errno, vec![]);
        clone3.set_errno_ret(Some(ENOSYS));
        syscalls.push(clone3);
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(Errno);
    profile.set_default_errno_ret(Some(EPERM));
    profile.set_architectures(Some(vec![Arch::ScmpArchX86_64]));
    profile.set_syscalls(Some(syscalls));
    profile
}

/// Whether `name` is allowed by `profile` without argument conditions (tests, diagnostics).
pub fn allows_unconditionally(profile: &LinuxSeccomp, name: &str) -> bool {
    profile.syscalls().iter().flatten().any(|s| {
        s.action() == LinuxSeccompAction::ScmpActAllow
            && s.args().is_none()
            && s.names().iter().any(|n| n == name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[Capability]) -> Capabilities {
        names.iter().copied().collect()
    }

    #[test]
    fn refuses_what_docker_refuses_and_allows_the_everyday_calls() {
        let p = default_profile(&caps(&[Capability::Chown, Capability::SysChroot]));
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        for ok in [
            "read",
            "execve",
            "openat2",
            "chroot",
            "arch_prctl",
            "ptrace",
        ] {
            assert!(allows_unconditionally(&p, ok), "{ok}");
        }
        for denied in [
            "mount",
            "umount2",
            "keyctl",
            "add_key",
            "kexec_load",
            "bpf",
            "unshare",
            "setns",
            "init_module",
            "reboot",
            "clock_settime",
            "open_by_handle_at",
            "userfaultfd",
            "clone3",
            "clone",
            "socket",
            "personality",
        ] {
            assert!(!allows_unconditionally(&p, denied), "{denied}");
        }
    }

    #[test]
    fn capabilities_open_their_groups_and_sys_admin_lifts_the_clone_filter() {
        let p = default_profile(&caps(&[Capability::SysAdmin, Capability::SysTime]));
        for ok in ["mount", "unshare", "clone", "clone3", "clock_settime"] {
            assert!(allows_unconditionally(&p, ok), "{ok}");
        }
        assert!(!allows_unconditionally(&p, "kexec_load"));
        let plain = default_profile(&Capabilities::new());
        let clone = plain
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone".to_string()])
            .expect("clone rule");
        let a = clone.args().as_ref().unwrap()[0];
        assert_eq!(
            (a.op(), a.value(), a.value_two()),
            (
                LinuxSeccompOperator::ScmpCmpMaskedEq,
                0,
                Some(CLONE_NAMESPACE_FLAGS)
            )
        );
    }

    #[test]
    fn the_profile_round_trips_through_config_json() {
        let p = default_profile(&Capabilities::new());
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains("\"defaultAction\":\"SCMP_ACT_ERRNO\""),
            "{json}"
        );
        let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
