//! The health gate of a trial boot (`ros boot-health`, started by PID 1 when boot ends): a
//! slot booted on trial (`*_OK` not 1) is marked good only when boot ended `[ros] ready` (not
//! `degraded`: PID 1 passes `--degraded LIST`), and then every enabled system service (the
//! services' status file, failed and invalid ones included) has been running (or, run once,
//! ended 0; or, create-only, created), none restarting, none restarted, and the user engine
//! answering, for [`STABLE`] in a row. A degraded trial fails at once; one that does not get
//! there within [`DEADLINE`] fails then. Either way the slot is not marked and the machine is
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
use crate::engine::manager::exit::describe;
use crate::services::spec::LABEL_CREATEONLY;
use crate::state::device::SysBlock;
use crate::system_docker::client::Client;
use crate::system_services::status::{SKIPPED, STATUS_PATH};
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

pub fn main(args: &[String]) -> ExitCode {
    let start = Instant::now();
    let degraded = match args {
        [] => None,
        [flag, list] if flag == "--degraded" => Some(list.clone()),
        _ => {
            say(&format!(
                "usage: ros boot-health [--degraded LIST], not {args:?}"
            ));
            return ExitCode::from(2);
        }
    };
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
    let fail = |why: String| {
        say(&format!("{slot} {why}: rebooting into the other slot"));
        record(Stage::Unhealthy, Some(why));
        if let Err(e) = crate::rancherctl::power::request(crate::rancherctl::power::Request::Reboot)
        {
            say(&format!("reboot: {e:#}"));
        }
        ExitCode::FAILURE
    };
    if let Some(list) = degraded {
        // Ready is the first promise of a good slot; its watchdog is still fed until the reboot.
        return fail(format!("came up degraded (not running: {list})"));
    }
    let mut healthy_since: Option<(Instant, Snapshot)> = None;
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
    fail(format!(
        "not healthy within {}s ({why})",
        DEADLINE.as_secs()
    ))
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

/// Each service's name, state and restart count, sorted: the gate's picture of a moment.
type Snapshot = Vec<(String, String, u64)>;

/// The system services' names, states and restart counts when all is well; what is wrong
/// otherwise.
fn check() -> Result<Snapshot, String> {
    let status = std::fs::read(STATUS_PATH).map_err(|e| format!("{STATUS_PATH}: {e}"))?;
    let services: Vec<ServiceLine> =
        serde_json::from_slice(&status).map_err(|e| format!("{STATUS_PATH}: {e}"))?;
    if services.is_empty() {
        return Err(format!("{STATUS_PATH} names no service"));
    }
    let system = Client::new(None).map_err(|e| format!("system engine: {e}"))?;
    let list: Vec<serde_json::Value> = system
        .json("GET", "/containers/json?all=1", None)
        .map_err(|e| format!("system engine: {e}"))?;
    // The engine's own word on each container: the status file is written after events, and
    // a writer that stopped would leave it saying "running" of a dead service.
    let container = |name: &str| {
        list.iter()
            .find(|c| c["Names"][0].as_str().map(|n| n.trim_start_matches('/')) == Some(name))
    };
    let mut snapshot = Vec::new();
    for svc in &services {
        let c = container(&svc.name);
        let create_only = c.is_some_and(|c| c["Labels"][LABEL_CREATEONLY].as_str() == Some("true"));
        healthy(svc, create_only)?;
        let engine_state = c.and_then(|c| c["State"].as_str());
        if svc.state == "running" && engine_state != Some("running") {
            return Err(format!(
                "service {} is {} by the engine, not running",
                svc.name,
                engine_state.unwrap_or("missing")
            ));
        }
        snapshot.push((svc.name.clone(), svc.state.clone(), svc.restarts));
    }
    snapshot.sort();
    let user = Client::with_default(None, USER_ENGINE).map_err(|e| format!("user engine: {e}"))?;
    user.call("GET", "/_ping")
        .map_err(|e| format!("user engine: {e}"))?;
    Ok(snapshot)
}

/// One service's line in the status file (what the gate reads of it).
#[derive(Debug, serde::Deserialize)]
struct ServiceLine {
    name: String,
    state: String,
    #[serde(default)]
    restarts: u64,
    #[serde(default)]
    last_exit: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A service is healthy running, exited 0 (a service that runs once), created when it is
/// create-only, or skipped by its condition; not restarting, not failed, not invalid, not gone.
fn healthy(s: &ServiceLine, create_only: bool) -> Result<(), String> {
    match s.state.as_str() {
        "running" => Ok(()),
        // Its condition did not hold (no datasource for cloud-init-save): nothing to run.
        SKIPPED => Ok(()),
        "exited" if s.last_exit.as_deref() == Some(describe(0).as_str()) => Ok(()),
        "created" if create_only => Ok(()),
        state => {
            let why = s
                .error
                .as_deref()
                .or(s.last_exit.as_deref())
                .unwrap_or("no reason recorded");
            Err(format!("service {} is {state}: {why}", s.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, state: &str, last_exit: Option<&str>, error: Option<&str>) -> ServiceLine {
        ServiceLine {
            name: name.into(),
            state: state.into(),
            restarts: 0,
            last_exit: last_exit.map(str::to_string),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn failed_restarting_and_missing_services_are_not_healthy() {
        assert!(healthy(&line("ntp", "running", None, None), false).is_ok());
        assert!(healthy(&line("cloud-init", "exited", Some("exit 0"), None), false).is_ok());
        assert!(healthy(&line("volumes", "created", None, None), true).is_ok());
        assert!(healthy(
            &line("cloud-init-save", "skipped", None, Some("no datasource")),
            false
        )
        .is_ok());
        let e = healthy(&line("bad", "exited", Some("exit 1"), None), false).unwrap_err();
        assert_eq!(e, "service bad is exited: exit 1");
        let e = healthy(&line("loop", "restarting", Some("exit 3"), None), false).unwrap_err();
        assert_eq!(e, "service loop is restarting: exit 3");
        // Never started: created, but not create-only.
        assert!(healthy(&line("stuck", "created", None, None), false).is_err());
        let e = healthy(
            &line(
                "ghost",
                "failed",
                None,
                Some("No such image: nosuch/image:1"),
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(e, "service ghost is failed: No such image: nosuch/image:1");
        for state in ["invalid", "removed", "paused"] {
            assert!(
                healthy(&line("x", state, None, None), false).is_err(),
                "{state}"
            );
        }
    }
}
