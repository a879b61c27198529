//! Shutdown: every running container of the engine stops, the system services level by level
//! in reverse dependency order (each level's services at once), after the containers that are
//! not services; all within one `rancher.shutdown_timeout`, then KILL. The manager's stops are
//! deadlines; nothing waits longer than that.

use super::{Inner, SystemServices};
use crate::console::say;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl SystemServices {
    pub async fn stop_all(self: &Arc<Self>, timeout: Duration) {
        let inner = self.inner.lock().await;
        let end = Instant::now() + timeout;
        let services: BTreeSet<&String> = inner.order.iter().collect();
        let others: Vec<String> = self
            .mgr
            .list()
            .into_iter()
            .filter(|r| !services.contains(&r.name))
            .map(|r| r.name)
            .collect();
        let mut stages = vec![others];
        stages.extend(levels(&inner).into_iter().rev());
        for stage in stages {
            let running: Vec<String> = stage
                .into_iter()
                .filter(|n| {
                    self.mgr.get(n).is_ok_and(|r| {
                        r.state.status.is_running()
                            || r.state.status == crate::engine::manager::Lifecycle::Restarting
                    })
                })
                .collect();
            if running.is_empty() {
                continue;
            }
            // One line a service, in reverse start order within the level; they stop together.
            for name in inner.order.iter().rev().filter(|n| running.contains(n)) {
                say(format!("stopping service {name}"));
            }
            let left = end.saturating_duration_since(Instant::now()).as_secs() as i64;
            let stops = running.iter().map(|n| {
                let mgr = self.mgr.clone();
                async move {
                    if let Err(e) = mgr.stop(n, Some(left), None).await {
                        tracing::warn!(container = %n, error = %e, "stopping at shutdown");
                    }
                }
            });
            futures_util::future::join_all(stops).await;
        }
        self.write_status();
    }
}

/// The started services by dependency depth: level 0 depends on nothing, level n on something
/// of level n-1 (`io.rancher.os.after`, `before`, `volumes_from`).
fn levels(inner: &Inner) -> Vec<Vec<String>> {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let started: BTreeSet<&str> = inner.order.iter().map(String::as_str).collect();
    // `order` is a topological order: every dependency comes before its dependents.
    for name in &inner.order {
        let mut deps: Vec<&str> = Vec::new();
        if let Some(s) = inner.specs.get(name) {
            deps.extend(s.depends_on());
        }
        for (other, s) in &inner.specs {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_dependencies() {
        let parse = |name: &str, yaml: &str| {
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
            crate::services::ServiceSpec::parse(name, &v).unwrap()
        };
        let mut inner = Inner::default();
        for (n, y) in [
            ("a", "image: x"),
            ("b", "image: x\nlabels: {io.rancher.os.after: a}"),
            ("c", "image: x\nlabels: {io.rancher.os.after: b}"),
            ("d", "image: x\nlabels: {io.rancher.os.before: c}"),
        ] {
            inner.specs.insert(n.into(), parse(n, y));
            inner.order.push(n.into());
        }
        assert_eq!(
            levels(&inner),
            vec![
                vec!["a".to_string(), "d".into()],
                vec!["b".into()],
                vec!["c".into()]
            ]
        );
    }
}
