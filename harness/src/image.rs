//! The boot image: `dist/vmlinuz` + `dist/initrd.img`, and its size report against the budget in
//! `initrd/budget.yml`. Building is incremental: the kernel comes from the cache, the os binary
//! from cargo's own incremental build, and the initrd is reassembled (and compressed again only
//! when its archive changed). Every test process would do that once (tens of seconds in a debug
//! harness), so `cargo harness test`, which has just built the image, records it in
//! `target/harness-image.json` and names that file in [`PREBUILT_ENV`] for its test processes.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `initrd/budget.yml`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Budget {
    pub hard_gate_total: u64,
    pub target_total: u64,
}

impl Budget {
    pub fn load() -> anyhow::Result<Budget> {
        let path = crate::paths::repo_root().join("initrd/budget.yml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}: invalid", path.display()))
    }
}

/// Sizes of a built image.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SizeReport {
    pub kernel: u64,
    pub initrd: u64,
    pub budget: Budget,
}

impl SizeReport {
    pub fn total(&self) -> u64 {
        self.kernel + self.initrd
    }

    /// Error when the hard gate is exceeded.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.total() > self.budget.hard_gate_total {
            bail!(
                "image is {} bytes, over the hard gate of {} bytes (initrd/budget.yml)",
                self.total(),
                self.budget.hard_gate_total
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for SizeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        writeln!(f, "image size")?;
        writeln!(
            f,
            "  kernel  {:>10} bytes  {:6.2} MB",
            self.kernel,
            mb(self.kernel)
        )?;
        writeln!(
            f,
            "  initrd  {:>10} bytes  {:6.2} MB",
            self.initrd,
            mb(self.initrd)
        )?;
        writeln!(
            f,
            "  total   {:>10} bytes  {:6.2} MB",
            self.total(),
            mb(self.total())
        )?;
        let t = self.budget.target_total;
        let g = self.budget.hard_gate_total;
        let verdict = if self.total() > g {
            "OVER THE HARD GATE"
        } else if self.total() > t {
            "over target, under the gate"
        } else {
            "within target"
        };
        write!(
            f,
            "  budget  target {:.1} MB, hard gate {:.1} MB: {verdict}",
            mb(t),
            mb(g)
        )
    }
}

/// A built image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub sizes: SizeReport,
    pub kernel_version: String,
    pub packages: Vec<String>,
}

/// Build the image into `dist/`.
pub fn build() -> anyhow::Result<Image> {
    let dist = crate::paths::dist_dir();
    let kernel = crate::kernel::ensure_kernel().context("kernel")?;
    let os_bin = crate::osbin::build().context("os binary")?;
    let recipe_path = crate::paths::repo_root().join("initrd/initrd.yml");
    let recipe = crate::initrd::Recipe::load(&recipe_path)?;
    let initrd = dist.join("initrd.img");
    let built = crate::initrd::build(&recipe, &os_bin, &initrd).context("initrd")?;
    with_kernel(kernel, initrd, built.packages)
}

/// Put the kernel beside `initrd` in `dist/` and measure both.
fn with_kernel(
    kernel: crate::kernel::KernelBuild,
    initrd: PathBuf,
    packages: Vec<String>,
) -> anyhow::Result<Image> {
    let vmlinuz = crate::paths::dist_dir().join("vmlinuz");
    let data = std::fs::read(&kernel.bzimage)
        .with_context(|| format!("reading {}", kernel.bzimage.display()))?;
    crate::fsutil::write_atomic(&vmlinuz, &data)?;
    let sizes = SizeReport {
        kernel: file_size(&vmlinuz)?,
        initrd: file_size(&initrd)?,
        budget: Budget::load()?,
    };
    Ok(Image {
        kernel: vmlinuz,
        initrd,
        sizes,
        kernel_version: kernel.version,
        packages,
    })
}

/// Names the record of an image built by the process that started this one (see the module docs).
pub const PREBUILT_ENV: &str = "HARNESS_IMAGE";

/// Write `img`'s record for test processes; its path, for [`PREBUILT_ENV`].
pub fn record(img: &Image) -> anyhow::Result<PathBuf> {
    let path = crate::paths::repo_root()
        .join("target")
        .join("harness-image.json");
    crate::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(img)?)?;
    Ok(path)
}

/// The image a record names, if its files are still the size it says.
fn recorded(path: &Path) -> anyhow::Result<Image> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let img: Image = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not an image record", path.display()))?;
    for (file, size) in [
        (&img.kernel, img.sizes.kernel),
        (&img.initrd, img.sizes.initrd),
    ] {
        anyhow::ensure!(
            file_size(file)? == size,
            "{} changed since {} was written",
            file.display(),
            path.display()
        );
    }
    Ok(img)
}

/// The image a benchmark boots: the one [`PREBUILT_ENV`] names when it is set (an image kept
/// from another commit, so two can be run alternately, A B A B, and the machine's drift falls
/// on both), else this checkout's, built. Says which.
pub fn for_bench() -> anyhow::Result<Image> {
    match std::env::var_os(PREBUILT_ENV) {
        Some(path) => {
            let img = recorded(Path::new(&path))?;
            println!(
                "[bench] image: {} + {} ({PREBUILT_ENV}={})",
                img.kernel.display(),
                img.initrd.display(),
                Path::new(&path).display()
            );
            Ok(img)
        }
        None => build(),
    }
}

/// Build once per process (tests share it), holding a lock across processes while building;
/// or take the image [`PREBUILT_ENV`] names.
pub fn ensure_built() -> anyhow::Result<&'static Image> {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    if let Some(img) = IMAGE.get() {
        return Ok(img);
    }
    if let Some(path) = std::env::var_os(PREBUILT_ENV) {
        let img = recorded(Path::new(&path))?;
        let _ = IMAGE.set(img);
        return Ok(IMAGE.get().expect("just set"));
    }
    let lock_path = crate::paths::repo_root()
        .join("target")
        .join("harness-build.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap())?;
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    fs2::FileExt::lock_exclusive(&lock).context("locking the image build")?;
    if let Some(img) = IMAGE.get() {
        return Ok(img); // another thread of this process built it while we waited
    }
    let img = build()?;
    let _ = IMAGE.set(img);
    Ok(IMAGE.get().expect("just set"))
}

fn file_size(p: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("{}", p.display()))?
        .len())
}

/// What the floor image's `/init` prints before it powers off.
pub const FLOOR_MARKER: &str = r"\[floor\] init";

/// The floor: the same kernel with an initrd holding only busybox and a one-line `/init` that
/// prints a marker and powers off. Boot benchmarks report our boot beside it.
pub fn floor() -> anyhow::Result<Image> {
    use crate::initrd::cpio::{Archive, Entry};
    let kernel = crate::kernel::ensure_kernel().context("kernel")?;
    let recipe = crate::initrd::Recipe::load(&crate::paths::repo_root().join("initrd/initrd.yml"))?;
    let bb = crate::debs::unpacked("busybox-static")?;
    let mut a = Archive::default();
    let data = std::fs::read(bb.root.join("bin/busybox")).context("busybox from busybox-static")?;
    a.add("/bin/busybox", Entry::File { mode: 0o755, data });
    let init = "#!/bin/busybox sh\n/bin/busybox echo '[floor] init'; /bin/busybox poweroff -f\n";
    a.add(
        "/init",
        Entry::File {
            mode: 0o755,
            data: init.as_bytes().to_vec(),
        },
    );
    a.add(
        "/dev/console",
        Entry::Char {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    );
    let mut raw = Vec::new();
    a.write_to(&mut raw)?;
    let dist = crate::paths::dist_dir();
    let initrd = dist.join("floor-initrd.img");
    crate::fsutil::write_atomic(
        &initrd,
        &crate::initrd::compress::compress(recipe.compression, &raw)?,
    )?;
    with_kernel(
        kernel,
        initrd,
        vec![format!("busybox-static={}", bb.version)],
    )
}
