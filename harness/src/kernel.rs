//! Kernel build (placeholder; being written).
use std::path::PathBuf;

/// A built kernel.
#[derive(Debug, Clone)]
pub struct KernelBuild {
    /// The bzImage in the cache.
    pub bzimage: PathBuf,
    /// The Debian linux-source package version it was built from.
    pub version: String,
    /// The cache key (version + fragment hash).
    pub key: String,
    /// True when it came from the cache.
    pub from_cache: bool,
}

/// Build the kernel, or return the cached build.
pub fn ensure_kernel() -> anyhow::Result<KernelBuild> {
    anyhow::bail!("not written yet")
}
