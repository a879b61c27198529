//! `top`: the processes of a container, read from `/proc` for every pid of its cgroup (and
//! the cgroups below it), in `ps -ef`'s columns, which is what dockerd shows by default. We do
//! not run `ps`: the engine's image need not have one, and its arguments would be an
//! attacker's command line.

use super::{Manager, ManagerError, Result};
use std::path::Path;

/// `ps -ef`'s titles.
pub const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

impl Manager {
    /// One row a process, in [`TITLES`]' order.
    pub fn top(&self, name_or_id: &str) -> Result<Vec<Vec<String>>> {
        let rec = self.get(name_or_id)?;
        if !rec.state.status.is_running() {
            return Err(ManagerError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let mut pids = Vec::new();
        cgroup_pids(&self.cgroup_dir(&rec.id), &mut pids, 0)?;
        pids.sort_unstable();
        pids.dedup();
        let clock = Clock::now();
        // Names from the container's passwd, then the engine's (dockerd runs the host's `ps`,
        // which uses the host's); uid 0 is root everywhere.
        let mut passwd = container_passwd(rec.state.pid);
        passwd.push_str(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
        passwd.push_str("\nroot:x:0:0::/root:/bin/sh\n");
        Ok(pids
            .into_iter()
            .filter_map(|pid| row(pid, &clock, &passwd))
            .collect())
    }
}

/// The container's `/etc/passwd`, resolved inside its root (an absolute symlink there must not
/// lead to the engine's files), a regular file only, at most 1 MiB of it: the container wrote
/// it.
fn container_passwd(pid: i32) -> String {
    use std::io::Read;
    const MAX: u64 = 1 << 20;
    let read = || -> Option<String> {
        let root = pathrs::Root::open(format!("/proc/{pid}/root")).ok()?;
        let handle = root.resolve(Path::new("/etc/passwd")).ok()?;
        let f = handle
            .reopen(pathrs::flags::OpenFlags::O_RDONLY | pathrs::flags::OpenFlags::O_NONBLOCK)
            .ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut text = String::new();
        f.take(MAX).read_to_string(&mut text).ok()?;
        Some(text)
    };
    read().unwrap_or_default()
}

/// Every pid in `dir`'s `cgroup.procs` and those of its children (not deeper than 16).
fn cgroup_pids(dir: &Path, out: &mut Vec<i32>, depth: usize) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&procs).map_err(|e| ManagerError::io(&procs, e))?;
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if depth >= 16 {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            // A child that went away meanwhile is no error.
            let _ = cgroup_pids(&e.path(), out, depth + 1);
        }
    }
    Ok(())
}

/// What `ps` needs to turn clock ticks into times.
struct Clock {
    ticks: u64,
    /// Seconds since boot.
    uptime: f64,
    /// Unix seconds of the boot.
    boot: i64,
}

impl Clock {
    fn now() -> Clock {
        let ticks = crate::procfs::clock_ticks();
        let uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Clock {
            ticks,
            uptime,
            boot: (now - uptime) as i64,
        }
    }
}

fn row(pid: i32, clock: &Clock, passwd: &str) -> Option<Vec<String>> {
    let dir = format!("/proc/{pid}");
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let (comm, f) = crate::procfs::stat_fields(&stat)?;
    // After the command: state(0) ppid(1) pgrp session tty_nr(4) … utime(11) stime(12) …
    // starttime(19).
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ppid = num(1);
    let cpu = (num(11) + num(12)) / clock.ticks;
    let started = num(19) as f64 / clock.ticks as f64;
    let elapsed = (clock.uptime - started).max(1.0);
    let c = ((cpu as f64 / elapsed) * 100.0) as u64;
    let stime = clock.boot + started as i64;
    let uid = std::fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(String::from))
        })
        .unwrap_or_else(|| "?".into());
    let user = passwd
        .lines()
        .find_map(|l| {
            let p: Vec<&str> = l.split(':').collect();
            (p.len() > 2 && p[2] == uid).then(|| p[0].to_string())
        })
        .unwrap_or(uid);
    let cmdline = std::fs::read(format!("{dir}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(vec![
        user,
        pid.to_string(),
        ppid.to_string(),
        c.to_string(),
        hh_mm(stime),
        tty(num(4)),
        format!("{:02}:{:02}:{:02}", cpu / 3600, cpu / 60 % 60, cpu % 60),
        cmd,
    ])
}

/// `HH:MM` (UTC) of a unix time, as `ps` shows a start today.
fn hh_mm(unix: i64) -> String {
    let day = unix.rem_euclid(86_400);
    format!("{:02}:{:02}", day / 3600, day / 60 % 60)
}

/// `ps`'s TTY column from `tty_nr`: `pts/N`, `ttyN`, `ttySN`, or `?`.
fn tty(nr: u64) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttys_by_device_number() {
        assert_eq!(tty(0), "?");
        assert_eq!(tty(136 << 8), "pts/0");
        assert_eq!(tty((136 << 8) | 3), "pts/3");
        assert_eq!(tty((4 << 8) | 1), "tty1");
        assert_eq!(tty((4 << 8) | 64), "ttyS0");
        assert_eq!(hh_mm(3600 * 25 + 60 * 7), "01:07");
    }
}
