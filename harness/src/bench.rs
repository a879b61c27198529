//! Benchmarks (never assertions): boot time against the floor, and initrd compression choices.
//! Figures are medians over N boots, side by side with a baseline run on the same machine.

use crate::image::{self, Image, FLOOR_MARKER};
use crate::vm::{Vm, VmOptions};
use std::time::Duration;

const READY: &str = r"\[ros\] ready (\d+\.\d+)";
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Seconds from QEMU start until `marker` appears, over `n` boots of `img`.
fn time_to(img: &Image, name: &str, marker: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..n {
        let opts = VmOptions::with_image(&format!("bench-{name}-{i}"), &img.kernel, &img.initrd);
        let mut vm = Vm::boot(opts)?;
        vm.expect(marker, BOOT_TIMEOUT)?;
        out.push(vm.uptime().as_secs_f64());
        eprintln!("[bench] {name} boot {}/{n}: {:.3}s", i + 1, out[i]);
    }
    Ok(out)
}

/// `harness bench boot`: QEMU start → `[ros] ready`, beside the floor.
pub fn boot(n: usize) -> anyhow::Result<()> {
    let img = image::build()?;
    let floor = image::floor()?;
    let ours = median(time_to(&img, "ready", READY, n)?);
    let base = median(time_to(&floor, "floor", FLOOR_MARKER, n)?);
    println!(
        "boot to ready (QEMU start → `[ros] ready`), median of {n}, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  ours   {ours:.3} s");
    println!("  floor  {base:.3} s   (same kernel, busybox one-line /init)");
    println!("  ratio  {:.2}x   (target ≤ 1.5x)", ours / base);
    Ok(())
}

/// `harness bench services`: from `/init` starting to every enabled system service running
/// (`[ros] init` → `[ros] ready`, both in seconds since the kernel started, so QEMU and kernel
/// boot are out of the figure), with the `system-services` step on its own.
pub fn services(n: usize) -> anyhow::Result<()> {
    let img = image::build()?;
    let (mut up, mut step) = (Vec::new(), Vec::new());
    for i in 0..n {
        let opts = VmOptions::with_image(&format!("bench-services-{i}"), &img.kernel, &img.initrd);
        let mut vm = Vm::boot(opts)?;
        let init = vm.expect_captures(r"\[ros\] init (\d+\.\d+)", BOOT_TIMEOUT)?;
        let svc = vm.expect_captures(
            r"\[ros\] step system-services \S+ ([0-9.]+)ms",
            BOOT_TIMEOUT,
        )?;
        let ready = vm.expect_captures(READY, BOOT_TIMEOUT)?;
        let t0: f64 = init[1].parse()?;
        let t1: f64 = ready[1].parse()?;
        up.push(t1 - t0);
        step.push(svc[1].parse::<f64>()? / 1000.0);
        eprintln!(
            "[bench] services boot {}/{n}: init {t0:.3} s, ready {t1:.3} s, services up {:.3} s after /init (step {:.3} s)",
            i + 1,
            t1 - t0,
            step[i]
        );
    }
    println!(
        "system services up (`/init` start → `[ros] ready`), median of {n}, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!(
        "  /init → all services running  {:.3} s   (goal ≤ 1 s)",
        median(up)
    );
    println!("  of which system-services step {:.3} s", median(step));
    Ok(())
}

/// `harness bench initrd`: the same initrd compressed with xz and with zstd: size, host-side
/// decompression time, and boot to ready under QEMU.
pub fn initrd(n: usize) -> anyhow::Result<()> {
    use crate::initrd::{self as ird, Compression};
    let img = image::build()?;
    let os_bin = crate::osbin::build()?;
    let recipe = ird::Recipe::load(&crate::paths::repo_root().join("initrd/initrd.yml"))?;
    let (archive, _) = ird::assemble(&recipe, &os_bin)?;
    let mut raw = Vec::new();
    archive.write_to(&mut raw)?;
    println!(
        "initrd compression, cpio {} bytes, median of {n} boots",
        raw.len()
    );
    for kind in [Compression::Xz, Compression::Zstd] {
        let packed = ird::compress::compress(kind, &raw)?;
        let path = crate::paths::dist_dir().join(format!("initrd-bench.{kind}"));
        crate::fsutil::write_atomic(&path, &packed)?;
        let t = std::time::Instant::now();
        let tool = if kind == Compression::Xz {
            "xz"
        } else {
            "zstd"
        };
        let _ = std::process::Command::new(tool)
            .args(["-dc"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .status();
        let host_ms = t.elapsed().as_secs_f64() * 1000.0;
        let variant = Image {
            initrd: path,
            ..img.clone()
        };
        let boot = median(time_to(&variant, &format!("initrd-{kind}"), READY, n)?);
        println!(
            "  {kind:<5} {:>9} bytes   host unpack {host_ms:6.1} ms   boot to ready {boot:.3} s",
            packed.len()
        );
    }
    Ok(())
}
