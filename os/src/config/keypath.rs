//! Key paths into a YAML tree: `rancher.network.interfaces.eth0.mtu`, `write_files[0].path`.
//!
//! They exist because two different writers produce them and both must find the same node: the
//! operator (`rancherctl config get rancher.debug`) and serde's error messages
//! (`write_files[0].permissions: invalid permissions …`), which is how a bad key is found and
//! dropped from a layer. Map keys may themselves contain dots (`rancher.sysctl.vm.max_map_count`),
//! so a lookup tries the longest dotted key that exists at each step.

use serde_yaml_ng::Value;

/// One step of a resolved path: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Split `a.b[0].c` into raw parts (`a`, `b`, `[0]`, `c`). Dots inside keys are resolved later,
/// against the tree (see [`resolve`]).
fn parts(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for dotted in path.split('.') {
        let mut rest = dotted;
        // `name[1][2]`: the name, then each index.
        let name_end = rest.find('[').unwrap_or(rest.len());
        out.push(rest[..name_end].to_string());
        rest = &rest[name_end..];
        while let Some(close) = rest.find(']') {
            out.push(rest[..=close].to_string());
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            if let Some(last) = out.last_mut() {
                last.push_str(rest);
            }
        }
    }
    // A leading `[0]` leaves an empty name in front.
    if out.first().is_some_and(String::is_empty) && out.len() > 1 && out[1].starts_with('[') {
        out.remove(0);
    }
    out
}

fn index_of(part: &str) -> Option<usize> {
    part.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Resolve `path` against `root`: the steps that lead to an existing node, or `None` when there is
/// no such node. The empty path and `.` resolve to the root.
pub fn resolve(root: &Value, path: &str) -> Option<Vec<Step>> {
    if path.is_empty() || path == "." {
        return Some(Vec::new());
    }
    let parts = parts(path);
    let mut steps = Vec::new();
    resolve_parts(root, &parts, &mut steps).then_some(steps)
}

fn resolve_parts(node: &Value, parts: &[String], steps: &mut Vec<Step>) -> bool {
    let Some(first) = parts.first() else {
        return true;
    };
    match node {
        Value::Sequence(items) => {
            let Some(i) = index_of(first) else {
                return false;
            };
            let Some(item) = items.get(i) else {
                return false;
            };
            steps.push(Step::Index(i));
            if resolve_parts(item, &parts[1..], steps) {
                return true;
            }
            steps.pop();
            false
        }
        Value::Mapping(map) => {
            // Longest dotted key first, so `vm.max_map_count` wins over `vm`.
            for n in (1..=parts.len()).rev() {
                if parts[1..n].iter().any(|p| p.starts_with('[')) {
                    continue;
                }
                let key = parts[..n].join(".");
                if let Some(child) = map.get(key.as_str()) {
                    steps.push(Step::Key(key));
                    if resolve_parts(child, &parts[n..], steps) {
                        return true;
                    }
                    steps.pop();
                }
            }
            false
        }
        Value::Tagged(t) => resolve_parts(&t.value, parts, steps),
        _ => false,
    }
}

/// The node at `path`, if there is one.
pub fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = resolve(root, path)?;
    let mut node = root;
    for step in &steps {
        node = step_into(node, step)?;
    }
    Some(node)
}

fn step_into<'a>(node: &'a Value, step: &Step) -> Option<&'a Value> {
    match (node, step) {
        (Value::Mapping(m), Step::Key(k)) => m.get(k.as_str()),
        (Value::Sequence(s), Step::Index(i)) => s.get(*i),
        (Value::Tagged(t), _) => step_into(&t.value, step),
        _ => None,
    }
}

/// Remove the node at `path` and return it. The root itself cannot be removed.
pub fn remove(root: &mut Value, path: &str) -> Option<Value> {
    let steps = resolve(root, path)?;
    remove_at(root, &steps)
}

/// Remove the node at resolved `steps` and return it.
pub fn remove_at(root: &mut Value, steps: &[Step]) -> Option<Value> {
    let (last, parents) = steps.split_last()?;
    let mut node = root;
    for step in parents {
        node = step_into_mut(node, step)?;
    }
    if let Value::Tagged(t) = node {
        node = &mut t.value;
    }
    match (node, last) {
        (Value::Mapping(m), Step::Key(k)) => m.shift_remove(k.as_str()),
        (Value::Sequence(s), Step::Index(i)) if *i < s.len() => Some(s.remove(*i)),
        _ => None,
    }
}

fn step_into_mut<'a>(node: &'a mut Value, step: &Step) -> Option<&'a mut Value> {
    match (node, step) {
        (Value::Mapping(m), Step::Key(k)) => m.get_mut(k.as_str()),
        (Value::Sequence(s), Step::Index(i)) => s.get_mut(*i),
        (Value::Tagged(t), _) => step_into_mut(&mut t.value, step),
        _ => None,
    }
}

/// Write steps back as a path: `write_files[0].path`.
pub fn format(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Whether `path` is `prefix` or lies below it (`rancher.foo.bar` is under `rancher.foo`).
pub fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn resolves_keys_indices_and_dotted_keys() {
        let v = yaml(
            "rancher:\n  sysctl:\n    vm.max_map_count: 1\n    vm: {x: 2}\nwrite_files:\n  - path: /a\n  - path: /b\n",
        );
        assert_eq!(get(&v, "rancher.sysctl.vm.max_map_count"), Some(&yaml("1")));
        assert_eq!(get(&v, "rancher.sysctl.vm.x"), Some(&yaml("2")));
        assert_eq!(get(&v, "write_files[1].path"), Some(&yaml("/b")));
        assert_eq!(get(&v, "write_files[2]"), None);
        assert_eq!(get(&v, "rancher.nope"), None);
        assert_eq!(get(&v, "."), Some(&v));
        let steps = resolve(&v, "rancher.sysctl.vm.max_map_count").unwrap();
        assert_eq!(format(&steps), "rancher.sysctl.vm.max_map_count");
        assert_eq!(
            format(&resolve(&v, "write_files[1].path").unwrap()),
            "write_files[1].path"
        );
    }

    #[test]
    fn removes_nodes() {
        let mut v = yaml("a: {b: 1, c: [x, y, z]}");
        assert_eq!(remove(&mut v, "a.c[1]"), Some(yaml("y")));
        assert_eq!(remove(&mut v, "a.b"), Some(yaml("1")));
        assert_eq!(remove(&mut v, "a.b"), None);
        assert_eq!(remove(&mut v, ""), None);
        assert_eq!(v, yaml("a: {c: [x, z]}"));
    }

    #[test]
    fn under() {
        assert!(is_under("rancher.foo.bar", "rancher.foo"));
        assert!(is_under("rancher.foo", "rancher.foo"));
        assert!(is_under("write_files[0].x", "write_files"));
        assert!(!is_under("rancher.foobar", "rancher.foo"));
    }
}
