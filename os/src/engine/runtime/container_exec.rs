//! `exec`: run a command inside a running container (`docker exec`). Not libcontainer's tenant
//! exec: the engine knows the container by its init's pid, so this joins what that process is
//! in, directly, in this fresh single-threaded helper (`setns(2)` of a mount namespace refuses a
//! threaded caller):
//!
//! 1. open `/proc/<pid>/ns/{ipc,uts,net,pid,mnt}` (those that differ from ours: a service with
//!    `net: host` shares ours) and `/proc/<pid>/root`, all before moving anywhere;
//! 2. join its cgroup (our pid into `cgroup.procs`), so limits and `kill --all` cover the exec;
//! 3. `setns` into each namespace, mount last;
//! 4. `fchdir` to its root and `chroot(".")`: joining a mount namespace leaves the caller at
//!    that namespace's root, which is the container's `/` after libcontainer's `pivot_root`
//!    but not when it ran with `no_pivot` (a host root without a parent mount, see
//!    `container_create`): the chroot covers both;
//! 5. spawn the command with the container's environment (its init's `environ`, then the
//!    caller's `--env`) and its privileges: the capability bounding set of its init (so a root
//!    exec gets the container's capabilities, not the host's full set) and `no_new_privs` if
//!    the init has it; the fork lands it in the pid namespace joined in step 3;
//!    Before the spawn, this helper puts itself under the container's seccomp filter (read from
//!    its bundle's `config.json`, `--seccomp-from`): what it does after that (fork, wait,
//!    write, exit) the profile allows, and the command inherits the filter;
//! 6. wait for it (our own child, by pid) and exit with its code (128 + signal if killed).
//!
//! The helper's stdout and stderr are the command's, so errors go to stderr as text and the exit
//! code says what failed, as Docker's: 126 cannot run it, 127 not found.
//!
//! With `--tty` the command gets a terminal of the container's own: after step 4 the helper
//! opens a pty on the container's `/dev/ptmx` (its devpts instance, so `tty` names a
//! `/dev/pts/N` that exists in there), sends the master to the engine over its stdin, which
//! is then a unix socket (SCM_RIGHTS), and runs the command in a new session with the pty's
//! slave as its controlling terminal and stdio. The helper's own stderr moves to the slave
//! too, so what it says about a command that cannot run shows on that terminal.

use super::error::RuntimeError;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

/// PATH when the container's environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ExecArgs {
    pub pid: i32,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub cmd: Vec<String>,
    /// The container's `config.json`, whose `linux.seccomp` the command runs under.
    pub seccomp_from: Option<std::path::PathBuf>,
    /// Make a pty in the container and send its master over stdin (a unix socket).
    pub tty: bool,
}

/// Exit code when the command cannot be run at all.
pub(super) const CANNOT_RUN: i32 = 126;
/// Exit code when the command is not found.
pub(super) const NOT_FOUND: i32 = 127;

/// Join the container and run the command; its exit code.
pub(super) fn exec(a: &ExecArgs) -> Result<i32, RuntimeError> {
    let proc_dir = Path::new("/proc").join(a.pid.to_string());
    let env = environment(&proc_dir, &a.env)?;
    let cgroup = read(&proc_dir.join("cgroup"))?;
    let mut joins = Vec::new();
    for (ns, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let theirs = proc_dir.join("ns").join(ns);
        let ours = Path::new("/proc/self/ns").join(ns);
        let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino());
        let their_ino = ino(&theirs).map_err(|e| RuntimeError::io(&theirs, e))?;
        if ino(&ours).ok() != Some(their_ino) {
            let f = File::open(&theirs).map_err(|e| RuntimeError::io(&theirs, e))?;
            joins.push((ns, f, flag));
        }
    }
    let privs = Privileges::parse(&read(&proc_dir.join("status"))?)?;
    // Read before moving into the container (the path is the host's).
    let seccomp = match &a.seccomp_from {
        Some(p) => oci_spec::runtime::Spec::load(p)
            .map_err(|e| RuntimeError::Spec(format!("{}: {e}", p.display())))?
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone()),
        None => None,
    };
    let root_path = proc_dir.join("root");
    let root = File::open(&root_path).map_err(|e| RuntimeError::io(&root_path, e))?;

    if let Some(path) = cgroup_v2_path(&cgroup) {
        let procs = Path::new("/sys/fs/cgroup")
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs");
        std::fs::write(&procs, std::process::id().to_string())
            .map_err(|e| RuntimeError::io(&procs, e))?;
    }
    for (ns, f, flag) in &joins {
        setns(f, *flag).map_err(|e| RuntimeError::Spec(format!("setns {ns}: {e}")))?;
    }
    nix::unistd::fchdir(&root).map_err(|e| RuntimeError::Spec(format!("fchdir root: {e}")))?;
    nix::unistd::chroot(".").map_err(|e| RuntimeError::Spec(format!("chroot: {e}")))?;
    let cwd = a.cwd.as_deref().unwrap_or("/");
    std::env::set_current_dir(cwd).map_err(|e| RuntimeError::io(Path::new(cwd), e))?;

    let Some((prog, args)) = a.cmd.split_first() else {
        return Err(RuntimeError::Usage("exec: no command".into()));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear().envs(env);
    let mut privs = privs;
    if a.tty {
        let slave = terminal()?;
        let io = |f: &std::os::fd::OwnedFd| {
            f.try_clone()
                .map(std::process::Stdio::from)
                .map_err(|e| RuntimeError::Spec(format!("pty: {e}")))
        };
        cmd.stdin(io(&slave)?)
            .stdout(io(&slave)?)
            .stderr(io(&slave)?);
        // From here on what this helper says goes to the terminal.
        nix::unistd::dup2_stderr(&slave).map_err(|e| RuntimeError::Spec(format!("pty: {e}")))?;
        privs.session = true;
    }
    if let Some(u) = &a.user {
        privs.user = Some(user_ids(
            u,
            &read(Path::new("/etc/passwd")).unwrap_or_default(),
        )?);
    }
    // SAFETY: the closure runs in the child between fork and exec and makes only prctl(2)
    // calls, which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || privs.apply());
    }
    if let Some(profile) = &seccomp {
        libcontainer::seccomp::initialize_seccomp(profile)
            .map_err(|e| RuntimeError::Spec(format!("seccomp: {e}")))?;
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                NOT_FOUND
            } else {
                CANNOT_RUN
            };
            eprintln!("exec: {prog:?}: {e}");
            return Ok(code);
        }
    };
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(CANNOT_RUN))
}

/// What the container's init may do, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Privileges {
    /// `CapBnd`: the capability bounding set.
    bounding: u64,
    no_new_privs: bool,
    /// Run as (uid, gid) instead of root: set here, after the bounding set is dropped (which
    /// needs root's CAP_SETPCAP), not by `Command::uid`, which would come first.
    user: Option<(u32, u32)>,
    /// Start a session whose controlling terminal is stdin (a pty's slave).
    session: bool,
}

impl Privileges {
    fn parse(status: &str) -> Result<Privileges, RuntimeError> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let bounding = field("CapBnd")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(|| RuntimeError::Spec("no CapBnd in the container's status".into()))?;
        Ok(Privileges {
            bounding,
            no_new_privs: field("NoNewPrivs") == Some("1"),
            user: None,
            session: false,
        })
    }

    /// In the child before exec: drop every capability outside the bounding set (a root
    /// process's capabilities after exec are its bounding set), switch user, then
    /// `no_new_privs`.
    fn apply(self) -> std::io::Result<()> {
        if self.session {
            // SAFETY: setsid and ioctl(TIOCSCTTY) with an integer argument touch no memory.
            let ok = unsafe { libc::setsid() >= 0 && libc::ioctl(0, libc::TIOCSCTTY, 0) == 0 };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
        }
        for cap in 0..64u64 {
            if self.bounding & (1 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments touches no memory of ours.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                // EINVAL: no such capability on this kernel, so nothing to drop.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
        if let Some((uid, gid)) = self.user {
            // SAFETY: setgroups with an empty list reads no memory; setgid/setuid take integers.
            let ok = unsafe {
                libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(gid) == 0
                    && libc::setuid(uid) == 0
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
        }
        if self.no_new_privs {
            // SAFETY: as above.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A pty on the container's `/dev/ptmx` (we are chrooted in it): the master goes to the engine
/// over stdin (a unix socket), the slave is returned.
fn terminal() -> Result<std::os::fd::OwnedFd, RuntimeError> {
    use nix::fcntl::OFlag;
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let pty = |what: &str, e: nix::Error| RuntimeError::Spec(format!("pty: {what}: {e}"));
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| pty("open /dev/ptmx", e))?;
    nix::pty::grantpt(&master).map_err(|e| pty("grantpt", e))?;
    nix::pty::unlockpt(&master).map_err(|e| pty("unlockpt", e))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| pty("ptsname", e))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| pty(&name, e))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        0,
        &[std::io::IoSlice::new(b"m")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| pty("sending the master on stdin", e))?;
    Ok(slave)
}

fn read(p: &Path) -> Result<String, RuntimeError> {
    std::fs::read_to_string(p).map_err(|e| RuntimeError::io(p, e))
}

/// The container init's environment with `extra` (`K=V`) on top; PATH defaulted.
fn environment(proc_dir: &Path, extra: &[String]) -> Result<Vec<(String, String)>, RuntimeError> {
    let path = proc_dir.join("environ");
    let raw = std::fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
    let mut env: Vec<(String, String)> = Vec::new();
    let entries = raw
        .split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .chain(extra.iter().cloned());
    for e in entries {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(env)
}

/// The cgroup v2 path in `/proc/<pid>/cgroup` (`0::/system/syslog`).
fn cgroup_v2_path(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| !p.is_empty())
}

/// `uid`, `uid:gid`, `name` or `name:group-id`, names looked up in the container's passwd.
fn user_ids(user: &str, passwd: &str) -> Result<(u32, u32), RuntimeError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == u || f[2] == u)).then(|| (f[2].parse().ok(), f[3].parse().ok()))
    });
    let uid = match (u.parse::<u32>(), entry) {
        (Ok(n), _) => n,
        (Err(_), Some((Some(n), _))) => n,
        _ => {
            return Err(RuntimeError::Spec(format!(
                "no user {u:?} in the container"
            )))
        }
    };
    let gid = match g {
        Some(g) => g
            .parse()
            .map_err(|_| RuntimeError::Spec(format!("group {g:?}: only numeric groups")))?,
        None => entry.and_then(|(_, g)| g).unwrap_or(uid),
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_by_number_or_name() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nsyslog:x:104:110::/home/syslog:/bin/false\n";
        assert_eq!(user_ids("0", passwd).unwrap(), (0, 0));
        assert_eq!(user_ids("syslog", passwd).unwrap(), (104, 110));
        assert_eq!(user_ids("104:5", passwd).unwrap(), (104, 5));
        assert_eq!(user_ids("1000", passwd).unwrap(), (1000, 1000));
        assert!(user_ids("nobody", passwd).is_err());
    }

    #[test]
    fn privileges_come_from_the_inits_status() {
        let status = "Name:\tsyslogd\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n\
                      NoNewPrivs:\t1\n";
        assert_eq!(
            Privileges::parse(status).unwrap(),
            Privileges {
                bounding: 0xa80425fb,
                no_new_privs: true,
                user: None,
                session: false,
            }
        );
        assert!(Privileges::parse("Name:\tx\n").is_err());
    }

    #[test]
    fn the_v2_cgroup_line_is_found() {
        assert_eq!(
            cgroup_v2_path("0::/system/syslog\n"),
            Some("/system/syslog")
        );
        assert_eq!(cgroup_v2_path("1:name=x:/\n"), None);
    }

    #[test]
    fn extra_env_overrides_the_containers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("environ"), b"A=1\0HOME=/root\0").unwrap();
        let env = environment(dir.path(), &["A=2".into(), "B=x=y".into()]).unwrap();
        assert_eq!(
            env,
            [
                ("HOME".to_string(), "/root".to_string()),
                ("A".into(), "2".into()),
                ("B".into(), "x=y".into()),
                ("PATH".into(), DEFAULT_PATH.into()),
            ]
        );
    }
}
