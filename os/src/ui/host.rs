//! Facts about the machine the overview shows, read where every container reads them the same
//! as the host (the UI runs in the host's network and UTS namespaces): `/proc/uptime`,
//! `/proc/meminfo`, `/proc/loadavg`, the CPUs, the state partition's use, the addresses.
//! Parsers are apart from the reading, for the tests.

use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub hostname: String,
    pub version: String,
    /// `rancher.boot.slot` of this boot, when it came from a slot.
    pub slot: Option<String>,
    pub uptime_secs: u64,
    pub load: String,
    pub cpus: usize,
    pub mem_total_kb: u64,
    pub mem_available_kb: u64,
    /// The state partition (the UI's own directory is on it): bytes used and in all.
    pub disk_used: u64,
    pub disk_total: u64,
    pub addresses: Vec<String>,
}

pub fn read(state_dir: &Path) -> Facts {
    let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (mem_total_kb, mem_available_kb) = meminfo(&text("/proc/meminfo"));
    let (disk_used, disk_total) = nix::sys::statvfs::statvfs(state_dir)
        .map(|s| {
            let f = s.fragment_size();
            ((s.blocks() - s.blocks_free()) * f, s.blocks() * f)
        })
        .unwrap_or((0, 0));
    Facts {
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        slot: crate::bootstate::booted_slot(&text("/proc/cmdline")),
        uptime_secs: uptime(&text("/proc/uptime")),
        load: text("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        cpus: text("/proc/cpuinfo")
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        mem_total_kb,
        mem_available_kb,
        disk_used,
        disk_total,
        addresses: addresses(),
    }
}

pub fn uptime(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |s| s as u64)
}

pub fn meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Every address of every link but loopback, as `name: address`.
fn addresses() -> Vec<String> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in all {
        if a.interface_name == "lo" {
            continue;
        }
        let Some(addr) = a.address.as_ref() else {
            continue;
        };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            v4.ip().to_string()
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            v6.ip().to_string()
        } else {
            continue;
        };
        out.push(format!("{}: {ip}", a.interface_name));
    }
    out
}

/// `3d 4h`, `5m 2s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `12.3 MB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// PID 1's boot, from its lines (`step NAME ok 12.3ms`, `ready 4.468`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Boot {
    /// Each step and its milliseconds, in order.
    pub steps: Vec<(String, f64)>,
    /// Seconds from the kernel's start to ready (or degraded).
    pub ready: Option<f64>,
    pub degraded: bool,
}

pub fn boot(lines: &str) -> Boot {
    let mut b = Boot::default();
    for l in lines.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.as_slice() {
            ["step", name, _, ms, ..] => {
                if let Some(ms) = ms
                    .trim_end_matches(':')
                    .strip_suffix("ms")
                    .and_then(|m| m.parse().ok())
                {
                    b.steps.push((name.to_string(), ms));
                }
            }
            ["ready", s] => b.ready = s.parse().ok(),
            ["degraded", s] => {
                b.ready = s.parse().ok();
                b.degraded = true;
            }
            _ => {}
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts() {
        assert_eq!(uptime("1234.56 99.0\n"), 1234);
        assert_eq!(
            meminfo("MemTotal:        2000 kB\nMemFree: 1 kB\nMemAvailable:    1500 kB\n"),
            (2000, 1500)
        );
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3723), "1h 2m");
        assert_eq!(bytes(11_680_000), "11.7 MB");
    }

    #[test]
    fn boot_lines() {
        let b = boot("step mounts ok 3.0ms\nstep system-services failed 940.5ms: x\nnot running: a\nready 4.468\n");
        assert_eq!(
            b.steps,
            [("mounts".into(), 3.0), ("system-services".into(), 940.5)]
        );
        assert_eq!(b.ready, Some(4.468));
        assert!(!b.degraded);
    }
}
