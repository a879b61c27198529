//! How long each job took before, to start the long ones first.
//!
//! Each run records its jobs' seconds in `target/harness-test-times.tsv` (`label<TAB>seconds`);
//! a fresh clone (CI) has none and reads `harness/test-times.tsv`, a copy of that file committed
//! when the suite's shape changes. The times only order the jobs: a stale or missing one makes
//! the suite end a little later, never pass or fail.

use super::lanes::Outcome;
use super::Job;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a job with no record is guessed to take: a VM test, a whole unit-test binary.
const GUESS_SINGLE: f64 = 120.0;
const GUESS_WHOLE: f64 = 30.0;

fn committed(root: &Path) -> PathBuf {
    root.join("harness").join("test-times.tsv")
}

fn recorded(root: &Path) -> PathBuf {
    root.join("target").join("harness-test-times.tsv")
}

/// The committed times, overlaid by this checkout's own.
pub fn load(root: &Path) -> BTreeMap<String, f64> {
    let mut t = BTreeMap::new();
    for path in [committed(root), recorded(root)] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            t.extend(parse(&text));
        }
    }
    t
}

/// `label<TAB>seconds` lines; anything else is skipped (the file only orders work).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (label, secs) = l.split_once('\t')?;
            Some((label.to_string(), secs.trim().parse().ok()?))
        })
        .collect()
}

/// Longest first (the guess for the unknown), then by label so that runs compare.
pub fn order(jobs: &mut [Job], known: &BTreeMap<String, f64>) {
    let weight = |j: &Job| {
        known
            .get(&j.label)
            .copied()
            .unwrap_or(if j.single { GUESS_SINGLE } else { GUESS_WHOLE })
    };
    jobs.sort_by(|a, b| {
        weight(b)
            .total_cmp(&weight(a))
            .then_with(|| a.label.cmp(&b.label))
    });
}

/// Merge this run's times into `target/harness-test-times.tsv`.
pub fn record(root: &Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let path = recorded(root);
    let mut t = std::fs::read_to_string(&path)
        .map(|s| parse(&s))
        .unwrap_or_default();
    for o in outcomes {
        t.insert(o.label.clone(), o.seconds);
    }
    let mut text = String::from(
        "# Seconds each job of `cargo harness test` took here (copy to harness/test-times.tsv to share).\n",
    );
    for (label, secs) in &t {
        text.push_str(&format!("{label}\t{secs:.0}\n"));
    }
    crate::fsutil::write_atomic(&path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(label: &str, single: bool) -> Job {
        Job {
            label: label.into(),
            exe: "/x".into(),
            cwd: "/".into(),
            args: vec![],
            single,
        }
    }

    #[test]
    fn the_longest_known_run_first_and_the_unknown_by_guess() {
        let known = parse("# c\nboot::a\t50\nnet::b\t400\nbad line\nx\tnot-a-number\n");
        assert_eq!(known.len(), 2);
        let mut jobs = vec![
            job("boot::a", true),
            job("os (bin ros)", false),
            job("new::c", true),
            job("net::b", true),
        ];
        order(&mut jobs, &known);
        let labels: Vec<_> = jobs.iter().map(|j| j.label.as_str()).collect();
        assert_eq!(labels, ["net::b", "new::c", "boot::a", "os (bin ros)"]);
    }
}
