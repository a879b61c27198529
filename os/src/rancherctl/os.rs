//! `rancherctl os`: the installed system's slots. `version` says which slot this boot came
//! from, the version in it, and the boot state GRUB walks; `mark-good` records that the booted
//! slot works (its `*_OK=1`), so that GRUB keeps booting it rather than using up its trial
//! boots and going back to the other slot (the health gate does it by itself); `upgrade -i
//! FILE` writes an OS image (`dist/rancheros-os.tar`) into the other slot and makes it the
//! next boot, on trial (see `bootstate::upgrade`); `rollback` makes the other slot the next
//! boot again if it was ever good. All need root (they mount the ESP and the slots).

use crate::bootstate;
use crate::state::device::SysBlock;
use anyhow::Context;

const USAGE: &str =
    "usage: rancherctl os version | mark-good | upgrade -i FILE [--no-reboot] | rollback [--no-reboot]";

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    let slot = bootstate::booted_slot(&cmdline);
    match args.first().map(String::as_str) {
        Some("version") => {
            let Some(slot) = slot else {
                println!(
                    "version: {} (not booted from a slot: no rancher.boot.slot)",
                    env!("CARGO_PKG_VERSION")
                );
                return Ok(());
            };
            let version = bootstate::slot_version(&SysBlock, &slot)?;
            println!("version: {version}");
            println!("slot: {slot}");
            match bootstate::read_state(&SysBlock) {
                Ok(env) => println!("boot state: {}", env.summary()),
                Err(e) => println!("boot state: unreadable: {e:#}"),
            }
            Ok(())
        }
        Some("mark-good") => {
            let slot = slot.context("this boot did not come from a slot (no rancher.boot.slot)")?;
            let env = bootstate::mark_good(&SysBlock, &slot)?;
            println!("{slot} marked good; boot state: {}", env.summary());
            Ok(())
        }
        Some("upgrade") => {
            let slot = slot.context("this boot did not come from a slot (no rancher.boot.slot)")?;
            let mut file = None;
            let mut reboot = true;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-i" | "--image" => file = it.next().cloned(),
                    "--no-reboot" => reboot = false,
                    other => anyhow::bail!("upgrade: unknown argument {other:?}\n{USAGE}"),
                }
            }
            let file = file.context("upgrade: -i FILE (an OS image tar) is needed")?;
            let files = bootstate::osimage::read(std::path::Path::new(&file))?;
            println!("upgrading to {} from {file}", files.version);
            let (target, env) = bootstate::upgrade::upgrade(&SysBlock, &slot, &files)?;
            println!(
                "{target} holds {} and boots next, on trial; boot state: {}",
                files.version,
                env.summary()
            );
            finish(reboot)
        }
        Some("rollback") => {
            let slot = slot.context("this boot did not come from a slot (no rancher.boot.slot)")?;
            let reboot = !args[1..].iter().any(|a| a == "--no-reboot");
            let (target, env) = bootstate::upgrade::rollback(&SysBlock, &slot)?;
            println!("{target} boots next; boot state: {}", env.summary());
            finish(reboot)
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}

/// Reboot now, or say that the change waits for the next boot.
fn finish(reboot: bool) -> anyhow::Result<()> {
    if reboot {
        println!("rebooting");
        super::power::request(super::power::Request::Reboot)
    } else {
        println!("the change takes effect at the next boot");
        Ok(())
    }
}
