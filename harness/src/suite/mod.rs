//! `cargo harness test`: the whole suite, with every core busy.
//!
//! `cargo test` runs its test binaries one after another, each with a thread per core. Our
//! VM tests boot one single-vCPU VM each, so a binary holding one long test (or ending with one)
//! leaves a core idle for minutes: the suite took twice the time its VMs needed. This runner
//! builds the test binaries with cargo, then:
//! - splits the harness's integration tests (`harness/tests/*.rs`, one VM each, no state shared
//!   between tests: each boots its own) into one process per test (`--exact NAME`), and runs
//!   every other test binary (the os crate's unit tests, the harness's) whole, and the doc
//!   tests through cargo;
//! - runs them on as many lanes as there are cores (`HARNESS_JOBS`), longest first, using the
//!   times of earlier runs (`target/harness-test-times.tsv`, else the committed
//!   `harness/test-times.tsv`) so that the last lane to finish does not start a long test late;
//! - keeps each job's output in `target/test-logs/`, prints it when the job fails, and ends with
//!   every failure named (it does not stop at the first one: CI shows them all).
//!
//! A job that outlives `HARNESS_TEST_LIMIT` (seconds, default 1800) is killed with its VMs.
//! `cargo harness test -- --include-ignored` runs the nightly tier too; any other arguments go
//! to `cargo test` as typed (one test, one binary, a filter: what a person asks for).

mod discover;
mod lanes;
mod times;

pub use discover::{Binary, Job};

use anyhow::Context;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The per-push suite: tests marked `#[ignore = "nightly: …"]` stay out.
    PerPush,
    /// Every test, the nightly ones too.
    All,
}

/// Build the test binaries, run every job, report; `Ok(true)` when all passed. `image` is the
/// image just built: the jobs take it rather than each building it again.
pub fn run(tier: Tier, image: &crate::image::Image) -> anyhow::Result<bool> {
    let started = Instant::now();
    let root = crate::paths::repo_root();
    let record = crate::image::record(image).context("recording the image")?;
    let env = vec![(
        crate::image::PREBUILT_ENV.to_string(),
        record.display().to_string(),
    )];
    let binaries = discover::binaries(&root).context("building the test binaries")?;
    let mut jobs = Vec::new();
    for b in &binaries {
        jobs.extend(discover::jobs(b, tier).with_context(|| format!("listing {}", b.label))?);
    }
    // Examples in doc comments: cargo builds and runs them itself.
    jobs.push(Job {
        label: "doc tests".into(),
        exe: std::env::var("CARGO")
            .unwrap_or_else(|_| "cargo".into())
            .into(),
        cwd: root.clone(),
        args: ["test", "--workspace", "--doc"].map(String::from).to_vec(),
        single: false,
    });
    let known = times::load(&root);
    times::order(&mut jobs, &known);
    let lanes = lanes::count();
    eprintln!(
        "[suite] {} jobs from {} test binaries on {lanes} lanes (HARNESS_JOBS), longest first",
        jobs.len(),
        binaries.len()
    );
    let logs = root.join("target").join("test-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("mkdir {}", logs.display()))?;
    let outcomes = lanes::run(jobs, lanes, &logs, lanes::limit(), &env)?;
    times::record(&root, &outcomes).context("recording the tests' times")?;

    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    let busy: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "[suite] {} passed, {} failed in {:.0} s wall ({:.0} s of jobs, {:.2} lanes busy on average)",
        outcomes.len() - failed.len(),
        failed.len(),
        wall,
        busy,
        busy / wall.max(1.0)
    );
    for f in &failed {
        eprintln!("[suite] FAILED {} (output: {})", f.label, f.log.display());
    }
    Ok(failed.is_empty())
}
