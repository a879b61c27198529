//! Running the jobs, a few at a time: each lane takes the next job from one queue, runs it in a
//! process group of its own (so that a job killed for its time takes its VMs, ssh clients and
//! servers with it), keeps its output in a file, and reports one line when it ends.

use super::Job;
use anyhow::Context;
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The time a job may take before it is killed (`HARNESS_TEST_LIMIT`, seconds). Above the VM
/// limit (15 min) so that a VM test is normally stopped by its own VM's watchdog, with its log.
const JOB_LIMIT: Duration = Duration::from_secs(30 * 60);

/// What lines of a failed job's output are printed (all of it is in its log).
const TAIL_LINES: usize = 300;

/// How one job ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub label: String,
    pub passed: bool,
    pub seconds: f64,
    pub log: PathBuf,
}

/// Set by SIGINT/SIGTERM: lanes stop taking jobs and kill the running ones.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Lanes: `HARNESS_JOBS`, else one per core (each VM has one vCPU).
pub fn count() -> usize {
    std::env::var("HARNESS_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `HARNESS_TEST_LIMIT`, else [`JOB_LIMIT`].
pub fn limit() -> Duration {
    std::env::var("HARNESS_TEST_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(JOB_LIMIT)
}

/// Run every job on `lanes` lanes; the outcomes in the order the jobs ended.
pub fn run(
    jobs: Vec<Job>,
    lanes: usize,
    logs: &Path,
    limit: Duration,
    env: &[(String, String)],
) -> anyhow::Result<Vec<Outcome>> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(s, &action) }.context("installing the interrupt handler")?;
    }
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let ended = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..lanes.max(1))
        .map(|_| {
            let (queue, outcomes, ended) = (queue.clone(), outcomes.clone(), ended.clone());
            let logs = logs.to_path_buf();
            let env = env.to_vec();
            std::thread::spawn(move || loop {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    return;
                }
                let Some(job) = queue.lock().expect("queue").pop_front() else {
                    return;
                };
                eprintln!("[suite] start {}", job.label);
                let o = run_one(&job, &logs, limit, &env);
                let n = ended.fetch_add(1, Ordering::SeqCst) + 1;
                let verdict = if o.passed { "ok    " } else { "FAILED" };
                let t = started.elapsed().as_secs();
                eprintln!(
                    "[suite {n}/{total} · {}m{:02}s] {verdict} {} ({:.0} s)",
                    t / 60,
                    t % 60,
                    o.label,
                    o.seconds
                );
                if !o.passed {
                    print_tail(&o);
                }
                outcomes.lock().expect("outcomes").push(o);
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("a lane panicked"))?;
    }
    anyhow::ensure!(
        !INTERRUPTED.load(Ordering::SeqCst),
        "interrupted: the running jobs were killed"
    );
    let out = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    Ok(out)
}

/// Run one job to its end (or its limit, or an interrupt).
fn run_one(job: &Job, logs: &Path, limit: Duration, env: &[(String, String)]) -> Outcome {
    let log = logs.join(format!("{}.log", file_name(&job.label)));
    let started = Instant::now();
    let passed = match spawn_and_wait(job, &log, limit, env) {
        Ok(passed) => passed,
        Err(e) => {
            let _ = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&log)
                .and_then(|mut f| writeln!(f, "[suite] {e:#}"));
            false
        }
    };
    Outcome {
        label: job.label.clone(),
        passed,
        seconds: started.elapsed().as_secs_f64(),
        log,
    }
}

fn spawn_and_wait(
    job: &Job,
    log: &Path,
    limit: Duration,
    env: &[(String, String)],
) -> anyhow::Result<bool> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("log file")?;
    let mut child = Command::new(&job.exe)
        .args(&job.args)
        .current_dir(&job.cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", job.exe.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for the job")? {
            break st;
        }
        let over = started.elapsed() > limit;
        if over || INTERRUPTED.load(Ordering::SeqCst) {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            anyhow::bail!(
                "killed with its process group: {}",
                if over {
                    format!("ran over {} s (HARNESS_TEST_LIMIT)", limit.as_secs())
                } else {
                    "interrupted".to_string()
                }
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    if !status.success() {
        return Ok(false);
    }
    if job.single {
        let text = std::fs::read_to_string(log).with_context(|| format!("{}", log.display()))?;
        anyhow::ensure!(
            text.contains("test result: ok. 1 passed"),
            "the binary passed but did not run the test (no `1 passed`)"
        );
    }
    Ok(true)
}

/// A job's label as a file name.
fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn print_tail(o: &Outcome) {
    let text = std::fs::read_to_string(&o.log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    eprintln!(
        "[suite] ---- {} output ({} lines, the last {} here; all in {}) ----",
        o.label,
        lines.len(),
        lines.len() - from,
        o.log.display()
    );
    for l in &lines[from..] {
        eprintln!("{l}");
    }
    eprintln!("[suite] ---- end of {} ----", o.label);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(label: &str, script: &str, single: bool) -> Job {
        Job {
            label: label.into(),
            exe: "/bin/sh".into(),
            cwd: "/".into(),
            args: vec!["-c".into(), script.into()],
            single,
        }
    }

    #[test]
    fn jobs_pass_fail_and_are_killed_at_their_limit() {
        let logs = tempfile::tempdir().unwrap();
        let jobs = vec![
            job("a::ok", "echo 'test result: ok. 1 passed'", true),
            job("a::ran_nothing", "echo 'test result: ok. 0 passed'", true),
            job("whole", "echo fine", false),
            job("b::fails", "echo boom; exit 101", true),
            job("c::hangs", "sleep 30 & sleep 30", true),
        ];
        let t = Instant::now();
        let mut out = run(jobs, 2, logs.path(), Duration::from_secs(2), &[]).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the hung job was killed"
        );
        out.sort_by(|a, b| a.label.cmp(&b.label));
        let got: Vec<_> = out.iter().map(|o| (o.label.as_str(), o.passed)).collect();
        assert_eq!(
            got,
            [
                ("a::ok", true),
                ("a::ran_nothing", false),
                ("b::fails", false),
                ("c::hangs", false),
                ("whole", true)
            ]
        );
        let log = std::fs::read_to_string(&out[3].log).unwrap();
        assert!(log.contains("HARNESS_TEST_LIMIT"), "{log}");
        assert!(out[1].log.ends_with("a__ran_nothing.log"));
    }
}
