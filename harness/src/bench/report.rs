//! `harness bench report [--out FILE.svg]`: the history of every figure kept under
//! `target/bench/` ([`super::record`]), one small chart per bench and figure: each run's median
//! as a point with its min–max as a bar, in time order, labelled with the commit.

use super::record::{self, Run};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// The figures worth a chart (the per-step figures of `services` stay in the JSON).
fn charted(name: &str) -> bool {
    !name.starts_with("step ")
}

/// Draw the history of `runs` as one SVG.
pub fn svg(runs: &[Run]) -> String {
    // (bench, figure) → [(commit, median, min, max)] in time order.
    type Point = (String, f64, f64, f64);
    let mut series: BTreeMap<(String, String), Vec<Point>> = BTreeMap::new();
    for r in runs {
        for (name, f) in &r.figures {
            if charted(name) && f.median.is_finite() {
                series
                    .entry((r.bench.clone(), format!("{name} ({})", f.unit)))
                    .or_default()
                    .push((r.commit.clone(), f.median, f.min, f.max));
            }
        }
    }
    let (w, h, pad) = (420.0, 160.0, 36.0);
    let cols = 3usize;
    let rows = series.len().div_ceil(cols).max(1);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        w * cols as f64,
        h * rows as f64 + 30.0
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">harness bench: history ({} runs)</text>"#,
        runs.len()
    );
    for (i, ((bench, fig), pts)) in series.iter().enumerate() {
        let (x0, y0) = ((i % cols) as f64 * w, 30.0 + (i / cols) as f64 * h);
        let hi = pts.iter().map(|p| p.3).fold(f64::MIN, f64::max);
        let lo = pts.iter().map(|p| p.2).fold(f64::MAX, f64::min).min(0.0);
        let span = (hi - lo).max(1e-9);
        let px = |k: usize| x0 + pad + (w - 2.0 * pad) * (k as f64 + 0.5) / pts.len() as f64;
        let py = |v: f64| y0 + h - pad - (h - 2.0 * pad) * (v - lo) / span;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}">{bench}: {fig}</text><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/><text x="{:.1}" y="{:.1}" fill="#666">{hi:.3}</text><text x="{:.1}" y="{:.1}" fill="#666">{lo:.3}</text>"##,
            x0 + pad,
            y0 + 14.0,
            x0 + pad,
            py(lo),
            x0 + w - pad,
            py(lo),
            x0 + 2.0,
            py(hi) + 4.0,
            x0 + 2.0,
            py(lo)
        );
        let mut path = String::new();
        for (k, (commit, med, min, max)) in pts.iter().enumerate() {
            let x = px(k);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#9cc3e6" stroke-width="3"/><circle cx="{x:.1}" cy="{:.1}" r="3" fill="#2e6fb0"><title>{commit}: {med:.3} (min {min:.3}, max {max:.3})</title></circle>"##,
                py(*min),
                py(*max),
                py(*med)
            );
            let _ = write!(
                path,
                "{}{x:.1},{:.1} ",
                if k == 0 { "M" } else { "L" },
                py(*med)
            );
        }
        let _ = writeln!(
            s,
            r##"<path d="{}" fill="none" stroke="#2e6fb0"/>"##,
            path.trim_end()
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Write the history chart to `out` and say what it holds.
pub fn report(out: &Path) -> anyhow::Result<()> {
    let runs = record::load_all();
    if runs.is_empty() {
        anyhow::bail!(
            "no figures under {} yet: run a `harness bench …` first",
            record::dir().display()
        );
    }
    crate::fsutil::write_atomic(out, svg(&runs).as_bytes())?;
    let mut by_bench: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        *by_bench.entry(r.bench.as_str()).or_default() += 1;
    }
    println!("bench history: {}", out.display());
    for (b, n) in by_bench {
        println!("  {b:16} {n} run(s)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::{Figure, Machine};

    #[test]
    fn history_draws_a_point_per_run() {
        let run = |t: u64, v: f64| Run {
            bench: "boot-smp1".into(),
            time: t,
            commit: format!("c{t}"),
            image: None,
            machine: Machine {
                cpu: "x".into(),
                cores: 2,
                accel: "tcg".into(),
            },
            figures: BTreeMap::from([
                ("ratio".to_string(), Figure::of("x", &[v, v + 0.1])),
                ("step state".to_string(), Figure::of("s", &[0.1])),
            ]),
        };
        let svg = svg(&[run(1, 2.0), run(2, 1.4)]);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("boot-smp1: ratio (x)") && !svg.contains("step state"));
        assert!(svg.contains("c2: 1.450"));
    }
}
