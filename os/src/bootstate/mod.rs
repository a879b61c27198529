//! The A/B boot state seen from the running system (the disk layout and GRUB's side are in
//! `harness/src/diskimage.rs`): which slot this boot came from (`rancher.boot.slot`, given by
//! GRUB), the version in it (`manifest.json` at the slot's root), and the boot state on the ESP
//! (`grub/grubenv`: `ORDER`, `A_OK`, `A_TRY`, `B_OK`, `B_TRY`), which [`mark_good`] changes so
//! that a slot on trial stays the one booted.
//!
//! The ESP is found by its FAT volume label (`EFI`), the slots by their ext4 labels (`SLOT_A`,
//! `SLOT_B`), each mounted for the moment it is needed on a private directory and unmounted.
//!
//! Beside the boot state, `grub/goodenv` names the slot last marked good (`GOOD`, with its
//! kernel arguments `GOOD_APPEND`): GRUB boots that slot when the boot state will not load
//! (zeroed, truncated, not a block), and the health gate then rebuilds the boot state around
//! the slot booted ([`repair`]), the one thing known to work.

pub mod append;
pub mod grubenv;
pub mod health;
pub mod osimage;
pub mod releases;
pub mod tags;
pub mod trial;
pub mod upgrade;
pub mod watchdog;

use crate::state::device::{self, BlockDevices, DeviceSpec};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The ESP's FAT volume label.
pub const ESP_LABEL: &str = "EFI";
/// The boot state's path on the ESP.
pub const GRUBENV: &str = "grub/grubenv";
/// The slot last marked good, on the ESP (another one-sector GRUB environment block).
pub const GOODENV: &str = "grub/goodenv";

/// The FAT volume label of `dev` (FAT32: 11 bytes at 0x47, the type at 0x52), trimmed.
pub fn fat32_label(devs: &dyn BlockDevices, dev: &Path) -> Option<String> {
    let b = devs.read_at(dev, 0, 512).ok()?;
    if b.len() < 512 || &b[0x52..0x5a] != b"FAT32   " || b[510..512] != [0x55, 0xaa] {
        return None;
    }
    // mkfs.vfat pads with spaces, busybox's mkdosfs with NULs.
    Some(
        String::from_utf8_lossy(&b[0x47..0x52])
            .trim_end_matches([' ', '\0'])
            .to_string(),
    )
}

/// The ESP: the FAT32 file system labelled [`ESP_LABEL`].
pub fn find_esp(devs: &dyn BlockDevices) -> Option<PathBuf> {
    devs.list()
        .into_iter()
        .find(|d| fat32_label(devs, d).as_deref() == Some(ESP_LABEL))
}

/// The slot this system booted from, as GRUB said on the kernel command line.
pub fn booted_slot(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rancher.boot.slot="))
        .filter(|s| matches!(*s, "SLOT_A" | "SLOT_B"))
        .map(str::to_string)
}

/// Run `f` with `dev` (file system `fstype`) mounted on a private directory.
pub fn with_mounted<T>(
    dev: &Path,
    fstype: &str,
    read_only: bool,
    f: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    // A writer holds the device's lock from mount to unmount: the ESP's blocks are read,
    // changed and written whole (the gate marking a slot good, a rollback, an upgrade's
    // commit), and two at once would lose one's change. The node is devtmpfs's, the same inode
    // from the host and from the console container.
    let _lock = if read_only {
        None
    } else {
        let f = std::fs::File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
        crate::engine::store::sys::flock_exclusive(&f)
            .with_context(|| format!("locking {}", dev.display()))?;
        Some(f)
    };
    let dir = PathBuf::from(format!("/run/ros/mnt-{}-{}", std::process::id(), fstype));
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(Some(dev), &dir, Some(fstype), flags, None::<&str>)
        .with_context(|| format!("mounting {} ({fstype}) on {}", dev.display(), dir.display()))?;
    let r = f(&dir);
    let u = umount2(&dir, MntFlags::empty());
    let _ = std::fs::remove_dir(&dir);
    let out = r?;
    u.with_context(|| format!("unmounting {}", dir.display()))?;
    Ok(out)
}

/// The version in slot `label` (its `manifest.json`).
pub fn slot_version(devs: &dyn BlockDevices, label: &str) -> anyhow::Result<String> {
    let dev = device::find(devs, &DeviceSpec::Label(label.to_string()))
        .with_context(|| format!("no partition labelled {label}"))?;
    with_mounted(&dev, "ext4", true, |dir| {
        let path = dir.join("manifest.json");
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("{label}: reading manifest.json"))?,
        )
        .with_context(|| format!("{label}: manifest.json"))?;
        Ok(v["version"].as_str().unwrap_or("unknown").to_string())
    })
}

/// The kernel arguments GRUB gave after `rancher.boot.slot=…` (the slot's `*_APPEND`), up to
/// init's `--`.
pub fn booted_append(cmdline: &str) -> String {
    cmdline
        .split_whitespace()
        .skip_while(|w| !w.starts_with("rancher.boot.slot="))
        .skip(1)
        .take_while(|w| *w != "--")
        .collect::<Vec<_>>()
        .join(" ")
}

fn slot_key(slot: &str) -> anyhow::Result<(&'static str, &'static str)> {
    match slot {
        "SLOT_A" => Ok(("A", "B")),
        "SLOT_B" => Ok(("B", "A")),
        other => bail!("{other:?} is not a slot (SLOT_A or SLOT_B)"),
    }
}

/// Mark `slot` good: its `*_OK=1` and `*_TRY=0`, written in place on the ESP, then
/// `goodenv` names it if it boots next (first in `ORDER`). Returns the boot state after.
pub fn mark_good(devs: &dyn BlockDevices, slot: &str) -> anyhow::Result<grubenv::Env> {
    let (key, _) = slot_key(slot)?;
    let esp = find_esp(devs).context("no ESP (a FAT32 file system labelled EFI)")?;
    with_mounted(&esp, "vfat", false, |dir| {
        let env = grubenv::update(&dir.join(GRUBENV), |e| {
            e.set(&format!("{key}_OK"), "1");
            e.set(&format!("{key}_TRY"), "0");
        })?;
        // goodenv names the good slot that boots next: after a rollback made during this
        // trial, that is the slot rolled back to, which goodenv already names.
        if env.get("ORDER").and_then(|o| o.split_whitespace().next()) == Some(key) {
            let append = env.get(&format!("{key}_APPEND")).unwrap_or_default();
            write_good(dir, key, append)?;
        }
        Ok(env)
    })
}

/// Make `goodenv` name `key` (`A` or `B`) with its kernel arguments `append`: after a rollback
/// the slot rolled back to is the known-good one GRUB falls back on.
pub fn name_good(devs: &dyn BlockDevices, key: &str, append: &str) -> anyhow::Result<()> {
    let esp = find_esp(devs).context("no ESP (a FAT32 file system labelled EFI)")?;
    with_mounted(&esp, "vfat", false, |dir| write_good(dir, key, append))
}

/// `goodenv` naming `key` (updated in place; made whole when it is missing or broken).
fn write_good(esp: &Path, key: &str, append: &str) -> anyhow::Result<()> {
    let path = esp.join(GOODENV);
    let updated = grubenv::update(&path, |e| {
        e.set("GOOD", key);
        e.set("GOOD_APPEND", append);
    });
    if updated.is_ok() {
        return Ok(());
    }
    let mut e = grubenv::Env::default();
    e.set("GOOD", key);
    e.set("GOOD_APPEND", append);
    replace_block(esp, GOODENV, &e)
}

/// `rel` on the ESP replaced whole by a new one-sector block of `env`: a temporary file,
/// fsynced, renamed over it, the directory fsynced. Only for a block that is missing or
/// broken; a good one is changed in place ([`grubenv::update`]).
fn replace_block(esp: &Path, rel: &str, env: &grubenv::Env) -> anyhow::Result<()> {
    let block = env.render(512, rel)?;
    let path = esp.join(rel);
    let dir = path.parent().context("a block in a directory")?;
    let name = path
        .file_name()
        .context("a block's file name")?
        .to_string_lossy()
        .into_owned();
    upgrade::write_file(dir, &name, &block)
}

/// Rebuild an unreadable boot state around `slot`, the one booted (GRUB booted it as the
/// known-good one): it first and good with the arguments it booted with, the other slot not
/// bootable until it is written again (nothing is known of it). Returns the boot state.
pub fn repair(devs: &dyn BlockDevices, slot: &str, append: &str) -> anyhow::Result<grubenv::Env> {
    let (me, other) = slot_key(slot)?;
    let append = append::check(append)?;
    let esp = find_esp(devs).context("no ESP (a FAT32 file system labelled EFI)")?;
    let mut e = grubenv::Env::default();
    for (k, v) in [
        ("ORDER".to_string(), format!("{me} {other}")),
        (format!("{me}_OK"), "1".into()),
        (format!("{me}_TRY"), "0".into()),
        (format!("{other}_OK"), "0".into()),
        (format!("{other}_TRY"), "0".into()),
        (format!("{me}_APPEND"), append.clone()),
        (format!("{other}_APPEND"), String::new()),
    ] {
        e.set(&k, &v);
    }
    with_mounted(&esp, "vfat", false, |dir| {
        replace_block(dir, GRUBENV, &e)?;
        write_good(dir, me, &append)
    })?;
    Ok(e)
}

/// Replace the trial record on the ESP (a diagnosis only: see `trial`).
pub fn record_trial(devs: &dyn BlockDevices, t: &trial::Trial) -> anyhow::Result<()> {
    let esp = find_esp(devs).context("no ESP (a FAT32 file system labelled EFI)")?;
    with_mounted(&esp, "vfat", false, |dir| trial::write(dir, t))
}

/// The trial record, if there is one.
pub fn read_trial(devs: &dyn BlockDevices) -> Option<trial::Trial> {
    let esp = find_esp(devs)?;
    with_mounted(&esp, "vfat", true, |dir| Ok(trial::read(dir)))
        .ok()
        .flatten()
}

/// The boot state as it is.
pub fn read_state(devs: &dyn BlockDevices) -> anyhow::Result<grubenv::Env> {
    let esp = find_esp(devs).context("no ESP (a FAT32 file system labelled EFI)")?;
    with_mounted(&esp, "vfat", true, |dir| {
        Ok(grubenv::read(&dir.join(GRUBENV))?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_arguments_are_those_after_the_slot() {
        assert_eq!(
            booted_append("console=ttyS0 panic=10 rancher.boot.slot=SLOT_B a=1 rancher.debug -- x"),
            "a=1 rancher.debug"
        );
        assert_eq!(booted_append("console=ttyS0 rancher.boot.slot=SLOT_A"), "");
        assert_eq!(booted_append("console=ttyS0"), "");
    }

    #[test]
    fn the_booted_slot_is_only_what_grub_can_say() {
        assert_eq!(
            booted_slot("console=ttyS0 rancher.boot.slot=SLOT_B panic=10").as_deref(),
            Some("SLOT_B")
        );
        assert_eq!(booted_slot("rancher.boot.slot=../../x"), None);
        assert_eq!(booted_slot("console=ttyS0"), None);
    }

    struct OneDisk(Vec<u8>);

    impl BlockDevices for OneDisk {
        fn list(&self) -> Vec<PathBuf> {
            vec!["/dev/vda1".into(), "/dev/vda2".into()]
        }
        fn read_at(&self, dev: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            if dev == Path::new("/dev/vda2") {
                let o = offset as usize;
                Ok(self.0[o.min(self.0.len())..(o + len).min(self.0.len())].to_vec())
            } else {
                Ok(vec![0; len])
            }
        }
    }

    #[test]
    fn the_esp_is_found_by_its_fat32_label() {
        let mut boot = vec![0u8; 512];
        boot[0x47..0x52].copy_from_slice(b"EFI        ");
        boot[0x52..0x5a].copy_from_slice(b"FAT32   ");
        boot[510] = 0x55;
        boot[511] = 0xaa;
        assert_eq!(find_esp(&OneDisk(boot.clone())), Some("/dev/vda2".into()));
        boot[0x47..0x52].copy_from_slice(b"EFI\0\0\0\0\0\0\0\0");
        assert_eq!(find_esp(&OneDisk(boot.clone())), Some("/dev/vda2".into()));
        boot[0x47..0x52].copy_from_slice(b"OTHER      ");
        assert_eq!(find_esp(&OneDisk(boot)), None);
    }
}
