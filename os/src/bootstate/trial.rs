//! What became of the last trial boot, so that `rancherctl os version` can say why the machine
//! is back on the old slot: `grub/trial.json` on the ESP (shared by both slots), replaced whole
//! (temporary file, fsync, rename) at each stage:
//!
//! - `written`: the upgrade committed the new slot, on trial;
//! - `gate`: the trial boot reached ready and its health gate started;
//! - `good`: the gate marked it good;
//! - `unhealthy`: the gate gave up, with the reason, and rebooted.
//!
//! A trial slot that is not the one booted, left at `written`, never got to ready (its kernel
//! or init failed); left at `gate`, the system hung or the power went during the gate. Only a
//! diagnosis: the boot state alone decides what boots.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The record's path on the ESP.
pub const PATH: &str = "grub/trial.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Written,
    Gate,
    Good,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub slot: String,
    pub version: String,
    pub stage: Stage,
    /// Why the gate gave up (`unhealthy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Replace the record on the ESP mounted at `esp`.
pub fn write(esp: &Path, t: &Trial) -> anyhow::Result<()> {
    let body = serde_json::to_vec_pretty(t)?;
    super::upgrade::write_file(&esp.join("grub"), "trial.json", &body)
}

/// The record on the ESP mounted at `esp`, if there is a readable one (at most 64 KiB).
pub fn read(esp: &Path) -> Option<Trial> {
    let bytes = std::fs::read(esp.join(PATH)).ok()?;
    if bytes.len() > 64 << 10 {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// What `rancherctl os version` says of the record, booted from `booted`.
pub fn explain(t: &Trial, booted: &str) -> String {
    let what = format!("{} ({})", t.slot, t.version);
    if t.slot == booted {
        return match t.stage {
            Stage::Written | Stage::Gate => format!("{what} is on trial: its health gate decides"),
            Stage::Good => format!("{what} passed its trial"),
            Stage::Unhealthy => format!(
                "{what} failed its health gate ({}) but is booted: marked good by hand?",
                t.why.as_deref().unwrap_or("no reason recorded")
            ),
        };
    }
    match t.stage {
        Stage::Good => format!("{what} passed its trial; {booted} booted since"),
        Stage::Written => format!(
            "{what} failed its trial: it never became ready (its kernel or init failed or hung before the health gate ran); back on {booted}"
        ),
        Stage::Gate => format!(
            "{what} failed its trial: its health gate never finished (the system hung or the power went); back on {booted}"
        ),
        Stage::Unhealthy => format!(
            "{what} failed its trial: {}; back on {booted}",
            t.why.as_deref().unwrap_or("unhealthy")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_left_behind_says_why_the_machine_is_back() {
        let t = |stage, why: Option<&str>| Trial {
            slot: "SLOT_A".into(),
            version: "3.0.0".into(),
            stage,
            why: why.map(str::to_string),
        };
        assert!(explain(&t(Stage::Written, None), "SLOT_B").contains("never became ready"));
        assert!(explain(&t(Stage::Gate, None), "SLOT_B").contains("never finished"));
        assert_eq!(
            explain(
                &t(Stage::Unhealthy, Some("service docker is restarting")),
                "SLOT_B"
            ),
            "SLOT_A (3.0.0) failed its trial: service docker is restarting; back on SLOT_B"
        );
        assert_eq!(
            explain(&t(Stage::Good, None), "SLOT_A"),
            "SLOT_A (3.0.0) passed its trial"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("grub")).unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), &t(Stage::Gate, None)).unwrap();
        assert_eq!(read(dir.path()), Some(t(Stage::Gate, None)));
    }
}
