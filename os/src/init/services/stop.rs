//! Stopping services without waiting: a stop is a deadline in the service's state, never a
//! sleep in the loop that reaps, restarts and answers the power button.
//!
//! `docker stop` sends the stop signal (`stop_signal`, the image's `StopSignal`, or SIGTERM) at
//! once and records when SIGKILL is due; the supervisor's poll
//! wakes for that deadline ([`SystemServices::next_due`]). The stop completes when the loop
//! reaps the container's init ([`SystemServices::on_exit`]), or, if even SIGKILL does not end it
//! (a process stuck in the kernel), [`GIVE_UP_AFTER_KILL`] later. A restart is a stop that
//! starts the service again when it completes. Each caller waiting on a stop holds a ticket;
//! completed tickets are collected by the control API's bridge, which answers its clients.
//!
//! Shutdown is the one place that blocks (nothing else runs then): services stop level by level
//! in reverse dependency order, every service of a level at once, all within one
//! `rancher.shutdown_timeout`.

use super::{append_log, describe, ServiceOpError, SystemServices};
use crate::console::say;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for the kernel to end a process after SIGKILL before giving up on it.
pub const GIVE_UP_AFTER_KILL: Duration = Duration::from_secs(2);

/// `now + d`, saturating far in the future instead of overflowing.
pub fn deadline(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// A stop in progress.
#[derive(Debug, Clone)]
pub(super) struct Stopping {
    /// When SIGKILL is sent.
    kill_at: Instant,
    /// The time it was given (for the console's note when it runs out).
    timeout: Duration,
    /// After SIGKILL: when to stop waiting for the exit.
    give_up_at: Option<Instant>,
    /// Start it again once stopped (`docker restart`).
    then_start: bool,
    /// Callers waiting for this stop.
    tickets: Vec<u64>,
}

impl Stopping {
    fn next_due(&self) -> Instant {
        self.give_up_at.unwrap_or(self.kill_at)
    }
}

impl SystemServices {
    /// Begin stopping `name` (SIGTERM now, SIGKILL after `timeout`); `restart` starts it again
    /// once it has stopped. `ticket` is completed (see [`SystemServices::take_completed`]) when
    /// all of it is done, at once if the service does not run.
    pub fn begin_stop(
        &mut self,
        name: &str,
        timeout: Duration,
        restart: bool,
        ticket: u64,
    ) -> Result<(), ServiceOpError> {
        if !self.specs.contains_key(name) && !self.status.contains_key(name) {
            return Err(ServiceOpError::NotFound(name.to_string()));
        }
        let kill_at = deadline(timeout);
        let st = self
            .status
            .get_mut(name)
            .ok_or_else(|| ServiceOpError::NotFound(name.to_string()))?;
        if !restart {
            // `docker stop`: the restart policy leaves it alone until it is started again.
            st.user_stopped = true;
            st.restart_at = None;
            if st.state == "restarting" {
                st.state = "exited".into();
            }
        }
        if let Some(s) = st.stopping.as_mut() {
            s.kill_at = s.kill_at.min(kill_at);
            s.then_start |= restart;
            s.tickets.push(ticket);
            return Ok(());
        }
        let Some(pid) = st.pid else {
            let result = if restart {
                self.start_service(name)
            } else {
                Ok(())
            };
            self.completed.push((ticket, result));
            return Ok(());
        };
        let _ = kill(
            Pid::from_raw(pid),
            st.stop_signal.unwrap_or(Signal::SIGTERM),
        );
        st.stopping = Some(Stopping {
            kill_at,
            timeout,
            give_up_at: None,
            then_start: restart,
            tickets: vec![ticket],
        });
        let what = if restart { "restart" } else { "stop" };
        append_log(name, &format!("service {name}: {what} through the api"));
        tracing::info!(
            service = name,
            what,
            timeout_s = timeout.as_secs(),
            "stopping"
        );
        Ok(())
    }

    /// The earliest stop deadline.
    pub(super) fn next_stop_due(&self) -> Option<Instant> {
        self.status
            .values()
            .filter_map(|s| s.stopping.as_ref().map(Stopping::next_due))
            .min()
    }

    /// Send SIGKILL where it is due; give up on a process that SIGKILL did not end.
    pub(super) fn stop_deadlines(&mut self) {
        let now = Instant::now();
        let mut given_up = Vec::new();
        for st in self.status.values_mut() {
            let (Some(s), Some(pid)) = (st.stopping.as_mut(), st.pid) else {
                continue;
            };
            match s.give_up_at {
                None if s.kill_at <= now => {
                    say(format!(
                        "service {} did not stop in {}s; killing it",
                        st.name,
                        s.timeout.as_secs()
                    ));
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    s.give_up_at = Some(deadline(GIVE_UP_AFTER_KILL));
                }
                Some(t) if t <= now => given_up.push(st.name.clone()),
                _ => {}
            }
        }
        for name in given_up {
            tracing::warn!(service = %name, "SIGKILL did not end it; giving up waiting");
            self.stop_finished(&name, None);
        }
    }

    /// A stopping service's init ended (or was given up on): remove the container, record the
    /// exit, start it again if that was asked, and complete the tickets.
    pub(super) fn stop_finished(&mut self, name: &str, code: Option<i32>) {
        let _ = self.runtime.delete(name, true);
        let Some(st) = self.status.get_mut(name) else {
            return;
        };
        let Some(stopping) = st.stopping.take() else {
            return;
        };
        st.pid = None;
        st.state = "exited".into();
        st.last_exit = Some(describe(code));
        st.finished_at = Some(SystemTime::now());
        st.exit_code = Some(code.unwrap_or(137));
        let result = if stopping.then_start {
            // Not counted in `restarts`: like Docker's RestartCount, that counts the policy's.
            st.user_stopped = false;
            self.start_service(name)
        } else {
            Ok(())
        };
        for t in stopping.tickets {
            self.completed.push((t, result.clone()));
        }
        self.write_status();
    }

    /// Tickets whose stop (or restart) is done, with the outcome.
    pub fn take_completed(&mut self) -> Vec<(u64, Result<(), ServiceOpError>)> {
        std::mem::take(&mut self.completed)
    }

    /// Shutdown: stop every running service, level by level in reverse dependency order, each
    /// level's services at once, all within `timeout`; what still runs at the end is killed.
    pub fn stop_all(&mut self, timeout: Duration) {
        self.stopping = true;
        let end = deadline(timeout);
        for level in self.levels().into_iter().rev() {
            let pids: BTreeMap<i32, String> = level
                .iter()
                .filter_map(|n| {
                    self.status
                        .get(n)
                        .and_then(|s| s.pid)
                        .map(|p| (p, n.clone()))
                })
                .collect();
            if pids.is_empty() {
                continue;
            }
            // One line a service, in reverse start order within the level; they stop together.
            for name in self.order.iter().rev().filter(|n| level.contains(n)) {
                if pids.values().any(|p| p == name) {
                    say(format!("stopping service {name}"));
                }
            }
            for (pid, name) in &pids {
                let sig = self.status.get(name).and_then(|s| s.stop_signal);
                let _ = kill(Pid::from_raw(*pid), sig.unwrap_or(Signal::SIGTERM));
            }
            let mut left = wait_all(pids, end, &mut |name, code| {
                self.record_stopped(name, Some(code))
            });
            if !left.is_empty() {
                for (pid, name) in &left {
                    say(format!(
                        "service {name} did not stop in {}s; killing it",
                        timeout.as_secs()
                    ));
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
                left = wait_all(left, deadline(GIVE_UP_AFTER_KILL), &mut |name, code| {
                    self.record_stopped(name, Some(code))
                });
            }
            for name in left.values() {
                self.record_stopped(name, None);
            }
        }
        self.write_status();
    }

    /// Record that `name` has stopped at shutdown.
    fn record_stopped(&mut self, name: &str, code: Option<Option<i32>>) {
        let _ = self.runtime.delete(name, true);
        if let Some(st) = self.status.get_mut(name) {
            st.pid = None;
            st.stopping = None;
            st.state = "exited".into();
            st.last_exit = code.map(describe);
            st.finished_at = Some(SystemTime::now());
            st.exit_code = code.map(|c| c.unwrap_or(137));
        }
    }

    /// The started services by dependency depth: level 0 depends on nothing, level n on
    /// something of level n-1 (`io.rancher.os.after`, `before`, `volumes_from`).
    pub fn levels(&self) -> Vec<Vec<String>> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        let started: BTreeSet<&str> = self.order.iter().map(String::as_str).collect();
        // `order` is a topological order: every dependency comes before its dependents.
        for name in &self.order {
            let mut deps: Vec<&str> = Vec::new();
            if let Some(s) = self.specs.get(name) {
                deps.extend(s.depends_on());
            }
            for (other, s) in &self.specs {
                if s.before.iter().any(|b| b == name) {
                    deps.push(other);
                }
            }
            let d = deps
                .iter()
                .filter(|d| started.contains(*d))
                .filter_map(|d| depth.get(d))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(name, d);
        }
        let mut levels: Vec<Vec<String>> = Vec::new();
        for (name, d) in depth {
            if levels.len() <= d {
                levels.resize(d + 1, Vec::new());
            }
            levels[d].push(name.to_string());
        }
        levels
    }
}

/// Reap each of `pids` as it exits (`ended` gets its name and exit code, None after a
/// signal), until all have or `until` passes; what still runs.
fn wait_all(
    mut pids: BTreeMap<i32, String>,
    until: Instant,
    ended: &mut dyn FnMut(&str, Option<i32>),
) -> BTreeMap<i32, String> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        pids.retain(|pid, name| {
            let code = match waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => Some(c),
                // Not our child any more: gone.
                Ok(WaitStatus::Signaled(..)) | Err(_) => None,
                Ok(_) => return true,
            };
            ended(name, code);
            false
        });
        if pids.is_empty() || Instant::now() >= until {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let far = deadline(Duration::from_secs(u64::MAX));
        assert!(far > Instant::now() + Duration::from_secs(86_400 * 365));
        let soon = deadline(Duration::from_secs(1));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
    }
}
