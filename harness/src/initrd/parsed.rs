//! Parsed copies of YAML files in the initrd (`parsed_yaml:` in `initrd/initrd.yml`): beside
//! `X.yml`, `X.yml.json` holds the same tree as JSON with the SHA-256 of the text it was made
//! from, `{"source_sha256": "<hex>", "value": <tree>}`.
//!
//! Why: the built-in defaults (`/usr/share/ros/os-config.yml`, 14 KB) are read by each `ros`
//! process that loads the configuration, half a dozen before `[ros] ready`, and libyaml's
//! scanner is ten times JSON's cost for them. The reader (`os/src/config/parsed.rs`) uses a copy
//! only when its hash is that of the YAML it has just read, so the YAML stays the truth.
//!
//! A tree JSON cannot carry as it is (a tag, a key that is not a string, a number that is not
//! finite) fails the build, naming the file: the copy is read back here and must equal the
//! YAML's tree, the same way the reader will read it.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

#[derive(Serialize)]
struct Out<'a> {
    source_sha256: String,
    value: &'a Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct In {
    #[allow(dead_code)]
    source_sha256: String,
    value: Value,
}

/// The parsed copy of `text`, the YAML file `path` (named in errors).
pub fn copy_of(path: &str, text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(text).with_context(|| format!("{path}: not UTF-8"))?;
    let value: Value =
        serde_yaml_ng::from_str(text).with_context(|| format!("{path}: invalid YAML"))?;
    let bytes = serde_json::to_vec(&Out {
        source_sha256: hex::encode(Sha256::digest(text.as_bytes())),
        value: &value,
    })
    .with_context(|| format!("{path}: its tree cannot be written as JSON"))?;
    let back: In = serde_json::from_slice(&bytes)
        .with_context(|| format!("{path}: its JSON copy does not read back"))?;
    // Order too (`Mapping`'s `==` ignores it; services, labels and interfaces keep the file's).
    if back.value != value || format!("{:?}", back.value) != format!("{value:?}") {
        bail!(
            "{path}: its tree does not survive JSON as it is (a tag, a key that is not a \
             string, or a number that is not finite?): no parsed copy can be made"
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_copy_reads_back_as_their_tree_with_their_hash() {
        let path = crate::paths::repo_root().join("initrd/rootfs/usr/share/ros/os-config.yml");
        let text = std::fs::read(&path).unwrap();
        let copy = copy_of("os-config.yml", &text).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&copy).unwrap();
        assert_eq!(
            back["source_sha256"],
            hex::encode(Sha256::digest(&text)).as_str()
        );
        let tree = serde_json::from_slice::<In>(&copy).unwrap().value;
        let want: Value = serde_yaml_ng::from_slice(&text).unwrap();
        assert_eq!(tree, want);
        // In the file's key order (the plan and the labels keep it).
        assert_eq!(format!("{tree:?}"), format!("{want:?}"));
        assert!(tree["rancher"]["services"].is_mapping());
    }

    #[test]
    fn a_tree_json_cannot_carry_fails_naming_the_file() {
        for (yaml, why) in [
            ("1: one\n", "an integer key"),
            ("a: !custom x\n", "a tag"),
            ("a: .nan\n", "not a number"),
            ("a: .inf\n", "infinity"),
            ("[a, b]: c\n", "a sequence key"),
        ] {
            let e = copy_of("x.yml", yaml.as_bytes()).expect_err(why);
            assert!(e.to_string().starts_with("x.yml: "), "{why}: {e:#}");
        }
        let e = copy_of("y.yml", b"a: [\n").unwrap_err();
        assert!(e.to_string().contains("y.yml: invalid YAML"), "{e:#}");
    }
}
