//! Start order. Service A starts after B when A says `io.rancher.os.after: B`, when B says
//! `io.rancher.os.before: A`, or when A takes `volumes_from: [B]`. The order is a topological
//! sort, ties broken by name so that every boot starts services in the same order. A cycle is an
//! error that names it (`a -> b -> a`); its services, and those that wait on them, are left out
//! and reported, and every other service still starts. A dependency on a service that does not
//! exist is ignored with a warning (RancherOS did the same), so disabling one service never
//! stops the others.

use std::collections::{BTreeMap, BTreeSet};

/// The result of ordering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Services in start order.
    pub order: Vec<String>,
    /// Each dependency cycle, as the names along it (first repeated at the end).
    pub cycles: Vec<Vec<String>>,
    /// Services not started because they wait on a service in a cycle: (service, what it waits on).
    pub blocked: Vec<(String, String)>,
    /// `(service, missing dependency)`.
    pub missing: Vec<(String, String)>,
    /// For each service of `order`: the services it must start after (all earlier in `order`).
    /// What a concurrent start waits on.
    pub waits_on: BTreeMap<String, BTreeSet<String>>,
}

/// Order services. `after`: service name → names it must start after (`after` + `volumes_from`);
/// `before`: service name → names that must start after it.
pub fn plan(after: &BTreeMap<String, Vec<String>>, before: &BTreeMap<String, Vec<String>>) -> Plan {
    let mut p = Plan::default();
    // edges[x] = services that must wait for x.
    let mut waits_on: BTreeMap<&str, BTreeSet<&str>> = after
        .keys()
        .map(|k| (k.as_str(), BTreeSet::new()))
        .collect();
    for (svc, deps) in after {
        for d in deps {
            if after.contains_key(d) {
                waits_on
                    .get_mut(svc.as_str())
                    .expect("key")
                    .insert(d.as_str());
            } else {
                p.missing.push((svc.clone(), d.clone()));
            }
        }
    }
    for (svc, later) in before {
        for l in later {
            match waits_on.get_mut(l.as_str()) {
                Some(set) if after.contains_key(svc) => {
                    set.insert(svc.as_str());
                }
                _ => p.missing.push((svc.clone(), l.clone())),
            }
        }
    }
    // Kahn's algorithm, smallest name first.
    p.waits_on = waits_on
        .iter()
        .map(|(k, d)| (k.to_string(), d.iter().map(|x| x.to_string()).collect()))
        .collect();
    let mut remaining = waits_on.clone();
    let mut ready: BTreeSet<&str> = remaining
        .iter()
        .filter(|(_, d)| d.is_empty())
        .map(|(k, _)| *k)
        .collect();
    while let Some(next) = ready.pop_first() {
        remaining.remove(next);
        p.order.push(next.to_string());
        for (svc, deps) in remaining.iter_mut() {
            if deps.remove(next) && deps.is_empty() {
                ready.insert(svc);
            }
        }
    }
    // What is left sits on or behind a cycle.
    let mut in_cycle: BTreeSet<&str> = BTreeSet::new();
    for start in remaining.keys() {
        if in_cycle.contains(start) {
            continue;
        }
        if let Some(cycle) = find_cycle(start, &remaining) {
            if cycle.iter().all(|c| !in_cycle.contains(c.as_str())) {
                for c in &cycle[..cycle.len() - 1] {
                    in_cycle.insert(remaining.get_key_value(c.as_str()).expect("in remaining").0);
                }
                p.cycles.push(cycle);
            }
        }
    }
    for svc in remaining.keys() {
        p.waits_on.remove(*svc);
    }
    for (svc, deps) in &remaining {
        if !in_cycle.contains(svc) {
            let on: Vec<&str> = deps.iter().copied().collect();
            p.blocked.push((svc.to_string(), on.join(", ")));
        }
    }
    p
}

/// A cycle reachable from `start` that returns to `start`, if any.
fn find_cycle(start: &str, graph: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    fn dfs<'a>(
        node: &'a str,
        start: &str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
    ) -> bool {
        for &next in graph.get(node).into_iter().flatten() {
            if next == start {
                path.push(next);
                return true;
            }
            if seen.insert(next) {
                path.push(next);
                if dfs(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut seen = BTreeSet::from([start]);
    // Edges point from a service to what it waits on; reverse the found path so it reads in
    // start order ("a -> b" = a starts before b).
    dfs(start, start, graph, &mut path, &mut seen).then(|| {
        path.reverse();
        path.into_iter().map(String::from).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn after_before_and_names_order_the_start() {
        let after = map(&[
            ("syslog", &[]),
            ("network", &["udev"]),
            ("udev", &[]),
            ("ntp", &["network"]),
            ("console", &[]),
        ]);
        let before = map(&[("syslog", &["udev"])]);
        let p = plan(&after, &before);
        assert_eq!(p.order, ["console", "syslog", "udev", "network", "ntp"]);
        assert!(p.cycles.is_empty() && p.blocked.is_empty() && p.missing.is_empty());
        let on = |s: &str| p.waits_on[s].iter().cloned().collect::<Vec<_>>();
        assert_eq!(on("network"), ["udev"]);
        assert_eq!(on("udev"), ["syslog"]);
        assert!(on("console").is_empty());
    }

    #[test]
    fn a_cycle_is_named_and_the_rest_start() {
        let after = map(&[
            ("a", &["b"]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["gone"]),
            ("e", &[]),
        ]);
        let p = plan(&after, &BTreeMap::new());
        assert_eq!(p.order, ["d", "e"]);
        assert_eq!(p.waits_on.keys().collect::<Vec<_>>(), ["d", "e"]);
        assert_eq!(p.cycles, [vec!["a", "b", "a"]]);
        assert_eq!(p.blocked, [("c".to_string(), "a".to_string())]);
        assert_eq!(p.missing, [("d".to_string(), "gone".to_string())]);
    }

    #[test]
    fn a_self_loop_is_a_cycle() {
        let p = plan(&map(&[("x", &["x"])]), &BTreeMap::new());
        assert_eq!(p.cycles, [vec!["x", "x"]]);
        assert!(p.order.is_empty());
    }
}
