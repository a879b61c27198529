//! The static `os` binary: `cargo build --release -p os` for `x86_64-unknown-linux-gnu` with
//! `+crt-static`, in its own target directory so that a build started from inside `cargo test`
//! never waits on the outer cargo's lock.
//!
//! Not position-independent (`-C relocation-model=static`): as a static PIE, every process of
//! it (PID 1, the engines, a shim per container, the helpers) applied 25,700 relocations at
//! start, writing its own private copy of 439 KB of `.data.rel.ro`, and the binary carried
//! 617 KB of relocation records. Fixed addresses leave those pages shared and clean:
//! `cargo harness bench ram` (TCG, 2026-12-03) PSS of the 8 shims 8.4 → 4.9 MB, PID 1 2.1 →
//! 1.5 MB, used after boot 55.3 → 48.6 MB; MemAvailable at `-m 64` 4 → 10 MB; the binary
//! 12.68 → 12.00 MB. The cost: the executable's own code and data are not randomized (the heap,
//! stack and mappings still are), as for Go's static binaries and Debian's busybox-static. In
//! a language without memory corruption by default that is a small loss against 5 MB of 64.

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
            "-C target-feature=+crt-static -C relocation-model=static",
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
