//! `rancherctl os upgrade` and `rollback`: the other slot written and verified, then the boot
//! state switched in one sector write. Three writes, each leaving a machine that boots:
//!
//! 1. the target slot is made unbootable (`*_OK=0`, `*_TRY=0`): a power cut while it is
//!    written leaves GRUB on the booted slot, and no fallback lands on half a slot;
//! 2. its files are written (each to a temporary name, fsynced, renamed, the directory
//!    fsynced; the manifest last), then read back from the disk and compared;
//! 3. `ORDER` puts it first with one trial boot (`*_TRY=1`) and its kernel arguments (the
//!    booted slot's, or `--append`'s: see `append`): GRUB boots it once; unless its health gate
//!    marks it good (see `health`), the boot after is the old slot again.
//!
//! An upgrade is refused from a slot on trial: it would overwrite the only known-good one.

use super::osimage::SlotFiles;
use super::{find_esp, grubenv, with_mounted, GRUBENV};
use crate::state::device::{self, BlockDevices, DeviceSpec};
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// `SLOT_A` → (`A`, `B`, `SLOT_B`).
fn keys(booted: &str) -> anyhow::Result<(&'static str, &'static str, &'static str)> {
    match booted {
        "SLOT_A" => Ok(("A", "B", "SLOT_B")),
        "SLOT_B" => Ok(("B", "A", "SLOT_A")),
        other => bail!("{other:?} is not a slot (SLOT_A or SLOT_B)"),
    }
}

fn update_state(
    devs: &dyn BlockDevices,
    f: impl FnOnce(&mut grubenv::Env),
) -> anyhow::Result<grubenv::Env> {
    let esp = find_esp(devs).context("no ESP (a FAT32 file system labelled EFI)")?;
    with_mounted(&esp, "vfat", false, |dir| {
        Ok(grubenv::update(&dir.join(GRUBENV), f)?)
    })
}

/// Write `files` into the slot other than `booted` and make it the next boot, on trial, with
/// `append` as its own kernel arguments (`None`: the booted slot's). Returns the slot written
/// and the boot state after.
pub fn upgrade(
    devs: &dyn BlockDevices,
    booted: &str,
    files: &SlotFiles,
    append: Option<&str>,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<(String, grubenv::Env)> {
    let (me, other, target) = keys(booted)?;
    let state = super::read_state(devs)?;
    let append = match append {
        Some(a) => super::append::check(a)?,
        None => state
            .get(&format!("{me}_APPEND"))
            .unwrap_or_default()
            .to_string(),
    };
    if state.get(&format!("{me}_OK")) != Some("1") {
        bail!(
            "{booted} is on trial ({me}_OK is not 1): it must be marked good (its health gate, or \
             `rancherctl os mark-good`) before an upgrade overwrites {target}, the known-good slot"
        );
    }
    update_state(devs, |e| {
        e.set(&format!("{other}_OK"), "0");
        e.set(&format!("{other}_TRY"), "0");
    })
    .context("boot state: taking the target slot out of the boot order")?;
    say(format!("{target}: out of the boot order"));
    write_slot(devs, target, files, say)?;
    let env = update_state(devs, |e| {
        e.set("ORDER", &format!("{other} {me}"));
        e.set(&format!("{other}_TRY"), "1");
        e.set(&format!("{other}_APPEND"), &append);
    })
    .context("boot state: switching to the new slot")?;
    let record = super::trial::Trial {
        slot: target.to_string(),
        version: files.version.clone(),
        stage: super::trial::Stage::Written,
        why: None,
    };
    if let Err(e) = super::record_trial(devs, &record) {
        say(format!(
            "the trial record: {e:#} (only a diagnosis: the upgrade stands)"
        ));
    }
    Ok((target.to_string(), env))
}

/// Make the other slot the next boot again, if it was ever good.
pub fn rollback(
    devs: &dyn BlockDevices,
    booted: &str,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<(String, grubenv::Env)> {
    let (me, other, target) = keys(booted)?;
    let state = super::read_state(devs)?;
    if state.get(&format!("{other}_OK")) != Some("1") {
        bail!("{target} was never marked good: there is nothing to roll back to");
    }
    // The one write below is the commit; until it lands, the booted slot stays first.
    say(format!("rolling back to {target}"));
    let env = update_state(devs, |e| e.set("ORDER", &format!("{other} {me}")))?;
    // Then the known-good slot GRUB falls back on (a boot state that will not load) is the
    // one rolled back to; should this fail, the other is good too, only not the one chosen.
    let append = env.get(&format!("{other}_APPEND")).unwrap_or_default();
    if let Err(e) = super::name_good(devs, other, append) {
        say(format!("{}: {e:#} (the rollback stands)", super::GOODENV));
    }
    Ok((target.to_string(), env))
}

/// Write the slot's files and read them back from the disk.
fn write_slot(
    devs: &dyn BlockDevices,
    label: &str,
    files: &SlotFiles,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let dev = device::find(devs, &DeviceSpec::Label(label.to_string()))
        .with_context(|| format!("no partition labelled {label}"))?;
    write_slot_at(&dev, label, files, say)
}

/// Write the slot's files into the ext4 file system on `dev` (the slot `label`) and read them
/// back from the disk; `say` hears of each file written (the power-cut scenarios cut there).
pub fn write_slot_at(
    dev: &Path,
    label: &str,
    files: &SlotFiles,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let dev = dev.to_path_buf();
    with_mounted(&dev, "ext4", false, |dir| {
        for (name, data) in files.files() {
            write_file(dir, name, data).with_context(|| format!("{label}: writing {name}"))?;
            say(format!("{label}: {name} written"));
        }
        Ok(())
    })?;
    // What is read next comes from the disk, not from the page cache of the write.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    with_mounted(&dev, "ext4", true, |dir| {
        for (name, data) in files.files() {
            let got = std::fs::read(dir.join(name))
                .with_context(|| format!("{label}: reading {name} back"))?;
            if Sha256::digest(&got) != Sha256::digest(data) {
                bail!("{label}: {name} reads back otherwise than it was written");
            }
        }
        Ok(())
    })?;
    say(format!("{label}: read back as written"));
    Ok(())
}

/// `dir/name` written whole or not at all: a temporary name, fsynced, renamed, the directory
/// fsynced.
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.new"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).with_context(|| format!("renaming {}", tmp.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))?;
    Ok(())
}
