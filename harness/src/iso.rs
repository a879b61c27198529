//! `dist/rancheros.iso`: a hybrid ISO (El Torito for BIOS, an EFI image for UEFI, and a disk
//! image's MBR/GPT so it can be written to a USB stick) made by `grub-mkrescue` (GRUB's i386-pc
//! and x86_64-efi files, xorriso and mtools; no root, no loop device). It boots the same kernel
//! and initrd as the disk, from RAM, with a second initrd, `install.img`, that puts the OS
//! image (`dist/rancheros-os.tar`) at `/usr/share/ros/install/rancheros-os.tar`: what
//! `rancherctl install -d DEV` installs when it is given no `-i`. The system booted from the
//! ISO formats no disk by itself (`rancher.state.autoformat=[]`): the disks are the user's
//! until they install.

use crate::initrd::cpio::{Archive, Entry};
use anyhow::{bail, Context};
use std::path::Path;
use std::process::Command;

/// What the ISO's GRUB needs beyond its core: read the CD, run `grub.cfg` on the serial line,
/// load Linux.
const ISO_MODULES: &[&str] = &[
    "linux",
    "normal",
    "configfile",
    "iso9660",
    "part_gpt",
    "part_msdos",
    "fat",
    "serial",
    "terminal",
    "echo",
    "search",
];

/// The ISO's volume label.
pub const VOLUME: &str = "RANCHEROS";

/// Where the OS image lands in the booted system (`rancherctl install`'s default `-i`).
pub const CARRIED_IMAGE: &str = "/usr/share/ros/install/rancheros-os.tar";

/// The kernel line of the ISO's one entry.
pub fn cmdline() -> String {
    format!("{} rancher.state.autoformat=[]", crate::diskimage::CMDLINE)
}

fn grub_cfg(version: &str) -> String {
    format!(
        r#"# RancherOS-rs {version}, from the ISO (written by harness build; see harness/src/iso.rs).
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
echo "RancherOS-rs {version}: booting from the ISO (rancherctl install -d DEV installs it)"
linux /boot/vmlinuz {}
initrd /boot/initrd.img /boot/install.img
boot
"#,
        cmdline()
    )
}

/// Build the ISO of `kernel`, `initrd` and the OS image tar `os_tar` (version `version`).
pub fn build(
    kernel: &Path,
    initrd: &Path,
    os_tar: &Path,
    version: &str,
    out: &Path,
) -> anyhow::Result<()> {
    for tool in ["grub-mkrescue", "xorriso", "mformat"] {
        if crate::diskimage::which(tool).is_none() {
            bail!(
                "{tool} is missing: `cargo harness setup` installs grub-common, xorriso and mtools"
            );
        }
    }
    let work = tempfile::tempdir().context("a work directory")?;
    let root = work.path().join("iso");
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("grub")).context("mkdir boot/grub")?;
    std::fs::copy(kernel, boot.join("vmlinuz"))
        .with_context(|| format!("copying {}", kernel.display()))?;
    std::fs::copy(initrd, boot.join("initrd.img"))
        .with_context(|| format!("copying {}", initrd.display()))?;
    let mut cpio = Archive::default();
    cpio.add(
        CARRIED_IMAGE,
        Entry::File {
            mode: 0o644,
            data: std::fs::read(os_tar).with_context(|| format!("reading {}", os_tar.display()))?,
        },
    );
    let mut bytes = Vec::new();
    cpio.write_to(&mut bytes).context("writing install.img")?;
    std::fs::write(boot.join("install.img"), bytes).context("writing install.img")?;
    std::fs::write(boot.join("grub/grub.cfg"), grub_cfg(version)).context("writing grub.cfg")?;
    let tmp = out.with_extension("iso.tmp");
    // Only the modules grub.cfg needs (and theirs), no locales, fonts or themes, xz: 4 MB of
    // GRUB rather than 20.
    let o = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&tmp)
        .arg(format!("--install-modules={}", ISO_MODULES.join(" ")))
        .args(["--locales=", "--fonts=", "--themes=", "--compress=xz"])
        .arg(&root)
        .args(["--", "-volid", VOLUME])
        .output()
        .context("running grub-mkrescue")?;
    if !o.status.success() {
        bail!(
            "grub-mkrescue failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    Ok(())
}
