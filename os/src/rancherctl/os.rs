//! `rancherctl os`: the installed system's slots. `version` says which slot this boot came
//! from, the version in it, and the boot state GRUB walks; `mark-good` records that the booted
//! slot works (its `*_OK=1`), so that GRUB keeps booting it rather than using up its trial
//! boots and going back to the other slot. Both need root (they mount the ESP and the slot).

use crate::bootstate;
use crate::state::device::SysBlock;
use anyhow::Context;

const USAGE: &str = "usage: rancherctl os version | mark-good";

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
        _ => anyhow::bail!("{USAGE}"),
    }
}
