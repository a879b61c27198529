//! `harness bench console`: what a full console costs. One machine (a state disk, the Debian
//! console image as a raw disk, loaded once), `n` rounds of: a cold boot with the default
//! (busybox) console → first `ssh true`; `console switch debian` → first `ssh true` in Debian
//! (and → kept: held, its image saved, `rancher.console` written); a cold boot with Debian
//! enabled → first `ssh true`; `console enable default` for the next round. The two boots of a
//! round run one after the other on the same disk, so the machine's drift cancels in their
//! ratio.

use super::record::{self, Figure};
use super::BOOT_TIMEOUT;
use crate::vm::{Drive, Vm, VmOptions};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A full console's boot loads its image (150 MB of files) from the state partition first.
const SLOW: Duration = Duration::from_secs(600);

fn ssh_ok(vm: &Vm, cmd: &str) -> anyhow::Result<String> {
    vm.ssh_ok(cmd)
        .map_err(|e| anyhow::anyhow!("{e:#}\nserial log: {}", vm.log_path().display()))
}

/// Boot the disk; seconds from QEMU start to ready and to the first `ssh true`.
fn cold_boot(opts: VmOptions) -> anyhow::Result<(Vm, f64, f64)> {
    let mut vm = Vm::boot(opts)?;
    vm.expect_ready(SLOW)?;
    let ready = vm.uptime().as_secs_f64();
    vm.wait_ssh(SLOW)?;
    let ssh = vm.uptime().as_secs_f64();
    Ok((vm, ready, ssh))
}

fn power_off(mut vm: Vm) -> anyhow::Result<()> {
    let _ = vm.ssh("sudo poweroff");
    vm.wait_exit(BOOT_TIMEOUT)?;
    Ok(())
}

pub fn console(n: usize) -> anyhow::Result<()> {
    let img = crate::image::for_bench()?;
    let tar = crate::consoles::debian(1)?;
    let disk = crate::disk::Disk::blank("bench-console", 2048)?;
    let key = crate::ssh::Key::generate("bench-console")?;
    let opts = |name: &str| {
        let mut o = VmOptions::with_image(name, &img.kernel, &img.initrd)
            .ssh_key(&key)
            .drive(disk.drive())
            .drive(Drive {
                path: tar.clone(),
                format: "raw".into(),
                read_only: true,
            });
        o.memory_mb = 1536;
        o
    };
    let mut fig: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut loaded = false;
    for i in 0..n {
        let (vm, ready, ssh) = cold_boot(opts(&format!("bench-console-default-{i}")))?;
        anyhow::ensure!(
            !ssh_ok(&vm, "ls /etc/debian_version 2>&1 || true")?.starts_with("/etc"),
            "round {i}: not the default console"
        );
        fig.entry("default: ready").or_default().push(ready);
        fig.entry("default: ssh").or_default().push(ssh);
        if !loaded {
            ssh_ok(&vm, "sudo system-docker load -i /dev/vdb")?;
            loaded = true;
        }
        let t = Instant::now();
        let _ = vm.ssh("sudo rancherctl console switch -f debian");
        vm.wait_ssh(SLOW)?;
        let switched = t.elapsed().as_secs_f64();
        while !ssh_ok(&vm, "sudo rancherctl console list")?
            .lines()
            .any(|l| l.starts_with("debian ") && l.contains("current,enabled"))
        {
            anyhow::ensure!(t.elapsed() < SLOW, "round {i}: the switch was not kept");
            std::thread::sleep(Duration::from_millis(500));
        }
        let kept = t.elapsed().as_secs_f64();
        fig.entry("switch → ssh").or_default().push(switched);
        fig.entry("switch → kept").or_default().push(kept);
        power_off(vm)?;
        let (vm, ready, ssh) = cold_boot(opts(&format!("bench-console-debian-{i}")))?;
        anyhow::ensure!(
            ssh_ok(&vm, "cat /etc/debian_version")?.starts_with("12."),
            "round {i}: not the Debian console"
        );
        fig.entry("debian: ready").or_default().push(ready);
        fig.entry("debian: ssh").or_default().push(ssh);
        let ratio = ssh / fig["default: ssh"][i];
        fig.entry("ssh ratio debian/default")
            .or_default()
            .push(ratio);
        eprintln!(
            "[bench] console round {}/{n}: default ssh {:.3}s; switch → ssh {switched:.3}s, → kept {kept:.3}s; debian ready {ready:.3}s, ssh {ssh:.3}s",
            i + 1,
            fig["default: ssh"][i]
        );
        ssh_ok(&vm, "sudo rancherctl console enable default")?;
        power_off(vm)?;
    }
    println!(
        "consoles (-m 1536, a state disk, the Debian console's image saved on it), {n} rounds, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    let mut out = BTreeMap::new();
    for (name, v) in &fig {
        let unit = if name.contains("ratio") { "x" } else { "s" };
        let f = Figure::of(unit, v);
        println!("  {name:<26} {} {unit}", f.show(3));
        out.insert(name.to_string(), f);
    }
    record::save("console", out)?;
    Ok(())
}
