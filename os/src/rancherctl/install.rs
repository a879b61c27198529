//! `rancherctl install -d DEV`: this system onto a disk (see `crate::install` for what is
//! written and in which order). Everything an install reads from the caller's view — the OS
//! image (`-i FILE|IMAGE`, or the one the ISO carries), the cloud-config (`-c`) — is read and
//! checked first; then the command enters PID 1's mount namespace (the console is a container
//! in the host's PID namespace), so that it sees the host's devices, mounts and the system
//! image store e2fsprogs runs from, and writes the disk.

use crate::bootstate;
use crate::install::{self, Options};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: rancherctl install -d DEV [-i FILE|IMAGE] [-c cloud-config.yml] [--append ARGS] [-f] [--no-reboot]

  -d DEV        the whole disk to install to (/dev/sda, /dev/vdb, /dev/nvme0n1)
  -i FILE|IMAGE the OS image: a `docker save` tar (dist/rancheros-os.tar) or an image reference
                through the user engine; default: the one this system was booted with (the ISO's)
  -c FILE       a cloud-config to install as the system's configuration (checked first)
  --append ARGS kernel arguments the installed system boots with (kept across upgrades)
  -f            erase a disk that holds data (what it holds is listed first)
  --no-reboot   stay in this system when done";

/// The OS image the ISO carries (its second initrd), for an install without `-i`.
pub const CARRIED_IMAGE: &str = "/usr/share/ros/install/rancheros-os.tar";

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut dev = None;
    let mut image = None;
    let mut config = None;
    let mut append = String::new();
    let mut force = false;
    let mut reboot = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| -> anyhow::Result<String> {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs {what}\n{USAGE}"))
        };
        match a.as_str() {
            "-d" | "--device" => dev = Some(PathBuf::from(value("a device")?)),
            "-i" | "--image" => image = Some(value("an image")?),
            "-c" | "--config" => config = Some(value("a file")?),
            "--append" | "-a" => append = value("kernel arguments")?,
            "-f" | "--force" => force = true,
            "--no-reboot" => reboot = false,
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let dev = dev.with_context(|| format!("-d DEV is needed\n{USAGE}"))?;
    let append = bootstate::append::check(&append)?;
    let config = match config {
        Some(file) => Some(read_config(&file)?),
        None => None,
    };
    let image = image.unwrap_or_else(|| CARRIED_IMAGE.to_string());
    if image == CARRIED_IMAGE && !Path::new(CARRIED_IMAGE).exists() {
        bail!("no -i FILE|IMAGE, and this system carries no OS image (the ISO does): give -i");
    }
    let opts = Options {
        dev,
        config,
        append,
        force,
    };
    // Before the image is read (it can take a while): is the disk one an install may take?
    enter_host_mounts()?;
    install::plan(&opts)?;
    let files = super::os::read_image(&image)?;
    println!(
        "installing {} from {image} on {}",
        files.version,
        opts.dev.display()
    );
    let tools = fs_tools()?;
    let started = std::time::Instant::now();
    install::install(&opts, &files, &tools, &mut |s| println!("  {s}"))?;
    println!(
        "installed {} on {} in {:.1} s",
        files.version,
        opts.dev.display(),
        started.elapsed().as_secs_f64()
    );
    super::os::finish(reboot)
}

/// The cloud-config text of `file`, refused (with every problem listed) unless it checks.
fn read_config(file: &str) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the cloud-config {file}"))?;
    let checked = crate::config::validate::check_text(file, &text);
    for w in &checked.warnings {
        eprintln!("warning: {w}");
    }
    if !checked.errors.is_empty() {
        let all: Vec<String> = checked.errors.iter().map(|e| e.to_string()).collect();
        bail!(
            "{file}: {} error(s), nothing written:\n{}",
            all.len(),
            all.join("\n")
        );
    }
    Ok((file.to_string(), text))
}

/// Join PID 1's mount namespace, if this process is not in it already.
fn enter_host_mounts() -> anyhow::Result<()> {
    let mine = std::fs::read_link("/proc/self/ns/mnt").context("reading /proc/self/ns/mnt")?;
    let host = std::fs::read_link("/proc/1/ns/mnt")
        .context("reading /proc/1/ns/mnt (install needs root, in the host's PID namespace)")?;
    if mine == host {
        return Ok(());
    }
    let ns = std::fs::File::open("/proc/1/ns/mnt").context("opening /proc/1/ns/mnt")?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
        .context("entering the host's mount namespace")?;
    std::env::set_current_dir("/").context("chdir /")?;
    Ok(())
}

/// e2fsprogs from the system image store (the state step's tools).
fn fs_tools() -> anyhow::Result<crate::state::tools::ImageTools> {
    use crate::engine::store::Store;
    use crate::state::tools;
    let store = Store::open(Store::SYSTEM_ROOT)
        .with_context(|| format!("the system image store {}", Store::SYSTEM_ROOT))?;
    let img = store
        .resolve(tools::IMAGE)
        .with_context(|| format!("image {}", tools::IMAGE))?;
    Ok(tools::ImageTools::new(store.lower_dirs(&img)?))
}
