//! The health gate of a trial boot (`ros boot-health`, started by PID 1 once it is ready): a
//! slot booted on trial (`*_OK` not 1) is marked good only when the system services have been
//! running, none restarting and none failed, and the user engine answering, for [`STABLE`] in
//! a row. A slot that does not get there within [`DEADLINE`] is not marked, and the machine is
//! rebooted: its trial is used up, so GRUB boots the other slot, with no hand on it.
//!
//! Why a process of its own: PID 1 never blocks, and this waits for minutes; it only reads
//! the engines' sockets and writes one sector of the ESP.
//!
//! A trial boot's watchdog (`watchdog.rs`, armed by GRUB's kernel line) is the gate's too: it
//! feeds it until [`DEADLINE`] and a minute more, and stops it once the slot is marked good,
//! so a gate that hangs or dies, or a reboot that never ends, still resets the machine.

use super::trial::{Stage, Trial};
use super::watchdog::{self, Watchdog};
use super::{booted_append, booted_slot, mark_good, read_state, record_trial, repair};
use crate::state::device::SysBlock;
use crate::system_docker::client::Client;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long the system must stay healthy before its slot is marked good.
pub const STABLE: Duration = Duration::from_secs(10);
/// How long a trial boot has to get there.
pub const DEADLINE: Duration = Duration::from_secs(300);
/// How long past [`DEADLINE`] the watchdog is still fed: the time a reboot has to happen.
const REBOOT_GRACE: Duration = Duration::from_secs(60);
/// The user engine's socket on the host.
const USER_ENGINE: &str = "/run/docker/docker.sock";

fn say(msg: &str) {
    eprintln!("[ros] boot health: {msg}");
}

pub fn main() -> ExitCode {
    let start = Instant::now();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let wd = arm_watchdog(&cmdline, start + DEADLINE + REBOOT_GRACE);
    let stop = |wd: Option<Watchdog>| {
        if let Some(wd) = wd {
            match wd.stop() {
                Ok(()) => say("watchdog stopped"),
                Err(e) => say(&format!("stopping the watchdog: {e:#}")),
            }
        }
    };
    let Some(slot) = booted_slot(&cmdline) else {
        stop(wd);
        return ExitCode::SUCCESS;
    };
    let key = if slot == "SLOT_A" { "A" } else { "B" };
    match read_state(&SysBlock) {
        Ok(env) if env.get(&format!("{key}_OK")) == Some("1") => {
            stop(wd);
            return ExitCode::SUCCESS;
        }
        Ok(_) => {}
        Err(e) => {
            stop(wd);
            // GRUB booted the slot `goodenv` names: the boot state is rebuilt around it.
            say(&format!("the boot state is unreadable ({e:#})"));
            return match repair(&SysBlock, &slot, &booted_append(&cmdline)) {
                Ok(env) => {
                    say(&format!(
                        "boot state rebuilt around {slot}, the slot booted as known good ({})",
                        env.summary()
                    ));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    say(&format!("rebuilding the boot state: {e:#}"));
                    ExitCode::FAILURE
                }
            };
        }
    }
    say(&format!(
        "{slot} is on trial: waiting for {}s of health",
        STABLE.as_secs()
    ));
    let version = super::slot_version(&SysBlock, &slot).unwrap_or_else(|_| "unknown".into());
    let record = |stage, why: Option<String>| {
        let t = Trial {
            slot: slot.clone(),
            version: version.clone(),
            stage,
            why,
        };
        if let Err(e) = record_trial(&SysBlock, &t) {
            say(&format!("the trial record: {e:#}"));
        }
    };
    record(Stage::Gate, None);
    let mut healthy_since: Option<(Instant, Vec<(String, String)>)> = None;
    let mut why = String::from("not checked yet");
    while start.elapsed() < DEADLINE {
        match check() {
            Ok(snapshot) => match &healthy_since {
                Some((t, s)) if *s == snapshot => {
                    if t.elapsed() >= STABLE {
                        return match mark_good(&SysBlock, &slot) {
                            Ok(env) => {
                                record(Stage::Good, None);
                                say(&format!(
                                    "{slot} healthy for {}s: marked good ({})",
                                    STABLE.as_secs(),
                                    env.summary()
                                ));
                                stop(wd);
                                ExitCode::SUCCESS
                            }
                            Err(e) => {
                                say(&format!("marking {slot} good: {e:#}"));
                                ExitCode::FAILURE
                            }
                        };
                    }
                }
                _ => healthy_since = Some((Instant::now(), snapshot)),
            },
            Err(w) => {
                why = w;
                healthy_since = None;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    say(&format!(
        "{slot} not healthy within {}s ({why}): rebooting into the other slot",
        DEADLINE.as_secs()
    ));
    record(
        Stage::Unhealthy,
        Some(format!(
            "not healthy within {}s ({why})",
            DEADLINE.as_secs()
        )),
    );
    if let Err(e) = crate::rancherctl::power::request(crate::rancherctl::power::Request::Reboot) {
        say(&format!("reboot: {e:#}"));
    }
    ExitCode::FAILURE
}

/// The trial's watchdog, when GRUB armed one: taken over, with the gate's timeout, and fed
/// until `feed_until`.
fn arm_watchdog(cmdline: &str, feed_until: Instant) -> Option<Watchdog> {
    if !watchdog::armed_by(cmdline) {
        return None;
    }
    match Watchdog::open(
        std::path::Path::new(watchdog::DEVICE),
        watchdog::GATE_TIMEOUT,
        feed_until,
    ) {
        Ok(Some(wd)) => {
            say(&format!(
                "watchdog armed: fed until the gate decides ({}s timeout)",
                wd.timeout.as_secs()
            ));
            Some(wd)
        }
        Ok(None) => {
            say(&format!(
                "no {}: this trial has no watchdog",
                watchdog::DEVICE
            ));
            None
        }
        Err(e) => {
            say(&format!("watchdog: {e:#}"));
            None
        }
    }
}

/// The system services' names and states when all is well; what is wrong otherwise.
fn check() -> Result<Vec<(String, String)>, String> {
    let system = Client::new(None).map_err(|e| format!("system engine: {e}"))?;
    let list: Vec<serde_json::Value> = system
        .json("GET", "/containers/json?all=1", None)
        .map_err(|e| format!("system engine: {e}"))?;
    let mut snapshot = Vec::new();
    for c in &list {
        let name = c["Names"][0]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let state = c["State"].as_str().unwrap_or_default().to_string();
        let status = c["Status"].as_str().unwrap_or_default();
        healthy(&name, &state, status)?;
        snapshot.push((name, state));
    }
    snapshot.sort();
    let user = Client::with_default(None, USER_ENGINE).map_err(|e| format!("user engine: {e}"))?;
    user.call("GET", "/_ping")
        .map_err(|e| format!("user engine: {e}"))?;
    Ok(snapshot)
}

/// A service is healthy running, or exited 0 (a service that runs once); not restarting,
/// not failed.
fn healthy(name: &str, state: &str, status: &str) -> Result<(), String> {
    match state {
        "running" | "created" => Ok(()),
        "exited" if status.starts_with("Exited (0)") => Ok(()),
        _ => Err(format!("service {name} is {state}: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_and_restarting_services_are_not_healthy() {
        assert!(healthy("ntp", "running", "Up 3 seconds").is_ok());
        assert!(healthy("cloud-init-execute", "exited", "Exited (0) 2 seconds ago").is_ok());
        let e = healthy("bad", "exited", "Exited (1) 2 seconds ago").unwrap_err();
        assert!(e.contains("service bad is exited"), "{e}");
        assert!(healthy("loop", "restarting", "Restarting (1) 1 second ago").is_err());
    }
}
