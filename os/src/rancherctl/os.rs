//! `rancherctl os`: the installed system's slots. `version` says which slot this boot came
//! from, the version in it, and the boot state GRUB walks; `mark-good` records that the booted
//! slot works (its `*_OK=1`), so that GRUB keeps booting it rather than using up its trial
//! boots and going back to the other slot (the health gate does it by itself); `upgrade -i
//! FILE` writes an OS image (`dist/rancheros-os.tar`) into the other slot and makes it the
//! next boot, on trial (see `bootstate::upgrade`); `rollback` makes the other slot the next
//! boot again if it was ever good. All need root (they mount the ESP and the slots).
//!
//! `list` says which OS images there are to upgrade to: the release index
//! `rancher.upgrade.url` names (`bootstate::releases`), else, as RancherOS also did, the
//! versions among the tags of the repository `rancher.upgrade.image` names, asked of its
//! registry with the user engine's trust and insecure registries (`bootstate::tags`,
//! `engine::registry::tags`). Either way one is `current`, what `upgrade` without `-i` takes.

use crate::bootstate;
use crate::state::device::SysBlock;
use anyhow::Context;

const USAGE: &str = "usage: rancherctl os version | list | mark-good | upgrade [-i FILE|IMAGE] [--append ARGS] [-f] [--no-reboot] | rollback [--no-reboot]

  list     the OS images on offer: rancher.upgrade.url's index, else REPO:VERSION for every
           tag of rancher.upgrade.image (REPO) that is a version (1.2.3, 2.0.0-rc.1)
           (latest: the one an upgrade without -i takes; running: this one)
  upgrade  without -i: the index's current image, else the highest version tagged";

/// The user engine's socket, from the console and from the host.
const USER_ENGINE: [&str; 2] = ["/var/run/docker.sock", "/run/docker/docker.sock"];

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
            if let Some(t) = bootstate::read_trial(&SysBlock) {
                println!("last trial: {}", bootstate::trial::explain(&t, &slot));
            }
            Ok(())
        }
        Some("list") => {
            let (_, index) = releases()?;
            let running = slot
                .as_deref()
                .and_then(|s| bootstate::slot_version(&SysBlock, s).ok())
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
            for image in &index.available {
                let mut line = image.clone();
                if *image == index.current {
                    line.push_str(" latest");
                }
                if bootstate::releases::tag_version(image).as_deref() == Some(running.as_str()) {
                    line.push_str(" running");
                }
                println!("{line}");
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
            let mut append = None;
            let mut force = false;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-i" | "--image" => file = it.next().cloned(),
                    "--append" => {
                        append = Some(it.next().context("upgrade: --append ARGS")?.clone())
                    }
                    "-f" | "--force" => force = true,
                    "--no-reboot" => reboot = false,
                    other => anyhow::bail!("upgrade: unknown argument {other:?}\n{USAGE}"),
                }
            }
            let file = match file {
                Some(f) => f,
                None => {
                    let (url, index) = releases()?;
                    println!("{url}: current {}", index.current);
                    index.current
                }
            };
            if let Some(a) = &append {
                bootstate::append::check(a)?;
            }
            let files = read_image(&file)?;
            let running = bootstate::slot_version(&SysBlock, &slot)?;
            if files.version == running && !force {
                anyhow::bail!(
                    "{file} is version {running}, the one running: -f writes it to the other slot anyway"
                );
            }
            println!("upgrading to {} from {file}", files.version);
            let (target, env) = bootstate::upgrade::upgrade(
                &SysBlock,
                &slot,
                &files,
                append.as_deref(),
                &mut |s| println!("  {s}"),
            )?;
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
            let (target, env) =
                bootstate::upgrade::rollback(&SysBlock, &slot, &mut |s| println!("{s}"))?;
            println!("{target} boots next; boot state: {}", env.summary());
            finish(reboot)
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}

/// An OS image from a file (or a device holding its tar), else by reference through the user
/// engine.
pub(super) fn read_image(file: &str) -> anyhow::Result<bootstate::osimage::SlotFiles> {
    if std::path::Path::new(file).exists() {
        Ok(bootstate::osimage::read(std::path::Path::new(file))?)
    } else {
        from_engine(file)
    }
}

/// The releases on offer and where they came from: the index `rancher.upgrade.url` names,
/// fetched and checked, else the version tags of the repository `rancher.upgrade.image` names.
fn releases() -> anyhow::Result<(String, bootstate::releases::Releases)> {
    use crate::engine::registry::{config::SYSTEM_BUNDLE, tags, Registries};
    let (config, _) = crate::config::load_running();
    match bootstate::releases::source(&config.rancher.upgrade)? {
        bootstate::releases::Source::Index(url) => {
            let body = crate::cloudinit::http::get(&url, std::time::Duration::from_secs(30))?
                .with_context(|| format!("{url}: not found (404)"))?;
            Ok((url.clone(), bootstate::releases::parse(&body, &url)?))
        }
        bootstate::releases::Source::Tags(image) => {
            let (regs, warnings) = Registries::from_config(
                &config.rancher.docker,
                std::path::Path::new(SYSTEM_BUNDLE),
            );
            for w in warnings
                .iter()
                .map(String::as_str)
                .chain(regs.bundle_problem())
            {
                eprintln!("rancherctl: {w}");
            }
            let found = tags::list_blocking(&regs, &image)
                .map_err(|e| anyhow::anyhow!("rancher.upgrade.image: {e}"))?;
            Ok((image.clone(), bootstate::tags::releases(&image, &found)?))
        }
    }
}

/// Reboot now, or say that the change waits for the next boot.
pub(super) fn finish(reboot: bool) -> anyhow::Result<()> {
    if reboot {
        println!("rebooting");
        super::power::request(super::power::Request::Reboot)
    } else {
        println!("the change takes effect at the next boot");
        Ok(())
    }
}

/// An OS image by reference, through the user engine: pulled when it is not there (from its
/// registry, with the engine's trust and credentials), then saved (`docker save`'s tar) and
/// read like a file, every digest checked again here.
fn from_engine(reference: &str) -> anyhow::Result<bootstate::osimage::SlotFiles> {
    use crate::system_docker::client::Client;
    use crate::system_docker::encode;
    let socket = USER_ENGINE
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("no user engine socket (/var/run/docker.sock): is the docker service running?")?;
    if reference.is_empty()
        || reference.len() > 255
        || !reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
    {
        anyhow::bail!("{reference:?} is neither a file nor an image reference");
    }
    let engine = Client::with_default(None, socket)?;
    let name = reference;
    if engine.call("GET", &format!("/images/{name}/json")).is_err() {
        println!("pulling {reference}");
        let body = engine
            .request(
                "POST",
                &format!("/images/create?fromImage={}", encode(reference)),
                None,
            )?
            .ok()?
            .bytes()?;
        // The progress stream ends with an error line when the pull failed.
        for line in body.split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                if let Some(e) = v["error"].as_str() {
                    anyhow::bail!("pulling {reference}: {e}");
                }
            }
        }
    }
    let tar = engine
        .request("GET", &format!("/images/{name}/get"), None)?
        .ok()?
        .bytes()?;
    Ok(bootstate::osimage::read_from(&tar[..], reference)?)
}
