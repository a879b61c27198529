//! `stats`: one sample of a running container's resource use, read from its cgroup v2 files
//! (`cpu.stat`, `memory.current`, `memory.max`, `memory.stat`, `pids.current`, `pids.max`,
//! `io.stat`) and the host's `/proc/stat`, in the units Docker reports (CPU in nanoseconds,
//! memory in bytes). The API turns two samples into Docker's `cpu_stats`/`precpu_stats`.

use super::{record, Manager, ManagerError, Result};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Unix nanoseconds.
    pub read: i128,
    pub cpu_total: u64,
    pub cpu_user: u64,
    pub cpu_kernel: u64,
    /// The host's CPU time since boot, all CPUs (Docker's `system_cpu_usage`).
    pub system_cpu: u64,
    pub online_cpus: u32,
    pub throttle_periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
    pub memory_usage: u64,
    /// `memory.max`, or the host's memory when unlimited (as Docker).
    pub memory_limit: u64,
    pub memory_stat: BTreeMap<String, u64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    /// (major, minor, read bytes, written bytes) a device.
    pub io: Vec<(u64, u64, u64, u64)>,
}

impl Manager {
    pub fn stats(&self, name_or_id: &str) -> Result<Sample> {
        let rec = self.get(name_or_id)?;
        if !rec.state.status.is_running() {
            return Err(ManagerError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let dir = self.cgroup_dir(&rec.id);
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| ManagerError::io(&p, e))
        };
        let cpu = keyed(&read("cpu.stat")?);
        let mut s = Sample {
            read: record::now(),
            cpu_total: cpu.get("usage_usec").copied().unwrap_or(0) * 1000,
            cpu_user: cpu.get("user_usec").copied().unwrap_or(0) * 1000,
            cpu_kernel: cpu.get("system_usec").copied().unwrap_or(0) * 1000,
            throttle_periods: cpu.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: cpu.get("throttled_usec").copied().unwrap_or(0) * 1000,
            memory_usage: number(&read("memory.current")?).unwrap_or(0),
            memory_stat: keyed(&read("memory.stat")?),
            pids: read("pids.current")
                .ok()
                .and_then(|t| number(&t))
                .unwrap_or(0),
            pids_limit: read("pids.max").ok().and_then(|t| number(&t)),
            io: read("io.stat").map(|t| io_stat(&t)).unwrap_or_default(),
            ..Sample::default()
        };
        s.memory_limit = match read("memory.max").ok().and_then(|t| number(&t)) {
            Some(n) => n,
            None => host_memory(Path::new("/proc/meminfo")),
        };
        let (system, cpus) = host_cpu(
            &std::fs::read_to_string("/proc/stat")
                .map_err(|e| ManagerError::io(Path::new("/proc/stat"), e))?,
        );
        s.system_cpu = system;
        s.online_cpus = cpus;
        Ok(s)
    }
}

/// A number, or `None` for `max` and anything else.
fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// `key value` lines.
fn keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `8:0 rbytes=1 wbytes=2 rios=3 …` lines.
fn io_stat(text: &str) -> Vec<(u64, u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (maj, min) = words.next()?.split_once(':')?;
            let (mut r, mut w) = (0, 0);
            for kv in words {
                match kv.split_once('=') {
                    Some(("rbytes", v)) => r = v.parse().unwrap_or(0),
                    Some(("wbytes", v)) => w = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            Some((maj.parse().ok()?, min.parse().ok()?, r, w))
        })
        .collect()
}

/// The host's CPU time in nanoseconds (the `cpu` line of `/proc/stat`, as Docker sums it)
/// and the number of CPUs.
fn host_cpu(stat: &str) -> (u64, u32) {
    let ticks = crate::procfs::clock_ticks();
    let mut total = 0;
    let mut cpus = 0;
    for l in stat.lines() {
        let mut words = l.split_whitespace();
        match words.next() {
            Some("cpu") => {
                total = words
                    .take(7)
                    .filter_map(|w| w.parse::<u64>().ok())
                    .sum::<u64>()
                    * (1_000_000_000 / ticks);
            }
            Some(w) if w.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus.max(1))
}

fn host_memory(meminfo: &Path) -> u64 {
    std::fs::read_to_string(meminfo)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_parse() {
        let k = keyed("usage_usec 1500\nuser_usec 1000\nbogus\nsystem_usec x\n");
        assert_eq!(k.get("usage_usec"), Some(&1500));
        assert_eq!(k.get("system_usec"), None);
        assert_eq!(number("max\n"), None);
        assert_eq!(number("4096\n"), Some(4096));
        assert_eq!(
            io_stat("254:0 rbytes=4096 wbytes=512 rios=1 wios=1\nbad\n"),
            vec![(254, 0, 4096, 512)]
        );
        let (total, cpus) =
            host_cpu("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40\ncpu1 5 0 5 40\nintr 1\n");
        assert_eq!(cpus, 2);
        let ticks = crate::procfs::clock_ticks();
        assert_eq!(total, 100 * (1_000_000_000 / ticks));
    }
}
