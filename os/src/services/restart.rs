//! When a stopped service comes back: the compose `restart:` policy decides whether, and an
//! exponential backoff decides when. The first restart is quick (a `kill -9`'d service is back
//! well within 2 s); a service that keeps failing waits longer each time, up to a cap; a run that
//! lasted long enough resets the count.

use std::time::Duration;

/// `restart:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure,
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" | "" => Ok(RestartPolicy::No),
            "always" | "unless-stopped" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            other => Err(format!("{other:?} is not one of no, always, on-failure")),
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
        })
    }
}

impl RestartPolicy {
    /// Whether a service that ended with `exit_code` (None: killed by a signal) comes back.
    /// A service stopped on purpose (by an operator or at shutdown) never does; the caller
    /// checks that first.
    pub fn wants_restart(self, exit_code: Option<i32>) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != Some(0),
        }
    }
}

/// Exponential backoff between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// A run at least this long resets the failure count.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before restart number `restarts` (0 = the first), given how long the last run
    /// lasted. Returns the delay and the new restart count.
    pub fn next(&self, restarts: u32, ran_for: Duration) -> (Duration, u32) {
        let n = if ran_for >= self.reset_after {
            0
        } else {
            restarts
        };
        let delay = self.first.saturating_mul(1u32 << n.min(16)).min(self.max);
        (delay, n + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(!RestartPolicy::No.wants_restart(Some(1)));
        assert!(RestartPolicy::Always.wants_restart(Some(0)));
        assert!(
            RestartPolicy::OnFailure.wants_restart(None),
            "killed by a signal is a failure"
        );
        assert!(!RestartPolicy::OnFailure.wants_restart(Some(0)));
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::default();
        let quick = Duration::from_millis(50);
        let mut n = 0;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let (d, next) = b.next(n, quick);
            delays.push(d.as_millis());
            n = next;
        }
        assert_eq!(delays[..5], [100, 200, 400, 800, 1600]);
        assert_eq!(*delays.last().unwrap(), 30_000);
        let (d, n) = b.next(n, Duration::from_secs(60));
        assert_eq!(
            (d, n),
            (Duration::from_millis(100), 1),
            "a long run resets the count"
        );
    }
}
