//! What happens when a container has ended: its record says so (exit code, time), Docker's
//! `die` event goes out, its root filesystem is unmounted, and then its restart policy or
//! auto-remove decides what comes next.
//!
//! Restart delays are Docker's: 100 ms, doubling at each restart in a row, at most one minute;
//! a container that ran ten seconds or more starts over at 100 ms.

use super::record::{self, Lifecycle, Record};
use super::Manager;
use crate::engine::shim::protocol::ExitFile;
use std::sync::Arc;
use std::time::Duration;

impl Manager {
    /// The shim said `code` (None: it went away without a word; its `exit.json` may say more).
    pub(super) async fn exited(self: &Arc<Self>, id: &str, code: Option<i32>) {
        let shim = self.shim_dir(id);
        let file: Option<ExitFile> = std::fs::read(crate::engine::shim::exit_path(&shim))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let code = code.or(file.as_ref().map(|f| f.exit_code)).unwrap_or(255);
        let finished = file.map(|f| f.finished_at).unwrap_or_else(record::now);
        let _ = std::fs::remove_dir_all(&shim);
        let _ = std::fs::remove_dir_all(self.bundle(id));
        let dir = self.dir(id);
        if let Err(e) = crate::engine::rootfs::unmount(&dir) {
            tracing::warn!(id, error = %e, "unmounting the root filesystem");
        }
        // Off the bridge before the record says exited: whoever waits for the exit (a
        // restart) then finds the address and the ports free.
        self.network_down_id(id).await;
        let Ok(rec) = self.update(id, |r| {
            r.state.status = Lifecycle::Exited;
            r.state.pid = 0;
            r.state.exit_code = code;
            r.state.finished_at = finished;
        }) else {
            return;
        };
        self.emit(&rec, "die", Some(code), None);
        tracing::info!(id, name = %rec.name, code, "exited");
        if rec.host.auto_remove {
            let me = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                if let Err(e) = me.remove(&id, false, true).await {
                    tracing::warn!(id, error = %e, "auto-remove");
                }
            });
            return;
        }
        let delay = restart_delay(&rec);
        if self.cfg.log_dir.is_some() {
            let what = describe(code);
            match delay {
                Some(d) => self.note(
                    &rec,
                    &format!(
                        "service {} exited ({what}); restarting in {}ms",
                        rec.name,
                        d.as_millis()
                    ),
                    true,
                ),
                None => self.note(
                    &rec,
                    &format!("service {} exited ({what})", rec.name),
                    false,
                ),
            }
        }
        if let Some(delay) = delay {
            self.schedule_restart(rec, delay);
        }
    }

    /// An engine line in a plain-text log, beside the container's own output (and on the
    /// console when `console`): what an operator reading `/var/log/<name>.log` wants to know.
    pub(super) fn note(&self, rec: &Record, line: &str, console: bool) {
        use std::io::Write;
        let path = self.log_path(rec);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        if let Ok(mut f) = f {
            let _ = writeln!(f, "[system-docker] {line}");
        }
        if console {
            crate::console::say(line);
        }
    }

    fn schedule_restart(self: &Arc<Self>, rec: Record, delay: Duration) {
        let id = rec.id.clone();
        let Ok(rec) = self.update(&id, |r| {
            r.state.status = Lifecycle::Restarting;
            r.state.restart_count += 1;
        }) else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // Stopped or removed meanwhile: nothing to do.
            let Ok(now) = me.get(&id) else { return };
            if now.state.status != Lifecycle::Restarting || now.state.stopped_by_user {
                return;
            }
            let Ok(claimed) = me.claim(&id) else { return };
            me.emit(&rec, "restart", None, None);
            if let Err(e) = me.start_claimed(claimed).await {
                tracing::warn!(id, error = %e, "restart failed");
            }
            me.release(&id);
        });
    }
}

/// `exit 3`, `killed by SIGKILL` (the shim reports a signal as 128 + its number).
pub fn describe(code: i32) -> String {
    if code > 128 && code < 128 + 32 {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(code - 128) {
            return format!("killed by {sig}");
        }
    }
    format!("exit {code}")
}

/// Whether (and after how long) the policy brings the container back.
fn restart_delay(rec: &Record) -> Option<Duration> {
    let s = &rec.state;
    let p = &rec.host.restart_policy;
    let again = match p.name.as_str() {
        "always" | "unless-stopped" => !s.stopped_by_user,
        "on-failure" => {
            !s.stopped_by_user
                && s.exit_code != 0
                && (p.maximum_retry_count == 0 || s.restart_count < p.maximum_retry_count)
        }
        _ => false,
    };
    if !again {
        return None;
    }
    let ran = Duration::from_nanos((s.finished_at - s.started_at).max(0) as u64);
    if ran >= Duration::from_secs(10) {
        return Some(Duration::from_millis(100));
    }
    let shift = s.restart_count.min(10);
    Some(Duration::from_millis(100u64 << shift).min(Duration::from_secs(60)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::manager::record::{Config, HostConfig, RestartPolicy, State};

    fn rec(policy: &str, max: u32, code: i32, count: u32, manual: bool) -> Record {
        Record {
            id: "a".repeat(64),
            name: "t".into(),
            upper: None,
            created: 1,
            image_id: String::new(),
            config: Config::default(),
            host: HostConfig {
                restart_policy: RestartPolicy {
                    name: policy.into(),
                    maximum_retry_count: max,
                },
                ..HostConfig::default()
            },
            state: State {
                status: Lifecycle::Exited,
                exit_code: code,
                restart_count: count,
                stopped_by_user: manual,
                started_at: 1_000_000_000,
                finished_at: 2_000_000_000,
                ..State::default()
            },
            mounts: Vec::new(),
            network: Default::default(),
        }
    }

    #[test]
    fn exits_are_described_for_people() {
        assert_eq!(describe(0), "exit 0");
        assert_eq!(describe(3), "exit 3");
        assert_eq!(describe(137), "killed by SIGKILL");
        assert_eq!(describe(143), "killed by SIGTERM");
        assert_eq!(describe(255), "exit 255");
    }

    #[test]
    fn policies_decide_as_dockers_do() {
        assert!(restart_delay(&rec("no", 0, 1, 0, false)).is_none());
        assert!(restart_delay(&rec("", 0, 1, 0, false)).is_none());
        assert!(restart_delay(&rec("always", 0, 0, 0, false)).is_some());
        assert!(restart_delay(&rec("always", 0, 0, 0, true)).is_none());
        assert!(restart_delay(&rec("unless-stopped", 0, 0, 0, true)).is_none());
        assert!(restart_delay(&rec("on-failure", 0, 0, 0, false)).is_none());
        assert!(restart_delay(&rec("on-failure", 2, 1, 1, false)).is_some());
        assert!(restart_delay(&rec("on-failure", 2, 1, 2, false)).is_none());
        assert_eq!(
            restart_delay(&rec("always", 0, 0, 3, false)),
            Some(Duration::from_millis(800))
        );
        assert_eq!(
            restart_delay(&rec("always", 0, 0, 30, false)),
            Some(Duration::from_secs(60))
        );
    }
}
