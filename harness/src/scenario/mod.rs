//! Scenarios as data (`scenarios/NAME.yml`): the upgrade matrix — which versions to build, the
//! disk each case starts from, what it does (`rancherctl os upgrade` or `rollback`), where the
//! power goes (QMP `quit` right after the command says it finished a step: the guest's caches
//! are lost, what it fsynced is on the disk) and which versions the next boot may run. Run by
//! `cargo harness scenario NAME` (every case: the nightly job) and by `tests/scenarios.rs`
//! (the cases marked `short`: every push).
//!
//! Every case also checks that the machine came back by itself (no hand on it: a panicking
//! trial reboots, a hung one is reset by its watchdog, an unhealthy one rebooted by its gate,
//! GRUB walks the boot state) to a slot marked good, that the state partition's boot-time
//! e2fsck ran and found nothing to repair, and, once powered off, that a forced `e2fsck -fn`
//! of the state partition and `fsck.vfat -n` of the ESP find nothing either. A case may also
//! say what `rancherctl os version` must tell of the last trial (`says`). The versions are
//! built by `versions.rs`.

mod versions;

use crate::diskimage::{build_spec, Spec};
use crate::vm::{Drive, Vm, VmOptions, READY};
use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use versions::{build_versions, Built};

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What it proves, for people.
    pub description: String,
    /// Versions to build: name (also the version string) → what it is.
    pub versions: BTreeMap<String, Variant>,
    /// The version installed in slot A of every case's disk.
    pub installed: String,
    pub cases: Vec<Case>,
}

/// What a built version is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The built kernel and initrd.
    Good,
    /// The built kernel with an initrd holding nothing: the kernel finds no init and panics
    /// (`panic=10` reboots).
    NoInit,
    /// The built kernel and initrd with an init that exits at once (the initrd plus a second
    /// archive whose `/init` is a shell script ending `exit 1`): the kernel panics ("Attempted
    /// to kill init") and `panic=10` reboots.
    InitPanics,
    /// The built kernel and initrd with an init that hangs for ever (the initrd plus a second
    /// archive whose `/init` is a shell loop): nothing panics, only the trial's watchdog can
    /// send the machine back.
    InitHangs,
    /// The built kernel and initrd with a required system service (acpid) that exits 3 at
    /// every start: the system comes up degraded (the gate fails it at once) or its gate never
    /// passes (it fails at its deadline); either way the gate reboots into the other slot.
    ServiceFails,
}

/// One case: a fresh disk, one action, maybe a power cut, the boot after.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The version running when the action starts: `installed` (slot A alone), or another,
    /// in slot B, booted and good, with `installed` good in slot A.
    pub booted: String,
    /// `rancherctl os upgrade -i` of this version (given on a second disk).
    #[serde(default)]
    pub upgrade: Option<String>,
    /// `rancherctl os rollback`.
    #[serde(default)]
    pub rollback: bool,
    /// Cut the power right after the command prints a line containing this; without it the
    /// command runs to its end and the machine reboots.
    #[serde(default)]
    pub cut_after: Option<String>,
    /// The versions the machine may run once it is back (never neither).
    pub expect: Vec<String>,
    /// A regular expression that what `rancherctl os version` says of the last trial once the
    /// machine is back must match (its `last trial:` line: why a bad version was left).
    #[serde(default)]
    pub says: Option<String>,
    /// Among the cases every push runs.
    #[serde(default)]
    pub short: bool,
}

/// How a case went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: String,
    pub version: String,
    /// GRUB's choices after the action (`booting SLOT_B (trial 1)`, …).
    pub boots: Vec<String>,
    pub seconds: f64,
}

/// The scenario file `scenarios/NAME.yml`, checked.
pub fn load(name: &str) -> anyhow::Result<Scenario> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("scenario {name:?}: a name of letters, digits and -");
    }
    let path = crate::paths::repo_root()
        .join("scenarios")
        .join(format!("{name}.yml"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let s: Scenario =
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}", path.display()))?;
    s.check().with_context(|| format!("{}", path.display()))?;
    Ok(s)
}

impl Scenario {
    fn check(&self) -> anyhow::Result<()> {
        let known = |v: &str, what: &str| -> anyhow::Result<()> {
            if !self.versions.contains_key(v) {
                bail!("{what}: version {v:?} is not under versions");
            }
            Ok(())
        };
        known(&self.installed, "installed")?;
        for c in &self.cases {
            let at = format!("case {}", c.name);
            known(&c.booted, &at)?;
            if self.versions[&c.booted] != Variant::Good {
                bail!("{at}: booted must be a good version");
            }
            if let Some(u) = &c.upgrade {
                known(u, &at)?;
            }
            if c.upgrade.is_some() == c.rollback {
                bail!("{at}: one of upgrade: VERSION or rollback: true");
            }
            if c.rollback && c.booted == self.installed {
                bail!("{at}: a rollback needs another version booted (slot B)");
            }
            for e in &c.expect {
                known(e, &at)?;
            }
            if let Some(re) = &c.says {
                regex::Regex::new(re).with_context(|| format!("{at}: says"))?;
            }
            if c.expect.is_empty() {
                bail!("{at}: expect: at least one version");
            }
        }
        Ok(())
    }
}

const BOOT: Duration = Duration::from_secs(300);

/// Which cases of a scenario to run.
#[derive(Debug, Clone)]
pub enum Select {
    All,
    /// Those marked `short` (every push).
    Short,
    /// These, by name.
    Named(Vec<String>),
}

/// Run the cases of `name` that `select` picks, each on a fresh disk; `report` hears of each
/// outcome as it comes. Fails on the first case that does not hold.
pub fn run(
    name: &str,
    select: &Select,
    report: &mut dyn FnMut(&Outcome),
) -> anyhow::Result<Vec<Outcome>> {
    let s = load(name)?;
    if let Select::Named(names) = select {
        for n in names {
            if !s.cases.iter().any(|c| &c.name == n) {
                let known: Vec<&str> = s.cases.iter().map(|c| c.name.as_str()).collect();
                bail!(
                    "scenario {name}: no case {n:?} (cases: {})",
                    known.join(", ")
                );
            }
        }
    }
    let dir = crate::paths::repo_root()
        .join("target")
        .join("scenarios")
        .join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let built = build_versions(&s, &dir)?;
    let mut out = Vec::new();
    let picked = |c: &&Case| match select {
        Select::All => true,
        Select::Short => c.short,
        Select::Named(names) => names.contains(&c.name),
    };
    for c in s.cases.iter().filter(picked) {
        let o = run_case(&s, c, &built, &dir, name)
            .with_context(|| format!("scenario {name}, case {}", c.name))?;
        report(&o);
        out.push(o);
    }
    Ok(out)
}

fn run_case(
    s: &Scenario,
    c: &Case,
    built: &Built,
    dir: &Path,
    scenario: &str,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let vm_name = format!("scenario-{scenario}-{}", c.name);
    let disk = dir.join(format!("{}.img", c.name));
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let spec = if c.booted == s.installed {
        Spec::slot_a(
            &built.slots[&c.booted].kernel,
            &built.slots[&c.booted].initrd,
            &c.booted,
        )
    } else {
        Spec {
            a: built.slots[&s.installed].clone(),
            b: Some(built.slots[&c.booted].clone()),
            boot_state: pairs(&[
                ("ORDER", "B A"),
                ("A_OK", "1"),
                ("A_TRY", "0"),
                ("B_OK", "1"),
                ("B_TRY", "0"),
            ]),
        }
    };
    build_spec(&spec, &disk)?;
    let image = c
        .upgrade
        .as_ref()
        .map(|u| built.images[u].clone())
        .unwrap_or_else(|| built.images[&s.installed].clone());
    let opts = |name: &str| -> anyhow::Result<VmOptions> {
        Ok(VmOptions::new(name)?
            .firmware_boot()
            .allow_reboot()
            .drive(Drive {
                path: disk.clone(),
                format: "raw".into(),
                read_only: false,
            })
            .drive(Drive {
                path: image.clone(),
                format: "raw".into(),
                read_only: true,
            }))
    };
    let mut vm = Vm::boot(opts(&vm_name)?)?;
    vm.expect(READY, BOOT)?;
    let (running, _) = status(&mut vm)?;
    if running != c.booted {
        bail!(
            "booted {running}, not {}; serial log: {}",
            c.booted,
            vm.log_path().display()
        );
    }
    let cmd = if c.rollback {
        "rancherctl os rollback".to_string()
    } else {
        "rancherctl os upgrade -i /dev/vdb".to_string()
    };
    let mut after = match &c.cut_after {
        Some(line) => {
            vm.send(&format!("{cmd} --no-reboot\n"))?;
            vm.expect(&regex_quote(line), BOOT)?;
            vm.quit()?;
            vm.wait_exit(Duration::from_secs(30))?;
            drop(vm);
            Vm::boot(opts(&format!("{vm_name}-after"))?)?
        }
        None => {
            vm.send(&format!("{cmd}\n"))?;
            vm.expect(r"\[ros\] shutdown complete", BOOT)?;
            vm.shell_ended();
            vm
        }
    };
    // Back by itself: as many boots as it takes (a trial that panics reboots, one that hangs
    // is reset by its watchdog, one that is not healthy is rebooted by its gate), until a
    // version runs from a slot marked good.
    after.expect(READY, BOOT * 2)?;
    let mut decisions = 0;
    let got = loop {
        let (version, trial) = status(&mut after)?;
        if !trial {
            break version;
        }
        decisions += 1;
        if decisions > 3 {
            bail!(
                "still on trial after three boots; serial log: {}",
                after.log_path().display()
            );
        }
        // From this boot's start: the gate may have decided while the shell was answering.
        let seen = after.expect_since_boot(
            r"boot health: SLOT_\w+ healthy for \d+s: marked good|booting SLOT_",
            GATE,
        )?;
        if seen.ends_with("booting SLOT_") {
            after.expect(READY, BOOT * 2)?;
        }
    };
    let serial = after.serial_text();
    let boots: Vec<String> = serial
        .lines()
        .filter_map(|l| l.find("booting SLOT_").map(|i| l[i..].trim().to_string()))
        .collect();
    if !c.expect.contains(&got) {
        bail!(
            "runs {got}, not one of {:?} (boots: {boots:?}); serial log: {}",
            c.expect,
            after.log_path().display()
        );
    }
    if let Some(want) = &c.says {
        let said = after.sh_ok("rancherctl os version", BOOT)?;
        let last = said
            .lines()
            .find_map(|l| l.strip_prefix("last trial: "))
            .unwrap_or("(no last trial line)");
        if !regex::Regex::new(want)?.is_match(last) {
            bail!(
                "rancherctl os version says {last:?} of the last trial, not {want:?}; serial log: {}",
                after.log_path().display()
            );
        }
    }
    if let Some(l) = serial
        .lines()
        .find(|l| l.contains("had errors") || l.contains("e2fsck left errors"))
    {
        bail!(
            "the state partition was not clean: {l}; serial log: {}",
            after.log_path().display()
        );
    }
    if let Some(l) = serial.lines().find(|l| l.contains("state: fsck skipped")) {
        bail!(
            "the state partition was not checked at boot: {l}; serial log: {}",
            after.log_path().display()
        );
    }
    // And, powered off cleanly, a forced read-only check of the state partition and the ESP
    // from this machine.
    after.send("rancherctl poweroff\n")?;
    after.wait_exit(BOOT)?;
    drop(after);
    check_clean(&disk)?;
    Ok(Outcome {
        case: c.name.clone(),
        version: got,
        boots,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `e2fsck -fn` on the disk's state partition and `fsck.vfat -n` on its ESP, each copied out
/// of the image: both must find nothing to repair.
fn check_clean(disk: &Path) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let work = tempfile::tempdir()?;
    for (part, tool, args) in [
        ("RANCHER_STATE", "e2fsck", &["-f", "-n"][..]),
        ("EFI", "fsck.vfat", &["-n"][..]),
    ] {
        let (offset, len) = crate::diskimage::partition(part).context("a partition")?;
        let mut f = std::fs::File::open(disk).with_context(|| format!("{}", disk.display()))?;
        f.seek(SeekFrom::Start(offset))?;
        let copy = work.path().join(part);
        let mut out = std::fs::File::create(&copy)?;
        let n = std::io::copy(&mut f.take(len), &mut out)?;
        if n != len {
            bail!(
                "{}: {part} is cut short ({n} of {len} bytes)",
                disk.display()
            );
        }
        drop(out);
        let r = std::process::Command::new(tool)
            .args(args)
            .arg(&copy)
            .output()
            .with_context(|| format!("running {tool} (harness setup installs it)"))?;
        if !r.status.success() {
            bail!(
                "{}: {part} is not clean ({tool} {}: exit {:?}): {}{}",
                disk.display(),
                args.join(" "),
                r.status.code(),
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            );
        }
    }
    Ok(())
}

/// How long a trial's health gate may take to decide (its deadline is 300 s from ready).
const GATE: Duration = Duration::from_secs(420);

/// `rancherctl os version`'s version, and whether the slot booted is on trial (its `*_OK`
/// not 1).
fn status(vm: &mut Vm) -> anyhow::Result<(String, bool)> {
    let out = vm.sh_ok("rancherctl os version", BOOT)?;
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("no {key:?} in {out:?}"))
    };
    let version = field("version: ")?;
    let good = if field("slot: ")? == "SLOT_B" {
        "B_OK=1"
    } else {
        "A_OK=1"
    };
    let trial = !field("boot state: ")?.split_whitespace().any(|w| w == good);
    Ok((version, trial))
}

fn regex_quote(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_file_reads_and_checks() {
        let dir = crate::paths::repo_root().join("scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".yml") {
                load(stem).unwrap();
                n += 1;
            }
        }
        assert!(n >= 1, "no scenario in {}", dir.display());
    }

    #[test]
    fn a_case_naming_an_unknown_version_is_refused() {
        let s: Scenario = serde_yaml_ng::from_str(
            "description: x\nversions: {v1: good}\ninstalled: v1\ncases:\n  - {name: c, booted: v1, upgrade: v9, expect: [v1]}\n",
        )
        .unwrap();
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("case c: version \"v9\""), "{e}");
    }
}
