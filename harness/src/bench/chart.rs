//! `harness bench boot --chart FILE.svg`: one boot drawn like `systemd-analyze plot`: the kernel
//! (power on → `/init`), each of PID 1's steps, each system service's container (created →
//! started, then running or run to its end), on one time axis in seconds since the kernel
//! started. Steps are printed with their durations and run back to back, so their bars are
//! laid end to end from `[ros] init`; the containers' times are the engine's own (`inspect`),
//! moved onto the kernel's clock with the VM's `/proc/uptime` read at a wall-clock second's
//! turn.

use crate::vm::Vm;
use std::fmt::Write;
use std::time::Duration;

/// One bar: a label, when it starts and ends (s since the kernel started), and an optional
/// lighter lead-in (a container's setup before its start).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub start: f64,
    pub end: f64,
    pub lead_in: Option<f64>,
    pub failed: bool,
}

/// PID 1's milestones in `serial`: the kernel's bar, then one per step.
pub fn steps(serial: &str) -> Vec<Bar> {
    let re_init = regex::Regex::new(r"\[ros\] init (\d+\.\d+)").expect("regex");
    let re_step =
        regex::Regex::new(r"\[ros\] step (\S+) (ok|failed) (\d+(?:\.\d+)?)ms").expect("regex");
    let Some(init) = re_init
        .captures(serial)
        .and_then(|c| c[1].parse::<f64>().ok())
    else {
        return Vec::new();
    };
    let mut bars = vec![Bar {
        label: "kernel".into(),
        start: 0.0,
        end: init,
        lead_in: None,
        failed: false,
    }];
    let mut at = init;
    for c in re_step.captures_iter(serial) {
        let ms: f64 = c[3].parse().unwrap_or(0.0);
        bars.push(Bar {
            label: format!("step {}", &c[1]),
            start: at,
            end: at + ms / 1000.0,
            lead_in: None,
            failed: &c[2] == "failed",
        });
        at += ms / 1000.0;
    }
    bars
}

/// The system services' containers of the running `vm`, each as a bar ending at its exit or at
/// `ready` (s since the kernel started) if it runs.
pub fn containers(vm: &mut Vm, ready: f64) -> anyhow::Result<Vec<Bar>> {
    let script = "s=$(date +%s); while [ \"$(date +%s)\" = \"$s\" ]; do :; done; \
                  echo \"clock $(cut -d' ' -f1 /proc/uptime) $(date +%s)\"; \
                  names=$(sed -n 's/.*\"name\": \"\\([^\"]*\\)\".*/\\1/p' /run/system-docker/services.json); \
                  for n in $names; do system-docker inspect $n 2>/dev/null; done; true";
    let (out, rc) = vm.sh(script, Duration::from_secs(60))?;
    if rc != 0 {
        anyhow::bail!("reading the containers' times failed ({rc}): {out}");
    }
    let clock = regex::Regex::new(r"clock (\d+\.\d+) (\d+)")?
        .captures(&out)
        .ok_or_else(|| anyhow::anyhow!("no clock line in {out:?}"))?;
    // The kernel's clock at the Unix second `wall`: uptime `up`.
    let (up, wall): (f64, f64) = (clock[1].parse()?, clock[2].parse()?);
    let json_start = out
        .find('[')
        .ok_or_else(|| anyhow::anyhow!("no inspect output in {out:?}"))?;
    // One array a service that has a container (one skipped by its condition, or that failed
    // before it had one, has none).
    let list: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter::<Vec<serde_json::Value>>()
        .map_while(Result::ok)
        .flatten()
        .collect();
    let on_kernel_clock = |t: &str| parse_time(t).map(|u| u - wall + up);
    let mut bars = Vec::new();
    for c in &list {
        let name = c["Name"].as_str().unwrap_or("?").trim_start_matches('/');
        let created = c["Created"].as_str().and_then(on_kernel_clock);
        let started = c["State"]["StartedAt"].as_str().and_then(on_kernel_clock);
        let finished = c["State"]["FinishedAt"].as_str().and_then(on_kernel_clock);
        let Some(started) = started else { continue };
        let running = c["State"]["Running"].as_bool().unwrap_or(false);
        let end = match finished {
            Some(f) if !running && f >= started => f,
            _ => ready.max(started),
        };
        bars.push(Bar {
            label: format!("service {name}"),
            start: started,
            end,
            lead_in: created.filter(|c| *c <= started),
            failed: c["State"]["ExitCode"].as_i64().unwrap_or(0) != 0,
        });
    }
    bars.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(bars)
}

/// Unix seconds (with fractions) of `2026-12-03T19:20:01.123456789Z`; None for Docker's zero
/// time or anything else.
fn parse_time(t: &str) -> Option<f64> {
    if t.starts_with("0001-") {
        return None;
    }
    let (date, rest) = t.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let rest = rest.strip_suffix('Z')?;
    let mut hms = rest.split(':');
    let (h, mi) = (
        hms.next()?.parse::<i64>().ok()?,
        hms.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = hms.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60) as f64 + s)
}

/// The chart as SVG: `title` on top, one row per bar, a second grid, `ready` marked.
pub fn svg(title: &str, bars: &[Bar], ready: f64) -> String {
    let end = bars.iter().map(|b| b.end).fold(ready, f64::max).max(0.1);
    let (left, width, row, top) = (220.0, 900.0, 20.0, 40.0);
    let scale = width / end;
    let height = top + row * bars.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="12">"#,
        left + width + 20.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    let mut t = 0.0;
    let step = if end > 20.0 {
        5.0
    } else if end > 5.0 {
        1.0
    } else {
        0.5
    };
    while t <= end {
        let x = left + t * scale;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#666">{t}s</text>"##,
            height - 25.0,
            height - 10.0
        );
        t += step;
    }
    for (i, b) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 14.0,
            escape(&b.label)
        );
        if let Some(l) = b.lead_in {
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#b8d4f0"/>"##,
                left + l * scale,
                y + 3.0,
                ((b.start - l) * scale).max(1.0),
                row - 6.0
            );
        }
        let color = match (b.failed, b.label.starts_with("service ")) {
            (true, _) => "#d9534f",
            (false, true) => "#2e6fb0",
            (false, false) => "#5cb85c",
        };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{} {:.3}–{:.3} s</title></rect>"#,
            left + b.start * scale,
            y + 3.0,
            ((b.end - b.start) * scale).max(1.0),
            row - 6.0,
            escape(&b.label),
            b.start,
            b.end
        );
    }
    let x = left + ready * scale;
    let _ = writeln!(
        s,
        r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#d9534f" stroke-dasharray="4 3"/><text x="{x:.1}" y="{:.1}" fill="#d9534f"> ready {ready:.2} s</text>"##,
        height - 25.0,
        top - 4.0
    );
    s.push_str("</svg>\n");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_become_bars_laid_end_to_end() {
        let serial = "[ros] init 1.500\r\n[ros] step mount-proc ok 2.0ms\r\n[ros] step state failed 300.0ms: no disk\r\n[ros] ready 2.000\r\n";
        let bars = steps(serial);
        assert_eq!(bars.len(), 3);
        assert_eq!((bars[0].start, bars[0].end), (0.0, 1.5));
        assert_eq!(bars[1].label, "step mount-proc");
        assert!((bars[2].start - 1.502).abs() < 1e-9 && (bars[2].end - 1.802).abs() < 1e-9);
        assert!(bars[2].failed);
        let svg = svg("boot <1>", &bars, 2.0);
        assert!(
            svg.starts_with("<svg")
                && svg.contains("boot &lt;1&gt;")
                && svg.contains("ready 2.00 s")
        );
    }

    #[test]
    fn engine_times_read_as_unix_seconds() {
        assert_eq!(parse_time("1970-01-01T00:00:01.500000000Z"), Some(1.5));
        assert_eq!(
            parse_time("2026-12-03T00:00:00.000000000Z"),
            Some(1_796_256_000.0)
        );
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
    }
}
