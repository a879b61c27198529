//! Which processes make the suite: cargo builds the test binaries and names them (its JSON
//! messages), each binary names its tests (`--list`).

use super::Tier;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A test binary cargo built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// `harness/tests/boot.rs` → `boot`; a crate's unit tests → `os (unit)`.
    pub label: String,
    pub exe: PathBuf,
    /// Where cargo would run it: its package's directory.
    pub cwd: PathBuf,
    /// One process per test (the harness's VM tests) rather than the binary whole.
    pub split: bool,
}

/// One process to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `boot::the_kernel_boots`, or the binary's label when it runs whole.
    pub label: String,
    pub exe: PathBuf,
    pub cwd: PathBuf,
    pub args: Vec<String>,
    /// A single test that must report `1 passed` (a name that matches nothing must not pass).
    pub single: bool,
}

/// `cargo test --workspace --no-run`: build every test binary, return them.
pub fn binaries(root: &Path) -> anyhow::Result<Vec<Binary>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--workspace", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo test --no-run failed ({})",
        out.status
    );
    parse_artifacts(&String::from_utf8_lossy(&out.stdout), root)
}

/// The test executables in cargo's JSON messages.
pub fn parse_artifacts(messages: &str, root: &Path) -> anyhow::Result<Vec<Binary>> {
    let harness_manifest = root.join("harness").join("Cargo.toml");
    let mut found = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let m: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("cargo message {line}"))?;
        if m["reason"] != "compiler-artifact" || m["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = m["executable"].as_str() else {
            continue;
        };
        let manifest = PathBuf::from(m["manifest_path"].as_str().context("manifest_path")?);
        let cwd = manifest
            .parent()
            .context("manifest_path has no directory")?
            .to_path_buf();
        let package = cwd
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = m["target"]["name"].as_str().context("target.name")?;
        let kind = m["target"]["kind"][0].as_str().unwrap_or("?");
        let integration = kind == "test";
        // A crate's lib and bin may share a name: the kind tells their unit tests apart.
        let label = if integration {
            name.to_string()
        } else {
            format!("{package} ({kind} {name})")
        };
        found.push(Binary {
            label,
            exe: exe.into(),
            cwd,
            split: integration && manifest == harness_manifest,
        });
    }
    found.sort_by(|a, b| a.label.cmp(&b.label));
    found.dedup();
    Ok(found)
}

/// The jobs of one binary for a tier.
pub fn jobs(b: &Binary, tier: Tier) -> anyhow::Result<Vec<Job>> {
    let tier_args: Vec<String> = match tier {
        Tier::PerPush => vec![],
        Tier::All => vec!["--include-ignored".into()],
    };
    if !b.split {
        return Ok(vec![Job {
            label: b.label.clone(),
            exe: b.exe.clone(),
            cwd: b.cwd.clone(),
            args: tier_args,
            single: false,
        }]);
    }
    let all = list(b, &[])?;
    let ignored = list(b, &["--ignored"])?;
    Ok(all
        .into_iter()
        .filter(|t| tier == Tier::All || !ignored.contains(t))
        .map(|t| {
            let mut args = vec!["--exact".into(), t.clone(), "--test-threads=1".into()];
            args.extend(tier_args.iter().cloned());
            Job {
                label: format!("{}::{t}", b.label),
                exe: b.exe.clone(),
                cwd: b.cwd.clone(),
                args,
                single: true,
            }
        })
        .collect())
}

/// The tests a binary holds (`--list --format terse`, more flags as given).
fn list(b: &Binary, extra: &[&str]) -> anyhow::Result<Vec<String>> {
    let out = Command::new(&b.exe)
        .args(["--list", "--format", "terse"])
        .args(extra)
        .current_dir(&b.cwd)
        .output()
        .with_context(|| format!("running {} --list", b.exe.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} --list failed: {}",
        b.exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(parse_list(&String::from_utf8_lossy(&out.stdout)))
}

/// `name: test` lines (benches and anything else left out).
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_messages_give_the_test_binaries_and_which_to_split() {
        let root = Path::new("/w");
        let msgs = r#"{"reason":"compiler-artifact","manifest_path":"/w/harness/Cargo.toml","target":{"kind":["test"],"name":"boot"},"profile":{"test":true},"executable":"/w/target/debug/deps/boot-1"}
{"reason":"compiler-artifact","manifest_path":"/w/os/Cargo.toml","target":{"kind":["bin"],"name":"ros"},"profile":{"test":true},"executable":"/w/target/debug/deps/ros-2"}
{"reason":"compiler-artifact","manifest_path":"/w/os/Cargo.toml","target":{"kind":["bin"],"name":"ros"},"profile":{"test":false},"executable":"/w/target/debug/ros"}
{"reason":"compiler-artifact","manifest_path":"/w/os/Cargo.toml","target":{"kind":["lib"],"name":"dep"},"profile":{"test":false},"executable":null}
{"reason":"build-finished","success":true}"#;
        let b = parse_artifacts(msgs, root).unwrap();
        assert_eq!(
            b,
            vec![
                Binary {
                    label: "boot".into(),
                    exe: "/w/target/debug/deps/boot-1".into(),
                    cwd: "/w/harness".into(),
                    split: true
                },
                Binary {
                    label: "os (bin ros)".into(),
                    exe: "/w/target/debug/deps/ros-2".into(),
                    cwd: "/w/os".into(),
                    split: false
                },
            ]
        );
    }

    #[test]
    fn a_list_gives_the_tests_only() {
        let text = "a::b: test\nc: test\nbench_x: bench\n\n";
        assert_eq!(parse_list(text), ["a::b", "c"]);
    }
}
