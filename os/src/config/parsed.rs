//! The built-in defaults' parsed copy: `os-config.yml.json` beside `os-config.yml`, the same
//! tree as JSON, written by the image build (`harness/src/initrd/parsed.rs`).
//!
//! Why: every `ros` process that needs the configuration reads the defaults first (PID 1 twice,
//! the system engine, `network`, `docker`, `cloud-init`: half a dozen before `[ros] ready`), and
//! libyaml's scanner takes ~4.7 M instructions for their 14 KB where JSON takes ~0.45 M
//! (`valgrind --tool=cachegrind`, this binary's profile); under TCG, PID 1's `load-config` step
//! and `network`'s way to its lease pay it. The YAML stays the file people read and edit.
//!
//! Trust: the copy names the SHA-256 of the YAML text it was made from, and is used only when
//! that is the text just read. An edited `os-config.yml`, a copy from another build, a damaged
//! or missing copy: the YAML is read as it is (the copy is a cache; never a second source of
//! truth). Whatever the copy holds is then checked exactly as the YAML's tree would be.

use serde::Deserialize;
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What the build writes: `{"source_sha256": "<hex>", "value": <the tree>}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Parsed {
    source_sha256: String,
    value: Value,
}

/// The parsed copy of the YAML file at `yaml`: the same path with `.json` appended.
pub fn copy_path(yaml: &Path) -> PathBuf {
    let mut p = yaml.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

/// The tree of `text`, read from `yaml`, taken from its parsed copy when there is one made from
/// exactly this text; `None` (read the YAML) otherwise. A copy that is there but cannot be used
/// is logged, naming it and why.
pub fn tree_of(yaml: &Path, text: &str) -> Option<Value> {
    let copy = copy_path(yaml);
    let bytes = match std::fs::read(&copy) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %copy.display(), error = %e, "parsed copy unreadable: reading the YAML");
            return None;
        }
    };
    let parsed: Parsed = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(file = %copy.display(), error = %e, "parsed copy damaged: reading the YAML");
            return None;
        }
    };
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    if parsed.source_sha256 != sha {
        tracing::warn!(
            file = %copy.display(),
            made_from = %parsed.source_sha256,
            yaml_sha256 = %sha,
            "parsed copy made from another text: reading the YAML"
        );
        return None;
    }
    Some(parsed.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, yaml: &str, copy: Option<&str>) -> PathBuf {
        let y = dir.join("os-config.yml");
        std::fs::write(&y, yaml).unwrap();
        if let Some(c) = copy {
            std::fs::write(copy_path(&y), c).unwrap();
        }
        y
    }

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn the_copy_is_beside_the_yaml_with_json_appended() {
        assert_eq!(
            copy_path(Path::new("/usr/share/ros/os-config.yml")),
            Path::new("/usr/share/ros/os-config.yml.json")
        );
    }

    #[test]
    fn a_copy_made_from_this_text_is_what_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "hostname: from-yaml\n";
        // The copy's tree differs from the YAML's on purpose: it shows which one was read.
        let copy = format!(
            r#"{{"source_sha256":"{}","value":{{"hostname":"from-copy","n":[1,-2,1.5,true,null]}}}}"#,
            sha(yaml)
        );
        let y = write(dir.path(), yaml, Some(&copy));
        let tree = tree_of(&y, yaml).expect("the copy is used");
        let want: Value =
            serde_yaml_ng::from_str("hostname: from-copy\nn: [1, -2, 1.5, true, null]\n").unwrap();
        assert_eq!(tree, want);
    }

    #[test]
    fn the_image_defaults_load_the_same_from_their_copy() {
        let text = include_str!("../../../initrd/rootfs/usr/share/ros/os-config.yml");
        let tree: Value = serde_yaml_ng::from_str(text).unwrap();
        // As the build writes it: the tree serialized as it is, in the document's key order.
        let copy = format!(
            r#"{{"source_sha256":"{}","value":{}}}"#,
            sha(text),
            serde_json::to_string(&tree).unwrap()
        );
        let load = |with_copy: bool| {
            let dir = tempfile::tempdir().unwrap();
            let paths = crate::config::ConfigPaths::under(dir.path());
            std::fs::create_dir_all(paths.defaults.parent().unwrap()).unwrap();
            let copy = with_copy.then_some(copy.as_str());
            write(paths.defaults.parent().unwrap(), text, copy);
            assert_eq!(tree_of(&paths.defaults, text).is_some(), with_copy);
            let cmdline = crate::cmdline::Cmdline::parse("rancher.debug=true");
            crate::config::load_layers(&paths, &cmdline)
        };
        let (yaml, json) = (load(false), load(true));
        assert_eq!(json.value, yaml.value);
        assert_eq!(format!("{:?}", json.config), format!("{:?}", yaml.config));
        assert!(json.config.rancher.debug);
        assert_eq!(
            format!("{:?}{:?}", json.errors, json.warnings),
            format!("{:?}{:?}", yaml.errors, yaml.warnings)
        );
    }

    #[test]
    fn a_copy_of_another_text_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "hostname: edited\n";
        let copy = format!(
            r#"{{"source_sha256":"{}","value":{{"hostname":"stale"}}}}"#,
            sha("hostname: rancher\n")
        );
        let y = write(dir.path(), yaml, Some(&copy));
        assert_eq!(tree_of(&y, yaml), None);
    }

    #[test]
    fn a_damaged_or_missing_copy_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "hostname: rancher\n";
        let y = write(dir.path(), yaml, None);
        assert_eq!(tree_of(&y, yaml), None);
        for bad in [
            String::new(),
            "{".to_string(),
            format!(r#"{{"source_sha256":"{}"}}"#, sha(yaml)),
            format!(
                r#"{{"source_sha256":"{}","value":{{}},"extra":1}}"#,
                sha(yaml)
            ),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        ] {
            std::fs::write(copy_path(&y), &bad).unwrap();
            assert_eq!(tree_of(&y, yaml), None, "copy {:.60}", bad);
        }
    }
}
