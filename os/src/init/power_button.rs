//! The ACPI power button, read straight from its evdev device (`/dev/input/eventN` whose name is
//! "Power Button"), as systemd-logind does. QEMU's `system_powerdown` arrives here. PID 1 always
//! holds the button open, and acts on a press only when the `acpid` system service does not hold
//! it too: evdev gives each event to every reader that had the device open when it came, so a
//! press acpid hears is acpid's (its handler runs `poweroff`, or whatever the user made it do),
//! and a press it cannot hear (acpid disabled, failed, stopped) shuts the machine down from here.
//! One case is unsure: an acpid started moments before the press (as it may be just after
//! `[ros] ready`, the boot having run it last) may have opened the device just after the event.
//! Then PID 1 gives it [`ACT_WITHIN`] to act and powers off itself if nothing came. A press is
//! never lost.

use anyhow::Context;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// The system service that owns the power button when it runs.
const ACPID: &str = "acpid";
const EV_KEY: u16 = 0x01;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit Linux: timeval (16) + type (2) + code (2) + value (4).
const EVENT_SIZE: usize = 24;

/// An acpid process younger than this at a press may have opened the button after the event.
const NEW_LISTENER: Duration = Duration::from_secs(3);
/// How long such an acpid is given to act on the press before PID 1 acts itself.
pub const ACT_WITHIN: Duration = Duration::from_secs(3);

/// Who has a press.
#[derive(Debug, PartialEq)]
pub enum Press {
    /// No acpid process holds the button: PID 1's.
    Unheard,
    /// An acpid process that held the button before the event: acpid's.
    Heard { pid: u32 },
    /// An acpid process started moments ago, perhaps after the event.
    PerhapsHeard { pid: u32, age: Duration },
}

/// One open power button device.
pub struct Button {
    pub dev: File,
    /// Its node, `/dev/input/eventN`: acpid's container sees `/dev/input` at the same path.
    pub path: String,
}

/// Once the system services are up: whose the button is, as they started (each press is
/// judged again when it comes, [`who_has`]).
pub fn say_who_listens() {
    if crate::system_services::status::is_running(ACPID) {
        tracing::info!(
            service = ACPID,
            "power button: acpid's while it holds the device open; PID 1 acts on a press it cannot hear"
        );
    } else {
        crate::console::say("power button: no acpid service running; PID 1 listens itself");
    }
}

/// Open every power button, before the system services start: a press during their start is
/// then read by the supervisor once the boot is done, not lost.
pub fn open(boot: &mut super::Boot) -> anyhow::Result<()> {
    let dir = std::fs::read_dir("/sys/class/input").context("/sys/class/input")?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("event") {
            continue;
        }
        let label = std::fs::read_to_string(entry.path().join("device/name")).unwrap_or_default();
        if label.trim() != "Power Button" {
            continue;
        }
        let dev = format!("/dev/input/{name}");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&dev)
            .with_context(|| format!("open {dev}"))?;
        tracing::debug!(device = %dev, "power button");
        boot.power_buttons.push(Button { dev: f, path: dev });
    }
    if boot.power_buttons.is_empty() {
        anyhow::bail!("no \"Power Button\" input device (ACPI off?)");
    }
    Ok(())
}

/// Drain pending events from one device; true when the power key was pressed.
pub fn pressed(dev: &mut File) -> bool {
    let mut buf = [0u8; EVENT_SIZE * 16];
    let mut hit = false;
    while let Ok(n) = dev.read(&mut buf) {
        if n == 0 {
            break;
        }
        hit |= buf[..n].chunks_exact(EVENT_SIZE).any(is_power_press);
    }
    hit
}

/// Who has a press on the button at `path`: an `acpid` service process holding it open, and
/// since when. Only the service's own cgroup is looked at (`cgroup.procs`, a handful of pids),
/// and only `readlink` on their fds, which never waits on a file system (a `stat` of any
/// process's fds could hang PID 1 on a dead FUSE mount).
pub fn who_has(path: &str) -> Press {
    let procs = format!(
        "/sys/fs/cgroup{}/{ACPID}/cgroup.procs",
        crate::engine::runtime::spec::CGROUP_PARENT
    );
    let Ok(pids) = std::fs::read_to_string(&procs) else {
        return Press::Unheard;
    };
    let Some(pid) = pids
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|pid| holds(*pid, path))
    else {
        return Press::Unheard;
    };
    match age(pid) {
        Some(age) if age >= NEW_LISTENER => Press::Heard { pid },
        // Unknown age: unsure too.
        age => Press::PerhapsHeard {
            pid,
            age: age.unwrap_or_default(),
        },
    }
}

/// How long ago process `pid` started (its `starttime`, in clock ticks since boot).
fn age(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = crate::procfs::stat_fields(&stat)?;
    let ticks: u64 = fields.get(19)?.parse().ok()?;
    let hz = crate::procfs::clock_ticks();
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let now = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32);
    let started =
        Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz);
    Some(now.saturating_sub(started))
}

/// Whether process `pid` has an fd whose target is `path`.
fn holds(pid: u32, path: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == path))
}

fn is_power_press(ev: &[u8]) -> bool {
    let ty = u16::from_ne_bytes([ev[16], ev[17]]);
    let code = u16::from_ne_bytes([ev[18], ev[19]]);
    let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
    ty == EV_KEY && code == KEY_POWER && value == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_key_press() {
        let mut ev = [0u8; EVENT_SIZE];
        ev[16..18].copy_from_slice(&EV_KEY.to_ne_bytes());
        ev[18..20].copy_from_slice(&KEY_POWER.to_ne_bytes());
        ev[20..24].copy_from_slice(&1i32.to_ne_bytes());
        assert!(is_power_press(&ev));
        ev[20..24].copy_from_slice(&0i32.to_ne_bytes());
        assert!(!is_power_press(&ev), "a release is not a press");
    }

    #[test]
    fn this_process_has_an_age() {
        let me = age(std::process::id()).expect("this process's age");
        assert!(me < Duration::from_secs(24 * 3600), "{me:?}");
        assert_eq!(age(u32::MAX), None, "no such process");
    }

    #[test]
    fn a_process_holding_the_node_open_is_found_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("event7");
        let path = node.to_str().unwrap();
        std::fs::write(&node, b"").unwrap();
        assert!(!holds(std::process::id(), path));
        let _open = File::open(&node).unwrap();
        assert!(holds(std::process::id(), path));
        assert!(!holds(std::process::id(), &format!("{path}8")));
        assert!(!holds(u32::MAX, path), "no such process");
    }
}
