//! `stop` (the stop signal, then KILL at the deadline), `kill` (one signal), `restart`. A
//! paused container is thawed after its stop signal (and after KILL), so it can act on it.
//! A stop waits on the record's change channel with a deadline; nothing blocks a thread.

use super::record::Lifecycle;
use super::{shim_client, unheard, Manager, ManagerError, Result};
use crate::engine::shim::protocol::Request;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stop or a forced removal waits for a start or stop under way to end.
pub(super) const IDLE_WAIT: Duration = Duration::from_secs(60);

/// Docker's default time between the stop signal and KILL.
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

fn signal_number(text: &str) -> Result<i32> {
    crate::services::spec::parse_signal(text)
        .map(|s| s as i32)
        .map_err(|e| ManagerError::BadRequest(format!("Invalid signal: {e}")))
}

impl Manager {
    /// Stop it: `signal` (default: the container's StopSignal, else TERM), then KILL after
    /// `timeout` seconds (default: its StopTimeout, else 10; negative: wait for ever).
    pub async fn stop(
        self: &Arc<Self>,
        name_or_id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let id = self.find(name_or_id)?;
        // A start the restart policy began is let finish, then stopped.
        self.until_idle(&id, IDLE_WAIT).await;
        let rec = self.get(&id)?;
        if rec.state.status == Lifecycle::Restarting {
            let rec = self.update(&id, |r| {
                r.state.status = Lifecycle::Exited;
                r.state.stopped_by_user = true;
            })?;
            self.emit(&rec, "stop", None, None);
            return Ok(());
        }
        if !rec.state.status.is_running() {
            return Err(ManagerError::NotModified(format!(
                "container {} is not running",
                rec.name
            )));
        }
        self.update(&id, |r| r.state.stopped_by_user = true)?;
        let sig = match signal.or(rec.config.stop_signal.as_deref()) {
            Some(s) if !s.is_empty() => signal_number(s)?,
            _ => libc::SIGTERM,
        };
        let t = timeout
            .or(rec.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let shim = self.shim_dir(&id);
        let lost = unheard::would_drop(rec.state.pid, sig);
        let _ = shim_client::call(&shim, &Request::Kill { signal: sig }).await;
        self.thaw_after_signal(&id).await;
        let limit = (t >= 0).then(|| Duration::from_secs(t as u64));
        let stopped = if lost {
            self.resend_when_heard(&id, rec.state.pid, sig, limit).await
        } else {
            self.until_stopped(&id, limit).await
        };
        if !stopped {
            tracing::info!(id, timeout = t, "did not stop in time: KILL");
            if self.cfg.log_dir.is_some() {
                let line = format!("service {} did not stop in {t}s; killing it", rec.name);
                self.note(&rec, &line, true);
            }
            let _ = shim_client::call(&shim, &Request::Kill { signal: 9 }).await;
            if !self.until_stopped(&id, Some(Duration::from_secs(30))).await {
                return Err(ManagerError::Conflict(format!(
                    "container {} did not exit after KILL",
                    rec.name
                )));
            }
        }
        self.emit(&rec, "stop", None, None);
        Ok(())
    }

    /// Send one signal (default KILL) to a running container.
    pub async fn kill(self: &Arc<Self>, name_or_id: &str, signal: Option<&str>) -> Result<()> {
        let id = self.find(name_or_id)?;
        let rec = self.get(&id)?;
        if !rec.state.status.is_running() {
            return Err(ManagerError::Conflict(format!(
                "Container {id} is not running"
            )));
        }
        let sig = match signal {
            Some(s) if !s.is_empty() => signal_number(s)?,
            _ => libc::SIGKILL,
        };
        self.update(&id, |r| r.state.stopped_by_user = true)?;
        shim_client::call_ok(&self.shim_dir(&id), &Request::Kill { signal: sig }).await?;
        if sig == libc::SIGKILL {
            // A frozen task dies of KILL all the same; thawing keeps the record in step.
            self.thaw_after_signal(&id).await;
        }
        self.emit(&rec, "kill", None, Some(sig));
        Ok(())
    }

    /// Stop (if running) and start again.
    pub async fn restart(self: &Arc<Self>, name_or_id: &str, timeout: Option<i64>) -> Result<()> {
        match self.stop(name_or_id, timeout, None).await {
            Ok(()) | Err(ManagerError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        let rec = self.get(name_or_id)?;
        self.start(&rec.id).await?;
        self.emit(&rec, "restart", None, None);
        Ok(())
    }

    /// The stop signal was sent while the process could not take it (see [`unheard`]): watch
    /// it until it does, and send the signal again then, once; all within `limit`. True when
    /// the container stopped.
    async fn resend_when_heard(
        &self,
        id: &str,
        pid: i32,
        sig: i32,
        limit: Option<Duration>,
    ) -> bool {
        const LOOK_EVERY: Duration = Duration::from_millis(20);
        let start = Instant::now();
        loop {
            let left = limit.map(|l| l.saturating_sub(start.elapsed()));
            if self
                .until_stopped(id, Some(left.map_or(LOOK_EVERY, |l| l.min(LOOK_EVERY))))
                .await
            {
                return true;
            }
            if left.is_some_and(|l| l <= LOOK_EVERY) {
                return false;
            }
            if !unheard::would_drop(pid, sig) {
                tracing::info!(
                    id,
                    signal = sig,
                    after_ms = start.elapsed().as_millis() as u64,
                    "the stop signal came before the process could take it: sent again"
                );
                let _ = shim_client::call(&self.shim_dir(id), &Request::Kill { signal: sig }).await;
                let left = limit.map(|l| l.saturating_sub(start.elapsed()));
                return self.until_stopped(id, left).await;
            }
        }
    }

    /// Wait until the container no longer runs (true), or the limit passed (false).
    pub(super) async fn until_stopped(&self, id: &str, limit: Option<Duration>) -> bool {
        self.until(id, limit, |m| {
            m.get(id)
                .map(|r| !r.state.status.is_running())
                .unwrap_or(true)
        })
        .await
    }
}
