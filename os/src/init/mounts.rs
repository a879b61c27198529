//! The kernel filesystems every later piece expects, mounted by PID 1 before anything runs.
//! A mount point that is already mounted (EBUSY) counts as done, so a re-run is harmless.

use anyhow::Context;
use nix::mount::{mount, MsFlags};
use std::path::Path;

/// Controllers handed down to child cgroups (system services and containers get their own).
const CONTROLLERS: &[&str] = &["cpu", "cpuset", "io", "memory", "pids"];

fn mount_fs(fstype: &str, target: &str, flags: MsFlags, data: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("mkdir {target}"))?;
    match mount(Some(fstype), target, Some(fstype), flags, data) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("mount {fstype} on {target}: {e}")),
    }
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

pub fn proc(_: &mut super::Boot) -> anyhow::Result<()> {
    mount_fs("proc", "/proc", NOSUID_NODEV_NOEXEC, None)
}

pub fn sys(_: &mut super::Boot) -> anyhow::Result<()> {
    mount_fs("sysfs", "/sys", NOSUID_NODEV_NOEXEC, None)
}

pub fn dev(_: &mut super::Boot) -> anyhow::Result<()> {
    mount_fs("devtmpfs", "/dev", MsFlags::MS_NOSUID, Some("mode=0755"))?;
    mount_fs(
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("gid=5,mode=0620,ptmxmode=0666"),
    )?;
    mount_fs(
        "tmpfs",
        "/dev/shm",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        if !Path::new(link).exists() {
            std::os::unix::fs::symlink(target, link).with_context(|| format!("symlink {link}"))?;
        }
    }
    Ok(())
}

/// Directories of `/run` the network service shares with the host (its leases and ready file;
/// the resolver file `/etc/resolv.conf` names), made here rather than by its first start: a
/// service whose bind source is missing is not prepared ahead (`system_services::warm`), and
/// with disk datasources `network` is among the services prepared while `cloud-init-save` runs.
const RUN_DIRS: &[&str] = &["/run/netconf", "/run/resolvconf"];

pub fn run_and_tmp(_: &mut super::Boot) -> anyhow::Result<()> {
    mount_fs(
        "tmpfs",
        "/run",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    for d in RUN_DIRS {
        std::fs::create_dir_all(d).with_context(|| format!("mkdir {d}"))?;
    }
    mount_fs(
        "tmpfs",
        "/tmp",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
}

pub fn cgroup2(_: &mut super::Boot) -> anyhow::Result<()> {
    mount_fs(
        "cgroup2",
        "/sys/fs/cgroup",
        NOSUID_NODEV_NOEXEC,
        Some("nsdelegate"),
    )
}

/// Enable the container controllers for children of the root cgroup.
pub fn enable_controllers(_: &mut super::Boot) -> anyhow::Result<()> {
    let root = Path::new("/sys/fs/cgroup");
    let available = std::fs::read_to_string(root.join("cgroup.controllers"))
        .context("/sys/fs/cgroup/cgroup.controllers")?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let missing: Vec<&str> = CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !available.contains(c))
        .collect();
    let enable: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    std::fs::write(root.join("cgroup.subtree_control"), enable.join(" "))
        .context("/sys/fs/cgroup/cgroup.subtree_control")?;
    if !missing.is_empty() {
        anyhow::bail!("kernel lacks cgroup controllers: {}", missing.join(", "));
    }
    Ok(())
}
