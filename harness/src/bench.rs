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

/// `harness bench ssh`: QEMU start → the first successful `ssh rancher@… true`, beside
/// `[ros] ready` of the same boots (no state disk: the console's host key is made at boot).
pub fn ssh(n: usize) -> anyhow::Result<()> {
    let img = image::build()?;
    let key = crate::ssh::Key::generate("bench")?;
    let (mut ready, mut ssh, mut gap) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let opts = VmOptions::with_image(&format!("bench-ssh-{i}"), &img.kernel, &img.initrd)
            .ssh_key(&key);
        let mut vm = Vm::boot(opts)?;
        vm.expect(READY, BOOT_TIMEOUT)?;
        let r = vm.uptime().as_secs_f64();
        let after = vm.wait_ssh(BOOT_TIMEOUT)?.as_secs_f64();
        eprintln!(
            "[bench] ssh boot {}/{n}: ready {r:.3}s, ssh {:.3}s (+{after:.3}s)",
            i + 1,
            r + after
        );
        ready.push(r);
        ssh.push(r + after);
        gap.push(after);
    }
    println!(
        "boot to SSH (QEMU start → first `ssh true` as rancher), median of {n}, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  ready  {:.3} s", median(ready));
    println!("  ssh    {:.3} s", median(ssh));
    println!(
        "  gap    {:.3} s   (ssh after ready, median; goal ≤ 1 s)",
        median(gap)
    );
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
