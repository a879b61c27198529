//! The static `os` binary: `cargo build --release -p os` for `x86_64-unknown-linux-gnu` with
//! `+crt-static`, in its own target directory so that a build started from inside `cargo test`
//! never waits on the outer cargo's lock.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Build (incrementally) and return the path of the static binary.
pub fn build() -> anyhow::Result<PathBuf> {
    let root = crate::paths::repo_root();
    let target_dir = root.join("target").join("os-static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "os",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&root)
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .env_remove("RUSTFLAGS")
        .status()
        .context("running cargo build for the os binary")?;
    if !status.success() {
        bail!("cargo build -p os (static) failed ({status})");
    }
    let bin = target_dir.join(TARGET).join("release").join("ros");
    if !bin.exists() {
        bail!("{} missing after build", bin.display());
    }
    Ok(bin)
}
