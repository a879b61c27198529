//! `rancher.sysctl`: kernel parameters (`vm.max_map_count: 262144`), written to `/proc/sys` by
//! PID 1 at boot, and again when `cloud-init-save` has brought new configuration. A bad key or
//! value is reported with the key; the others are set.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// `/proc/sys/<key with dots as slashes>`, refusing anything that would leave it.
pub fn path_of(root: &Path, key: &str) -> Result<PathBuf, String> {
    let rel = PathBuf::from(key.replace('.', "/"));
    if key.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("sysctl {key:?}: not a kernel parameter name"));
    }
    Ok(root.join(rel))
}

/// Write every parameter under `root` (`/proc/sys`); a line per problem.
pub fn apply(root: &Path, params: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in params {
        let path = match path_of(root, key) {
            Ok(p) => p,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        // Only existing parameters: /proc/sys never creates files, and a test root should not.
        if !path.is_file() {
            problems.push(format!("sysctl {key}: no such kernel parameter"));
            continue;
        }
        match std::fs::write(&path, format!("{value}\n")) {
            Ok(()) => tracing::info!(key = %key, value = %value, "sysctl set"),
            Err(e) => problems.push(format!("sysctl {key}={value}: {e}")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_written_and_bad_ones_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("vm")).unwrap();
        std::fs::write(root.path().join("vm/max_map_count"), "65530\n").unwrap();
        let params: BTreeMap<String, String> = [
            ("vm.max_map_count", "262144"),
            ("vm.nope", "1"),
            ("..", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let problems = apply(root.path(), &params);
        assert_eq!(
            std::fs::read_to_string(root.path().join("vm/max_map_count")).unwrap(),
            "262144\n"
        );
        assert_eq!(
            problems,
            [
                "sysctl \"..\": not a kernel parameter name",
                "sysctl vm.nope: no such kernel parameter"
            ]
        );
    }
}
