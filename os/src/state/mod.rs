//! The state partition: the one place where anything outlives a reboot. At boot (the `state`
//! step, after the system images are loaded and before the system services start) PID 1 finds
//! the device `rancher.state.dev` names (default `LABEL=RANCHER_STATE`), looking for it for up
//! to `rancher.state.wait` seconds; formats a blank disk listed in `rancher.state.autoformat`
//! (never one that holds anything); runs `e2fsck -p` (a dirty filesystem is repaired, not
//! reformatted); mounts it on [`mount::MOUNT_POINT`]; and binds only [`mount::PERSISTENT`]
//! (`/home`, `/opt`, the OS config, the user engine's data, the SSH host keys) over their places.
//! Everything else is the initrd's and is rebuilt at every boot.
//!
//! With no state device the system runs from RAM: the console says so once, and the status
//! file [`STATUS_PATH`] (`rancherctl state`) says so for good.
//!
//! Modules: [`superblock`] (ext superblock: label and UUID), [`device`] (finding the device,
//! the block-device seam), [`format`] (when a disk may be formatted), [`tools`] (e2fsprogs from
//! the system image), [`mount`] (mounting and binding).

pub mod device;
pub mod format;
pub mod mount;
pub mod superblock;
pub mod tools;

use device::{BlockDevices, DeviceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tools::{FsTools, Fsck, ToolError};

/// Where PID 1 records what became of the state partition.
pub const STATUS_PATH: &str = "/run/ros/state.json";
/// `rancher.state.dev` when unset.
pub const DEFAULT_DEV: &str = "LABEL=RANCHER_STATE";
/// How often a missing device is looked for again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("rancher.state.dev {0:?} is not LABEL=…, UUID=… or a /dev path")]
    BadDev(String),
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// `rancher.state`, read into what the step acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub spec: DeviceSpec,
    pub wait: Duration,
    pub autoformat: Vec<PathBuf>,
    pub directory: Option<String>,
}

impl Settings {
    pub fn from_config(s: &crate::config::State) -> Result<Settings, StateError> {
        let dev = s.dev.as_deref().unwrap_or(DEFAULT_DEV);
        let spec = DeviceSpec::parse(dev).ok_or_else(|| StateError::BadDev(dev.into()))?;
        Ok(Settings {
            spec,
            wait: Duration::from_secs(s.wait.seconds()),
            autoformat: s.autoformat.iter().map(PathBuf::from).collect(),
            directory: s.directory.clone(),
        })
    }
}

/// The device found (or made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub device: PathBuf,
    /// Formatted at this boot by autoformat.
    pub formatted: bool,
}

/// Find the state device, formatting a blank autoformat disk on the way. `note` gets every
/// line meant for the console (a disk left alone because it holds data, a disk formatted).
pub fn locate(
    s: &Settings,
    devs: &dyn BlockDevices,
    tools: &dyn FsTools,
    note: &mut dyn FnMut(String),
) -> Result<Option<Located>, StateError> {
    let deadline = Instant::now() + s.wait;
    let mut judged = BTreeSet::new();
    let mut formatted = false;
    // A disk left alone because it holds data is worth saying only when no state partition
    // turns up: an installed disk (a partition table, RANCHER_STATE among its partitions)
    // holds data at every boot.
    let mut held = Vec::new();
    loop {
        // A state partition that exists wins: a blank disk beside an installed system is the
        // user's new disk, not one to format.
        if let Some(device) = device::find(devs, &s.spec) {
            return Ok(Some(Located { device, formatted }));
        }
        let present = devs.list();
        let mut made = false;
        for cand in &s.autoformat {
            if judged.contains(cand) || !present.contains(cand) {
                continue;
            }
            judged.insert(cand.clone());
            if device::superblock_of(devs, cand).is_some_and(|sb| sb.label == format::LABEL) {
                continue; // already a state partition
            }
            match format::judge(devs, cand) {
                format::Verdict::Format(dev) => {
                    note(format!(
                        "state: formatting blank disk {} (ext4, label {})",
                        dev.display(),
                        format::LABEL
                    ));
                    match tools.mkfs(&dev, format::LABEL) {
                        Ok(()) => (formatted, made) = (true, true),
                        // Said, and the search goes on (another candidate, a partition that
                        // turns up late); no state partition at all means running from RAM.
                        Err(e) => note(format!("state: formatting {} failed: {e}", dev.display())),
                    }
                }
                format::Verdict::HoldsData(dev) => held.push(format!(
                    "state: not formatting {}: it holds data (its first MiB is not all zeros)",
                    dev.display()
                )),
                format::Verdict::Unreadable(dev, e) => {
                    note(format!("state: cannot read {}: {e}", dev.display()))
                }
            }
        }
        if made {
            continue; // found at the top, without waiting
        }
        if Instant::now() >= deadline {
            for h in held {
                note(h);
            }
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// What became of the state partition at boot (`/run/ros/state.json`, `rancherctl state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `rancher.state.dev` as configured.
    pub wanted: String,
    /// The device in use, when one was found.
    pub device: Option<String>,
    pub mounted: bool,
    /// Running from RAM: nothing persists.
    pub ram: bool,
    pub formatted: bool,
    /// `clean`, `repaired`, `uncorrected (exit N)`, `skipped: …`.
    pub fsck: Option<String>,
    /// The state root (the mount point, or `rancher.state.directory` under it).
    pub root: Option<String>,
    /// What persists.
    pub persistent: Vec<String>,
    pub error: Option<String>,
}

impl Status {
    pub fn write(&self) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::config::atomic::write_atomic(std::path::Path::new(STATUS_PATH), &json, 0o644)
            .map_err(|e| anyhow::anyhow!("writing {STATUS_PATH}: {e}"))
    }

    pub fn read() -> anyhow::Result<Status> {
        use anyhow::Context;
        let text = std::fs::read_to_string(STATUS_PATH)
            .with_context(|| format!("reading {STATUS_PATH} (is PID 1 the RancherOS-rs init?)"))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {STATUS_PATH}"))
    }
}

/// The fsck result, for the status file.
pub fn describe_fsck(f: &Fsck) -> String {
    match f {
        Fsck::Clean => "clean".into(),
        Fsck::Repaired(_) => "repaired".into(),
        Fsck::Uncorrected(c, _) => format!("uncorrected (exit {c})"),
    }
}

#[cfg(test)]
mod tests {
    use super::device::fake::{ext, Disks};
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;

    /// Records calls; `mkfs` writes a RANCHER_STATE superblock into the fake disk.
    struct Tools<'a>(&'a Disks, Mutex<Vec<String>>);

    impl FsTools for Tools<'_> {
        fn mkfs(&self, dev: &Path, label: &str) -> Result<(), ToolError> {
            self.1
                .lock()
                .unwrap()
                .push(format!("mkfs {}", dev.display()));
            self.0
                 .0
                .lock()
                .unwrap()
                .insert(dev.to_path_buf(), ext(label, [2; 16]));
            Ok(())
        }
        fn fsck(&self, _: &Path) -> Result<Fsck, ToolError> {
            Ok(Fsck::Clean)
        }
    }

    fn settings(autoformat: &[&str], wait_ms: u64) -> Settings {
        Settings {
            spec: DeviceSpec::parse(DEFAULT_DEV).unwrap(),
            wait: Duration::from_millis(wait_ms),
            autoformat: autoformat.iter().map(PathBuf::from).collect(),
            directory: None,
        }
    }

    fn run(disks: &Disks, s: &Settings) -> (Option<Located>, Vec<String>, Vec<String>) {
        let tools = Tools(disks, Mutex::new(Vec::new()));
        let mut notes = Vec::new();
        let found = locate(s, disks, &tools, &mut |n| notes.push(n)).unwrap();
        let calls = tools.1.into_inner().unwrap();
        (found, notes, calls)
    }

    #[test]
    fn a_blank_autoformat_disk_is_formatted_and_used() {
        let disks = Disks::with(&[("/dev/vda", vec![0u8; 2 << 20])]);
        let (found, notes, calls) = run(&disks, &settings(&["/dev/vda"], 0));
        assert_eq!(
            found,
            Some(Located {
                device: "/dev/vda".into(),
                formatted: true
            })
        );
        assert_eq!(calls, ["mkfs /dev/vda"]);
        assert!(
            notes[0].contains("formatting blank disk /dev/vda"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_disk_with_data_is_never_formatted_and_the_console_is_told() {
        let mut data = vec![0u8; 2 << 20];
        data[4096] = 0x42;
        let disks = Disks::with(&[("/dev/vda", data)]);
        let (found, notes, calls) = run(&disks, &settings(&["/dev/vda"], 120));
        assert_eq!(found, None);
        assert!(calls.is_empty());
        assert_eq!(notes.len(), 1, "said once, not at every poll: {notes:?}");
        assert!(notes[0].contains("not formatting /dev/vda: it holds data"));
    }

    #[test]
    fn an_existing_state_partition_is_used_as_it_is() {
        let disks = Disks::with(&[("/dev/vda", ext("RANCHER_STATE", [1; 16]))]);
        let (found, notes, calls) = run(&disks, &settings(&["/dev/vda"], 0));
        assert!(!found.unwrap().formatted);
        assert!(calls.is_empty() && notes.is_empty(), "{calls:?} {notes:?}");
    }

    #[test]
    fn a_blank_disk_beside_an_installed_state_partition_is_left_alone() {
        let disks = Disks::with(&[
            ("/dev/vda", vec![0u8; 2 << 20]),
            ("/dev/vdb5", ext("RANCHER_STATE", [1; 16])),
        ]);
        let (found, notes, calls) = run(&disks, &settings(&["/dev/vda"], 0));
        assert_eq!(
            found,
            Some(Located {
                device: "/dev/vdb5".into(),
                formatted: false
            })
        );
        assert!(calls.is_empty() && notes.is_empty(), "{calls:?} {notes:?}");
    }

    #[test]
    fn a_format_that_fails_is_said_and_the_search_goes_on() {
        struct Failing;
        impl FsTools for Failing {
            fn mkfs(&self, dev: &Path, _: &str) -> Result<(), ToolError> {
                Err(ToolError::Missing(format!("mke2fs for {}", dev.display())))
            }
            fn fsck(&self, _: &Path) -> Result<Fsck, ToolError> {
                Ok(Fsck::Clean)
            }
        }
        let disks = Disks::with(&[("/dev/vda", vec![0u8; 2 << 20])]);
        let mut notes = Vec::new();
        let found = locate(&settings(&["/dev/vda"], 50), &disks, &Failing, &mut |n| {
            notes.push(n)
        })
        .unwrap();
        assert_eq!(found, None);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("formatting /dev/vda failed")),
            "{notes:?}"
        );
    }

    #[test]
    fn another_filesystem_is_data() {
        let disks = Disks::with(&[("/dev/vda", ext("HOME", [1; 16]))]);
        let (found, notes, calls) = run(&disks, &settings(&["/dev/vda"], 0));
        assert_eq!(found, None);
        assert!(calls.is_empty());
        assert!(notes[0].contains("holds data"));
    }

    #[test]
    fn no_disk_at_all_is_none_after_the_wait() {
        let disks = Disks::default();
        let t = Instant::now();
        let (found, notes, _) = run(&disks, &settings(&["/dev/vda"], 100));
        assert_eq!(found, None);
        assert!(notes.is_empty());
        assert!(t.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn settings_from_config() {
        let mut c = crate::config::State::default();
        let s = Settings::from_config(&c).unwrap();
        assert_eq!(s.spec, DeviceSpec::Label("RANCHER_STATE".into()));
        c.dev = Some("sda".into());
        assert!(matches!(
            Settings::from_config(&c),
            Err(StateError::BadDev(_))
        ));
    }
}
