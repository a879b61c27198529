//! `harness`: the developer entry point. `cargo harness run` boots the OS on this terminal;
//! `cargo harness test` sets up the host, builds the image and runs every test (in VMs).

use anyhow::Context;
use clap::{Parser, Subcommand};
use harness::{image, setup, vm};
use std::process::Command;

#[derive(Parser)]
#[command(name = "harness", about = "Build, boot and test RancherOS-rs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install missing host packages (as root) or print the apt-get line.
    Setup,
    /// Build dist/vmlinuz and dist/initrd.img and report their size against the budget.
    Build {
        /// The version the disk image, the OS image and the ISO carry (default:
        /// RANCHEROS_VERSION, else the workspace's). Repeatable: one OS image per version,
        /// dist/rancheros-os-V.tar, and the disk image and the ISO of the first.
        #[arg(long = "version", value_name = "V", value_parser = harness::osimage::parse_version)]
        versions: Vec<String>,
    },
    /// Boot the OS with its serial console on this terminal (Ctrl-A X quits).
    Run {
        /// Extra kernel arguments.
        #[arg(long = "append", value_name = "ARG")]
        append: Vec<String>,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Virtual CPUs: 2 by default (the services start concurrently; `harness bench
        /// services --smp 2`: /init → all running 4.9 s against 6.2 s with 1, TCG). Tests use
        /// 1: the suite runs one VM per host core.
        #[arg(long, default_value_t = 2)]
        smp: u32,
    },
    /// Set up, build, and run the whole test suite on every core (`-- --include-ignored`: the
    /// nightly tier too); other arguments run `cargo test --workspace ARGS` as typed.
    Test {
        /// Arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a scenario of scenarios/NAME.yml (every case; --short: those marked short;
    /// --case NAME, repeatable: those).
    Scenario {
        name: String,
        #[arg(long, conflicts_with = "case")]
        short: bool,
        #[arg(long)]
        case: Vec<String>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Build (or fetch from the cache) the kernel only.
    Kernel,
    /// Build dist/initrd.img only.
    Initrd,
    /// Build (or take from the cache) a console image that is not in the boot image (`debian`)
    /// and print its tar's path, for `system-docker load -i` in the VM.
    ConsoleImage {
        name: String,
        /// > 1: the same console with one more layer (a console image upgrade, for tests).
        #[arg(long, default_value_t = 1)]
        revision: u32,
    },
    /// Answer one HTTP request on stdin/stdout from DIR (run by QEMU's guestfwd in tests).
    #[command(hide = true)]
    ServeHttp { dir: std::path::PathBuf },
    /// Answer one HTTPS request on stdin/stdout from DIR with CERT and KEY (PEM).
    #[command(hide = true)]
    ServeHttps {
        dir: std::path::PathBuf,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
    /// Join stdin/stdout to a TCP connection to ADDR (run by QEMU's guestfwd in tests).
    #[command(hide = true)]
    Relay { addr: String },
    /// Record the current Debian versions of every package the images (initrd and test images)
    /// use in initrd/packages.lock.
    Lock,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// QEMU start to `[ros] ready`, interleaved with the floor (same kernel, one-line /init).
    Boot {
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
        /// Virtual CPUs of every VM (ours and the floor's).
        #[arg(long, default_value_t = 1)]
        smp: u32,
        /// Draw the last boot as a chart (SVG): kernel, PID 1's steps, each service.
        #[arg(long)]
        chart: Option<std::path::PathBuf>,
    },
    /// `/init` start to every system service running (`[ros] init` → `[ros] ready`), each
    /// step, and the ratio to the floor's boot.
    Services {
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
        #[arg(long, default_value_t = 1)]
        smp: u32,
    },
    /// The smallest `-m` (MiB) that reaches SSH, by bisection; RSS of PID 1 and each service.
    Ram {
        /// A size assumed to fail.
        #[arg(long, default_value_t = 32)]
        lo: u32,
        /// A size that must work.
        #[arg(long, default_value_t = 256)]
        hi: u32,
        /// Stop when the bracket is this narrow.
        #[arg(long, default_value_t = 4)]
        step: u32,
    },
    /// Draw the history of every figure under target/bench/ as one SVG.
    Report {
        #[arg(long, default_value = "target/bench/history.svg")]
        out: std::path::PathBuf,
    },
    /// Start latency of a trivial container: our runtime against Debian's crun, same VM.
    Crun {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
    },
    /// The user engine: `docker run --rm` end to end against crun, 50 containers, its RSS.
    Docker {
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
    },
    /// A published port against the host's network: latency, throughput, `docker run -p`.
    Network {
        #[arg(short = 'n', default_value_t = 50)]
        n: usize,
    },
    /// `rancherctl os upgrade`: its time and bytes, reboot → ready beside a cold boot, and a
    /// bad version's trial → back on the good slot.
    Upgrade,
    /// The Debian console beside the default one: boot → SSH with each, and a switch → SSH.
    Console {
        #[arg(short = 'n', default_value_t = 3)]
        n: usize,
    },
    /// QEMU start to the first successful `ssh true`, beside `[ros] ready`.
    Ssh {
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
        /// Virtual CPUs of every VM (ours and the floor's).
        #[arg(long, default_value_t = 1)]
        smp: u32,
    },
    /// xz vs zstd for the initrd: size, unpack time (host; the guest kernel's, synchronous), boot to ready.
    Initrd {
        #[arg(short = 'n', default_value_t = 3)]
        n: usize,
    },
}

/// Build everything `dist/` holds; `versions` as `harness build --version` gives them (none:
/// the default version; see `harness::osimage::planned`).
fn build(versions: &[String]) -> anyhow::Result<image::Image> {
    let planned = harness::osimage::planned(versions)?;
    setup::ensure_host()?;
    let img = image::build()?;
    let dist = harness::paths::dist_dir();
    let disk = harness::diskimage::build(
        &img.kernel,
        &img.initrd,
        &planned[0].0,
        &dist.join("rancheros.img"),
    )?;
    eprintln!(
        "disk image: {} (version {})",
        disk.path.display(),
        disk.version
    );
    let mut tars = Vec::new();
    for (version, name) in &planned {
        let os = harness::osimage::build(&img.kernel, &img.initrd, version, &dist.join(name))?;
        eprintln!(
            "OS image: {} ({}:{version})",
            os.display(),
            harness::osimage::REPOSITORY,
        );
        tars.push(os);
    }
    let iso = dist.join("rancheros.iso");
    harness::iso::build(&img.kernel, &img.initrd, &tars[0], &disk.version, &iso)?;
    eprintln!(
        "ISO: {} (BIOS and UEFI; rancherctl install -d DEV)",
        iso.display()
    );
    eprintln!(
        "kernel: {} (linux-source {})",
        img.kernel.display(),
        img.kernel_version
    );
    eprintln!(
        "initrd: {} ({})",
        img.initrd.display(),
        img.packages.join(", ")
    );
    eprintln!("{}", img.sizes);
    img.sizes.check()?;
    Ok(img)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup::ensure_host()?,
        Cmd::ServeHttp { dir } => harness::seed::serve_http_once(&dir)?,
        Cmd::ServeHttps { dir, cert, key } => harness::seed::serve_https_once(&dir, &cert, &key)?,
        Cmd::Relay { addr } => harness::registry::relay(&addr)?,
        Cmd::Build { versions } => {
            build(&versions)?;
        }
        Cmd::Kernel => {
            setup::ensure_host()?;
            let k = harness::kernel::ensure_kernel()?;
            println!("{}", k.bzimage.display());
        }
        Cmd::Lock => {
            let root = harness::paths::repo_root();
            let recipe = harness::initrd::Recipe::load(&root.join("initrd/initrd.yml"))?;
            let mut names = harness::initrd::package_names(&recipe)?;
            names.extend(harness::test_images::package_names()?);
            names.sort();
            names.dedup();
            for (p, v) in harness::debs::write_lock(&names)? {
                println!("{p}={v}");
            }
        }
        Cmd::ConsoleImage { name, revision } => {
            if name != "debian" {
                anyhow::bail!("{name}: the harness builds the debian console only");
            }
            println!("{}", harness::consoles::debian(revision)?.display());
        }
        Cmd::Initrd => {
            let os_bin = harness::osbin::build()?;
            let root = harness::paths::repo_root();
            let recipe = harness::initrd::Recipe::load(&root.join("initrd/initrd.yml"))?;
            let out = harness::paths::dist_dir().join("initrd.img");
            let built = harness::initrd::build(&recipe, &os_bin, &out)?;
            let size = std::fs::metadata(&out)?.len();
            println!(
                "{}: {size} bytes ({} compressed; cpio {} bytes, {} entries; {})",
                out.display(),
                recipe.compression,
                built.cpio_bytes,
                built.entries,
                built.packages.join(", ")
            );
        }
        Cmd::Run {
            append,
            memory,
            smp,
        } => {
            let img = build(&[])?;
            let mut opts = vm::VmOptions::with_image("run", &img.kernel, &img.initrd);
            opts.cmdline = append;
            opts.memory_mb = memory;
            opts.cpus = smp;
            opts.allow_reboot = true;
            let dir = tempfile::tempdir()?;
            let qmp = dir.path().join("qmp.sock");
            let ssh = vm::free_port()?;
            let ports = [(22u16, ssh)].into_iter().collect();
            let mut args = Vec::new();
            eprintln!("QMP socket: {}", qmp.display());
            eprintln!("forwarded: 127.0.0.1:{ssh} -> guest :22");
            let key = harness::ssh::Key::generate("run")?;
            opts.init_args.push(key.cmdline_arg());
            let known = dir.path().join("known_hosts");
            let line = harness::ssh::args(ssh, &key.private, &known, harness::ssh::USER);
            eprintln!("ssh in with: ssh {}", line.join(" "));
            eprintln!(
                "accelerator: {} (HARNESS_ACCEL=kvm|auto to change)",
                opts.accel.qemu_name()
            );
            eprintln!("Ctrl-A X quits QEMU; `poweroff` in the guest shuts it down cleanly.\n");
            args.extend(opts.qemu_args(&qmp, &ports));
            args.extend(["-serial".into(), "mon:stdio".into()]);
            let st = Command::new(setup::QEMU)
                .args(&args)
                .status()
                .context("starting QEMU")?;
            std::process::exit(st.code().unwrap_or(1));
        }
        Cmd::Test { args } => {
            // As typed: clap eats the first `--`, which `cargo test` needs to tell its own
            // options from the test binaries' (`-- --include-ignored`).
            let raw: Vec<String> = std::env::args()
                .skip_while(|a| a != "test")
                .skip(1)
                .collect();
            let args = if raw.iter().any(|a| a == "--") {
                raw
            } else {
                args
            };
            let image = build(&[])?;
            // The whole suite (per push, or with the nightly tier) on every core; anything
            // narrower is a person's choice of tests, for `cargo test` as typed.
            let tier = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                [] => Some(harness::suite::Tier::PerPush),
                ["--", "--include-ignored"] => Some(harness::suite::Tier::All),
                _ => None,
            };
            if let Some(tier) = tier {
                let passed = harness::suite::run(tier, &image)?;
                std::process::exit(if passed { 0 } else { 1 });
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let st = Command::new(cargo)
                .args(["test", "--workspace"])
                .args(&args)
                .current_dir(harness::paths::repo_root())
                .status()
                .context("running cargo test")?;
            std::process::exit(st.code().unwrap_or(1));
        }
        Cmd::Scenario { name, short, case } => {
            setup::ensure_host()?;
            let select = if short {
                harness::scenario::Select::Short
            } else if !case.is_empty() {
                harness::scenario::Select::Named(case)
            } else {
                harness::scenario::Select::All
            };
            let outcomes = harness::scenario::run(&name, &select, &mut |o| {
                eprintln!(
                    "[scenario {name}] {}: runs {} after {:.0} s (boots: {})",
                    o.case,
                    o.version,
                    o.seconds,
                    o.boots.join(", ")
                )
            })?;
            println!("scenario {name}: {} cases held", outcomes.len());
        }
        Cmd::Bench { what } => {
            setup::ensure_host()?;
            match what {
                BenchCmd::Boot { n, smp, chart } => harness::bench::boot(n, smp, chart.as_deref())?,
                BenchCmd::Initrd { n } => harness::bench::initrd(n)?,
                BenchCmd::Services { n, smp } => harness::bench::services(n, smp)?,
                BenchCmd::Ram { lo, hi, step } => harness::bench::ram(lo, hi, step)?,
                BenchCmd::Report { out } => harness::bench::report(&out)?,
                BenchCmd::Crun { n } => harness::bench::crun(n)?,
                BenchCmd::Ssh { n, smp } => harness::bench::ssh(n, smp)?,
                BenchCmd::Console { n } => harness::bench::console(n)?,
                BenchCmd::Docker { n } => harness::bench::docker(n)?,
                BenchCmd::Network { n } => harness::bench::network(n)?,
                BenchCmd::Upgrade => harness::bench::upgrade()?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Cli, Cmd};
    use clap::Parser;

    #[test]
    fn build_takes_repeated_versions_and_refuses_a_bad_one_by_name() {
        let versions = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.cmd) {
            Ok(Cmd::Build { versions }) => Ok(versions),
            Ok(_) => panic!("{args:?}: not build"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(versions(&["harness", "build"]), Ok(vec![]));
        assert_eq!(
            versions(&["harness", "build", "--version", "v1", "--version", "v2"]),
            Ok(vec!["v1".to_string(), "v2".to_string()])
        );
        let e = versions(&["harness", "build", "--version", "v1", "--version", "../v2"]);
        assert!(e.unwrap_err().contains("version \"../v2\""));
    }
}
