//! `rancherctl install`: a blank disk (or one given up with `-f`) made into an installed
//! system from an OS image, from the running system (the ISO, or any boot from RAM):
//!
//! 1. the target is looked at (`disk`) and the image read and checked whole *before* anything
//!    is written; a disk holding data is refused unless `-f`, with what it holds named;
//! 2. the partition table (`gpt`: BIOS boot, ESP, SLOT_A, SLOT_B, RANCHER_STATE filling the
//!    rest), GRUB's BIOS stages (`bios`) and, on the ESP (FAT32 by busybox's `mkdosfs`), GRUB
//!    for UEFI, its `grub.cfg` and the boot state — slot A good, with the `--append` kernel
//!    arguments as `A_APPEND` (see `bootstate::append`) — and `goodenv` naming slot A;
//! 3. both slots made (ext4, e2fsprogs from the system image), slot A written and read back
//!    exactly as an upgrade writes a slot (`bootstate::upgrade::write_slot_at`);
//! 4. the state partition made and the `-c` cloud-config (checked first) put where the OS
//!    configuration lives (`/var/lib/rancher/conf/cloud-config.yml` on it).
//!
//! The layout and GRUB are the ones `dist/rancheros.img` has (`harness/src/diskimage.rs`): the
//! installed disk boots under SeaBIOS and UEFI the same way, and upgrades like it.

pub mod bios;
pub mod disk;
pub mod gpt;

use crate::bootstate::osimage::SlotFiles;
use crate::bootstate::{grubenv, upgrade, with_mounted, GOODENV, GRUBENV};
use crate::state::tools::FsTools;
use anyhow::{bail, Context};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to install, where, and how.
pub struct Options {
    pub dev: PathBuf,
    /// The cloud-config to install: its name (for messages) and its text, already checked.
    pub config: Option<(String, String)>,
    /// Kernel arguments for slot A (already checked: `bootstate::append::check`).
    pub append: String,
    pub force: bool,
}

/// Where the installed configuration goes, relative to the state partition's root.
const CONFIG: &str = "var/lib/rancher/conf/cloud-config.yml";

/// What a partition holds, in a few words (`ext4 "SLOT_A"`, `vfat "EFI"`).
fn describe(dev: &Path) -> String {
    use crate::state::device::{superblock_of, SysBlock};
    if let Some(sb) = superblock_of(&SysBlock, dev) {
        return format!("ext4 {:?}", sb.label);
    }
    if let Some(l) = crate::bootstate::fat32_label(&SysBlock, dev) {
        return format!("vfat {l:?}");
    }
    String::new()
}

/// Look at the target: refuses what an install must not touch.
pub fn plan(opts: &Options) -> anyhow::Result<(disk::Disk, Vec<gpt::Part>)> {
    let d = disk::inspect(&opts.dev, &describe)?;
    d.check(opts.force)?;
    let parts = gpt::layout(d.bytes).with_context(|| opts.dev.display().to_string())?;
    Ok((d, parts))
}

/// Install `image` as `opts` says; `say` gets each step.
pub fn install(
    opts: &Options,
    image: &SlotFiles,
    tools: &dyn FsTools,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let boot = image.boot.as_ref().context(
        "the OS image has no bootloader pieces (boot/boot.img, core.img, bootx64.efi, grub.cfg)",
    )?;
    let (d, parts) = plan(opts)?;
    let dev = opts.dev.display().to_string();
    if d.blank {
        say(format!("{dev}: blank, {} MiB", d.bytes >> 20));
    } else {
        say(format!("{dev}: erasing {} (-f)", d.holds()));
    }

    // 1. The partition table and GRUB's BIOS stages, through an exclusive open (refused by the
    //    kernel while anything of the disk is mounted).
    let bios_sector = parts[0].first;
    let mut guids = Vec::new();
    for _ in 0..=parts.len() {
        let mut r = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|f| {
                use std::io::Read;
                (&f).read_exact(&mut r)
            })
            .context("reading /dev/urandom")?;
        guids.push(gpt::random_guid(r));
    }
    let table = gpt::table(
        &parts,
        d.bytes,
        &bios::boot_code(&boot.boot_img, bios_sector),
        &guids,
    );
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_EXCL)
            .open(&opts.dev)
            .with_context(|| format!("opening {dev} exclusively"))?;
        let zeros = vec![0u8; 1 << 20];
        let io = |what: &str| format!("{dev}: writing {what}");
        f.write_all_at(&zeros, 0).with_context(|| io("zeros"))?;
        f.write_all_at(&zeros, d.bytes - zeros.len() as u64)
            .with_context(|| io("zeros"))?;
        // Each partition's first MiB: no old file system is found there by its label.
        for p in &parts {
            f.write_all_at(&zeros, p.offset())
                .with_context(|| io(p.name))?;
        }
        f.write_all_at(&table.head, 0)
            .with_context(|| io("the GPT"))?;
        f.write_all_at(&table.tail, table.tail_offset)
            .with_context(|| io("the backup GPT"))?;
        f.write_all_at(
            &bios::core_img(&boot.core_img, bios_sector),
            parts[0].offset(),
        )
        .with_context(|| io("core.img"))?;
        f.sync_all().with_context(|| format!("fsync {dev}"))?;
    }
    say(format!(
        "{dev}: GPT written ({})",
        parts
            .iter()
            .map(|p| format!("{} {} MiB", p.name, p.bytes() >> 20))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    reread_partitions(&opts.dev)?;
    let nodes = wait_partitions(&d, parts.len())?;

    // 2. The ESP: GRUB for UEFI, its configuration, the boot state.
    run(
        Command::busybox(&["mkdosfs", "-n", crate::bootstate::ESP_LABEL]),
        &nodes[1],
    )?;
    let mut env = grubenv::Env::default();
    for (k, v) in [
        ("ORDER", "A B"),
        ("A_OK", "1"),
        ("A_TRY", "0"),
        ("B_OK", "0"),
        ("B_TRY", "0"),
        ("A_APPEND", opts.append.as_str()),
        ("B_APPEND", ""),
    ] {
        env.set(k, v);
    }
    let block = env.render(512, GRUBENV)?;
    with_mounted(&nodes[1], "vfat", false, |dir| {
        for sub in ["EFI/BOOT", "grub"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("ESP: mkdir {sub}"))?;
        }
        upgrade::write_file(&dir.join("EFI/BOOT"), "BOOTX64.EFI", &boot.efi)?;
        upgrade::write_file(&dir.join("grub"), "grub.cfg", &boot.grub_cfg)?;
        upgrade::write_file(&dir.join("grub"), "grubenv", &block)?;
        let mut good = grubenv::Env::default();
        good.set("GOOD", "A");
        good.set("GOOD_APPEND", &opts.append);
        upgrade::write_file(&dir.join("grub"), "goodenv", &good.render(512, GOODENV)?)?;
        Ok(())
    })
    .context("ESP")?;
    say(format!("{}: ESP (GRUB, boot state)", nodes[1].display()));

    // 3. The slots.
    for (node, label) in [(&nodes[2], "SLOT_A"), (&nodes[3], "SLOT_B")] {
        tools.mkfs(node, label)?;
    }
    upgrade::write_slot_at(&nodes[2], "SLOT_A", image, &mut |_| {})?;
    say(format!(
        "{}: SLOT_A holds {} (written, read back)",
        nodes[2].display(),
        image.version
    ));

    // 4. The state partition, with the configuration.
    tools.mkfs(&nodes[4], crate::state::format::LABEL)?;
    if let Some((name, text)) = &opts.config {
        with_mounted(&nodes[4], "ext4", false, |root| {
            let path = root.join(CONFIG);
            let dir = path.parent().expect("a file under a directory");
            std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
            crate::config::atomic::write_atomic(&path, text.as_bytes(), 0o600)
                .with_context(|| format!("writing {CONFIG}"))?;
            Ok(())
        })
        .context("state partition")?;
        say(format!(
            "{}: RANCHER_STATE, with {name} as /{CONFIG}",
            nodes[4].display()
        ));
    } else {
        say(format!("{}: RANCHER_STATE", nodes[4].display()));
    }
    nix::unistd::sync();
    Ok(())
}

/// A command line for a tool in the system (busybox's applets).
struct Command(std::process::Command);

impl Command {
    fn busybox(args: &[&str]) -> Command {
        let mut c = std::process::Command::new("busybox");
        c.args(args);
        Command(c)
    }
}

fn run(mut c: Command, dev: &Path) -> anyhow::Result<()> {
    let out =
        c.0.arg(dev)
            .output()
            .with_context(|| format!("running {:?}", c.0))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            c.0,
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

nix::ioctl_none!(blkrrpart, 0x12, 95);

/// Tell the kernel to read the new table (BLKRRPART).
fn reread_partitions(dev: &Path) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    // SAFETY: BLKRRPART takes no argument; the fd is an open block device for the call.
    unsafe { blkrrpart(f.as_raw_fd()) }
        .with_context(|| format!("{}: re-reading the partition table", dev.display()))?;
    Ok(())
}

/// The nodes of partitions 1..=n, once the kernel has made them (devtmpfs).
fn wait_partitions(d: &disk::Disk, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes: Vec<Option<PathBuf>> = (1..=n as u32).map(|i| d.partition(i)).collect();
        if nodes.iter().all(Option::is_some) {
            return Ok(nodes.into_iter().flatten().collect());
        }
        if Instant::now() > deadline {
            bail!(
                "{}: the kernel did not show partitions 1 to {n} within 10 s",
                d.dev.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
