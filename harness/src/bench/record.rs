//! Every benchmark's figures, kept: one JSON file per run under `target/bench/`
//! (`<bench>-<unix seconds>.json`) with each figure's median, min, max and values, N, the
//! machine (CPU model, cores, accelerator) and the commit, so `harness bench report` can draw
//! their history and a regression has a before to compare with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One measured quantity over N runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    pub unit: String,
    /// (NaN, written as null, when no run gave a value.)
    #[serde(deserialize_with = "nan_if_null")]
    pub median: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub min: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub max: f64,
    pub n: usize,
    /// The runs that gave a value.
    pub values: Vec<f64>,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Figure {
    pub fn of(unit: &str, values: &[f64]) -> Figure {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        Figure {
            unit: unit.to_string(),
            median: super::median(finite.clone()),
            min: finite.iter().copied().reduce(f64::min).unwrap_or(f64::NAN),
            max: finite.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
            n: values.len(),
            values: finite,
        }
    }

    /// `median (min … max)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} (min {:.d$}, max {:.d$}, n {})",
            self.median,
            self.min,
            self.max,
            self.n,
            d = digits
        )
    }
}

/// The machine a run was on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub accel: String,
}

/// One run of one benchmark.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub bench: String,
    /// Unix seconds at the end of the run.
    pub time: u64,
    /// `git describe --always --dirty` of the checkout.
    pub commit: String,
    /// The image's record when it was not this checkout's (`HARNESS_IMAGE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub machine: Machine,
    pub figures: BTreeMap<String, Figure>,
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        accel: crate::accel::Accel::from_env().qemu_name().to_string(),
    }
}

pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(crate::paths::repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Where runs are kept.
pub fn dir() -> PathBuf {
    crate::paths::repo_root().join("target").join("bench")
}

/// Write a run of `bench` with `figures`; its path (also printed).
pub fn save(bench: &str, figures: BTreeMap<String, Figure>) -> anyhow::Result<PathBuf> {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let run = Run {
        bench: bench.to_string(),
        time,
        commit: commit(),
        image: std::env::var(crate::image::PREBUILT_ENV).ok(),
        machine: machine(),
        figures,
    };
    let path = dir().join(format!("{bench}-{time}.json"));
    crate::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&run)?)?;
    println!("  figures: {}", path.display());
    Ok(path)
}

/// Every run kept, oldest first; files that do not read are named on stderr and skipped.
pub fn load_all() -> Vec<Run> {
    let mut runs = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return runs;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&p)
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice::<Run>(&b).map_err(anyhow::Error::from))
        {
            Ok(r) => runs.push(r),
            Err(e) => eprintln!("[bench] {}: {e} (skipped)", p.display()),
        }
    }
    runs.sort_by_key(|r| r.time);
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_keeps_median_min_max_and_reads_back() {
        let f = Figure::of("s", &[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!((f.median, f.min, f.max, f.n), (2.0, 1.0, 3.0, 4));
        assert_eq!(f.show(1), "2.0 (min 1.0, max 3.0, n 4)");
        let run = Run {
            bench: "boot".into(),
            time: 1,
            commit: "abc".into(),
            image: None,
            machine: machine(),
            figures: BTreeMap::from([("ratio".to_string(), Figure::of("x", &[1.5]))]),
        };
        let back: Run = serde_json::from_slice(&serde_json::to_vec(&run).unwrap()).unwrap();
        assert_eq!(back.figures["ratio"].median, 1.5);
        let none: Figure =
            serde_json::from_slice(&serde_json::to_vec(&Figure::of("s", &[])).unwrap()).unwrap();
        assert!(none.median.is_nan() && none.values.is_empty());
    }
}
