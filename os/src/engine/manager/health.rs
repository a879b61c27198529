//! Health checks (`docker run --health-cmd …`, Docker's `HealthConfig`): while a container
//! runs, its test is run every interval as an exec in it; its exit code and the first 4 KiB of
//! its output go into `State.Health` (the last five probes), with Docker's rules: `starting`
//! until the first success or enough failures, `healthy` after a success, `unhealthy` after
//! `retries` failures in a row (failures in the start period do not count), a
//! `health_status: …` event at each change. A probe that outlasts its timeout counts as a
//! failure. The loop ends with the run it was started for (a restart starts a new one).

use super::exec::{ExecConfig, ExecIo};
use super::record::{Health, HealthConfig, HealthProbe, Record};
use super::Manager;
use crate::engine::api::time;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// At most this much of a probe's output is kept.
const OUTPUT_MAX: usize = 4096;
/// Probes kept in `State.Health.Log`.
const LOG_MAX: usize = 5;

fn duration(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        default
    }
}

/// The command a test runs (`None`: no check, or `NONE`).
pub fn command(h: &HealthConfig) -> Option<Vec<String>> {
    match h.test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

impl Manager {
    /// Start the health loop of a container that has just started (or is followed again).
    pub(super) fn watch_health(self: &Arc<Self>, rec: &Record) {
        let Some(h) = rec.config.healthcheck.clone() else {
            return;
        };
        let Some(cmd) = command(&h) else {
            return;
        };
        let (id, started_at) = (rec.id.clone(), rec.state.started_at);
        if rec.state.health.is_none() {
            let _ = self.update(&id, |r| {
                r.state.health = Some(Health {
                    status: "starting".into(),
                    ..Health::default()
                })
            });
        }
        let interval = duration(h.interval, Duration::from_secs(30));
        let timeout = duration(h.timeout, Duration::from_secs(30));
        let start_period = duration(h.start_period, Duration::ZERO);
        let retries = if h.retries > 0 { h.retries as u32 } else { 3 };
        let me = self.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            loop {
                tokio::time::sleep(interval).await;
                let Ok(rec) = me.get(&id) else { return };
                if rec.state.started_at != started_at || !rec.state.status.is_running() {
                    return;
                }
                if rec.state.status == super::Lifecycle::Paused {
                    continue;
                }
                let probe = me.probe(&id, &cmd, timeout).await;
                let counts = began.elapsed() >= start_period;
                let mut changed = None;
                let _ = me.update(&id, |r| {
                    if r.state.started_at != started_at {
                        return;
                    }
                    let h = r.state.health.get_or_insert_with(Health::default);
                    let before = h.status.clone();
                    if probe.exit_code == 0 {
                        h.failing_streak = 0;
                        h.status = "healthy".into();
                    } else if counts {
                        h.failing_streak += 1;
                        if h.failing_streak >= retries {
                            h.status = "unhealthy".into();
                        }
                    }
                    h.log.push(probe.clone());
                    let excess = h.log.len().saturating_sub(LOG_MAX);
                    h.log.drain(..excess);
                    if h.status != before {
                        changed = Some(h.status.clone());
                    }
                });
                if let (Some(status), Ok(rec)) = (changed, me.get(&id)) {
                    me.emit(&rec, &format!("health_status: {status}"), None, None);
                }
            }
        });
    }

    /// One run of the test: its exit code and output (a timeout is exit code -1).
    async fn probe(self: &Arc<Self>, id: &str, cmd: &[String], timeout: Duration) -> HealthProbe {
        let start = time::rfc3339(Some(SystemTime::now()));
        let (exit_code, output) = match self.run_probe(id, cmd, timeout).await {
            Ok(r) => r,
            Err(e) => (-1, e),
        };
        HealthProbe {
            start,
            end: time::rfc3339(Some(SystemTime::now())),
            exit_code,
            output,
        }
    }

    async fn run_probe(
        self: &Arc<Self>,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, String), String> {
        let exec = self
            .exec_create(
                id,
                ExecConfig {
                    cmd: cmd.to_vec(),
                    stdout: true,
                    stderr: true,
                    ..ExecConfig::default()
                },
            )
            .map_err(|e| e.to_string())?;
        let started = self
            .exec_start(&exec, None)
            .await
            .map_err(|e| e.to_string())?;
        let ExecIo::Pipes { stdout, stderr, .. } = started.io else {
            return Err("health check: no output pipes".into());
        };
        let read = |fd: std::os::fd::OwnedFd| {
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut f = std::fs::File::from(fd);
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = OUTPUT_MAX.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                kept
            })
        };
        let mut exit = started.exit;
        let run = async {
            let (out, err) = (read(stdout), read(stderr));
            let mut text = out.await.unwrap_or_default();
            text.extend(err.await.unwrap_or_default());
            text.truncate(OUTPUT_MAX);
            let code = loop {
                if let Some(c) = *exit.borrow_and_update() {
                    break c;
                }
                if exit.changed().await.is_err() {
                    break -1;
                }
            };
            (code, String::from_utf8_lossy(&text).into_owned())
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => Ok(r),
            Err(_) => {
                if let Ok(info) = self.exec_inspect(&exec) {
                    if info.pid > 0 {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(info.pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                Err(format!(
                    "Health check exceeded timeout ({}s)",
                    timeout.as_secs_f64()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_become_commands() {
        let h = |t: &[&str]| HealthConfig {
            test: t.iter().map(|s| s.to_string()).collect(),
            ..HealthConfig::default()
        };
        assert_eq!(command(&h(&["CMD", "true"])).unwrap(), ["true"]);
        assert_eq!(
            command(&h(&["CMD-SHELL", "wget -q localhost || exit 1"])).unwrap(),
            ["/bin/sh", "-c", "wget -q localhost || exit 1"]
        );
        assert!(command(&h(&["NONE"])).is_none());
        assert!(command(&h(&["CMD"])).is_none());
        assert!(command(&h(&[])).is_none());
        assert_eq!(
            duration(0, Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(
            duration(1_500_000_000, Duration::ZERO),
            Duration::from_millis(1500)
        );
    }
}
