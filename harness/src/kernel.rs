//! The kernel: a small Linux built from Debian's `linux-source-6.1` package, cached outside the
//! checkout.
//!
//! Why build at all rather than boot Debian's `linux-image`: Debian's kernel is several times
//! larger and keeps virtio, overlayfs, netfilter, bridge etc. in modules that the initrd would
//! have to carry and PID 1 would have to load; `make tinyconfig` plus `kernel/config.fragment`
//! gives a ~2.5 MB bzImage with everything built in and no module loading at all. Why Debian's source package rather than
//! kernel.org: it is pinned by apt (`kernel/PIN`), carries Debian's security fixes, and needs no
//! network access at build time.
//!
//! A cold build takes ~6 minutes on 2 cores, so it is cached by a key covering everything that
//! changes the result: the pinned package version, the fragment, the PIN file, the compiler
//! (`gcc --version`) and [`RECIPE`] (this file's build steps). Layout under
//! `cache_dir()/kernel/`:
//!
//! - `<version>-<hash>/` — a finished build: `bzImage`, `.config`, `build.json`, `build.log`.
//!   It appears by a directory rename, so it is either complete or absent.
//! - `<version>-<hash>.lock` — held while building, so parallel test processes build once.
//! - `src-<version>/` — the extracted tarball, shared by all builds of that version (read-only:
//!   builds are out of tree); `.rancheros-extracted` marks it complete.
//! - `build-<version>-<hash>/` — the `make O=` directory of a build in progress (removed after
//!   success, kept with `make.log` after a failure).
//!
//! After `make olddefconfig`, every line of the fragment (`CONFIG_X=...` and
//! `# CONFIG_X is not set`) is checked against the final `.config`: Kconfig silently drops an
//! option whose dependencies are unmet, and a kernel missing, say, `CONFIG_OVERLAY_FS` would
//! otherwise only show up as a confusing failure much later inside a VM.

use anyhow::Context;
use fs2::FileExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Part of the cache key: bump when the build steps below change in a way that changes the
/// resulting kernel (make variables, config procedure), so old cache entries are not reused.
pub const RECIPE: &str = "tinyconfig+merge_config-m+olddefconfig/ARCH=x86_64/v2";

/// Objects built with `-O2` although the kernel as a whole is built for size (tinyconfig's
/// `CONFIG_CC_OPTIMIZE_FOR_SIZE`, `-Os`): zstd's decompressor and the XXH64 that checks its
/// frames. Every boot runs it over the initramfs (~17.8 MB out, 12.4 MB of it the `ros`
/// binary) before `/init` can start, and over the system layers' squashfs after. lib/lz4 is
/// built `-O3` by its own Makefile; lib/zstd is not, and at `-Os` (its helpers become calls
/// instead of inlined copies) the synchronous unpack of our initramfs took ~500 ms under TCG
/// against ~300 ms with these at `-O2`, for 12 KB of bzImage (`initramfs_async=0
/// initcall_debug`, populate_rootfs's time, four alternated boots each). Passed as
/// `CFLAGS_<stem>.o=-O2` on make's command line, which Kbuild adds after the global flags;
/// [`check_speed_flags`] proves after the build that each one reached its object.
///
/// Each is the object's path relative to the directory of the Makefile that lists it, as Kbuild
/// names the variable (`lib/zstd/Makefile` lists `decompress/zstd_decompress_block.o`, so
/// `CFLAGS_zstd_decompress_block.o` would reach nothing). Adding `init/initramfs.c` (the cpio
/// parser), `lib/iov_iter.c`, `mm/shmem.c` and `mm/filemap.c` moved the unpack within noise;
/// the whole kernel at `-O2` (`CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE`) unpacks in ~200 ms but is
/// 520 KB larger.
pub const OPTIMIZE_FOR_SPEED: &[&str] = &[
    "decompress/zstd_decompress",
    "decompress/zstd_decompress_block",
    "decompress/huf_decompress",
    "common/fse_decompress",
    "common/entropy_common",
    "common/zstd_common",
    "xxhash",
];

/// The make arguments that build [`OPTIMIZE_FOR_SPEED`] with `-O2`.
pub fn speed_flags() -> Vec<String> {
    OPTIMIZE_FOR_SPEED
        .iter()
        .map(|stem| format!("CFLAGS_{stem}.o=-O2"))
        .collect()
}

/// The architecture passed to every `make` (`make tinyconfig` without it would pick a 32-bit
/// kernel: `ARCH=x86` leaves `CONFIG_64BIT` to the prompt, which tinyconfig answers "no").
const ARCH: &str = "x86_64";

/// Marker written into the extracted source tree once extraction is complete.
const SRC_MARKER: &str = ".rancheros-extracted";

/// How often progress is printed during `make bzImage`.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Build-host tools: (program looked up on `PATH`, Debian package providing it).
const TOOLS: &[(&str, &str)] = &[
    ("make", "make"),
    ("gcc", "gcc"),
    ("bc", "bc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("xz", "xz-utils"),
    ("cpio", "cpio"),
    ("tar", "tar"),
    ("perl", "perl"),
    ("dpkg-query", "dpkg"),
];

/// Build-host headers: (header file, Debian package providing it).
const HEADERS: &[(&str, &str)] = &[
    ("/usr/include/libelf.h", "libelf-dev"),
    ("/usr/include/openssl/ssl.h", "libssl-dev"),
];

/// A built kernel.
#[derive(Debug, Clone)]
pub struct KernelBuild {
    /// The bzImage in the cache.
    pub bzimage: PathBuf,
    /// The Debian linux-source package version it was built from.
    pub version: String,
    /// The cache key (`<version>-<short hash>`).
    pub key: String,
    /// True when it came from the cache.
    pub from_cache: bool,
    /// The final kernel `.config` next to the bzImage.
    pub config: PathBuf,
    /// The cache directory of this build (`cache_dir()/kernel/<key>/`).
    pub dir: PathBuf,
}

/// What can go wrong, beyond plain I/O (which carries `anyhow` context naming the file).
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{path}: no `{field}=` line (expected `package=...` and `version=...`)")]
    PinField { path: PathBuf, field: &'static str },
    #[error(
        "kernel source package {package} is not installed (kernel/PIN pins {expected}); \
         install it with:\n    apt-get install {package}={expected}"
    )]
    SourceNotInstalled { package: String, expected: String },
    #[error(
        "kernel source package {package} is {installed}, but kernel/PIN pins {expected}; \
         install the pinned version with:\n    apt-get install {package}={expected}\n\
         (or move the pin to {installed}: see kernel/README.md)"
    )]
    SourceVersionMismatch {
        package: String,
        expected: String,
        installed: String,
    },
    #[error("{tarball} not found although {package} is installed; reinstall it with:\n    apt-get install --reinstall {package}={version}")]
    TarballMissing {
        tarball: PathBuf,
        package: String,
        version: String,
    },
    #[error(
        "`{tool}` is needed to build the kernel; install it with:\n    apt-get install {package}"
    )]
    MissingTool { tool: String, package: String },
    #[error(
        "{header} is needed to build the kernel; install it with:\n    apt-get install {package}"
    )]
    MissingHeader { header: PathBuf, package: String },
    #[error("{path}:{line}: not a kernel option line: `{text}` (expected `CONFIG_X=value`, `# CONFIG_X is not set`, or a comment)")]
    FragmentSyntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{path}:{line}: {name} is set twice")]
    FragmentDuplicate {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error(
        "the kernel .config ({config}) does not hold these lines of {fragment}:\n{}\n\
         Kconfig drops an option whose `depends on` is unmet (add the dependency to the \
         fragment) and keeps an option that another one `select`s (drop that one, or the \
         `is not set` line); look the option up with \
         `grep -rn '^config NAME$' --include='Kconfig*' {src}`.",
        .missing.iter().map(|m| format!("    {m}")).collect::<Vec<_>>().join("\n")
    )]
    ConfigMismatch {
        fragment: PathBuf,
        config: PathBuf,
        src: PathBuf,
        missing: Vec<String>,
    },
    #[error(
        "the kernel built in {out} did not build these objects as harness/src/kernel.rs's \
         OPTIMIZE_FOR_SPEED asks:\n{}\nIf the kernel moved or renamed a file, update that list.",
        .problems.iter().map(|m| format!("    {m}")).collect::<Vec<_>>().join("\n")
    )]
    SpeedFlags { out: PathBuf, problems: Vec<String> },
    #[error("`{command}` failed ({status}); full log: {log}\n--- last 30 lines ---\n{tail}")]
    MakeFailed {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
}

/// `kernel/PIN`: the Debian package the kernel source comes from, and its exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub package: String,
    pub version: String,
}

impl Pin {
    /// Parse `key=value` lines (`#` comments and blank lines ignored).
    pub fn parse(text: &str, path: &Path) -> Result<Pin, KernelError> {
        let get = |field: &'static str| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == field)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| KernelError::PinField {
                    path: path.to_path_buf(),
                    field,
                })
        };
        Ok(Pin {
            package: get("package")?,
            version: get("version")?,
        })
    }

    /// The tarball the package installs.
    pub fn tarball(&self) -> PathBuf {
        PathBuf::from(format!("/usr/src/{}.tar.xz", self.package))
    }
}

/// `kernel/` in the checkout.
pub fn kernel_dir() -> PathBuf {
    crate::paths::repo_root().join("kernel")
}

/// `cache_dir()/kernel/`.
pub fn kernel_cache_dir() -> PathBuf {
    crate::paths::cache_dir().join("kernel")
}

/// Read and parse `kernel/PIN`.
pub fn read_pin() -> anyhow::Result<Pin> {
    let path = kernel_dir().join("PIN");
    let text = read_text(&path)?;
    Ok(Pin::parse(&text, &path)?)
}

/// One constraint from the fragment: `CONFIG_X` must be `Some(value)`, or unset for `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub name: String,
    pub value: Option<String>,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.name),
            None => write!(f, "# {} is not set", self.name),
        }
    }
}

/// The constraints of a config fragment. Other comments and blank lines are skipped; anything
/// else is an error (a typo must not be silently ignored).
pub fn parse_fragment(text: &str, path: &Path) -> Result<Vec<Requirement>, KernelError> {
    let mut reqs: Vec<Requirement> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = unset_option(line) {
            reqs.push(Requirement {
                name: name.to_string(),
                value: None,
            });
        } else if line.starts_with('#') {
            continue;
        } else if let Some((name, value)) = set_option(line) {
            reqs.push(Requirement {
                name: name.to_string(),
                value: Some(value.to_string()),
            });
        } else {
            return Err(KernelError::FragmentSyntax {
                path: path.to_path_buf(),
                line: i + 1,
                text: raw.to_string(),
            });
        }
        let new = reqs.last().expect("just pushed");
        if reqs[..reqs.len() - 1].iter().any(|r| r.name == new.name) {
            return Err(KernelError::FragmentDuplicate {
                path: path.to_path_buf(),
                line: i + 1,
                name: new.name.clone(),
            });
        }
    }
    Ok(reqs)
}

/// `CONFIG_X=value` → (`CONFIG_X`, `value`).
fn set_option(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    (is_option_name(name) && !value.is_empty()).then_some((name, value))
}

/// `# CONFIG_X is not set` → `CONFIG_X`.
fn unset_option(line: &str) -> Option<&str> {
    let name = line.strip_prefix("# ")?.strip_suffix(" is not set")?;
    is_option_name(name).then_some(name)
}

fn is_option_name(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The fragment lines a final `.config` does not hold, each with what the `.config` has.
pub fn unmet_requirements(reqs: &[Requirement], config: &str) -> Vec<String> {
    let mut set: BTreeMap<&str, &str> = BTreeMap::new();
    for line in config.lines() {
        if let Some((name, value)) = set_option(line.trim()) {
            set.insert(name, value);
        }
    }
    reqs.iter()
        .filter_map(|r| {
            let have = set.get(r.name.as_str()).copied();
            let ok = match (&r.value, have) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, have) => have.is_none(),
            };
            let now = match have {
                Some(v) => format!("{}={v}", r.name),
                None => "not set".to_string(),
            };
            (!ok).then(|| format!("{r}  (final .config: {now})"))
        })
        .collect()
}

/// The cache key: `<version>-<first 12 hex digits of sha256(fragment, PIN, gcc, recipe)>`.
pub fn cache_key(version: &str, fragment: &[u8], pin: &[u8], gcc_version: &str) -> String {
    let mut h = Sha256::new();
    for part in [fragment, pin, gcc_version.as_bytes(), RECIPE.as_bytes()] {
        // Length-prefixed, so moving bytes between parts changes the hash.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let hex = hex::encode(h.finalize());
    format!("{version}-{}", &hex[..12])
}

/// `build.json` in a cache entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildInfo {
    pub package: String,
    pub version: String,
    pub key: String,
    pub gcc: String,
    pub build_seconds: f64,
    pub bzimage_size: u64,
}

/// Build the kernel, or return the cached build.
pub fn ensure_kernel() -> anyhow::Result<KernelBuild> {
    ensure_kernel_from(&kernel_dir(), &kernel_cache_dir())
}

/// [`ensure_kernel`] with `PIN` and `config.fragment` read from `dir` and the cache in `root`
/// (for tests and experiments on a copy of `kernel/`).
pub fn ensure_kernel_from(dir: &Path, root: &Path) -> anyhow::Result<KernelBuild> {
    let pin_path = dir.join("PIN");
    let frag_path = dir.join("config.fragment");
    let pin_text = read_text(&pin_path)?;
    let pin = Pin::parse(&pin_text, &pin_path)?;
    let fragment = read_text(&frag_path)?;
    let reqs = parse_fragment(&fragment, &frag_path)?;
    check_source_installed(&pin)?;
    let gcc = gcc_version()?;
    let key = cache_key(&pin.version, fragment.as_bytes(), pin_text.as_bytes(), &gcc);

    let entry = root.join(&key);
    let build = |from_cache| KernelBuild {
        bzimage: entry.join("bzImage"),
        version: pin.version.clone(),
        key: key.clone(),
        from_cache,
        config: entry.join(".config"),
        dir: entry.clone(),
    };
    if is_complete(&entry) {
        return Ok(build(true));
    }

    std::fs::create_dir_all(root).with_context(|| format!("mkdir {}", root.display()))?;
    let lock_path = root.join(format!("{key}.lock"));
    let _lock = lock(&lock_path, "kernel build")?;
    // Another process may have finished the same build while we waited for the lock.
    if is_complete(&entry) {
        return Ok(build(true));
    }
    check_host_tools()?;
    let src = ensure_source(&pin, root)?;
    build_kernel(&pin, &key, &gcc, &src, &frag_path, &reqs, root, &entry)?;
    Ok(build(false))
}

fn is_complete(entry: &Path) -> bool {
    ["bzImage", ".config", "build.json"]
        .iter()
        .all(|f| entry.join(f).is_file())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Take an exclusive lock on `path` (created if needed), saying so when it has to wait.
fn lock(path: &Path, what: &str) -> anyhow::Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    if file.try_lock_exclusive().is_err() {
        eprintln!(
            "[kernel] waiting for another {what} (lock {})",
            path.display()
        );
        file.lock_exclusive()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}

/// The installed version of the pinned package must be the pinned one.
fn check_source_installed(pin: &Pin) -> anyhow::Result<()> {
    let installed = match crate::debs::installed_version(&pin.package) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KernelError::MissingTool {
                tool: "dpkg-query".into(),
                package: "dpkg".into(),
            }
            .into())
        }
        Err(e) => return Err(e).context("running dpkg-query"),
    };
    match installed {
        None => Err(KernelError::SourceNotInstalled {
            package: pin.package.clone(),
            expected: pin.version.clone(),
        }
        .into()),
        Some(v) if v != pin.version => Err(KernelError::SourceVersionMismatch {
            package: pin.package.clone(),
            expected: pin.version.clone(),
            installed: v,
        }
        .into()),
        Some(_) => {
            let tarball = pin.tarball();
            if tarball.is_file() {
                Ok(())
            } else {
                Err(KernelError::TarballMissing {
                    tarball,
                    package: pin.package.clone(),
                    version: pin.version.clone(),
                }
                .into())
            }
        }
    }
}

/// First line of `gcc --version` (part of the cache key: another compiler, another kernel).
fn gcc_version() -> anyhow::Result<String> {
    let out = match Command::new("gcc").arg("--version").output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KernelError::MissingTool {
                tool: "gcc".into(),
                package: "gcc".into(),
            }
            .into())
        }
        Err(e) => return Err(e).context("running gcc --version"),
    };
    anyhow::ensure!(
        out.status.success(),
        "gcc --version failed ({})",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn check_host_tools() -> Result<(), KernelError> {
    for (tool, package) in TOOLS {
        if !on_path(tool) {
            return Err(KernelError::MissingTool {
                tool: tool.to_string(),
                package: package.to_string(),
            });
        }
    }
    for (header, package) in HEADERS {
        if !Path::new(header).is_file() {
            return Err(KernelError::MissingHeader {
                header: PathBuf::from(header),
                package: package.to_string(),
            });
        }
    }
    Ok(())
}

/// Extract the source tarball once into `root/src-<version>/` (under its own lock, as builds
/// with different keys share it). A tree without the marker is a torn extraction: redone.
fn ensure_source(pin: &Pin, root: &Path) -> anyhow::Result<PathBuf> {
    let src = root.join(format!("src-{}", pin.version));
    if src.join(SRC_MARKER).is_file() {
        return Ok(src);
    }
    let _lock = lock(
        &root.join(format!("src-{}.lock", pin.version)),
        "source extraction",
    )?;
    if src.join(SRC_MARKER).is_file() {
        return Ok(src);
    }
    if src.exists() {
        std::fs::remove_dir_all(&src)
            .with_context(|| format!("removing incomplete {}", src.display()))?;
    }
    let tarball = pin.tarball();
    eprintln!(
        "[kernel] extracting {} into {}",
        tarball.display(),
        src.display()
    );
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("src-{}.tmp", pin.version))
        .tempdir_in(root)
        .with_context(|| format!("temp dir in {}", root.display()))?;
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .stdin(Stdio::null())
        .status()
        .context("running tar")?;
    anyhow::ensure!(
        status.success(),
        "tar -xJf {} failed ({status})",
        tarball.display()
    );
    // The tarball holds one top-level directory (`linux-source-6.1/`).
    let entries: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .with_context(|| format!("listing {}", tmp.path().display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", tmp.path().display()))?;
    let top = match entries.as_slice() {
        [one] if one.join("Makefile").is_file() => one.clone(),
        _ => anyhow::bail!(
            "{}: expected a single top-level kernel source directory, found {entries:?}",
            tarball.display()
        ),
    };
    let marker = top.join(SRC_MARKER);
    std::fs::write(&marker, format!("{} {}\n", pin.package, pin.version))
        .with_context(|| format!("writing {}", marker.display()))?;
    std::fs::rename(&top, &src)
        .with_context(|| format!("renaming {} to {}", top.display(), src.display()))?;
    eprintln!(
        "[kernel] extracted in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(src)
}

#[allow(clippy::too_many_arguments)]
fn build_kernel(
    pin: &Pin,
    key: &str,
    gcc: &str,
    src: &Path,
    frag_path: &Path,
    reqs: &[Requirement],
    root: &Path,
    entry: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = root.join(format!("build-{key}"));
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("removing stale build dir {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let log_path = out.join("make.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let log = Arc::new(Mutex::new(log));
    eprintln!(
        "[kernel] building {} {} (key {key}) in {}; log: {}",
        pin.package,
        pin.version,
        out.display(),
        log_path.display()
    );

    let make = |args: &[&str]| {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(src)
            .arg(format!("O={}", out.display()))
            .arg(format!("ARCH={ARCH}"));
        cmd.args(args);
        cmd
    };
    run_logged(
        make(&["tinyconfig"]),
        "make tinyconfig",
        &log,
        &log_path,
        false,
    )?;
    let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
    // merge_config.sh writes its temp files into the working directory: the build dir.
    merge
        .current_dir(&out)
        .arg("-m")
        .arg("-O")
        .arg(&out)
        .arg(out.join(".config"))
        .arg(frag_path);
    run_logged(merge, "merge_config.sh -m", &log, &log_path, false)?;
    run_logged(
        make(&["olddefconfig"]),
        "make olddefconfig",
        &log,
        &log_path,
        false,
    )?;

    let config_path = out.join(".config");
    let config = read_text(&config_path)?;
    let missing = unmet_requirements(reqs, &config);
    if !missing.is_empty() {
        return Err(KernelError::ConfigMismatch {
            fragment: frag_path.to_path_buf(),
            config: config_path,
            src: src.to_path_buf(),
            missing,
        }
        .into());
    }

    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs_arg = format!("-j{jobs}");
    let mut args = vec![jobs_arg.as_str()];
    let flags = speed_flags();
    args.extend(flags.iter().map(String::as_str));
    args.push("bzImage");
    run_logged(make(&args), "make bzImage", &log, &log_path, true)?;
    check_speed_flags(&out)?;
    let seconds = started.elapsed().as_secs_f64();

    // Stage the cache entry next to it, then rename it into place: complete or absent.
    let bzimage_built = out.join("arch/x86/boot/bzImage");
    let stage = tempfile::Builder::new()
        .prefix(&format!("{key}.tmp"))
        .tempdir_in(root)
        .with_context(|| format!("temp dir in {}", root.display()))?;
    let bzimage = std::fs::read(&bzimage_built)
        .with_context(|| format!("reading {}", bzimage_built.display()))?;
    let info = BuildInfo {
        package: pin.package.clone(),
        version: pin.version.clone(),
        key: key.to_string(),
        gcc: gcc.to_string(),
        build_seconds: (seconds * 10.0).round() / 10.0,
        bzimage_size: bzimage.len() as u64,
    };
    let json = serde_json::to_string_pretty(&info).context("serializing build.json")?;
    let log_text =
        std::fs::read(&log_path).with_context(|| format!("reading {}", log_path.display()))?;
    for (name, data) in [
        ("bzImage", bzimage.as_slice()),
        (".config", config.as_bytes()),
        ("build.log", log_text.as_slice()),
        ("build.json", json.as_bytes()),
    ] {
        let path = stage.path().join(name);
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        f.write_all(data)
            .with_context(|| format!("writing {}", path.display()))?;
        f.sync_all()
            .with_context(|| format!("fsync {}", path.display()))?;
    }
    if entry.exists() {
        // Incomplete leftover (no process holding the lock can have produced it).
        std::fs::remove_dir_all(entry)
            .with_context(|| format!("removing incomplete {}", entry.display()))?;
    }
    let stage = stage.keep();
    std::fs::rename(&stage, entry)
        .with_context(|| format!("renaming {} to {}", stage.display(), entry.display()))?;
    if let Ok(d) = File::open(root) {
        d.sync_all().ok();
    }
    std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    eprintln!(
        "[kernel] built {} ({} bytes) in {:.0} s",
        entry.join("bzImage").display(),
        info.bzimage_size,
        seconds
    );
    Ok(())
}

/// Each of [`OPTIMIZE_FOR_SPEED`] was compiled exactly once, and with `-O2` last: its `.cmd`
/// file ([`cmd_file_of`]) in the build directory `out` says so. A kernel that renamed or moved
/// one of those files would otherwise quietly build it `-Os` again.
pub fn check_speed_flags(out: &Path) -> Result<(), KernelError> {
    let mut found: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
                continue;
            }
            for stem in OPTIMIZE_FOR_SPEED {
                if path.ends_with(cmd_file_of(stem)) {
                    found.entry(stem).or_default().push(path.clone());
                }
            }
        }
    }
    let mut problems = Vec::new();
    for stem in OPTIMIZE_FOR_SPEED {
        match found.get(stem).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("{stem}.o: not built")),
            Some([cmd]) => {
                let text = std::fs::read_to_string(cmd).unwrap_or_default();
                if !last_optimization_is(&text, "-O2") {
                    problems.push(format!("{}: not compiled with -O2 last", cmd.display()));
                }
            }
            Some(many) => problems.push(format!(
                "{stem}.o: {} objects of that name ({}), the flag would reach them all",
                many.len(),
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(KernelError::SpeedFlags {
            out: out.to_path_buf(),
            problems,
        })
    }
}

/// Where Kbuild records how `stem` (`dir/name`, or `name`) was compiled, relative to the
/// directory of its Makefile: `dir/.name.o.cmd`.
fn cmd_file_of(stem: &str) -> PathBuf {
    let stem = Path::new(stem);
    let name = stem.file_name().unwrap_or_default().to_string_lossy();
    let file = format!(".{name}.o.cmd");
    match stem.parent() {
        Some(dir) => dir.join(file),
        None => PathBuf::from(file),
    }
}

/// The compile command in a Kbuild `.cmd` file (its first line) ends its `-O` options with
/// `want`.
fn last_optimization_is(cmd_file: &str, want: &str) -> bool {
    let first = cmd_file.lines().next().unwrap_or("");
    first
        .split_whitespace()
        .rfind(|w| w.starts_with("-O") && w.len() <= 3)
        == Some(want)
}

/// Run `cmd` with its output appended to the log. With `progress`, count the objects kbuild
/// reports (`  CC      kernel/fork.o`) and print a line every [`PROGRESS_EVERY`].
fn run_logged(
    mut cmd: Command,
    what: &str,
    log: &Arc<Mutex<File>>,
    log_path: &Path,
    progress: bool,
) -> anyhow::Result<()> {
    {
        let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(f, "### {what}: {cmd:?}")
            .with_context(|| format!("writing {}", log_path.display()))?;
    }
    // A surrounding make's jobserver must not leak in; a fixed locale keeps the log stable;
    // fixed user/host keep the build machine's names out of `uname -v`.
    cmd.env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env("LC_ALL", "C")
        .env("KBUILD_BUILD_USER", "rancheros")
        .env("KBUILD_BUILD_HOST", "rancheros")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let objects = Arc::new(AtomicUsize::new(0));
    let pump = |stream: Box<dyn Read + Send>| {
        let log = Arc::clone(log);
        let objects = Arc::clone(&objects);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                let text = String::from_utf8_lossy(&line);
                let t = text.trim_start();
                if t.starts_with("CC ") || t.starts_with("AS ") {
                    objects.fetch_add(1, Ordering::Relaxed);
                }
                let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
                // A full disk shows up as a truncated log, not as a hung build.
                let _ = f.write_all(&line).and_then(|_| f.write_all(b"\n"));
            }
        })
    };
    let pumps = [
        pump(Box::new(child.stdout.take().expect("piped stdout"))),
        pump(Box::new(child.stderr.take().expect("piped stderr"))),
    ];
    let mut next_report = started + PROGRESS_EVERY;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            break status;
        }
        if progress && Instant::now() >= next_report {
            eprintln!(
                "[kernel] {} objects compiled, {:.0} s",
                objects.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
            next_report += PROGRESS_EVERY;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for p in pumps {
        let _ = p.join();
    }
    if progress {
        eprintln!(
            "[kernel] {} objects compiled, {:.0} s ({what} done)",
            objects.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        );
    }
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    Err(KernelError::MakeFailed {
        command: what.to_string(),
        status: status.to_string(),
        log: log_path.to_path_buf(),
        tail,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build directory holding one `.cmd` file per object in `objects` (path, command line).
    fn build_dir(objects: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, cmd) in objects {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{cmd}\n\nsource_x := y\n")).unwrap();
        }
        dir
    }

    fn all_speed_objects(flags: &str) -> Vec<(String, String)> {
        OPTIMIZE_FOR_SPEED
            .iter()
            .map(|stem| {
                (
                    format!("lib/zstd/{}", cmd_file_of(stem).display()),
                    format!("cmd_lib/zstd/{stem}.o := gcc -Wall {flags} -c -o {stem}.o {stem}.c"),
                )
            })
            .collect()
    }

    #[test]
    fn speed_flags_are_make_variables_for_each_object() {
        let flags = speed_flags();
        assert_eq!(flags.len(), OPTIMIZE_FOR_SPEED.len());
        assert!(flags.contains(&"CFLAGS_decompress/zstd_decompress_block.o=-O2".to_string()));
        assert!(flags.contains(&"CFLAGS_xxhash.o=-O2".to_string()));
    }

    #[test]
    fn speed_flags_are_checked_in_the_built_objects() {
        let good = all_speed_objects("-Os -fno-x -O2");
        let good: Vec<(&str, &str)> = good.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        check_speed_flags(build_dir(&good).path()).unwrap();

        // Built for size only: named, with the file that shows it.
        let small = all_speed_objects("-Os");
        let small: Vec<(&str, &str)> = small
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let e = check_speed_flags(build_dir(&small).path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(".zstd_decompress_block.o.cmd: not compiled with -O2 last"),
            "{e}"
        );

        // -O2 overridden by a later -Os.
        let late = all_speed_objects("-O2 -Os");
        let late: Vec<(&str, &str)> = late.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(check_speed_flags(build_dir(&late).path()).is_err());

        // One missing, one built twice under the same name.
        let mut odd: Vec<(&str, &str)> = good
            .iter()
            .filter(|(p, _)| !p.contains(".huf_decompress."))
            .copied()
            .collect();
        odd.push(("fs/other/.xxhash.o.cmd", "cmd_x := gcc -O2 -c"));
        // Same file name in another directory than the one asked for: not the one.
        odd.push((
            "lib/zstd/other/.huf_decompress.o.cmd",
            "cmd_x := gcc -O2 -c",
        ));
        let e = check_speed_flags(build_dir(&odd).path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("huf_decompress.o: not built"), "{e}");
        assert!(e.contains("xxhash.o: 2 objects of that name"), "{e}");
    }

    #[test]
    fn pin_parses() {
        let p = Pin::parse(
            "# c\npackage=linux-source-6.1\nversion = 6.1.1-1\n",
            Path::new("PIN"),
        )
        .unwrap();
        assert_eq!(p.package, "linux-source-6.1");
        assert_eq!(p.version, "6.1.1-1");
        assert!(Pin::parse("package=x\n", Path::new("PIN")).is_err());
    }

    #[test]
    fn fragment_parses_and_rejects_typos() {
        let reqs = parse_fragment(
            "# hi\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n",
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(
            reqs[1],
            Requirement {
                name: "CONFIG_B".into(),
                value: None
            }
        );
        assert_eq!(reqs[2].value.as_deref(), Some("\"x y\""));
        assert!(parse_fragment("CONFIG_A y\n", Path::new("f")).is_err());
        assert!(parse_fragment("CONFIG_=y\n", Path::new("f")).is_err());
        assert!(parse_fragment("CONFIG_A=y\n# CONFIG_A is not set\n", Path::new("f")).is_err());
    }

    #[test]
    fn unmet_requirements_listed() {
        let reqs = parse_fragment(
            "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n# CONFIG_D is not set\nCONFIG_E=64\n",
            Path::new("f"),
        )
        .unwrap();
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_E=64\n";
        let missing = unmet_requirements(&reqs, config);
        assert_eq!(
            missing,
            vec![
                "CONFIG_B=y  (final .config: not set)",
                "# CONFIG_C is not set  (final .config: CONFIG_C=y)"
            ]
        );
    }

    #[test]
    fn cache_key_changes_with_every_input() {
        let k = cache_key("1", b"f", b"p", "gcc");
        assert!(k.starts_with("1-") && k.len() == 2 + 12);
        assert_ne!(k, cache_key("1", b"f2", b"p", "gcc"));
        assert_ne!(k, cache_key("1", b"f", b"p2", "gcc"));
        assert_ne!(k, cache_key("1", b"f", b"p", "gcc2"));
        assert_ne!(
            cache_key("1", b"ab", b"c", "g"),
            cache_key("1", b"a", b"bc", "g")
        );
    }

    #[test]
    fn repository_fragment_is_well_formed() {
        let path = kernel_dir().join("config.fragment");
        let reqs = parse_fragment(&read_text(&path).unwrap(), &path).unwrap();
        assert!(reqs.iter().any(|r| r.name == "CONFIG_OVERLAY_FS"));
        read_pin().unwrap();
    }

    /// A PIN the host does not have installed fails before touching the cache, naming the
    /// `apt-get install` line.
    #[test]
    fn unpinned_source_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("PIN"),
            "package=linux-source-6.1\nversion=0.0-bogus\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("config.fragment"), "CONFIG_64BIT=y\n").unwrap();
        let cache = dir.path().join("cache");
        let err = ensure_kernel_from(dir.path(), &cache).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("apt-get install linux-source-6.1=0.0-bogus"),
            "{msg}"
        );
        assert!(!cache.exists());
    }

    /// A failing command reports the log path and its tail.
    #[test]
    fn failed_command_shows_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("make.log");
        let log = Arc::new(Mutex::new(File::create(&log_path).unwrap()));
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            // stdout and stderr are pumped by two threads: give the first a head start so the
            // order in the log (and so the tail) is the order written.
            "for i in $(seq 1 40); do echo line$i; done; sleep 0.5; echo oops >&2; exit 3",
        ]);
        let err = run_logged(cmd, "make bzImage", &log, &log_path, true).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&log_path.display().to_string()), "{msg}");
        assert!(
            msg.contains("line40") && msg.contains("oops") && !msg.contains("line5\n"),
            "{msg}"
        );
    }
}
