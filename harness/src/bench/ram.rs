//! `harness bench ram`: the smallest `-m` with which the OS boots, starts every default
//! service and lets `rancher` in over SSH, found by bisection (each probe a fresh VM; a probe
//! fails when ready, degraded or SSH does not come within the timeout: an OOM kill, a kernel
//! panic, an initramfs that does not unpack); then, in a 512 MiB VM, what boot leaves used and
//! the proportional set size (PSS: shared pages split between their users, so the figures add
//! up) of PID 1, the system engine, the shims and each service's main process.

use super::record::{self, Figure};
use super::{boot_ours, BOOT_TIMEOUT};
use crate::image;
use crate::vm::VmOptions;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a probe boot gets before it counts as failed.
const PROBE: Duration = Duration::from_secs(150);

/// Whether a VM with `mb` MiB reaches `[ros] ready` and a successful `ssh true`.
fn reaches_ssh(img: &image::Image, key: &crate::ssh::Key, mb: u32) -> bool {
    let mut opts =
        VmOptions::with_image(&format!("bench-ram-{mb}"), &img.kernel, &img.initrd).ssh_key(key);
    opts.memory_mb = mb;
    let started = std::time::Instant::now();
    let ok = match boot_ours(opts) {
        Ok((vm, _, _)) => match vm.wait_ssh(PROBE.saturating_sub(started.elapsed())) {
            Ok(_) => true,
            Err(e) => {
                eprintln!("[bench] -m {mb}: ready, no SSH: {e:#}");
                false
            }
        },
        Err(e) => {
            let first = format!("{e:#}");
            eprintln!(
                "[bench] -m {mb}: {}",
                first.lines().next().unwrap_or_default()
            );
            false
        }
    };
    eprintln!(
        "[bench] -m {mb}: {} ({:.0} s)",
        if ok { "reaches SSH" } else { "does not" },
        started.elapsed().as_secs_f64()
    );
    ok
}

/// Bisect between `lo` (assumed failing) and `hi` MiB to `step` MiB.
pub fn ram(lo: u32, hi: u32, step: u32) -> anyhow::Result<()> {
    let img = image::for_bench()?;
    let key = crate::ssh::Key::generate("bench-ram")?;
    if !reaches_ssh(&img, &key, hi) {
        anyhow::bail!("even -m {hi} does not reach SSH (see target/vm-logs/bench-ram-{hi}.log)");
    }
    let at_64 = reaches_ssh(&img, &key, 64);
    let (mut lo, mut hi) = (lo, hi);
    if at_64 {
        hi = hi.min(64);
    } else {
        lo = lo.max(64);
    }
    while hi - lo > step.max(1) {
        let mid = (lo + hi) / 2;
        if reaches_ssh(&img, &key, mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // Resident memory after a boot with room to spare.
    let mut opts = VmOptions::with_image("bench-ram-rss", &img.kernel, &img.initrd);
    opts.memory_mb = 512;
    let (mut vm, _, _) = boot_ours(opts)?;
    std::thread::sleep(Duration::from_secs(3));
    let script = r#"rss() { awk '/^Pss:/ {print $2}' /proc/$1/smaps_rollup 2>/dev/null; }
echo "pid1 $(rss 1)"
for p in /proc/[0-9]*; do
  case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in
    *"dockerd --system"*) echo "engine $(rss ${p#/proc/})" ;;
    *container-shim*) echo "shim $(rss ${p#/proc/})" ;;
  esac
done
sed -n 's/.*"name": "\([^"]*\)".*/\1/p; s/.*"pid": \([0-9a-z]*\).*/\1/p' /run/system-docker/services.json | while read n; do read p; echo "service:$n $(rss $p)"; done
awk '/MemTotal/ {t=$2} /MemAvailable/ {a=$2} END {print "used " t-a}' /proc/meminfo"#;
    let (out, rc) = vm.sh(script, BOOT_TIMEOUT)?;
    if rc != 0 {
        anyhow::bail!(
            "reading memory use failed ({rc}): {out}\nserial log: {}",
            vm.log_path().display()
        );
    }
    let mut kib: BTreeMap<String, f64> = BTreeMap::new();
    for line in out.lines() {
        let mut w = line.split_whitespace();
        if let (Some(k), Some(Ok(v))) = (w.next(), w.next().map(str::parse::<f64>)) {
            *kib.entry(k.to_string()).or_default() += v;
        }
    }
    println!(
        "memory (accel {}): the smallest -m that reaches SSH, to {step} MiB",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!(
        "  smallest -m  {hi} MiB   (-m {lo} does not; -m 64: {})",
        if at_64 {
            "works"
        } else {
            "does not (goal: works)"
        }
    );
    println!("  proportional set size after boot (-m 512), KiB (used: MemTotal − MemAvailable):");
    for (k, v) in &kib {
        println!("    {k:28} {v:8.0}");
    }
    let mut figures: BTreeMap<String, Figure> = kib
        .into_iter()
        .map(|(k, v)| (format!("{k} KiB"), Figure::of("KiB", &[v])))
        .collect();
    figures.insert("smallest -m".into(), Figure::of("MiB", &[f64::from(hi)]));
    figures.insert(
        "64 MiB works".into(),
        Figure::of("bool", &[f64::from(u8::from(at_64))]),
    );
    record::save("ram", figures)?;
    Ok(())
}
