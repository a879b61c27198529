//! Benchmarks (never assertions): boot time against the floor, services, memory ([`ram`]),
//! container start against crun, the user engine, networking, upgrades, initrd compression.
//! Figures are medians over N runs, side by side with a baseline run on the same machine
//! (boot benches interleave ours and the floor, pair by pair), and are kept as JSON under
//! `target/bench/` ([`record`]); `harness bench report` draws their history ([`report`]),
//! `harness bench boot --chart` one boot ([`chart`]).

pub mod chart;
mod console;
mod ram;
pub mod record;
mod report;

pub use console::console;
pub use ram::ram;
pub use report::report;

use crate::image::{self, Image, FLOOR_MARKER};
use crate::vm::{Vm, VmOptions};
use record::Figure;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

/// Boot `opts` until `[ros] ready` (a degraded boot is an error naming what does not run):
/// the VM, seconds from QEMU start, and ready's time on the kernel's clock.
fn boot_ours(opts: VmOptions) -> anyhow::Result<(Vm, f64, f64)> {
    let mut vm = Vm::boot(opts)?;
    let ready = vm.expect_ready(BOOT_TIMEOUT)?;
    let wall = vm.uptime().as_secs_f64();
    Ok((vm, wall, ready))
}

/// Run a benchmark `script` on the VM's serial shell and read its figures: the numbers its
/// output gives for `pattern`'s groups, in order (NaN for one that does not parse); an error
/// with the output and the serial log when it fails or prints no such line.
fn script_figures(
    vm: &mut Vm,
    script: &str,
    timeout: Duration,
    pattern: &str,
) -> anyhow::Result<Vec<f64>> {
    let (out, rc) = vm.sh(script, timeout)?;
    let caps = regex::Regex::new(pattern)?
        .captures(&out)
        .filter(|_| rc == 0)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the comparison failed ({rc}): {out}\nserial log: {}",
                vm.log_path().display()
            )
        })?;
    Ok(caps
        .iter()
        .skip(1)
        .map(|m| m.map_or(f64::NAN, |m| m.as_str().parse().unwrap_or(f64::NAN)))
        .collect())
}

/// One boot of the floor image: seconds from QEMU start to its marker.
fn boot_floor(floor: &Image, name: &str, cpus: u32) -> anyhow::Result<f64> {
    let mut opts = VmOptions::with_image(name, &floor.kernel, &floor.initrd);
    opts.cpus = cpus;
    let mut vm = Vm::boot(opts)?;
    vm.expect(FLOOR_MARKER, BOOT_TIMEOUT)?;
    Ok(vm.uptime().as_secs_f64())
}

/// `harness bench boot`: QEMU start → `[ros] ready`, beside the floor, the two interleaved
/// (ours, floor, ours, floor, …) so the machine's drift falls on both; the ratio pair by pair.
/// With `chart`, the last of our boots drawn as an SVG boot chart.
pub fn boot(n: usize, cpus: u32, chart_path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let img = image::for_bench()?;
    let floor = image::floor()?;
    let (mut ours, mut base, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let mut opts = VmOptions::with_image(&format!("bench-ready-{i}"), &img.kernel, &img.initrd);
        opts.cpus = cpus;
        let (mut vm, o, ready) = boot_ours(opts)?;
        if i + 1 == n {
            if let Some(path) = chart_path {
                let mut bars = chart::steps(&vm.serial_text());
                bars.extend(chart::containers(&mut vm, ready)?);
                let title = format!(
                    "RancherOS-rs boot, {} (QEMU start → ready {o:.2} s; kernel clock below), -smp {cpus}, {}",
                    record::commit(),
                    crate::accel::Accel::from_env().qemu_name()
                );
                crate::fsutil::write_atomic(path, chart::svg(&title, &bars, ready).as_bytes())?;
                println!("  chart: {}", path.display());
            }
        }
        drop(vm);
        let b = boot_floor(&floor, &format!("bench-floor-{i}"), cpus)?;
        eprintln!(
            "[bench] pair {}/{n}: ours {o:.3} s, floor {b:.3} s, ratio {:.2}",
            i + 1,
            o / b
        );
        ours.push(o);
        base.push(b);
        ratio.push(o / b);
    }
    let (o, b, r) = (
        Figure::of("s", &ours),
        Figure::of("s", &base),
        Figure::of("x", &ratio),
    );
    println!(
        "boot to ready (QEMU start → `[ros] ready`), {n} pairs interleaved with the floor, -smp {cpus}, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  ours   {} s", o.show(3));
    println!(
        "  floor  {} s   (same kernel, busybox one-line /init)",
        b.show(3)
    );
    println!("  ratio  {}   (pair by pair; goal ≤ 1.5)", r.show(2));
    record::save(
        &format!("boot-smp{cpus}"),
        BTreeMap::from([
            ("ready".to_string(), o),
            ("floor".to_string(), b),
            ("ratio".to_string(), r),
        ]),
    )?;
    Ok(())
}

/// `harness bench services`: from `/init` starting to every enabled system service running
/// (`[ros] init` → `[ros] ready`, both in seconds since the kernel started, so QEMU and kernel
/// boot are out of the figure), each step on its own, and the ratio to a floor boot measured
/// between ours (goal ≤ 0.25).
pub fn services(n: usize, cpus: u32) -> anyhow::Result<()> {
    let img = image::for_bench()?;
    let floor = image::floor()?;
    let step_re = regex::Regex::new(r"\[ros\] step (\S+) (?:ok|failed) ([0-9.]+)ms")?;
    let init_re = regex::Regex::new(r"\[ros\] init (\d+\.\d+)")?;
    let (mut up, mut ratio, mut floors) = (Vec::new(), Vec::new(), Vec::new());
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 0..n {
        let mut opts =
            VmOptions::with_image(&format!("bench-services-{i}"), &img.kernel, &img.initrd);
        opts.cpus = cpus;
        let (vm, _, ready) = boot_ours(opts)?;
        let text = vm.serial_text();
        let init: f64 = init_re
            .captures(&text)
            .ok_or_else(|| anyhow::anyhow!("no `[ros] init` line"))?[1]
            .parse()?;
        for c in step_re.captures_iter(&text) {
            steps
                .entry(c[1].to_string())
                .or_default()
                .push(c[2].parse::<f64>()? / 1000.0);
        }
        drop(vm);
        let b = boot_floor(&floor, &format!("bench-services-floor-{i}"), cpus)?;
        eprintln!(
            "[bench] services boot {}/{n}: init {init:.3} s, ready {ready:.3} s: up {:.3} s after /init; floor {b:.3} s",
            i + 1,
            ready - init
        );
        up.push(ready - init);
        floors.push(b);
        ratio.push((ready - init) / b);
    }
    println!(
        "system services up (`/init` start → `[ros] ready`), {n} boots interleaved with the floor, -smp {cpus}, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    let up = Figure::of("s", &up);
    let ratio = Figure::of("x", &ratio);
    println!(
        "  /init → all services running  {} s   (goal ≤ 1 s)",
        up.show(3)
    );
    println!(
        "  ÷ the floor's boot            {}   (goal ≤ 0.25)",
        ratio.show(3)
    );
    if crate::vm::icount() {
        println!(
            "  (HARNESS_ICOUNT: /init → ready is the guest's instructions, one vCPU; the floor is timed on the host's clock, so the ratio means nothing: compare images by the first line)"
        );
    }
    let mut figures = BTreeMap::from([
        ("up".to_string(), up),
        ("ratio".to_string(), ratio),
        ("floor".to_string(), Figure::of("s", &floors)),
    ]);
    println!("  steps (median s):");
    for (name, v) in steps {
        let f = Figure::of("s", &v);
        if f.median >= 0.005 {
            println!("    {name:20} {:.3}", f.median);
        }
        figures.insert(format!("step {name}"), f);
    }
    record::save(&format!("services-smp{cpus}"), figures)?;
    Ok(())
}

/// Debian's crun and the shared libraries it loads (bench-only: never in the shipped image).
const CRUN_PACKAGES: &[&str] = &[
    "crun",
    "libc6",
    "libcap2",
    "libseccomp2",
    "libsystemd0",
    "libyajl2",
    "libgcrypt20",
    "libgpg-error0",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
];

/// The in-VM comparison: the same busybox rootfs, `true` as the workload, run to completion and
/// deleted, `n` times by each runtime; total seconds from /proc/uptime.
const CRUN_SCRIPT: &str = r#"set -e
mkdir -p /run/b/rootfs/bin /run/b/rootfs/proc /run/b/rootfs/dev /run/b/rootfs/sys /run/b/rootfs/tmp
cp /bin/busybox /run/b/rootfs/bin/
cd /run/b && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/busybox", "true"/' config.json
ln -sf /init /usr/local/bin/ros
crun run --no-pivot -b /run/b w0 && ros container-helper run --id w1 --rootfs /run/b/rootfs -- /bin/busybox true
t() { cut -d' ' -f1 /proc/uptime; }
a=$(t); i=0; while [ $i -lt N ]; do crun run --no-pivot -b /run/b c$i; i=$((i+1)); done; b=$(t)
i=0; while [ $i -lt N ]; do ros container-helper run --id o$i --rootfs /run/b/rootfs -- /bin/busybox true; i=$((i+1)); done; c=$(t)
i=0; while [ $i -lt N ]; do crun --version >/dev/null; i=$((i+1)); done; d=$(t)
i=0; while [ $i -lt N ]; do ros container-helper --help >/dev/null 2>&1 || :; i=$((i+1)); done; e=$(t)
echo "crun $a $b ours $b $c exec $c $d $e""#;

/// The image with Debian's crun added to its initrd: (image, initrd path, package versions).
fn crun_image() -> anyhow::Result<(Image, std::path::PathBuf, Vec<String>)> {
    use crate::initrd::{self as ird};
    let img = image::for_bench()?;
    let os_bin = crate::osbin::build()?;
    let recipe = ird::Recipe::load(&crate::paths::repo_root().join("initrd/initrd.yml"))?;
    let (mut archive, _) = ird::assemble(&recipe, &os_bin)?;
    let mut versions = Vec::new();
    for p in CRUN_PACKAGES {
        let u = crate::debs::unpacked(p)?;
        ird::add_tree(&mut archive, &u.root, "/")?;
        versions.push(format!("{p}={}", u.version));
    }
    let mut raw = Vec::new();
    archive.write_to(&mut raw)?;
    let path = crate::paths::dist_dir().join("initrd-bench-crun.img");
    crate::fsutil::write_atomic(&path, &ird::compress::compress(recipe.compression, &raw)?)?;
    Ok((img, path, versions))
}

/// The in-VM comparison for the user engine: `docker run --rm ros/busybox true` through the
/// console's CLI, the API and the engine (create, attach, wait, start, exit, remove) against
/// crun run directly, `n` times each; then 50 detached containers (time and memory); the
/// engine's RSS idle and with the 50.
const DOCKER_SCRIPT: &str = r#"set -e
mkdir -p /run/b/rootfs/bin /run/b/rootfs/proc /run/b/rootfs/dev /run/b/rootfs/sys /run/b/rootfs/tmp
cp /bin/busybox /run/b/rootfs/bin/
cd /run/b && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/busybox", "true"/' config.json
i=0; until docker version >/dev/null 2>&1; do sleep 1; i=$((i+1)); [ $i -lt 60 ]; done
system-docker save ros/busybox | docker load >/dev/null
crun run --no-pivot -b /run/b w0 && docker run --rm ros/busybox true
t() { cut -d' ' -f1 /proc/uptime; }
mem() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
rss() { for p in /proc/[0-9]*; do grep -q dockerd $p/cmdline 2>/dev/null && awk '/VmRSS/ {print $2}' $p/status; done | head -1; }
sleep 2; r0=$(rss)
a=$(t); i=0; while [ $i -lt N ]; do crun run --no-pivot -b /run/b c$i; i=$((i+1)); done; b=$(t)
i=0; while [ $i -lt N ]; do docker run --rm ros/busybox true; i=$((i+1)); done; c=$(t)
m0=$(mem); i=0; while [ $i -lt 50 ]; do docker run -d ros/busybox sleep 10000 >/dev/null; i=$((i+1)); done; d=$(t)
sleep 2; m1=$(mem); r1=$(rss)
echo "crun $a $b docker $b $c fifty $c $d mem $m0 $m1 rss $r0 $r1""#;

/// `harness bench docker`: the user engine, end to end in the VM, against crun run directly;
/// 50 detached containers; the engine's memory.
pub fn docker(n: usize) -> anyhow::Result<()> {
    let (img, path, versions) = crun_image()?;
    let opts = VmOptions::with_image("bench-docker", &img.kernel, &path);
    let mut vm = Vm::boot(opts)?;
    vm.expect(READY, BOOT_TIMEOUT)?;
    let script = DOCKER_SCRIPT.replace("-lt N", &format!("-lt {n}"));
    eprintln!("[bench] docker: {n} runs each, then 50 detached containers (minutes under TCG)");
    let f = script_figures(
        &mut vm,
        &script,
        Duration::from_secs(1800),
        r"crun ([0-9.]+) ([0-9.]+) docker ([0-9.]+) ([0-9.]+) fifty ([0-9.]+) ([0-9.]+) mem (\d+) (\d+) rss (\d+) (\d+)",
    )?;
    let f = |i: usize| f[i - 1];
    let crun_ms = (f(2) - f(1)) * 1000.0 / n as f64;
    let docker_ms = (f(4) - f(3)) * 1000.0 / n as f64;
    println!(
        "`docker run --rm ros/busybox true` (console CLI, API, engine, shim), mean of {n}, same VM, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  crun run (Debian, directly)          {crun_ms:7.1} ms");
    println!("  docker run --rm (ours, end to end)   {docker_ms:7.1} ms");
    println!("  ratio  {:.2}x   (goal ≤ 1.0x)", docker_ms / crun_ms);
    let fifty = f(6) - f(5);
    let per_kb = (f(7) - f(8)) / 50.0;
    println!(
        "  50 × docker run -d: {:.1} s, {:.0} ms and {:.0} KiB of MemAvailable a container",
        fifty,
        fifty * 1000.0 / 50.0,
        per_kb
    );
    println!(
        "  ros dockerd RSS: idle {:.0} KiB, with 50 containers {:.0} KiB   (goal idle ≤ 15 MB)",
        f(9),
        f(10)
    );
    println!("  packages: {}", versions.join(" "));
    match host_dockerd_run(n) {
        Ok(ms) => println!(
            "  reference: this machine's dockerd, `docker run --rm` of busybox `true`, natively \
             (no VM, no TCG: not a ratio) {ms:7.1} ms"
        ),
        Err(e) => println!("  reference: this machine's dockerd: not measured ({e:#})"),
    }
    Ok(())
}

/// The same `docker run --rm … true` against this machine's dockerd (the reference peer),
/// `n` times, on an image imported from Debian's busybox-static; the mean in ms. The image is
/// removed afterwards.
fn host_dockerd_run(n: usize) -> anyhow::Result<f64> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const IMAGE: &str = "rosbench/busybox:latest";
    let docker = |args: &[&str]| {
        let mut c = Command::new("docker");
        c.args(["-H", "unix:///var/run/docker.sock"]).args(args);
        c.env_remove("DOCKER_HOST");
        c
    };
    let bb = crate::debs::unpacked("busybox-static")?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_path_with_name(bb.root.join("bin/busybox"), "bin/busybox")?;
    let tar = tar.into_inner()?;
    let mut import = docker(&["import", "-", IMAGE])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    import
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("docker import: no stdin"))?
        .write_all(&tar)?;
    anyhow::ensure!(import.wait()?.success(), "docker import failed");
    let run = || {
        docker(&["run", "--rm", IMAGE, "/bin/busybox", "true"])
            .stdout(Stdio::null())
            .status()
    };
    anyhow::ensure!(run()?.success(), "docker run failed");
    let t = std::time::Instant::now();
    for _ in 0..n {
        anyhow::ensure!(run()?.success(), "docker run failed");
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let _ = docker(&["rmi", "-f", IMAGE]).stdout(Stdio::null()).status();
    Ok(ms)
}

/// `harness bench crun`: start latency of a trivial container through our engine's runtime
/// (the re-exec'd helper running youki's libcontainer, as PID 1 starts every service) against
/// Debian's crun run directly, in the same VM, on the same rootfs.
pub fn crun(n: usize) -> anyhow::Result<()> {
    let (img, path, versions) = crun_image()?;
    let opts = VmOptions::with_image("bench-crun", &img.kernel, &path);
    let mut vm = Vm::boot(opts)?;
    vm.expect(READY, BOOT_TIMEOUT)?;
    let script = CRUN_SCRIPT.replace("-lt N", &format!("-lt {n}"));
    let f = script_figures(
        &mut vm,
        &script,
        Duration::from_secs(600),
        r"crun ([0-9.]+) ([0-9.]+) ours ([0-9.]+) ([0-9.]+) exec ([0-9.]+) ([0-9.]+) ([0-9.]+)",
    )?;
    let f = |i: usize| f[i - 1];
    let crun_ms = (f(2) - f(1)) * 1000.0 / n as f64;
    let ours_ms = (f(4) - f(3)) * 1000.0 / n as f64;
    println!(
        "container start latency (create, start, `true` exits, delete), mean of {n}, same VM, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  crun (Debian, run directly)          {crun_ms:7.1} ms");
    println!("  ours (helper + youki libcontainer)   {ours_ms:7.1} ms");
    println!("  ratio  {:.2}x   (goal ≤ 1.3x)", ours_ms / crun_ms);
    // How much of each is starting the program at all (crun is dynamically linked: ld.so
    // relocates libsystemd, libgcrypt, … at every exec; ours is one static binary).
    let crun_exec = (f(6) - f(5)) * 1000.0 / n as f64;
    let ours_exec = (f(7) - f(6)) * 1000.0 / n as f64;
    println!("  of which exec alone: crun --version {crun_exec:.1} ms, ros container-helper --help {ours_exec:.1} ms");
    // The create/start path without the program's own exec: what each runtime does.
    let (crun_path, ours_path) = (crun_ms - crun_exec, ours_ms - ours_exec);
    println!(
        "  without it: crun {crun_path:.1} ms, ours {ours_path:.1} ms: ratio {:.2}x   (goal ≤ 1.0x)",
        ours_path / crun_path
    );
    println!("  packages: {}", versions.join(" "));
    record::save(
        "crun",
        BTreeMap::from([
            ("crun ms".to_string(), Figure::of("ms", &[crun_ms])),
            ("ours ms".to_string(), Figure::of("ms", &[ours_ms])),
            ("ratio".to_string(), Figure::of("x", &[ours_ms / crun_ms])),
            (
                "ratio without exec".to_string(),
                Figure::of("x", &[ours_path / crun_path]),
            ),
        ]),
    )?;
    Ok(())
}

/// `harness bench ssh`: QEMU start → the first successful `ssh rancher@… true`, beside
/// `[ros] ready` of the same boots (no state disk: the console's host key is made at boot), and
/// a second `ssh true` at once after it: what one login costs once everything is up, so that
/// the gap after ready reads as the console's start plus one login.
pub fn ssh(n: usize, cpus: u32) -> anyhow::Result<()> {
    let img = image::for_bench()?;
    let floor = image::floor()?;
    let key = crate::ssh::Key::generate("bench")?;
    let (mut ready, mut ssh, mut gap, mut login, mut floors, mut over) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for i in 0..n {
        let mut opts = VmOptions::with_image(&format!("bench-ssh-{i}"), &img.kernel, &img.initrd)
            .ssh_key(&key);
        opts.cpus = cpus;
        let (vm, r, _) = boot_ours(opts)?;
        let after = vm.wait_ssh(BOOT_TIMEOUT)?.as_secs_f64();
        let again = vm.wait_ssh(BOOT_TIMEOUT)?.as_secs_f64();
        drop(vm);
        let b = boot_floor(&floor, &format!("bench-ssh-floor-{i}"), cpus)?;
        eprintln!(
            "[bench] ssh boot {}/{n}: ready {r:.3}s, ssh {:.3}s (+{after:.3}s; a second login {again:.3}s); floor {b:.3}s",
            i + 1,
            r + after
        );
        ready.push(r);
        ssh.push(r + after);
        gap.push(after);
        login.push(again);
        floors.push(b);
        // The goal is ssh ≤ 1.5 × floor + 0.5 s: this is ssh − 1.5 × floor (≤ 0.5 meets it).
        over.push(r + after - 1.5 * b);
    }
    println!(
        "boot to SSH (QEMU start → first `ssh true` as rancher), {n} boots interleaved with the floor, -smp {cpus}, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    let f = |v: &[f64], u: &str| Figure::of(u, v);
    println!("  ready  {} s", f(&ready, "s").show(3));
    println!("  ssh    {} s", f(&ssh, "s").show(3));
    println!("  gap    {} s   (ssh after ready)", f(&gap, "s").show(3));
    println!(
        "  login  {} s   (a second `ssh true` at once: the host's client and the guest's server)",
        f(&login, "s").show(3)
    );
    println!("  floor  {} s", f(&floors, "s").show(3));
    println!(
        "  ssh − 1.5 × floor  {} s   (pair by pair; goal ≤ 0.5)",
        f(&over, "s").show(3)
    );
    record::save(
        &format!("ssh-smp{cpus}"),
        BTreeMap::from([
            ("ready".to_string(), f(&ready, "s")),
            ("ssh".to_string(), f(&ssh, "s")),
            ("gap".to_string(), f(&gap, "s")),
            ("login".to_string(), f(&login, "s")),
            ("floor".to_string(), f(&floors, "s")),
            ("ssh - 1.5 floor".to_string(), f(&over, "s")),
        ]),
    )?;
    Ok(())
}

/// The kernel's unpack of `img`'s initramfs in one boot, in seconds of its clock: run
/// synchronously (`initramfs_async=0`, so nothing else runs beside it), from its "Unpacking
/// initramfs..." line to its "Freeing initrd memory" (both printed by `populate_rootfs`, read
/// with `printk.time` at `loglevel=7`, as they are `KERN_INFO`; the boot is stopped there).
fn guest_unpack(img: &Image, name: &str) -> anyhow::Result<f64> {
    let opts = VmOptions::with_image(name, &img.kernel, &img.initrd)
        .cmdline("initramfs_async=0")
        .cmdline("printk.time=1")
        .cmdline("loglevel=7");
    let mut vm = Vm::boot(opts)?;
    let stamp = |vm: &mut Vm, what: &str| -> anyhow::Result<f64> {
        let caps = vm.expect_captures(&format!(r"\[\s*(\d+\.\d+)\] {what}"), BOOT_TIMEOUT)?;
        caps.get(1)
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no time on {what:?}; serial log: {}",
                    vm.log_path().display()
                )
            })
    };
    let start = stamp(&mut vm, "Unpacking initramfs")?;
    let end = stamp(&mut vm, "Freeing initrd memory")?;
    Ok(end - start)
}

/// `harness bench initrd`: the same initrd compressed with xz and with zstd: size, host-side
/// decompression time, the guest kernel's unpack ([`guest_unpack`]), and boot to ready under
/// QEMU.
pub fn initrd(n: usize) -> anyhow::Result<()> {
    use crate::initrd::{self as ird, Compression};
    let img = image::for_bench()?;
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
        let mut unpack = Vec::new();
        for i in 0..n {
            let s = guest_unpack(&variant, &format!("bench-initrd-unpack-{kind}-{i}"))?;
            eprintln!("[bench] {kind} unpack {}/{n}: {:.0} ms", i + 1, s * 1000.0);
            unpack.push(s);
        }
        let unpack_ms = median(unpack) * 1000.0;
        let boot = median(time_to(&variant, &format!("initrd-{kind}"), READY, n)?);
        println!(
            "  {kind:<5} {:>9} bytes   host unpack {host_ms:6.1} ms   guest unpack {unpack_ms:6.1} ms   boot to ready {boot:.3} s",
            packed.len()
        );
    }
    Ok(())
}

/// `harness bench network`: a published port (`-p 8080:80`: QEMU's hostfwd, then DNAT, the
/// bridge and a veth) against the same server on the host's network (`--net host`: hostfwd
/// only), both measured from this machine with HTTP/1.0 GETs: latency of a small file, then
/// throughput of an 8 MiB one; the time of `docker run -d` with and without `-p`; and of
/// `docker network create` plus a run on the new network.
pub fn network(n: usize) -> anyhow::Result<()> {
    use crate::docker_cli::{boot_with, http_get};
    let (vm, d) = boot_with("bench-network", |o| o.forward(8080).forward(8081));
    let data = ["-v", "benchdata:/www"];
    let mut prep = vec!["run", "--rm"];
    prep.extend(data);
    prep.extend([
        "ros/busybox",
        "sh",
        "-c",
        "echo hi > /www/small; dd if=/dev/zero of=/www/big bs=1M count=8 2>/dev/null",
    ]);
    d.ok(&prep, &vm);
    let timed = |args: &[&str]| {
        let t = Instant::now();
        d.ok(args, &vm);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let mut published = vec!["run", "-d", "--name", "pub", "-p", "8080:80"];
    published.extend(data);
    published.extend(["ros/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    let mut direct = vec!["run", "-d", "--name", "direct", "--net", "host"];
    direct.extend(data);
    direct.extend(["ros/busybox", "httpd", "-f", "-p", "8081", "-h", "/www"]);
    let run_pub = timed(&published);
    let run_direct = timed(&direct);
    let (p_pub, p_direct) = (
        vm.port(8080).expect("forwarded"),
        vm.port(8081).expect("forwarded"),
    );
    for p in [p_pub, p_direct] {
        crate::docker_cli::until("the server answers", Duration::from_secs(30), || {
            http_get(p, "/small").is_ok_and(|b| b == "hi")
        });
    }
    let latency = |port: u16| -> anyhow::Result<f64> {
        let t = Instant::now();
        for _ in 0..n {
            http_get(port, "/small").map_err(anyhow::Error::msg)?;
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0 / n as f64)
    };
    let throughput = |port: u16| -> anyhow::Result<f64> {
        let rounds = 3;
        let t = Instant::now();
        for _ in 0..rounds {
            let body = http_get(port, "/big").map_err(anyhow::Error::msg)?;
            anyhow::ensure!(body.len() == 8 << 20, "short body: {} bytes", body.len());
        }
        Ok((8 * rounds) as f64 / t.elapsed().as_secs_f64())
    };
    // Interleaved, so a busy moment of this machine falls on both.
    let (mut l_pub, mut l_direct, mut t_pub, mut t_direct) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..2 {
        l_pub += latency(p_pub)? / 2.0;
        l_direct += latency(p_direct)? / 2.0;
        t_pub += throughput(p_pub)? / 2.0;
        t_direct += throughput(p_direct)? / 2.0;
    }
    println!(
        "published port vs the host's network, from this machine through QEMU's hostfwd, accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  GET /small, mean of {n}×2:  published {l_pub:7.2} ms   host network {l_direct:7.2} ms   ratio {:.2}x (goal ≤ 1.10x)", l_pub / l_direct);
    println!("  GET 8 MiB, 3×2 rounds:     published {t_pub:7.1} MB/s host network {t_direct:7.1} MB/s ratio {:.2}x (goal ≥ 0.90x)", t_pub / t_direct);
    println!("  docker run -d: with -p 8080:80 {run_pub:.0} ms, --net host {run_direct:.0} ms");
    // A network of one's own: `network create` then a run on it, against a run on the
    // default bridge (interleaved, 3 rounds each; the network removed after each).
    let (mut create, mut run_net, mut run_bridge) = (0.0, 0.0, 0.0);
    let rounds = 3;
    for i in 0..rounds {
        let name = format!("benchnet{i}");
        create += timed(&["network", "create", &name]) / rounds as f64;
        run_net +=
            timed(&["run", "--rm", "--network", &name, "ros/busybox", "true"]) / rounds as f64;
        run_bridge += timed(&["run", "--rm", "ros/busybox", "true"]) / rounds as f64;
        d.ok(&["network", "rm", &name], &vm);
    }
    println!(
        "  network create {create:.0} ms; docker run --rm true: on it {run_net:.0} ms, on the default bridge {run_bridge:.0} ms (ratio {:.2}x)",
        run_net / run_bridge
    );
    Ok(())
}

/// `harness bench upgrade`: on the disk image booted by its firmware (v1 in slot A), the time
/// of `rancherctl os upgrade -i` (the OS image on a second disk) and the bytes it wrote to the
/// system disk (`/proc/diskstats`), then `rancherctl reboot` → the new version's `[ros] ready`,
/// beside a cold boot (QEMU start → ready) of the same disk; and, with a bad version (an
/// initrd without init), the time from its trial boot starting to `[ros] ready` on the good
/// slot again, with no hand on it.
pub fn upgrade() -> anyhow::Result<()> {
    use crate::vm::Drive;
    let img = image::for_bench()?;
    let dir = crate::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir)?;
    let disk = dir.join("bench-upgrade.img");
    crate::diskimage::build(&img.kernel, &img.initrd, "1.0.0-v1", &disk)?;
    let v2 = crate::osimage::build(
        &img.kernel,
        &img.initrd,
        "2.0.0-v2",
        &dir.join("bench-v2.tar"),
    )?;
    let empty = dir.join("bench-empty-initrd.img");
    let mut cpio = Vec::new();
    crate::initrd::cpio::Archive::default().write_to(&mut cpio)?;
    std::fs::write(&empty, cpio)?;
    let v3 = crate::osimage::build(&img.kernel, &empty, "3.0.0-bad", &dir.join("bench-v3.tar"))?;
    let drive = |p: &std::path::Path, ro: bool| Drive {
        path: p.to_path_buf(),
        format: "raw".into(),
        read_only: ro,
    };
    let opts = VmOptions::new("bench-upgrade")?
        .firmware_boot()
        .allow_reboot()
        .drive(drive(&disk, false))
        .drive(drive(&v2, true))
        .drive(drive(&v3, true));
    let mut vm = Vm::boot(opts)?;
    vm.expect(READY, BOOT_TIMEOUT)?;
    let cold = vm.uptime().as_secs_f64();
    let written = |vm: &mut Vm| -> anyhow::Result<u64> {
        let s = vm.sh_ok(
            "awk '$3 == \"vda\" {print $10}' /proc/diskstats",
            BOOT_TIMEOUT,
        )?;
        Ok(s.trim().parse::<u64>()? * 512)
    };
    let before = written(&mut vm)?;
    let t = Instant::now();
    vm.sh_ok(
        "rancherctl os upgrade -i /dev/vdb --no-reboot",
        BOOT_TIMEOUT,
    )?;
    let upgrade_s = t.elapsed().as_secs_f64();
    let bytes = written(&mut vm)? - before;
    let t = Instant::now();
    vm.send("rancherctl reboot\n")?;
    vm.expect(r"booting SLOT_B \(trial 1\)", BOOT_TIMEOUT)?;
    vm.shell_ended();
    vm.expect(READY, BOOT_TIMEOUT)?;
    let reboot_s = t.elapsed().as_secs_f64();
    vm.expect(
        r"boot health: SLOT_B healthy for 10s: marked good",
        BOOT_TIMEOUT,
    )?;
    let gate_s = t.elapsed().as_secs_f64();
    // Root again in the new boot's console session, then the bad version (it reboots).
    vm.sh_ok("true", BOOT_TIMEOUT)?;
    vm.send("rancherctl os upgrade -i /dev/vdc\n")?;
    vm.expect(r"booting SLOT_A \(trial 1\)", BOOT_TIMEOUT)?;
    let t = Instant::now();
    vm.shell_ended();
    vm.expect(r"booting SLOT_B \(trial 0\)", BOOT_TIMEOUT)?;
    vm.expect(READY, BOOT_TIMEOUT)?;
    let back_s = t.elapsed().as_secs_f64();
    println!(
        "A/B upgrade on the disk image (firmware boot), accel {}",
        crate::accel::Accel::from_env().qemu_name()
    );
    println!("  rancherctl os upgrade -i FILE: {upgrade_s:.1} s, {:.1} MiB written to the system disk (image {:.1} MiB)",
        bytes as f64 / (1 << 20) as f64,
        std::fs::metadata(&v2)?.len() as f64 / (1 << 20) as f64);
    println!("  reboot → new version ready: {reboot_s:.1} s (cold boot → ready {cold:.1} s); marked good by the gate at {gate_s:.1} s");
    println!("  bad version (kernel panic, panic=10): its trial boot → ready on the good slot {back_s:.1} s");
    println!(
        "  upgrade command → new version ready: {:.1} s",
        upgrade_s + reboot_s
    );
    let one = |unit: &str, v: f64| Figure::of(unit, &[v]);
    record::save(
        "upgrade",
        BTreeMap::from([
            ("upgrade".to_string(), one("s", upgrade_s)),
            (
                "written".to_string(),
                one("MiB", bytes as f64 / (1 << 20) as f64),
            ),
            ("reboot to ready".to_string(), one("s", reboot_s)),
            (
                "upgrade to ready".to_string(),
                one("s", upgrade_s + reboot_s),
            ),
            ("cold boot to ready".to_string(), one("s", cold)),
            ("marked good".to_string(), one("s", gate_s)),
            ("bad slot to good ready".to_string(), one("s", back_s)),
        ]),
    )?;
    Ok(())
}
